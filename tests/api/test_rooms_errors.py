"""Refusals that every room endpoint shares: rooms that do not exist,
identifiers that are not identifiers, events over the 64 KiB limit and NUL
characters. None of them may become a 500."""

from ..support.client import path_param
from ..support.room_steps import SERVER, register, text

ROOM_ENDPOINTS = [
    ("POST", "/rooms/{room}/invite", {"user_id": "@bob:" + SERVER}),
    ("POST", "/rooms/{room}/join", {}),
    ("POST", "/join/{room}", {}),
    ("POST", "/rooms/{room}/leave", {}),
    ("POST", "/rooms/{room}/forget", {}),
    ("POST", "/rooms/{room}/kick", {"user_id": "@bob:" + SERVER}),
    ("POST", "/rooms/{room}/ban", {"user_id": "@bob:" + SERVER}),
    ("POST", "/rooms/{room}/unban", {"user_id": "@bob:" + SERVER}),
    ("PUT", "/rooms/{room}/send/m.room.message/t1", text("anyone?")),
    ("PUT", "/rooms/{room}/state/m.room.topic", {"topic": "void"}),
    ("PUT", "/rooms/{room}/redact/$event/t2", {}),
    ("GET", "/rooms/{room}/state", None),
    ("GET", "/rooms/{room}/state/m.room.create/", None),
    ("GET", "/rooms/{room}/members", None),
    ("GET", "/rooms/{room}/joined_members", None),
    ("GET", "/rooms/{room}/messages", None),
    ("GET", "/rooms/{room}/messages?dir=f&from=s0", None),
    ("GET", "/rooms/{room}/event/$event", None),
    ("GET", "/rooms/{room}/context/$event", None),
    ("GET", "/directory/list/room/{room}", None),
    ("PUT", "/directory/list/room/{room}", {"visibility": "public"}),
    ("PUT", "/directory/room/%23ghost:" + SERVER, {"room_id": "{room}"}),
]


async def test_a_room_that_does_not_exist_is_not_found(api):
    alice, _bob = await register(api, "alice", "bob")
    room = f"!nowhere:{SERVER}"
    for method, path, body in ROOM_ENDPOINTS:
        if body and "room_id" in body:
            body = {"room_id": room}
        refused = await alice.call(method, path.replace("{room}", path_param(room)), body, status=404)
        assert refused["errcode"] == "M_NOT_FOUND", (method, path)


async def test_identifiers_that_are_not_room_ids_never_break_the_server(api):
    """Whatever the path holds, the answer is a refusal in the error format."""
    (alice,) = await register(api, "alice")
    for room in ("nonsense", "%FF%FE", "%00", "!" + "x" * 300 + ":" + SERVER, "%23alias-not-id"):
        for method, path, body in ROOM_ENDPOINTS:
            if "room_id" in (body or {}):
                continue
            answer = await alice.api.request(
                method,
                "/_matrix/client/v3" + path.replace("{room}", room),
                body,
                token=alice.access_token,
                status=_status_of(room, path),
            )
            assert answer["errcode"] in ("M_NOT_FOUND", "M_INVALID_PARAM", "M_UNKNOWN")


def _status_of(room: str, path: str) -> int:
    """What the server answers: a path that does not decode as UTF-8 text
    PostgreSQL can store is a bad request; the join endpoints take an alias
    or a room id and say which they wanted; anything else is a room the
    server does not have."""
    if room in ("%FF%FE", "%00"):
        return 400
    if path.startswith("/join/") or path.endswith("/join"):
        return 404 if room.startswith("!") else 400
    return 404


async def test_events_over_64_kib_are_refused(api):
    (alice,) = await register(api, "alice")
    room_id = await alice.create_room()
    await alice.send(room_id, text("x" * 60_000))
    # Small enough as a request body, too large once it is an event.
    too_large = await alice.send(room_id, text("x" * 65_000), status=413)
    assert too_large["errcode"] == "M_TOO_LARGE"
    too_large = await alice.send(room_id, text("x" * 70_000), status=413)
    assert too_large["errcode"] == "M_TOO_LARGE"
    too_large = await alice.put_state(room_id, "org.example.blob", {"data": "y" * 65_000}, status=413)
    assert too_large["errcode"] == "M_TOO_LARGE"
    too_large = await alice.call(
        "POST",
        "/createRoom",
        {"topic": "t", "initial_state": [{"type": "org.example.blob", "content": {"data": "z" * 65_000}}]},
        status=413,
    )
    assert too_large["errcode"] == "M_TOO_LARGE"
    assert len(await alice.joined_rooms()) == 1
    page = await alice.messages(room_id, limit=1)
    assert len(page["chunk"][0]["content"]["body"]) == 60_000


async def test_nul_characters_are_refused_not_stored(api):
    """PostgreSQL text cannot hold NUL: wherever one arrives, the request is
    refused as malformed instead of failing in the database."""
    (alice,) = await register(api, "alice")
    room_id = await alice.create_room()
    for i, raw in enumerate(
        [
            '{"msgtype": "m.text", "body": "a\\u0000b"}',
            '{"msgtype": "m.text", "body": "ok", "k\\u0000": 1}',
            '{"msgtype": "m.text", "body": "ok", "list": [["\\u0000"]]}',
        ]
    ):
        refused = await alice.call("PUT", f"/rooms/{room_id}/send/m.room.message/nul{i}", raw=raw, status=400)
        assert refused["errcode"] == "M_BAD_JSON"
    for method, path in (
        ("PUT", f"/rooms/{room_id}/state/org.example.x/a%00b"),
        ("PUT", f"/rooms/{room_id}/send/m.room.message/t%00"),
        ("GET", f"/rooms/{room_id}/messages?from=s1%00"),
    ):
        refused = await alice.call(method, path, {} if method == "PUT" else None, status=400)
        assert refused["errcode"] == "M_INVALID_PARAM"
    refused = await alice.messages(room_id, filter='{"types": ["m.room.\\u0000"]}', status=400)
    assert refused["errcode"] == "M_INVALID_PARAM"
    refused = await alice.leave(room_id, reason="bye\x00", status=400)
    assert refused["errcode"] == "M_BAD_JSON"
    # A backslash before "u0000" is just text.
    answer = await alice.send(room_id, {"msgtype": "m.text", "body": "\\u0000"})
    assert (await alice.event(room_id, answer["event_id"]))["content"]["body"] == "\\u0000"
