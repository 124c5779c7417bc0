"""The admin API over HTTP: who may use it, and what each endpoint answers.

/_atomchat/admin/v1/... is for moderators; everyone else gets 403
M_FORBIDDEN before anything is looked up, so the API tells a plain user
nothing about which accounts or rooms exist. The Matrix spec's lock and
suspend endpoints (/_matrix/client/v1/admin/{lock,suspend}/{userId}, from
MSC4323) share the rules. Every answer is checked against its schema in
schemas/admin/.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlencode

import pytest
import tornado.web

from atomchat_server.api import admin as admin_api

from ..support.client import Response, path_param
from ..support.moderation_steps import (
    ADMIN,
    SPEC_ADMIN,
    admin,
    block,
    expect_error,
    moderator_and,
    refused,
    set_role,
    user_path,
    whoami,
)
from ..support.room_steps import SERVER, User, another_device, bodies, room_of
from ..support.stream_steps import Stream

NOBODY = f"@nobody:{SERVER}"


def endpoints(user_id: str, room_id: str) -> list[tuple[str, str, Any]]:
    """(method, path, body) of every admin endpoint, about this user and room."""
    user, room = path_param(user_id), path_param(room_id)
    return [
        ("GET", f"{ADMIN}/users", None),
        ("GET", f"{ADMIN}/users/{user}", None),
        ("PUT", f"{ADMIN}/users/{user}/lock", {"locked": True}),
        ("PUT", f"{ADMIN}/users/{user}/suspend", {"suspended": True}),
        ("PUT", f"{ADMIN}/users/{user}/moderator", {"moderator": True}),
        ("POST", f"{ADMIN}/users/{user}/redact", {}),
        ("POST", f"{ADMIN}/users/{user}/logout", {}),
        ("GET", f"{ADMIN}/rooms", None),
        ("GET", f"{ADMIN}/rooms/{room}", None),
        ("DELETE", f"{ADMIN}/rooms/{room}", {"purge": True}),
        ("GET", f"{ADMIN}/rooms/{room}/messages", None),
        ("GET", f"{ADMIN}/reports", None),
        ("GET", f"{ADMIN}/reports/1", None),
        ("PUT", f"{ADMIN}/reports/1", {"status": "dismissed"}),
        ("GET", f"{SPEC_ADMIN}/lock/{user}", None),
        ("PUT", f"{SPEC_ADMIN}/lock/{user}", {"locked": True}),
        ("GET", f"{SPEC_ADMIN}/suspend/{user}", None),
        ("PUT", f"{SPEC_ADMIN}/suspend/{user}", {"suspended": True}),
        ("GET", f"{ADMIN}/servers/banned.example/ban", None),
        ("PUT", f"{ADMIN}/servers/banned.example/ban", {"banned": True}),
    ]


def test_the_list_of_endpoints_covers_every_admin_route():
    listed = endpoints("@u:hs", "!r:hs")
    for pattern, handler in admin_api.routes():
        methods = [
            m
            for m in ("GET", "PUT", "POST", "DELETE")
            if getattr(handler, m.lower()) is not getattr(tornado.web.RequestHandler, m.lower())
        ]
        assert methods, pattern
        for method in methods:
            covered = [p for m, p, _ in listed if m == method and re.fullmatch(pattern, p.split("?")[0])]
            assert covered, f"{method} {pattern} is missing from endpoints()"


async def test_a_plain_user_is_refused_every_admin_endpoint(server, api):
    mod, alice, bob = await moderator_and(server, api, "alice", "bob")
    room_id = await room_of(alice, bob)
    said = await bob.say(room_id, "still mine")
    for target_user, target_room in ((bob.user_id, room_id), (NOBODY, f"!nowhere:{SERVER}")):
        for method, path, body in endpoints(target_user, target_room):
            answer = await api.request(method, path, body, token=alice.access_token, status=403)
            assert answer["errcode"] == "M_FORBIDDEN", (method, path)
            answer = await api.request(method, path, body, status=401)
            assert answer["errcode"] == "M_MISSING_TOKEN", (method, path)
    # Nothing happened.
    await whoami(bob)
    assert (await bob.event(room_id, said))["content"]["body"] == "still mine"
    details = await admin(mod, "GET", user_path(bob), schema="admin/user.response")
    assert (details["locked"], details["suspended"], details["is_moderator"]) == (False, False, False)
    assert len(details["devices"]) == 1
    await admin(mod, "GET", f"/rooms/{room_id}", schema="admin/room.response")


async def test_a_locked_moderator_is_refused_too(server, api):
    mod, other = await moderator_and(server, api, "other")
    await set_role(mod, other, True)
    await block(mod, other, "lock")
    for method, path, body in endpoints(mod.user_id, "!r:hs"):
        answer = await api.request(method, path, body, token=other.access_token, status=401)
        assert answer["errcode"] == "M_USER_LOCKED", (method, path)


# -- users ---------------------------------------------------------------------------------


async def walk(user: User, path: str, key: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every entry of a paged admin list, following next_from; also the number of pages."""
    entries: list[dict[str, Any]] = []
    pages = 0
    start = None
    while True:
        query = urlencode({k: v for k, v in {**params, "from": start}.items() if v is not None})
        page = await admin(user, "GET", f"{path}?{query}", schema=f"admin/{key}.response")
        pages += 1
        assert len(page[key]) <= params.get("limit", 100)
        entries += page[key]
        if "next_from" not in page.body:
            return entries, pages
        assert page[key], "a page with next_from must carry entries"
        start = page["next_from"]
        assert pages < 100, "paging does not end"


