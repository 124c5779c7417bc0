"""Churn: dozens of WebSocket streams and long-polls that connect and drop
abruptly (no close frame, the TCP connection cut, some mid-handshake, some
mid-answer) while messages flow. The clients that stayed must have received
every acknowledged message exactly once, in the stored order; the server must
keep no trace of the clients that left; and new clients must receive new
messages at once. The figures (connections, messages, delivery delay to the
new clients) are recorded as properties of the test (see --junitxml)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from urllib.parse import urlsplit

from ..support.client import MATRIX
from ..support.room_steps import register, stored_event_ids
from ..support.stream_steps import Stream
from ..support.sync_steps import SyncLoop, assert_each_once_in_one_order, held_then_woken, timeline
from ..support.waiting import eventually

CHURNERS = 12  # accounts that come and go, each with one connection at a time
ROUNDS = 4  # connections each churner opens and drops, half streams, half long-polls
SENDERS = 2
MESSAGES = 30  # per sender


async def dropped_long_poll(base_url: str, token: str, since: str, rng: random.Random) -> None:
    """A long-poll whose client vanishes: the request is sent, then the TCP
    connection is reset (or closed) after a moment, without reading the answer."""
    parts = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        (
            f"GET {MATRIX}/sync?timeout=30000&since={since} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    await asyncio.sleep(rng.uniform(0, 0.3))  # kept: a client gone at a random moment is what is tested
    if rng.random() < 0.5:
        writer.transport.abort()  # RST
    else:
        writer.close()


async def dropped_stream(base_url: str, token: str, since: str, rng: random.Random) -> None:
    """A stream whose client vanishes without a close frame: at once, after
    its first frame, or while frames are arriving."""
    stream = await Stream.open(base_url, token=token, since=since)
    if rng.random() < 0.7:
        await stream.frame()
    await asyncio.sleep(rng.uniform(0, 0.3))  # kept, as in dropped_long_poll
    stream.conn.protocol.stream.close()


async def test_clients_that_drop_abruptly_harm_nobody(server, api, record_testsuite_property, caplog):
    rng = random.Random(10)
    senders = await register(api, *(f"sender{n}" for n in range(SENDERS)))
    bob, carol = await register(api, "bob", "carol")
    churners = await register(api, *(f"churn{n}" for n in range(CHURNERS)))
    room_id = await senders[0].create_room(preset="public_chat")
    for user in (*senders[1:], bob, carol, *churners):
        await user.join(room_id)

    # Those who stay: bob on a stream, carol in a long-poll loop.
    stream = await Stream.open(server.base_url, token=bob.access_token)
    await stream.frame()
    carol_loop = SyncLoop(carol)
    await carol_loop.sync()
    carol_seen: list[str] = []
    sending = asyncio.Event()

    async def carol_polls():
        while sending.is_set() or not carol_seen or len(carol_seen) < SENDERS * MESSAGES:
            answer = await carol_loop.sync(timeout=5_000)
            carol_seen.extend(e["event_id"] for e in timeline(answer, room_id) if e["type"] == "m.room.message")

    async def send(user):
        ids = []
        for n in range(MESSAGES):
            ids.append(await user.say(room_id, f"{user.user_id} {n}"))
            await asyncio.sleep(rng.uniform(0, 0.04))  # kept: sends spread among the churn
        return ids

    async def churn(user, since):
        for n in range(ROUNDS):
            leave = dropped_stream if (n + len(user.user_id)) % 2 else dropped_long_poll
            await leave(server.base_url, user.access_token, since, rng)

    # Each churner resumes from a token of its own, so that its long-polls wait.
    churn_since = [(await SyncLoop(user).sync())["next_batch"] for user in churners]
    started = time.monotonic()
    sending.set()
    polling = asyncio.ensure_future(carol_polls())
    churning = (churn(u, since) for u, since in zip(churners, churn_since, strict=True))
    sent: list[list[str]]
    sent, _ = await asyncio.gather(asyncio.gather(*(send(u) for u in senders)), asyncio.gather(*churning))
    sending.clear()
    bob_seen = [e["event_id"] for e in await stream.messages(room_id, SENDERS * MESSAGES, timeout=15)]
    await asyncio.wait_for(polling, 15)
    churn_seconds = time.monotonic() - started

    order = assert_each_once_in_one_order(sent, [bob_seen, carol_seen], SENDERS * MESSAGES)
    stored = [e for e in await stored_event_ids(server.atomchat.dsn, room_id) if e in set(order)]
    assert order == stored

    # The server forgot every client that left (a dropped long-poll is
    # noticed as its connection closes, a dropped stream likewise), but for
    # the long-poll sessions it keeps parked for a client's next request.
    notifier = server.atomchat.ctx.notifier

    def left_behind():
        parked = {session.listener for session, _timer in server.atomchat.ctx.sync_sessions._parked.values()}
        return {c.user_id: len(set(notifier._by_user.get(c.user_id, ())) - parked) for c in churners}

    await eventually(lambda: not any(left_behind().values()), 10, "the release of the listeners of clients that left")

    # Newcomers (and old hands) receive new messages at once.
    newcomer_stream = await Stream.open(server.base_url, token=churners[0].access_token)
    await newcomer_stream.frame()
    newcomer_loop = SyncLoop(churners[1])
    await newcomer_loop.sync()
    answer, long_poll_s = await held_then_woken(newcomer_loop, lambda: senders[0].say(room_id, "welcome"))
    assert [e["content"]["body"] for e in timeline(answer, room_id)] == ["welcome"]
    assert [e["content"]["body"] for e in await newcomer_stream.messages(room_id, 1)] == ["welcome"]
    begun = time.monotonic()
    await senders[1].say(room_id, "welcome again")
    assert [e["content"]["body"] for e in await newcomer_stream.messages(room_id, 1)] == ["welcome again"]
    stream_s = time.monotonic() - begun
    assert [e["content"]["body"] for e in await stream.messages(room_id, 2)] == ["welcome", "welcome again"]
    assert long_poll_s < 2.0 and stream_s < 2.0  # at once, against 30 s long-polls (slack for a loaded machine)

    # Nothing failed on the server's side: dropped clients are ordinary.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []

    record_testsuite_property("churn_connections_dropped", CHURNERS * ROUNDS)
    record_testsuite_property("churn_messages_each_stayer_got_once_in_order", len(order))
    record_testsuite_property("churn_seconds", round(churn_seconds, 2))
    record_testsuite_property("churn_newcomer_long_poll_s", round(long_poll_s, 4))
    record_testsuite_property("churn_newcomer_stream_s", round(stream_s, 4))
