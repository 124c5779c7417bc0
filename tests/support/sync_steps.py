"""Steps the sync tests share: /sync called as a client calls it, a sync
loop that carries its token from one answer to the next, and readers of
the parts of an answer the tests look at."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from typing import Any
from urllib.parse import quote, urlencode

from tornado.httpclient import AsyncHTTPClient

from .client import MATRIX, ApiClient, Response
from .room_steps import User
from .waiting import eventually

SYNC = "matrix/sync.response"


async def sync(user: User, since: str | None = None, *, status: int = 200, **params: Any) -> Response:
    """GET /sync as ``user``. A ``filter`` given as a dict is sent inline as
    JSON, booleans as ``true``/``false``."""
    if since is not None:
        params["since"] = since
    if isinstance(params.get("filter"), dict):
        params["filter"] = json.dumps(params["filter"])
    query = urlencode({k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items()})
    return await user.call("GET", "/sync" + (f"?{query}" if query else ""), status=status, schema=SYNC)


async def timed(awaitable) -> tuple[Any, float]:
    """The result of ``awaitable`` and the seconds it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await awaitable
    return result, loop.time() - started


async def held_then_woken(loop: SyncLoop, action, wait_s: float = 0.3, *, status: int = 200):
    """Starts a long-poll, lets it wait, runs ``action``; returns the answer
    (expected with ``status``) and the seconds the long-poll took after the
    action began."""
    server = loop.server
    if server is not None and server.base_url == loop.user.api.base_url:
        waiting = server.atomchat.ctx.long_polls.total()
        poll = asyncio.ensure_future(loop.sync(timeout=20_000, status=status))
        await long_polls_waiting(server, waiting + 1)
    else:
        poll = asyncio.ensure_future(loop.sync(timeout=20_000, status=status))
        # Kept for a long-poll on a server this process cannot count the
        # long-polls of (another process, or behind a balancer).
        await asyncio.sleep(wait_s)
    assert not poll.done(), "the long-poll did not wait"
    result, elapsed = await timed(asyncio.gather(action(), poll))
    return result[1], elapsed


async def caught_up(server, timeout: float = 10) -> None:
    """Waits until ``server`` has handed every write it committed to its
    notifier's listeners. A resumed sync answers from what the notifier has
    dispatched, which may trail a write's acknowledgement by a moment; a test
    that compares one answer with everything written before it waits for
    this first."""
    notifier = server.atomchat.ctx.notifier
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while notifier.position < notifier.committed_position:
        assert loop.time() < deadline, "the notifier does not catch up"
        await asyncio.sleep(0.005)


async def long_polls_waiting(server, count: int, timeout: float = 10) -> None:
    """Waits until ``count`` /sync requests are waiting on ``server`` (its
    count of open long-polls, which /metrics shows), instead of sleeping a
    while and hoping they got there on a loaded machine."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while server.atomchat.ctx.long_polls.total() < count:
        assert loop.time() < deadline, f"{count} long-poll(s) never waited"
        await asyncio.sleep(0.005)


async def long_polls_at(base_url: str) -> int:
    """The long-polls waiting on the server at ``base_url``, as its /metrics
    counts them (a server in this process or another, not behind a balancer)."""
    text = (await AsyncHTTPClient().fetch(base_url + "/metrics")).body.decode()
    found = re.search(r"^atomchat_waiting_long_polls (\S+)$", text, re.M)
    assert found, "no long-poll count in the metrics"
    return int(float(found.group(1)))


async def long_polls_waiting_at(base_urls: list[str], count: int, timeout: float = 10) -> None:
    """long_polls_waiting for servers in other processes: waits until the
    long-polls their /metrics count add up to ``count``."""

    async def all_waiting() -> bool:
        return sum(await asyncio.gather(*(long_polls_at(url) for url in base_urls))) >= count

    await eventually(all_waiting, timeout, f"{count} long-poll(s) waiting")


class SyncLoop:
    """A client's sync loop: each call resumes from the previous answer's
    ``next_batch`` (the first call is an initial sync). Given the ``server``,
    each call first waits until it has caught up (see ``caught_up``)."""

    def __init__(self, user: User, server=None, **params: Any) -> None:
        self.user = user
        self.server = server
        self.params = params
        self.since: str | None = None

    async def sync(self, **params: Any) -> Response:
        if self.server is not None:
            await caught_up(self.server)
        response = await sync(self.user, self.since, **{**self.params, **params})
        if response.status == 200:
            self.since = response["next_batch"]
        return response


def on(user: User, api: ApiClient) -> User:
    """The same user and session, talking to another server."""
    return dataclasses.replace(user, api=api)


def room(response: Response, room_id: str, section: str = "join") -> dict[str, Any] | None:
    return response["rooms"][section].get(room_id)


def timeline(response: Response, room_id: str, section: str = "join") -> list[dict[str, Any]]:
    """The room's timeline events in the answer (none if the room is absent)."""
    found = room(response, room_id, section)
    return found["timeline"]["events"] if found else []


def state(response: Response, room_id: str, section: str = "join") -> list[dict[str, Any]]:
    found = room(response, room_id, section)
    return found["state"]["events"] if found else []


def ephemeral(response: Response, room_id: str, event_type: str) -> list[dict[str, Any]]:
    """The contents of the room's ephemeral events of one type."""
    found = room(response, room_id)
    return [e["content"] for e in found["ephemeral"]["events"] if e["type"] == event_type] if found else []


def state_keys(events: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(e["type"], e["state_key"]) for e in events if "state_key" in e}


def members(events: list[dict[str, Any]]) -> set[str]:
    return {e["state_key"] for e in events if e["type"] == "m.room.member"}


def assert_each_once_in_one_order(sent: list[list[str]], received: list[list[str]], total: int) -> list[str]:
    """The stream invariant, checked: every receiver saw every sent event
    exactly once, all receivers in the same order, and each sender's events
    in the order it sent them. Returns that order."""
    all_sent = {event_id for ids in sent for event_id in ids}
    assert len(all_sent) == total
    reference = received[0]
    for seen in received:
        assert len(seen) == len(set(seen)), "a receiver saw an event twice"
        assert set(seen) == all_sent, "a receiver missed an event"
        assert seen == reference, "receivers disagree on the order"
    for ids in sent:
        positions = [reference.index(event_id) for event_id in ids]
        assert positions == sorted(positions), "a sender's events arrived out of order"
    return reference


TIMELINE_FILTER = quote(json.dumps({"room": {"timeline": {"limit": 1000}}}))


async def sync_until(api, token, room_id, expected, deadline_s=60):
    """Long-polls like a client until ``expected`` messages arrived; returns
    the message event ids in the order received."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    first = await api.request(
        "GET", f"{MATRIX}/sync?filter={TIMELINE_FILTER}", token=token, schema="matrix/sync.response"
    )
    since = first["next_batch"]
    seen = [
        e["event_id"]
        for e in first["rooms"]["join"].get(room_id, {}).get("timeline", {}).get("events", [])
        if e["type"] == "m.room.message"
    ]
    while len(seen) < expected and loop.time() < deadline:
        response = await api.request(
            "GET",
            f"{MATRIX}/sync?since={since}&timeout=5000&filter={TIMELINE_FILTER}",
            token=token,
            schema="matrix/sync.response",
        )
        room = response["rooms"]["join"].get(room_id)
        if room is not None:
            assert room["timeline"]["limited"] is False
            seen += [e["event_id"] for e in room["timeline"]["events"] if e["type"] == "m.room.message"]
        since = response["next_batch"]
    return seen
