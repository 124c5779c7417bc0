"""Crashes and restarts lose nothing, checked on real ``atomchat serve``
processes under sustained sending:

- ``kill -9`` of the server: after a restart every send answered 200 is in
  the room exactly once; retrying the unanswered sends with their
  transaction ids makes no duplicates; a stream and a long-poll loop resume
  with the tokens they held and see every message once, in order.
- PostgreSQL restarted under load (the test's own embedded PostgreSQL, so
  that the shared one is not disturbed): requests meanwhile fail at once with
  a 503 JSON error (none hangs), the server reconnects by itself, and the
  stream and long-poll loop carry on without a gap.

The counts are recorded as properties of the test (see --junitxml).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError

from ..support.client import MATRIX, check_schema
from ..support.harness import child_env, postmaster_pid, process_alive
from ..support.processes import Serve
from ..support.room_steps import User, register, room_of, text
from ..support.servers import truncate_all
from ..support.stream_steps import Closed, Stream, room_events
from ..support.sync_steps import sync
from ..support.waiting import eventually

SENDERS = 4
# Cheap hashing, and registrations from one address as fast as the test makes them.
TEST_FLAGS = (
    "--argon2-time-cost",
    "1",
    "--argon2-memory-kib",
    "1024",
    "--rc-register-burst",
    "100",
    "--rc-login-burst",
    "100",
)
ALL_TIMELINE = json.dumps({"room": {"timeline": {"limit": 1000}}})


async def try_send(user: User, base_url: str, room_id: str, txn_id: str, timeout: float = 10) -> tuple[int, dict]:
    """PUT one message; (status, body), with status 599 when no answer came
    (the connection was refused or cut). Never raises for a failed send."""
    request = HTTPRequest(
        f"{base_url}{MATRIX}/rooms/{room_id}/send/m.room.message/{txn_id}",
        method="PUT",
        body=json.dumps(text(txn_id)),
        request_timeout=timeout,
        headers={"Authorization": f"Bearer {user.access_token}", "Content-Type": "application/json"},
    )
    response = await fetch(request)
    if response is None:
        return 599, {}
    body = json.loads(response.body)
    check_schema("matrix/event_id.response" if response.code == 200 else "common/error", body)
    return response.code, body


async def fetch(request: HTTPRequest):
    """The response, whatever its status; None when none came (the server
    is down, or the connection was cut)."""
    try:
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
    except (OSError, HTTPClientError, StreamClosedError):
        return None
    return None if response.code == 599 else response


class Sender:
    """A client sending one message after another, each with its own txn id;
    keeps which were acknowledged and which were not."""

    def __init__(self, user: User, room_id: str, name: str) -> None:
        self.user, self.room_id, self.name = user, room_id, name
        self.acked: dict[str, str] = {}  # txn id -> event id
        self.unacked: list[str] = []
        self.failures: list[tuple[int, dict]] = []

    async def run(self, base_url: str, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            txn_id = f"{self.name}-{n}"
            n += 1
            status, body = await try_send(self.user, base_url, self.room_id, txn_id)
            if status == 200:
                self.acked[txn_id] = body["event_id"]
            else:
                self.unacked.append(txn_id)
                self.failures.append((status, body))
                await asyncio.sleep(0.2)  # kept: as a client backs off

    async def retry(self, base_url: str) -> None:
        """Sends every unacknowledged message again, with the same txn id."""
        for txn_id in self.unacked:
            status, body = await try_send(self.user, base_url, self.room_id, txn_id)
            assert status == 200, (status, body)
            self.acked[txn_id] = body["event_id"]
        self.unacked = []


class Receiver:
    """A stream and a long-poll loop of one user, each keeping the message
    ids it received and its latest token, reconnecting wherever told."""

    def __init__(self, user: User, room_id: str) -> None:
        self.user, self.room_id = user, room_id
        self.streamed: list[str] = []
        self.polled: list[str] = []
        self.stream_since: str | None = None
        self.poll_since: str | None = None

    async def start(self, base_url: str) -> None:
        answer = await sync(self.user, filter=ALL_TIMELINE)
        self.poll_since = answer["next_batch"]
        stream = await Stream.open(base_url, token=self.user.access_token)
        self.stream_since = (await stream.frame())["next_batch"]
        stream.conn.close()

    async def follow_stream(self, base_url: Callable[[], str], until: int, deadline: float) -> None:
        """Reads the stream from the token held, reconnecting when the socket
        closes, until ``until`` messages have come or the deadline passes."""
        while len(self.streamed) < until and time.monotonic() < deadline:
            try:
                assert self.stream_since is not None, "start() first"
                stream = await Stream.open(base_url(), token=self.user.access_token, since=self.stream_since)
                while len(self.streamed) < until:
                    frame = await stream.frame(timeout=max(0.1, deadline - time.monotonic()))
                    self.streamed += [
                        e["event_id"] for e in room_events(frame, self.room_id) if e["type"] == "m.room.message"
                    ]
                    self.stream_since = frame["next_batch"]
                stream.conn.close()
            except (Closed, OSError, asyncio.TimeoutError, HTTPClientError, StreamClosedError):
                await asyncio.sleep(0.1)  # kept: a client's pause before it reconnects

    async def follow_polls(self, base_url: Callable[[], str], until: int, deadline: float) -> None:
        while len(self.polled) < until and time.monotonic() < deadline:
            query = urlencode({"timeout": 2000, "since": self.poll_since, "filter": ALL_TIMELINE})
            request = HTTPRequest(
                f"{base_url()}{MATRIX}/sync?{query}",
                request_timeout=10,
                headers={"Authorization": f"Bearer {self.user.access_token}"},
            )
            response = await fetch(request)
            if response is None or response.code != 200:
                if response is not None:
                    check_schema("common/error", json.loads(response.body))
                await asyncio.sleep(0.1)  # kept: a client's pause before it polls again
                continue
            answer = json.loads(response.body)
            check_schema("matrix/sync.response", answer)
            room = answer["rooms"]["join"].get(self.room_id)
            if room is not None:
                assert not room["timeline"]["limited"]
                self.polled += [e["event_id"] for e in room["timeline"]["events"] if e["type"] == "m.room.message"]
            self.poll_since = answer["next_batch"]


async def stored_messages(dsn: str, room_id: str) -> list[tuple[str, str]]:
    """(event id, txn id) of the room's messages, in stream order."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT event_id, txn_id FROM events WHERE room_id = $1 AND type = 'm.room.message' ORDER BY stream",
            room_id,
        )
    finally:
        await conn.close()
    return [(row["event_id"], row["txn_id"]) for row in rows]