async def test_users_are_listed_in_pages_searched_and_filtered(server, api):
    started_ms = int(time.time() * 1000) - 1000
    mod, alice, bob, carol, dave, erin = await moderator_and(server, api, "alice", "bob", "carol", "dave", "erin")
    everyone = [mod, alice, bob, carol, dave, erin]
    await bob.call(
        "PUT",
        f"/profile/{path_param(bob.user_id)}/displayname",
        {"displayname": "The Builder"},
        schema="matrix/empty.response",
    )

    listed, pages = await walk(mod, "/users", "users", limit=2)
    assert sorted(u["user_id"] for u in listed) == sorted(u.user_id for u in everyone)
    assert pages == 3
    assert [u["id"] for u in listed] == sorted(u["id"] for u in listed)
    by_id = {u["user_id"]: u for u in listed}
    assert by_id[bob.user_id]["displayname"] == "The Builder"
    assert [u["user_id"] for u in listed if u["is_moderator"]] == [mod.user_id]
    now_ms = int(time.time() * 1000)
    assert all(started_ms <= u["created_ts"] <= now_ms for u in listed)
    assert all(u["last_seen_ts"] is None or started_ms <= u["last_seen_ts"] <= now_ms for u in listed)
    assert by_id[mod.user_id]["last_seen_ts"] is not None  # it has just made requests
    everything = await admin(mod, "GET", "/users", schema="admin/users.response")
    assert everything["users"] == listed and "next_from" not in everything.body

    async def found(**params: str) -> list[str]:
        page = await admin(mod, "GET", "/users?" + urlencode(params), schema="admin/users.response")
        return [u["user_id"] for u in page["users"]]

    assert await found(search="ALI") == [alice.user_id]
    assert await found(search="builder") == [bob.user_id]  # display names are searched too
    assert await found(search="_") == []  # wildcards are taken literally
    assert await found(search="%") == []

    await block(mod, bob, "lock")
    await block(mod, carol, "suspend")
    await block(mod, dave, "suspend")
    await block(mod, dave, "suspend", on=False)
    assert await found(filter="locked") == [bob.user_id]
    assert await found(filter="suspended") == [carol.user_id]
    assert await found(filter="moderators") == [mod.user_id]
    assert await found(filter="suspended", search="car") == [carol.user_id]
    assert await found(filter="locked", search="car") == []
    flags = {u["user_id"]: (u["locked"], u["suspended"]) for u in (await walk(mod, "/users", "users"))[0]}
    assert flags == {
        mod.user_id: (False, False),
        alice.user_id: (False, False),
        bob.user_id: (True, False),
        carol.user_id: (False, True),
        dave.user_id: (False, False),
        erin.user_id: (False, False),
    }

    for query in ("filter=banned", "from=abc", "from=-1", "limit=many"):
        await expect_error(await admin(mod, "GET", f"/users?{query}", status=400), 400, "M_INVALID_PARAM")


