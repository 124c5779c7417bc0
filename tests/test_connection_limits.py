"""What one account, or one slow client, may hold of the server.

Per account: at most max_streams_per_account WebSocket streams and
max_long_polls_per_account waiting /sync long-polls per process; beyond,
429 M_LIMIT_EXCEEDED (or close code 4429 for a stream authenticated by its
first frame), and a place comes free when one ends.
"""

from __future__ import annotations

import asyncio

import pytest
from tornado.httpclient import HTTPClientError

from .room_steps import another_device, register, room_of
from .sync_steps import sync
from .test_stream import Stream


@pytest.mark.settings(max_streams_per_account=2)
async def test_streams_per_account_are_capped(server, api):
    alice, bob = await register(api, "alice", "bob")
    phone = await another_device(alice)
    first = await Stream.open(server.base_url, token=alice.access_token)
    second = await Stream.open(server.base_url, token=phone.access_token, header=False)
    for stream in (first, second):
        await stream.frame()
    # A third, whichever the device or the way of authenticating, is refused.
    with pytest.raises(HTTPClientError) as refused:
        await Stream.open(server.base_url, token=alice.access_token)
    assert refused.value.code == 429
    assert b'"errcode": "M_LIMIT_EXCEEDED"' in refused.value.response.body
    by_frame = await Stream.open(server.base_url)
    await by_frame.conn.write_message('{"type": "auth", "access_token": "%s"}' % phone.access_token)
    code, reason = await by_frame.closed()
    assert code == 4429 and "at most 2" in reason
    # Another account is not affected.
    other = await Stream.open(server.base_url, token=bob.access_token)
    await other.frame()
    # Closing one frees its place.
    await first.close()
    third = await Stream.open(server.base_url, token=alice.access_token)
    await third.frame()


@pytest.mark.settings(max_long_polls_per_account=2)
async def test_waiting_long_polls_per_account_are_capped(server, api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    since = (await sync(alice))["next_batch"]
    polls = [asyncio.ensure_future(sync(alice, since, timeout=20_000)) for _ in range(2)]
    await asyncio.sleep(0.3)
    assert not any(poll.done() for poll in polls)
    refused = await sync(alice, since, timeout=20_000, status=429)
    assert refused["errcode"] == "M_LIMIT_EXCEEDED"
    # A sync that does not wait is not a long-poll; another account's are its own.
    await sync(alice, since, timeout=0)
    bobs = asyncio.ensure_future(sync(bob, (await sync(bob))["next_batch"], timeout=20_000))
    await bob.say(room_id, "wake up")
    for answer in await asyncio.gather(*polls, bobs):
        assert answer.status == 200
    # The places are free again.
    await asyncio.gather(*(sync(alice, since, timeout=1_000) for _ in range(2)))