def check_exactly_once(stored: list[tuple[str, str]], senders: list[Sender], receiver: Receiver) -> dict[str, int]:
    """Every acknowledged send stored once, no txn id twice, and each of the
    receiver's clients saw the stored messages exactly once, in order."""
    by_txn: dict[str, list[str]] = {}
    for event_id, txn_id in stored:
        by_txn.setdefault(txn_id, []).append(event_id)
    duplicates = sum(len(ids) - 1 for ids in by_txn.values())
    acked = {txn: event_id for s in senders for txn, event_id in s.acked.items()}
    present = sum(1 for txn, event_id in acked.items() if by_txn.get(txn) == [event_id])
    assert duplicates == 0 and present == len(acked) == len(stored), (duplicates, present, len(acked), len(stored))
    order = [event_id for event_id, _ in stored]
    assert receiver.streamed == order, "the stream missed, repeated or reordered messages"
    assert receiver.polled == order, "the long-poll loop missed, repeated or reordered messages"
    return {"acknowledged": len(acked), "present": present, "duplicates": duplicates}


class Load:
    """SENDERS clients sending without pause to one room, and a receiver
    following it by stream and long-poll, against a server whose base URL
    may change (a restarted process listens elsewhere)."""

    _sending: asyncio.Future[list[None]]  # set by start()
    _following: list[asyncio.Future[None]]

    def __init__(self, users: list[User], room_id: str, base_url: str) -> None:
        self.room_id = room_id
        self.senders = [Sender(user, room_id, f"s{n}") for n, user in enumerate(users[:SENDERS])]
        self.receiver = Receiver(users[-1], room_id)
        self.base_url = base_url
        self._stop = asyncio.Event()

    @classmethod
    async def start(cls, serve: Serve) -> Load:
        users = await register(serve.api, *(f"sender{n}" for n in range(SENDERS)), "carol")
        load = cls(users, await room_of(users[0], *users[1:]), serve.base_url)
        await load.receiver.start(serve.base_url)
        deadline = time.monotonic() + 25
        load._sending = asyncio.gather(*(s.run(serve.base_url, load._stop) for s in load.senders))
        load._following = [
            asyncio.ensure_future(load.receiver.follow_stream(load.url, 10**6, deadline)),
            asyncio.ensure_future(load.receiver.follow_polls(load.url, 10**6, deadline)),
        ]
        return load

    def url(self) -> str:
        return self.base_url

    @property
    def acked(self) -> int:
        return sum(len(s.acked) for s in self.senders)

    async def until_acked(self, count: int) -> None:
        await eventually(lambda: self.acked >= count, 60, f"{count} sends acknowledged")

    async def stop_sending(self) -> None:
        self._stop.set()
        await self._sending

    async def settle(self, read_stored, *extra: Sender) -> dict[str, int]:
        """Retries what was not acknowledged (by the senders and ``extra``),
        lets the receiver catch up with the messages ``read_stored()``
        returns, and checks them; returns the counts."""
        await asyncio.gather(*(sender.retry(self.base_url) for sender in (*self.senders, *extra)))
        for task in self._following:
            task.cancel()
        stored = await read_stored()
        await self.receiver.follow_stream(self.url, len(stored), time.monotonic() + 15)
        await self.receiver.follow_polls(self.url, len(stored), time.monotonic() + 15)
        return check_exactly_once(stored, [*self.senders, *extra], self.receiver)


