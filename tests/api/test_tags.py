"""Room tags and m.direct over real HTTP: tags are the m.tag room account
data, reach the owner's other clients through /sync, survive concurrent
changes, and only the owner may touch them."""

import asyncio

from ..support.client import path_param
from ..support.room_steps import another_device, register, room_of
from ..support.sync_steps import SyncLoop, held_then_woken, room

EMPTY = "matrix/empty.response"


def tags_path(user_id, room_id, tag=None):
    return f"/user/{path_param(user_id)}/rooms/{room_id}/tags" + (f"/{path_param(tag)}" if tag else "")


async def get_tags(user, room_id, *, owner=None, status=200):
    return await user.call(
        "GET", tags_path(owner or user.user_id, room_id), status=status, schema="matrix/tags.response"
    )


async def put_tag(user, room_id, tag, content, *, owner=None, status=200):
    return await user.call("PUT", tags_path(owner or user.user_id, room_id, tag), content, status=status, schema=EMPTY)


async def delete_tag(user, room_id, tag, *, owner=None, status=200):
    return await user.call("DELETE", tags_path(owner or user.user_id, room_id, tag), status=status, schema=EMPTY)


def room_account_data(answer, room_id):
    found = room(answer, room_id)
    return found["account_data"]["events"] if found else []


async def test_tags_set_read_delete_and_sync(api, server):
    (alice,) = await register(api, "alice")
    room_id = await alice.create_room()
    other_device = await another_device(alice)
    loop = SyncLoop(other_device, server)
    await loop.sync()
    assert (await get_tags(alice, room_id))["tags"] == {}

    answer, elapsed = await held_then_woken(loop, lambda: put_tag(alice, room_id, "m.favourite", {"order": 0.25}))
    assert elapsed < 3
    assert room_account_data(answer, room_id) == [
        {"type": "m.tag", "content": {"tags": {"m.favourite": {"order": 0.25}}}}
    ]

    await put_tag(alice, room_id, "u.work", {})
    await put_tag(alice, room_id, "m.favourite", {"order": 0.5})
    assert (await get_tags(alice, room_id))["tags"] == {"m.favourite": {"order": 0.5}, "u.work": {}}
    await delete_tag(alice, room_id, "m.favourite")
    await delete_tag(alice, room_id, "never.set")  # removing what is not there is no error
    assert (await get_tags(alice, room_id))["tags"] == {"u.work": {}}
    answer = await loop.sync()
    assert room_account_data(answer, room_id) == [{"type": "m.tag", "content": {"tags": {"u.work": {}}}}]
    # The generic account data endpoint reads the same thing.
    stored = await alice.call(
        "GET",
        f"/user/{path_param(alice.user_id)}/rooms/{room_id}/account_data/m.tag",
        schema="matrix/account_data.response",
    )
    assert stored.body == {"tags": {"u.work": {}}}


async def test_concurrent_tag_changes_all_stick(api):
    (alice,) = await register(api, "alice")
    room_id = await alice.create_room()
    names = [f"u.tag{n}" for n in range(12)]
    await asyncio.gather(*(put_tag(alice, room_id, name, {"order": n / 20}) for n, name in enumerate(names)))
    assert set((await get_tags(alice, room_id))["tags"]) == set(names)
    await asyncio.gather(*(delete_tag(alice, room_id, name) for name in names[::2]))
    assert set((await get_tags(alice, room_id))["tags"]) == set(names[1::2])


async def test_tag_refusals_change_nothing(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    await put_tag(alice, room_id, "u.mine", {"order": 0.1})
    for answer in (
        await get_tags(bob, room_id, owner=alice.user_id, status=403),
        await put_tag(bob, room_id, "u.theirs", {}, owner=alice.user_id, status=403),
        await delete_tag(bob, room_id, "u.mine", owner=alice.user_id, status=403),
    ):
        assert answer["errcode"] == "M_FORBIDDEN"
    assert (await put_tag(alice, room_id, "u.x", {"order": 2}, status=400))["errcode"] == "M_BAD_JSON"
    assert (await put_tag(alice, room_id, "u.x", {"order": "first"}, status=400))["errcode"] == "M_BAD_JSON"
    assert (await put_tag(alice, room_id, "u." + "x" * 300, {}, status=400))["errcode"] == "M_INVALID_PARAM"
    answer = await alice.call("PUT", tags_path(alice.user_id, room_id, "u.x"), raw="[1]", status=400)
    assert answer["errcode"] == "M_BAD_JSON"
    assert (await put_tag(alice, "!nowhere:test.local", "u.x", {}, status=404))["errcode"] == "M_NOT_FOUND"
    assert (await get_tags(alice, "!nowhere:test.local", status=404))["errcode"] == "M_NOT_FOUND"
    await api.request("GET", "/_matrix/client/v3" + tags_path(alice.user_id, room_id), status=401)
    assert (await get_tags(alice, room_id))["tags"] == {"u.mine": {"order": 0.1}}
    assert (await get_tags(bob, room_id))["tags"] == {}


async def test_m_direct_reaches_the_other_devices(api, server):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob, is_direct=True)
    phone = await another_device(alice)
    loop = SyncLoop(phone, server)
    first = await loop.sync()
    assert first["account_data"]["events"] == []
    content = {bob.user_id: [room_id]}
    path = f"/user/{path_param(alice.user_id)}/account_data/m.direct"
    answer, _ = await held_then_woken(loop, lambda: alice.call("PUT", path, content, schema=EMPTY))
    assert answer["account_data"]["events"] == [{"type": "m.direct", "content": content}]
    assert (await alice.call("GET", path, schema="matrix/account_data.response")).body == content
    assert (await loop.sync(timeout=0))["account_data"]["events"] == []  # told once