async def test_one_user_with_rooms_and_devices(server, api):
    mod, alice, bob = await moderator_and(server, api, "alice", "bob")
    joined = await room_of(alice, bob)
    invited = await alice.create_room(invite=[bob.user_id])
    banned = await room_of(alice, bob)
    await alice.act("ban", banned, bob)
    left = await room_of(alice, bob)
    await bob.leave(left)
    phone = await another_device(bob)
    await whoami(phone)

    details = await admin(mod, "GET", user_path(bob), schema="admin/user.response")
    assert (details["user_id"], details["is_moderator"], details["locked"], details["suspended"]) == (
        bob.user_id,
        False,
        False,
        False,
    )
    assert details["rooms"] == [
        {"room_id": joined, "membership": "join"},
        {"room_id": invited, "membership": "invite"},
        {"room_id": banned, "membership": "ban"},
        {"room_id": left, "membership": "leave"},
    ]
    devices = {d["device_id"]: d for d in details["devices"]}
    assert set(devices) == {bob.device_id, phone.device_id}
    assert devices[phone.device_id]["last_seen_ip"] == "127.0.0.1"
    assert devices[phone.device_id]["last_seen_ts"] is not None
    assert details["last_seen_ts"] == max(d["last_seen_ts"] for d in details["devices"] if d["last_seen_ts"])
    summary = {
        k: details[k]
        for k in ("user_id", "id", "displayname", "is_moderator", "locked", "suspended", "created_ts", "last_seen_ts")
    }
    listed = (await admin(mod, "GET", "/users?search=bob", schema="admin/users.response"))["users"]
    assert listed == [summary]

    for target in (NOBODY, f"@_atomchat:{SERVER}"):  # the server's own account is nobody's to manage
        await expect_error(await admin(mod, "GET", user_path(target), status=404), 404, "M_NOT_FOUND")
        for method, path, body in endpoints(target, "!r:hs")[1:7]:
            answer = await api.request(method, path, body, token=mod.access_token, status=404)
            assert answer["errcode"] == "M_NOT_FOUND", (method, path)


async def test_logging_out_all_of_a_users_sessions(server, api):
    mod, alice, bob = await moderator_and(server, api, "alice", "bob")
    phone = await another_device(bob)
    stream = await Stream.open(server.base_url, token=phone.access_token)
    await stream.frame()

    await admin(mod, "POST", f"{user_path(bob)}/logout", {}, schema="matrix/empty.response")
    code, _ = await stream.closed(timeout=1.0)
    assert code == 4401
    for device in (bob, phone):
        await expect_error(await whoami(device, status=401), 401, "M_UNKNOWN_TOKEN")
    await whoami(alice)
    assert (await admin(mod, "GET", user_path(bob), schema="admin/user.response"))["devices"] == []
    await api.login("bob")  # logged out, not locked
    await expect_error(await admin(mod, "POST", f"{user_path(NOBODY)}/logout", {}, status=404), 404, "M_NOT_FOUND")


# -- the Matrix spec's lock and suspend endpoints ---------------------------------------------