async def test_kill_9_in_the_middle_of_sending_loses_nothing(data_dir, database_dsn, record_testsuite_property):
    await truncate_all(database_dsn)
    env = child_env(ATOMCHAT_SIGNING_KEY=secrets.token_hex(32))
    flags = ("--database-url", database_dsn, "--server-name", "test.local", *TEST_FLAGS)
    with Serve(data_dir, *flags, env=env) as first:
        await first.ready()
        load = await Load.start(first)
        await load.until_acked(150)
        first.process.kill()  # SIGKILL, in the middle of sending
        first.process.wait()
        await load.stop_sending()
    acked_before = load.acked
    unacked = [txn for s in load.senders for txn in s.unacked]
    assert unacked, "no send was in flight at the kill"
    committed_unacked = {txn for _, txn in await stored_messages(database_dsn, load.room_id)} & set(unacked)

    with Serve(data_dir, *flags, env=env) as second:
        await second.ready()
        load.base_url = second.base_url
        counts = await load.settle(lambda: stored_messages(database_dsn, load.room_id))

    record_testsuite_property("kill9_acknowledged_before_kill", acked_before)
    record_testsuite_property("kill9_unacknowledged_at_kill", len(unacked))
    record_testsuite_property("kill9_unacknowledged_but_committed", len(committed_unacked))
    for name, value in counts.items():
        record_testsuite_property(f"kill9_{name}", value)


def pg_ctl(pgdata: Path, *args: str) -> None:
    """Runs pg_ctl on the embedded PostgreSQL of a data directory, as the
    user it runs as (``pgserver`` when the tests run as root)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless
        from pgserver._commands import pg_ctl as run  # type: ignore[attr-defined]  # pgserver makes it at import
    run(["-w", *args], pgdata=pgdata, user="pgserver" if os.geteuid() == 0 else None, timeout=30)


async def test_a_postgresql_restart_under_load_fails_requests_cleanly_and_loses_nothing(
    data_dir, record_testsuite_property
):
    env = child_env(ATOMCHAT_SIGNING_KEY=secrets.token_hex(32))
    with Serve(data_dir, "--server-name", "test.local", *TEST_FLAGS, env=env) as serve:
        await serve.ready()
        load = await Load.start(serve)
        await load.until_acked(50)

        # PostgreSQL stops (fast: its connections are cut), stays down a
        # moment under the senders' load, and starts again.
        pgdata = data_dir / "postgres"
        socket_dir = (pgdata / "postmaster.pid").read_text().splitlines()[4]
        old_postmaster = postmaster_pid(data_dir)
        await asyncio.to_thread(pg_ctl, pgdata, "-m", "fast", "stop")
        down_at = time.monotonic()
        probe = Sender(load.senders[0].user, load.room_id, "probe")  # one send after another, timed
        probes: list[tuple[int, str | None, float]] = []
        while time.monotonic() - down_at < 1.0:
            txn_id, started = f"probe-{len(probes)}", time.monotonic()
            status, body = await try_send(probe.user, serve.base_url, load.room_id, txn_id)
            probes.append((status, body.get("errcode"), time.monotonic() - started))
            if status == 200:
                probe.acked[txn_id] = body["event_id"]
            else:
                probe.unacked.append(txn_id)
        await asyncio.to_thread(
            pg_ctl, pgdata, "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(pgdata / "log"), "start"
        )
        assert postmaster_pid(data_dir) != old_postmaster and not process_alive(old_postmaster)

        # The server reconnects by itself: every sender's sends succeed again.
        before = {s.name: len(s.acked) for s in load.senders}
        await eventually(
            lambda: all(len(s.acked) > before[s.name] for s in load.senders), 15, "the server reconnecting"
        )
        await load.stop_sending()
        assert serve.process.poll() is None
        failures = [f for s in load.senders for f in s.failures]
        dsn = f"postgresql://postgres@/atomchat?host={socket_dir}"
        counts = await load.settle(lambda: stored_messages(dsn, load.room_id), probe)

    refused = [(status, errcode) for status, errcode, _ in probes if status != 200]
    assert refused and set(refused) == {(503, "M_UNKNOWN")}, probes
    assert all(status == 503 for status, _ in failures), failures  # an answer, never a dropped request
    slowest = max(seconds for _, _, seconds in probes)
    assert slowest < 2.0, probes  # refused at once, not after a hang
    record_testsuite_property("pg_restart_requests_while_down", len(probes))
    record_testsuite_property("pg_restart_refused_503", len(refused))
    record_testsuite_property("pg_restart_slowest_refusal_s", round(slowest, 3))
    record_testsuite_property("pg_restart_sends_failed_then_retried", len(failures))
    for name, value in counts.items():
        record_testsuite_property(f"pg_restart_{name}", value)
