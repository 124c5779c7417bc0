"""``atomchat serve --workers N``: N processes on one port (SO_REUSEPORT),
each with its own notifier, one data directory lock for the group, and all
of them stopped by one SIGTERM."""

from __future__ import annotations

import os
import re
import secrets
import signal

import asyncpg

from atomchat_server.notifier import LISTENER_NAME

from ..support.harness import child_env, process_alive
from ..support.processes import Serve, run_atomchat
from ..support.room_steps import register, room_of
from ..support.servers import truncate_all
from ..support.sync_steps import SyncLoop, held_then_woken, timeline
from ..support.waiting import eventually

WORKERS = 2
FLAGS = ("--argon2-time-cost", "1", "--argon2-memory-kib", "1024", "--no-track-presence")


async def listeners(database_dsn: str) -> int:
    conn = await asyncpg.connect(database_dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", LISTENER_NAME)
    finally:
        await conn.close()


async def worker_pids(group: Serve) -> list[int]:
    def found():
        pids = dict(re.findall(r", worker (\d+) pid (\d+)\)", group.output))
        return pids if len(pids) == WORKERS else None

    pids = await eventually(found, 30, "every worker's start in the log")
    return [int(pids[str(index)]) for index in range(WORKERS)]


async def test_workers_share_the_port_each_listens_and_one_sigterm_stops_them_all(data_dir, database_dsn):
    await truncate_all(database_dsn)
    env = child_env(ATOMCHAT_SIGNING_KEY=secrets.token_hex(32))
    with Serve(data_dir, "--database-url", database_dsn, "--workers", str(WORKERS), *FLAGS, env=env) as group:
        await group.ready()
        pids = await worker_pids(group)
        assert group.process.pid not in pids
        assert await listeners(database_dsn) == WORKERS  # a notifier each

        # The group holds the data directory: another server is refused it.
        other = run_atomchat(
            "serve", "--data-dir", str(data_dir), "--port", "1", "--database-url", database_dsn, env=env
        )
        assert other.returncode == 1
        assert "is in use by another `atomchat serve`" in other.stderr

        # Each request is a new connection, which the kernel gives to either
        # worker: long-polls are woken by sends whichever worker holds them.
        alice, bob = await register(group.api, "alice", "bob")
        room_id = await room_of(alice, bob)
        loop = SyncLoop(bob)
        await loop.sync()
        for n in range(6):
            sent: list[str] = []

            async def send(n: int = n, sent: list[str] = sent) -> None:
                sent.append(await alice.say(room_id, f"message {n}"))

            answer, elapsed = await held_then_woken(loop, send)
            assert elapsed < 2, elapsed
            assert [e["event_id"] for e in timeline(answer, room_id)] == sent

        group.signal(signal.SIGTERM)
        assert await group.exited() == 0, group.output
        assert [pid for pid in pids if process_alive(pid)] == []
        assert "AtomChat stopped" in group.output
    assert await listeners(database_dsn) == 0


async def test_a_worker_that_dies_stops_the_group(data_dir, database_dsn):
    await truncate_all(database_dsn)
    env = child_env(ATOMCHAT_SIGNING_KEY=secrets.token_hex(32))
    with Serve(data_dir, "--database-url", database_dsn, "--workers", str(WORKERS), *FLAGS, env=env) as group:
        await group.ready()
        first, second = await worker_pids(group)
        os.kill(first, signal.SIGKILL)
        assert await group.exited() == 1, group.output
        assert not process_alive(second)
        assert f"worker 0 (pid {first}) ended with status -9; stopping the others" in group.output
