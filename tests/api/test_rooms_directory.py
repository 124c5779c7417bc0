"""Room aliases (PUT/GET/DELETE /directory/room) and the public room
directory (/publicRooms, /directory/list/room)."""

import pytest

from ..support.client import MATRIX, path_param
from ..support.room_steps import SERVER, register, room_of


async def resolve(api, alias, *, status=200, style="mautrix"):
    target = path_param(alias) if style == "mautrix" else alias.replace("#", "%23")
    return await api.request(
        "GET",
        f"{MATRIX}/directory/room/{target}",
        status=status,
        schema="matrix/alias.response" if status == 200 else None,
    )


@pytest.mark.parametrize("style", ["nio", "mautrix"])
async def test_alias_put_get_delete(api, style):
    (alice,) = await register(api, "alice")
    room_id = await alice.create_room()
    alias = f"#den:{SERVER}"
    target = path_param(alias) if style == "mautrix" else "%23den:" + SERVER
    await alice.call("PUT", f"/directory/room/{target}", {"room_id": room_id}, schema="matrix/empty.response")
    found = await resolve(api, alias, style=style)
    assert found.body == {"room_id": room_id, "servers": [SERVER]}
    await alice.call("DELETE", f"/directory/room/{target}", schema="matrix/empty.response")
    gone = await resolve(api, alias, status=404)
    assert gone["errcode"] == "M_NOT_FOUND"
    again = await alice.call("DELETE", f"/directory/room/{target}", status=404)
    assert again["errcode"] == "M_NOT_FOUND"


