"""The real-time core is fail-safe, checked by injecting real failures into
a running server: a client whose delivery raises stops delivery to nobody;
a dispatch task that fails is restarted and nobody misses an event; one that
keeps failing stops the server loudly rather than leaving it running without
it; and while the notifier cannot vouch for being current (its LISTEN
connection is gone and cannot be made again) requests fail at once with a
503 JSON error instead of waiting, and carry on without a gap once it is
back."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time

import asyncpg

from atomchat_server.notifier import LISTENER_NAME, Listener
from atomchat_server.supervisor import Supervisor

from ..support.client import ApiClient
from ..support.harness import child_env, free_port
from ..support.moderation_steps import whoami
from ..support.room_steps import bodies, register, room_of
from ..support.servers import truncate_all
from ..support.stream_steps import Stream
from ..support.sync_steps import SyncLoop, held_then_woken, long_polls_waiting, on, timeline
from ..support.waiting import eventually

UNAVAILABLE = "Real-time delivery is unavailable: "


class Broken(Listener):
    """A client whose socket breaks each time something is written to it."""

    calls = 0

    def deliver(self, rows, *, needs_full):
        self.calls += 1
        raise RuntimeError("this client's socket broke")


async def test_a_client_whose_delivery_fails_stops_delivery_to_nobody(server, api, caplog):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    notifier = server.atomchat.ctx.notifier
    broken = Broken(alice.user_id, [room_id])
    notifier.add_listener(broken)
    try:
        stream = await Stream.open(server.base_url, token=bob.access_token)
        await stream.frame()
        loop = SyncLoop(bob)
        await loop.sync()
        for n in range(3):
            answer, _ = await held_then_woken(loop, lambda n=n: alice.say(room_id, f"message {n}"))
            assert bodies(timeline(answer, room_id)) == [f"message {n}"]
        assert bodies(await stream.messages(room_id, 3)) == ["message 0", "message 1", "message 2"]
        assert broken.calls >= 3 and broken.needs_full  # it rebuilds its answer from the database
        assert "delivery to a client of @alice:test.local failed" in caplog.text
    finally:
        notifier.remove_listener(broken)


async def healthy(notifier, timeout: float = 5) -> None:
    await eventually(lambda: notifier.problem() is None, timeout, "the notifier's health")


async def test_a_failed_dispatch_task_is_restarted_and_nobody_misses_an_event(server, api, caplog):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    notifier = server.atomchat.ctx.notifier
    settled = notifier.writer_settled
    failures: list[int] = []

    async def fails_once():
        if not failures:
            failures.append(1)
            raise RuntimeError("injected failure")
        await settled()

    notifier.writer_settled = fails_once
    loop = SyncLoop(bob)
    await loop.sync()
    stream = await Stream.open(server.base_url, token=bob.access_token)
    await stream.frame()
    answer, _ = await held_then_woken(loop, lambda: alice.say(room_id, "through the failure"))
    assert bodies(timeline(answer, room_id)) == ["through the failure"]
    # While the task is restarting, requests are refused at once (503).
    await healthy(notifier)
    answer, _ = await held_then_woken(loop, lambda: alice.say(room_id, "after the restart"))
    assert bodies(timeline(answer, room_id)) == ["after the restart"]
    assert bodies(await stream.messages(room_id, 2)) == ["through the failure", "after the restart"]
    assert failures == [1]
    assert "the dispatch task failed" in caplog.text and "restarting the dispatch task" in caplog.text


async def test_a_dispatch_task_that_keeps_failing_makes_every_request_fail_fast(server, api, caplog):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    notifier = server.atomchat.ctx.notifier

    async def always_fails():
        raise RuntimeError("injected failure")

    notifier.writer_settled = always_fails
    await alice.say(room_id, "the dispatch fails on this one")
    supervisor = server.atomchat.supervisor
    await eventually(lambda: supervisor.fatal is not None, 10, "the supervisor giving up")
    assert supervisor.fatal == "the dispatch task failed 5 times within 60s"
    assert "the dispatch task failed 5 times within 60s: the server cannot go on without it" in caplog.text
    started = time.monotonic()
    for user in (alice, bob):
        refused = await whoami(user, status=503)
        assert refused.body == {"errcode": "M_UNKNOWN", "error": UNAVAILABLE + supervisor.fatal + "; try again shortly"}
    assert time.monotonic() - started < 1.5  # both together faster than one caught_up timeout (2 s)


async def test_a_supervisor_gives_up_after_repeated_failures_and_says_why():
    reasons: list[str] = []
    supervisor = Supervisor(reasons.append, max_failures=3, window=10)
    runs = []

    async def fails():
        runs.append(1)
        raise RuntimeError("injected failure")

    task = supervisor.spawn("doomed", fails)
    await asyncio.wait_for(task, 5)
    assert (len(runs), reasons, supervisor.fatal) == (
        3,
        ["the doomed task failed 3 times within 10s"],
        "the doomed task failed 3 times within 10s",
    )
    assert not supervisor.running("doomed")


async def test_without_its_listen_connection_the_server_answers_503_at_once_then_carries_on(
    server, api, more_servers, database_dsn, caplog
):
    caplog.set_level(logging.INFO)
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    other = await more_servers()
    alice_there = on(alice, ApiClient(other.base_url))
    loop = SyncLoop(bob)
    await loop.sync()
    stream = await Stream.open(server.base_url, token=bob.access_token)
    await stream.frame()
    waiting = asyncio.ensure_future(loop.sync(timeout=20_000))
    await long_polls_waiting(server, 1)

    # The LISTEN connection is cut, and PostgreSQL cannot be reached to
    # make another: the server's notifier is blind to other processes.
    notifier = server.atomchat.ctx.notifier
    reachable = notifier._dsn
    notifier._dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    conn = await asyncpg.connect(database_dsn)
    try:
        pids = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
            LISTENER_NAME,
        )
        for row in pids:  # this server's and the other's
            await conn.execute("SELECT pg_terminate_backend($1)", row["pid"])
    finally:
        await conn.close()
    await eventually(lambda: notifier.problem() is not None, 5, "the lost connection noticed")

    started = time.monotonic()
    refused = await whoami(bob, status=503)
    assert refused["error"] == (
        UNAVAILABLE + "the server lost its PostgreSQL LISTEN connection and is reconnecting; try again shortly"
    )
    assert time.monotonic() - started < 1.5  # not held for the 2 s of a caught_up timeout, nor for the reconnection
    # Meanwhile another process (which could listen again at once) commits.
    await healthy(other.atomchat.ctx.notifier)
    sent = [await alice_there.say(room_id, f"while blind {n}") for n in range(3)]
    assert not waiting.done()

    notifier._dsn = reachable  # PostgreSQL is reachable again: the server reconnects by itself
    answer = await asyncio.wait_for(waiting, 15)
    assert bodies(timeline(answer, room_id)) == ["while blind 0", "while blind 1", "while blind 2"]
    assert [e["event_id"] for e in timeline(answer, room_id)] == sent
    assert bodies(await stream.messages(room_id, 3)) == ["while blind 0", "while blind 1", "while blind 2"]
    await whoami(bob)
    assert "listening on PostgreSQL again" in caplog.text


# ``atomchat serve`` with a dispatch task that cannot run: the real command,
# its notifier's dispatch loop replaced by one that fails at once.
BROKEN_SERVE = """
import sys
from atomchat_server import cli, notifier

async def broken(self):
    raise RuntimeError("injected: the dispatch loop cannot run")

notifier.Notifier._dispatch_loop = broken
sys.exit(cli.main(sys.argv[1:]))
"""


async def test_atomchat_serve_stops_loudly_when_a_task_keeps_failing(data_dir, database_dsn):
    await truncate_all(database_dsn)
    started = time.monotonic()
    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-c",
            BROKEN_SERVE,
            "serve",
            "--database-url",
            database_dsn,
            "--data-dir",
            str(data_dir),
            "--port",
            str(free_port()),
            "--server-name",
            "test.local",
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1] == "atomchat: stopped because the dispatch task failed 5 times within 60s"
    assert "the dispatch task failed 5 times within 60s: the server cannot go on without it" in result.stderr
    assert result.stderr.count("restarting the dispatch task") == 4
    assert time.monotonic() - started < 30