async def spec_block(
    mod: User, kind: str, user_id: str, value: bool | None = None, *, status: int = 200, body: Any = None
) -> Response:
    """GET (``value`` None) or PUT /_matrix/client/v1/admin/{kind}/{userId}."""
    key = "locked" if kind == "lock" else "suspended"
    method = "GET" if value is None and body is None else "PUT"
    if body is None and value is not None:
        body = {key: value}
    answer = await mod.api.request(
        method,
        f"{SPEC_ADMIN}/{kind}/{path_param(user_id)}",
        body,
        token=mod.access_token,
        status=status,
        schema=f"admin/{kind}.response" if status == 200 else None,
    )
    return answer


async def test_the_spec_lock_and_suspend_endpoints(server, api):
    mod, bob = await moderator_and(server, api, "bob")
    assert (await spec_block(mod, "lock", bob.user_id)).body == {"locked": False}
    assert (await spec_block(mod, "suspend", bob.user_id)).body == {"suspended": False}

    assert (await spec_block(mod, "lock", bob.user_id, True)).body == {"locked": True}
    assert (await spec_block(mod, "lock", bob.user_id, True)).body == {"locked": True}  # again: still fine
    assert (await spec_block(mod, "lock", bob.user_id)).body == {"locked": True}
    await expect_error(await whoami(bob, status=401), 401, "M_USER_LOCKED")
    # One rule per user: a suspension replaces the lock.
    assert (await spec_block(mod, "suspend", bob.user_id, True)).body == {"suspended": True}
    assert (await spec_block(mod, "lock", bob.user_id)).body == {"locked": False}
    await whoami(bob)
    await refused(bob, "POST", "/createRoom", {}, status=403, errcode="M_USER_SUSPENDED")
    assert (await spec_block(mod, "suspend", bob.user_id, False)).body == {"suspended": False}
    await bob.create_room()

    for kind in ("lock", "suspend"):
        await expect_error(await spec_block(mod, kind, NOBODY, status=404), 404, "M_NOT_FOUND")
        await expect_error(await spec_block(mod, kind, NOBODY, True, status=404), 404, "M_NOT_FOUND")
        for elsewhere in ("@bob:elsewhere.example", "bob"):
            await expect_error(await spec_block(mod, kind, elsewhere, status=400), 400, "M_INVALID_PARAM")
        await expect_error(await spec_block(mod, kind, bob.user_id, body={}, status=400), 400, "M_MISSING_PARAM")
        await expect_error(
            await spec_block(mod, kind, bob.user_id, body={"locked": "yes", "suspended": "yes"}, status=400),
            400,
            "M_BAD_JSON",
        )


# -- rooms ---------------------------------------------------------------------------------


async def test_rooms_are_listed_in_pages_and_searched(server, api):
    started_ms = int(time.time() * 1000) - 1000
    mod, alice, bob = await moderator_and(server, api, "alice", "bob")
    party = await alice.create_room(name="Tea party", preset="public_chat", visibility="public")
    coffee = await room_of(alice, bob, name="Coffee")
    unnamed = await alice.create_room()
    tea_time = await room_of(alice, bob, name="Tea time")

    listed, pages = await walk(mod, "/rooms", "rooms", limit=3)
    assert [r["room_id"] for r in listed] == [party, coffee, unnamed, tea_time]
    assert pages == 2
    by_id = {r["room_id"]: r for r in listed}
    assert {r: (by_id[r]["name"], by_id[r]["num_joined_members"], by_id[r]["published"]) for r in by_id} == {
        party: ("Tea party", 1, True),
        coffee: ("Coffee", 2, False),
        unnamed: (None, 1, False),
        tea_time: ("Tea time", 2, False),
    }
    assert {r["creator"] for r in listed} == {alice.user_id}
    now_ms = int(time.time() * 1000)
    for entry in listed:
        assert started_ms <= entry["created_ts"] <= entry["last_activity_ts"] <= now_ms

    before = by_id[coffee]["last_activity_ts"]
    await bob.say(coffee, "fresh")
    await bob.leave(tea_time)
    relisted = {r["room_id"]: r for r in (await admin(mod, "GET", "/rooms", schema="admin/rooms.response"))["rooms"]}
    assert relisted[coffee]["last_activity_ts"] >= before
    assert relisted[tea_time]["num_joined_members"] == 1

    async def found(search: str) -> list[str]:
        page = await admin(mod, "GET", "/rooms?" + urlencode({"search": search}), schema="admin/rooms.response")
        return [r["room_id"] for r in page["rooms"]]

    assert await found("TEA") == [party, tea_time]
    assert await found("coffee") == [coffee]
    assert await found("%") == []
    await expect_error(await admin(mod, "GET", "/rooms?from=x", status=400), 400, "M_INVALID_PARAM")