async def test_alias_refusals(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room(room_alias_name="taken")
    other = await alice.create_room()

    async def put(user, alias, room, status):
        answer = await user.call("PUT", f"/directory/room/{path_param(alias)}", {"room_id": room}, status=status)
        return answer["errcode"]

    assert await put(alice, f"#taken:{SERVER}", other, 409) == "M_UNKNOWN"
    assert await put(alice, "#den:elsewhere.example", room_id, 400) == "M_INVALID_PARAM"
    assert await put(alice, "den", room_id, 400) == "M_INVALID_PARAM"
    assert await put(bob, f"#bobs:{SERVER}", room_id, 403) == "M_FORBIDDEN"  # not in the room
    assert await put(alice, f"#ghost:{SERVER}", f"!ghost:{SERVER}", 404) == "M_NOT_FOUND"
    bad_body = await alice.call("PUT", f"/directory/room/{path_param('#x:' + SERVER)}", {"room": room_id}, status=400)
    assert bad_body["errcode"] == "M_MISSING_PARAM"
    # The taken alias still points where it did.
    assert (await resolve(api, f"#taken:{SERVER}"))["room_id"] == room_id


async def test_deleting_an_alias_needs_its_creator_or_power(api):
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room_id = await room_of(alice, bob, carol)
    await bob.call(
        "PUT", f"/directory/room/{path_param('#bobs:' + SERVER)}", {"room_id": room_id}, schema="matrix/empty.response"
    )
    await alice.call(
        "PUT",
        f"/directory/room/{path_param('#alices:' + SERVER)}",
        {"room_id": room_id},
        schema="matrix/empty.response",
    )
    # Carol neither made it nor may set the room's aliases.
    refused = await carol.call("DELETE", f"/directory/room/{path_param('#bobs:' + SERVER)}", status=403)
    assert refused["errcode"] == "M_FORBIDDEN"
    refused = await bob.call("DELETE", f"/directory/room/{path_param('#alices:' + SERVER)}", status=403)
    assert refused["errcode"] == "M_FORBIDDEN"
    # The room's admin may remove anyone's alias, and a creator their own.
    await alice.call("DELETE", f"/directory/room/{path_param('#bobs:' + SERVER)}", schema="matrix/empty.response")
    await alice.call("DELETE", f"/directory/room/{path_param('#alices:' + SERVER)}", schema="matrix/empty.response")
    for alias in ("#bobs:", "#alices:"):
        assert (await resolve(api, alias + SERVER, status=404))["errcode"] == "M_NOT_FOUND"


async def list_rooms(api, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return await api.request(
        "GET", f"{MATRIX}/publicRooms" + (f"?{query}" if query else ""), schema="matrix/publicRooms.response"
    )


async def test_public_rooms_lists_published_rooms_only(api):
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    big = await alice.create_room(
        visibility="public", name="Big Hall", topic="Everyone is here", room_alias_name="hall"
    )
    await bob.join(big)
    await carol.join(big)
    small = await alice.create_room(visibility="public", name="Reading Room")
    await alice.create_room(preset="public_chat", name="Public but unlisted")
    await alice.create_room(name="Private")
    listing = await list_rooms(api)
    assert listing.body == {
        "chunk": [
            {
                "room_id": big,
                "num_joined_members": 3,
                "world_readable": False,
                "guest_can_join": False,
                "join_rule": "public",
                "name": "Big Hall",
                "topic": "Everyone is here",
                "canonical_alias": f"#hall:{SERVER}",
            },
            {
                "room_id": small,
                "num_joined_members": 1,
                "world_readable": False,
                "guest_can_join": False,
                "join_rule": "public",
                "name": "Reading Room",
            },
        ]
    }
    # Publishing and unpublishing through /directory/list/room.
    private = await alice.create_room(
        name="Now listed",
        initial_state=[{"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}}],
    )
    await alice.call("PUT", f"/directory/list/room/{private}", {"visibility": "public"}, schema="matrix/empty.response")
    visibility = await api.request(
        "GET", f"{MATRIX}/directory/list/room/{private}", schema="matrix/room_visibility.response"
    )
    assert visibility.body == {"visibility": "public"}
    entry = [e for e in (await list_rooms(api))["chunk"] if e["room_id"] == private][0]
    assert entry == {
        "room_id": private,
        "num_joined_members": 1,
        "world_readable": True,
        "guest_can_join": True,
        "join_rule": "invite",
        "name": "Now listed",
    }
    await alice.call("PUT", f"/directory/list/room/{big}", {"visibility": "private"}, schema="matrix/empty.response")
    assert [e["room_id"] for e in (await list_rooms(api))["chunk"]] == sorted([small, private], reverse=True)


async def test_room_visibility_refusals(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room()
    refused = await bob.call("PUT", f"/directory/list/room/{room_id}", {"visibility": "public"}, status=403)
    assert refused["errcode"] == "M_FORBIDDEN"
    unknown = await api.request("GET", f"{MATRIX}/directory/list/room/!nowhere:{SERVER}", status=404)
    assert unknown["errcode"] == "M_NOT_FOUND"
    unknown = await alice.call("PUT", f"/directory/list/room/!nowhere:{SERVER}", {"visibility": "public"}, status=404)
    assert unknown["errcode"] == "M_NOT_FOUND"
    bad = await alice.call("PUT", f"/directory/list/room/{room_id}", {"visibility": "secret"}, status=400)
    assert bad["errcode"] == "M_BAD_JSON"


async def test_public_rooms_paging_and_search(api):
    users = await register(api, *[f"user{i}" for i in range(5)])
    owner = users[0]
    rooms = {}
    # Room i has i + 1 members, so the directory orders them by i, largest first.
    for i, (name, topic) in enumerate(
        [
            ("Knitting", "wool and needles"),
            ("Chess", "openings"),
            ("Cooking", "Knitting recipes? no: bread"),
            ("Garden", "roses"),
            ("Bread_Club", "100% rye"),
        ]
    ):
        room_id = await owner.create_room(visibility="public", name=name, topic=topic)
        for member in users[1 : i + 1]:
            await member.join(room_id)
        rooms[name] = room_id
    expected = [rooms[n] for n in ("Bread_Club", "Garden", "Cooking", "Chess", "Knitting")]

    async def walk(method, limit, search=None):
        seen, since, pages = [], None, 0
        while True:
            if method == "GET":
                page = await list_rooms(api, limit=limit, **({"since": since} if since else {}))
            else:
                body = {
                    "limit": limit,
                    **({"since": since} if since else {}),
                    **({"filter": {"generic_search_term": search}} if search is not None else {}),
                }
                page = await owner.call("POST", "/publicRooms", body, schema="matrix/publicRooms.response")
            pages += 1
            seen += [e["room_id"] for e in page["chunk"]]
            if "next_batch" not in page.body:
                return seen, pages
            since = page["next_batch"]
            assert pages <= 10

    assert await walk("GET", 2) == (expected, 3)
    assert await walk("POST", 1) == (expected, 5)
    assert await walk("POST", 5) == (expected, 1)
    # Search looks at names, topics and aliases, ignoring case.
    assert (await walk("POST", 10, "knitting"))[0] == [rooms["Cooking"], rooms["Knitting"]]
    assert (await walk("POST", 1, "KNIT"))[0] == [rooms["Cooking"], rooms["Knitting"]]
    # LIKE wildcards in the term are plain characters.
    assert (await walk("POST", 10, "%"))[0] == [rooms["Bread_Club"]]
    assert (await walk("POST", 10, "d_c"))[0] == [rooms["Bread_Club"]]
    assert (await walk("POST", 10, "nothing like this"))[0] == []
    assert (await walk("POST", 10, ""))[0] == expected
    # A page follows on even when the room its token names left the directory.
    first = await list_rooms(api, limit=2)
    await owner.call(
        "PUT", f"/directory/list/room/{expected[1]}", {"visibility": "private"}, schema="matrix/empty.response"
    )
    rest = await list_rooms(api, limit=10, since=first["next_batch"])
    assert [e["room_id"] for e in rest["chunk"]] == expected[2:]


async def test_public_rooms_refusals(api):
    refused = await api.request("POST", f"{MATRIX}/publicRooms", {}, status=401)
    assert refused["errcode"] == "M_MISSING_TOKEN"
    for since in ("garbage", "p12", "px.!room:test.local", "p1.nonsense"):
        refused = await api.request("GET", f"{MATRIX}/publicRooms?since={since}", status=400)
        assert refused["errcode"] == "M_INVALID_PARAM"
    refused = await api.request("GET", f"{MATRIX}/publicRooms?limit=many", status=400)
    assert refused["errcode"] == "M_INVALID_PARAM"
