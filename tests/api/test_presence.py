"""Presence over real HTTP: syncing (and an open stream) makes a user
online for those who share a room with them, set_presence and a chosen
state are respected, an idle user goes offline, a syncing user costs no
write per request, and two server processes agree."""

import asyncio
import json

import asyncpg
import pytest
from tornado.httpclient import HTTPClientError

from ..support.client import ApiClient, path_param
from ..support.room_steps import register, room_of
from ..support.stream_steps import Stream
from ..support.sync_steps import SyncLoop, held_then_woken, long_polls_waiting, on, sync
from ..support.waiting import eventually

TIMEOUT_S = 60.0
pytestmark = pytest.mark.settings(track_presence=True, presence_timeout_seconds=TIMEOUT_S)
# A user unseen for the timeout is set offline by the first sweep after it;
# sweeps run every third of the timeout.
SWEPT_WITHIN_S = TIMEOUT_S * 4 / 3 + 1
EMPTY = "matrix/empty.response"


async def status(user, of, *, status=200):
    return await user.call(
        "GET",
        f"/presence/{path_param(of.user_id if hasattr(of, 'user_id') else of)}/status",
        status=status,
        schema="matrix/presence.response",
    )


async def set_status(user, body, *, owner=None, status=200):
    return await user.call(
        "PUT", f"/presence/{path_param(owner or user.user_id)}/status", body, status=status, schema=EMPTY
    )


def presence_of(answer, user):
    return [event["content"] for event in answer["presence"]["events"] if event["sender"] == user.user_id]


async def presence_row(dsn, user):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchrow(
            "SELECT state, last_active_ts, stream FROM presence WHERE user_id = $1", user.user_id
        )
    finally:
        await conn.close()


async def test_syncing_shows_a_user_online_to_those_who_share_a_room(api, server):
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    await room_of(alice, bob)
    bobs, carols = SyncLoop(bob, server, set_presence="offline"), SyncLoop(carol, server, set_presence="offline")
    await bobs.sync()
    await carols.sync()
    assert (await status(bob, alice)).body == {"presence": "offline"}  # never seen

    answer, elapsed = await held_then_woken(bobs, lambda: sync(alice))
    assert elapsed < 3
    (content,) = presence_of(answer, alice)
    assert content["presence"] == "online" and content["currently_active"] is True
    assert content["last_active_ago"] < 5000
    assert presence_of(await carols.sync(timeout=300), alice) == []  # no shared room
    assert (await status(bob, alice))["presence"] == "online"
    assert (await status(alice, alice))["presence"] == "online"
    assert (await status(carol, alice, status=403))["errcode"] == "M_FORBIDDEN"
    assert (await status(bob, "@nobody:test.local", status=404))["errcode"] == "M_NOT_FOUND"
    # An initial sync shows who is online, unless the filter leaves presence out.
    assert presence_of(await sync(bob, set_presence="offline"), alice)[0]["presence"] == "online"
    left_out: tuple[dict[str, list[str]], ...] = ({"not_types": ["*"]}, {"types": []}, {"types": ["m.room.*"]})
    for presence_filter in left_out:
        answer = await sync(bob, set_presence="offline", filter={"presence": presence_filter})
        assert answer["presence"]["events"] == []
    answer = await sync(bob, set_presence="offline", filter={"presence": {"types": ["m.*"]}})
    assert presence_of(answer, alice)[0]["presence"] == "online"
    assert (await sync(bob, filter={"presence": {"types": "m.presence"}}, status=400))["errcode"] == "M_INVALID_PARAM"


async def test_set_presence_on_sync(api, server):
    alice, bob = await register(api, "alice", "bob")
    await room_of(alice, bob)
    await sync(alice, set_presence="offline")
    assert (await status(bob, alice)).body == {"presence": "offline"}
    await sync(alice, set_presence="unavailable")
    assert (await status(bob, alice))["presence"] == "unavailable"
    assert (await status(bob, alice))["currently_active"] is False
    await sync(alice)  # online is the default
    assert (await status(bob, alice))["presence"] == "online"
    assert (await sync(alice, set_presence="away", status=400))["errcode"] == "M_INVALID_PARAM"


async def test_a_chosen_state_and_status_message_outlast_syncing(api, server):
    alice, bob = await register(api, "alice", "bob")
    await room_of(alice, bob)
    bobs = SyncLoop(bob, server, set_presence="offline")
    await bobs.sync()
    answer, _ = await held_then_woken(
        bobs, lambda: set_status(alice, {"presence": "unavailable", "status_msg": "lunch"})
    )
    (content,) = presence_of(answer, alice)
    assert (content["presence"], content["status_msg"]) == ("unavailable", "lunch")
    await sync(alice)  # syncing as online leaves a chosen state alone
    got = (await status(bob, alice)).body
    assert (got["presence"], got["status_msg"]) == ("unavailable", "lunch")
    await set_status(alice, {"presence": "offline"})  # appear offline; the message stays
    await sync(alice)
    assert (await status(bob, alice))["presence"] == "offline"
    await set_status(alice, {"presence": "online", "status_msg": None})
    got = (await status(bob, alice)).body
    assert got["presence"] == "online" and "status_msg" not in got
    await set_status(alice, {"presence": "online", "status_msg": "back"})
    await sync(alice, set_presence="unavailable")  # online hands the state back to syncing
    got = (await status(bob, alice)).body
    assert (got["presence"], got["status_msg"]) == ("unavailable", "back")


