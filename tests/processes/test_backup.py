"""Backup and restore as docs/deploying.md describes them: ``pg_dump
--format=custom`` of a running server's database, ``pg_restore`` into an
empty one, and ``atomchat serve`` on the restored database serves the same
accounts and the same history, and goes on from there."""

from __future__ import annotations

import importlib.util
import secrets
import subprocess
from pathlib import Path
from typing import Any

from ..support.harness import child_env
from ..support.processes import Serve
from ..support.room_steps import User, register, room_of

# The PostgreSQL client programs shipped with the embedded server: new enough
# for it, and able to dump and restore older servers (the CI's) as well.
BIN = Path(str(importlib.util.find_spec("pgserver").origin)).parent / "pginstall" / "bin"


def comparable(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events as stored: without unsigned (its age changes by the second)."""
    return [{key: value for key, value in event.items() if key != "unsigned"} for event in events]


def run(program: str, *args: str) -> None:
    done = subprocess.run([str(BIN / program), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


async def test_a_restored_database_serves_the_same_history(api, database_dsn, scratch_dsn, data_dir):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob, name="Kept")
    for n in range(5):
        await (alice, bob)[n % 2].say(room_id, f"before the backup {n}")
    await alice.call(
        "PUT", f"/rooms/{room_id}/state/m.room.topic/", {"topic": "restored"}, schema="matrix/event_id.response"
    )
    history, _ = await alice.all_messages(room_id, limit=4, dir="f")

    dump = data_dir.parent / "atomchat.dump"
    run("pg_dump", "--format=custom", "--file", str(dump), database_dsn)
    run("pg_restore", "--no-owner", "--dbname", scratch_dsn, str(dump))

    env = child_env(ATOMCHAT_SIGNING_KEY=secrets.token_hex(32))  # another host: another key, new logins
    with Serve(
        data_dir, "--database-url", scratch_dsn, "--argon2-time-cost", "1", "--argon2-memory-kib", "1024", env=env
    ) as restored:
        await restored.ready()
        login = await restored.api.login(alice.user_id)
        again = User(restored.api, alice.user_id, login["access_token"], login["device_id"])
        restored_history, _ = await again.all_messages(room_id, limit=4, dir="f")
        assert comparable(restored_history) == comparable(history)
        assert (
            await again.call("GET", f"/rooms/{room_id}/state/m.room.topic/", schema="matrix/state_content.response")
        ).body == {"topic": "restored"}
        # New events continue the restored stream, after everything restored.
        after = await again.say(room_id, "after the restore")
        page = await again.call("GET", f"/rooms/{room_id}/messages?dir=b&limit=2", schema="matrix/messages.response")
        assert [event["event_id"] for event in page["chunk"]] == [after, history[-1]["event_id"]]