async def test_one_room_and_its_history(server, api):
    mod, alice, bob, carol, dave = await moderator_and(server, api, "alice", "bob", "carol", "dave")
    room_id = await room_of(alice, bob, carol, name="Book club", topic="Chapter one", preset="private_chat")
    await alice.invite(room_id, dave)
    await alice.act("ban", room_id, carol)
    for n in range(7):
        await (alice if n % 2 else bob).say(room_id, f"line {n}")

    details = await admin(mod, "GET", f"/rooms/{path_param(room_id)}", schema="admin/room.response")
    assert (
        details["room_id"],
        details["name"],
        details["topic"],
        details["join_rule"],
        details["history_visibility"],
        details["num_joined_members"],
    ) == (room_id, "Book club", "Chapter one", "invite", "shared", 2)
    assert sorted((m["user_id"], m["membership"]) for m in details["members"]) == [
        (alice.user_id, "join"),
        (bob.user_id, "join"),
        (carol.user_id, "ban"),
        (dave.user_id, "invite"),
    ]
    listed = (await admin(mod, "GET", "/rooms", schema="admin/rooms.response"))["rooms"]
    assert [{k: v for k, v in details.body.items() if k in listed[0]}] == listed

    for direction in ("b", "f"):
        theirs, _ = await alice.all_messages(room_id, limit=3, dir=direction)
        ours, start, pages = [], None, 0
        while True:
            query = urlencode({k: v for k, v in {"dir": direction, "limit": 3, "from": start}.items() if v})
            page = await admin(mod, "GET", f"/rooms/{room_id}/messages?{query}", schema="matrix/messages.response")
            pages += 1
            assert len(page["chunk"]) <= 3
            ours += page["chunk"]
            if "end" not in page.body:
                break
            start = page["end"]
            assert pages < 50
        assert [e["event_id"] for e in ours] == [e["event_id"] for e in theirs]
        assert pages > 3
    filtered = await admin(
        mod,
        "GET",
        f"/rooms/{room_id}/messages?"
        + urlencode(
            {"dir": "b", "limit": 50, "filter": f'{{"types": ["m.room.message"], "senders": ["{bob.user_id}"]}}'}
        ),
        schema="matrix/messages.response",
    )
    assert bodies(filtered["chunk"]) == ["line 6", "line 4", "line 2", "line 0"]

    for query in ("dir=x", "filter=nonsense", "limit=ten"):
        answer = await admin(mod, "GET", f"/rooms/{room_id}/messages?{query}", status=400)
        assert answer["errcode"] == "M_INVALID_PARAM", query
    nowhere = path_param(f"!nowhere:{SERVER}")
    for path in (f"/rooms/{nowhere}", f"/rooms/{nowhere}/messages"):
        await expect_error(await admin(mod, "GET", path, status=404), 404, "M_NOT_FOUND")
    await expect_error(await admin(mod, "DELETE", f"/rooms/{nowhere}", {}, status=404), 404, "M_NOT_FOUND")


@pytest.mark.parametrize("body", [{"purge": "yes"}, {"reason": 5}, [1]])
async def test_a_room_deletion_with_a_bad_body_is_refused_and_deletes_nothing(server, api, body):
    mod, alice = await moderator_and(server, api, "alice")
    room_id = await alice.create_room()
    await mod.api.request("DELETE", f"{ADMIN}/rooms/{room_id}", body, token=mod.access_token, status=400)
    await alice.say(room_id, "still here")