async def test_bad_presence_requests_change_nothing(api):
    alice, bob = await register(api, "alice", "bob")
    await room_of(alice, bob)
    await set_status(alice, {"presence": "online", "status_msg": "hi"})
    assert (await set_status(bob, {"presence": "offline"}, owner=alice.user_id, status=403))["errcode"] == "M_FORBIDDEN"
    for body in (
        {"presence": "away"},
        {},
        {"presence": "online", "status_msg": 5},
        {"presence": "online", "status_msg": "x" * 501},
    ):
        assert (await set_status(alice, body, status=400))["errcode"] in ("M_BAD_JSON", "M_MISSING_PARAM")
    await api.request("GET", f"/_matrix/client/v3/presence/{path_param(alice.user_id)}/status", status=401)
    got = (await status(bob, alice)).body
    assert (got["presence"], got["status_msg"]) == ("online", "hi")


async def test_syncing_again_writes_nothing_within_the_refresh_interval(api, server, database_dsn):
    (alice,) = await register(api, "alice")
    await sync(alice)
    first = await presence_row(database_dsn, alice)
    assert first["state"] == "online"
    for _ in range(10):
        await sync(alice)
    assert await presence_row(database_dsn, alice) == first  # not even last_active_ts was written


async def test_an_idle_user_goes_offline(api, server, clock):
    alice, bob = await register(api, "alice", "bob")
    await room_of(alice, bob)
    bobs = SyncLoop(bob, server, set_presence="offline")
    await bobs.sync()
    await sync(alice)
    assert presence_of(await bobs.sync(timeout=5000), alice)[0]["presence"] == "online"
    poll = asyncio.ensure_future(bobs.sync(timeout=10_000))  # woken when the sweep sets alice offline
    await long_polls_waiting(server, 1)
    clock.advance(SWEPT_WITHIN_S)
    answer = await poll
    assert presence_of(answer, alice)[0]["presence"] == "offline"
    assert (await status(bob, alice))["presence"] == "offline"


async def test_the_stream_delivers_presence(api, server):
    alice, bob = await register(api, "alice", "bob")
    await room_of(alice, bob)
    stream = await Stream.open(server.base_url, token=bob.access_token)
    try:
        await stream.frame()
        await set_status(alice, {"presence": "unavailable", "status_msg": "away"})

        def told(frames):
            return any(
                event["sender"] == alice.user_id and event["content"]["status_msg"] == "away"
                for frame in frames
                for event in frame["presence"]["events"]
            )

        await stream.sync_until(told)
    finally:
        await stream.close()


async def test_an_open_stream_keeps_its_user_online(api, server, clock):
    alice, bob = await register(api, "alice", "bob")
    await room_of(alice, bob)
    stream = await Stream.open(server.base_url, token=alice.access_token)
    try:
        await stream.frame()
        await eventually(lambda: _is(bob, alice, "online"))
    finally:
        await stream.close()
    clock.advance(SWEPT_WITHIN_S)
    await eventually(lambda: _is(bob, alice, "offline"))
    stream = await Stream.open(server.base_url, token=alice.access_token, set_presence="unavailable")
    try:
        await stream.frame()
        await eventually(lambda: _is(bob, alice, "unavailable"))
    finally:
        await stream.close()
    with pytest.raises(HTTPClientError) as refused:
        await Stream.open(server.base_url, token=alice.access_token, set_presence="busy")
    assert refused.value.code == 400
    assert json.loads(refused.value.response.body)["errcode"] == "M_INVALID_PARAM"


async def _is(reader, user, state):
    return (await status(reader, user))["presence"] == state


async def test_two_processes_agree_on_presence(api, server, more_servers, clock):
    other = ApiClient((await more_servers()).base_url)
    alice, bob = await register(api, "alice", "bob")
    await room_of(alice, bob)
    alice_there = on(alice, other)  # alice's client talks to the second process only
    bobs = SyncLoop(bob, server, set_presence="offline")
    await bobs.sync()
    answer, _ = await held_then_woken(bobs, lambda: sync(alice_there))
    assert presence_of(answer, alice)[0]["presence"] == "online"  # a change on one process wakes the other
    # Alice keeps syncing there for three timeouts; the first process, which
    # never sees her, must not sweep her offline meanwhile.
    for _ in range(12):  # 15 s apart: every sweep of both processes falls between her syncs
        await sync(alice_there)
        clock.advance(15)
        assert await _is(bob, alice, "online")
    answer = await bobs.sync(timeout=100)
    assert all(content["presence"] == "online" for content in presence_of(answer, alice))
    # She stops: she goes offline, and bob is told.
    clock.advance(SWEPT_WITHIN_S)
    await eventually(lambda: _is(bob, alice, "offline"))
    answer = await bobs.sync(timeout=5000)
    assert presence_of(answer, alice)[-1]["presence"] == "offline"
