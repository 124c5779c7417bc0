"""Moderation across server processes on one database.

Each process keeps the current blocks in memory and learns new rules from
its notifier (PostgreSQL LISTEN/NOTIFY), so a lock made through one process
must end the locked user's streams and long-polls held on any other within
a second, and every process must refuse their tokens from then on. Most
tests run a second AtomChat instance in this process (its own pool,
notifier and LISTEN connection); the last runs two real ``atomchat serve``
processes. The lock-to-close times are recorded as properties of the test
suite (``lock_to_close_s[...]``, ``lock_to_long_poll_end_s[...]``; see
--junitxml).
"""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest

from atomchat_server.storage.moderation import set_moderator

from ..support.client import ApiClient
from ..support.harness import child_env
from ..support.moderation_steps import (
    ADMIN,
    admin,
    block,
    expect_error,
    lock_ends_stream_and_long_poll,
    login_refused,
    moderator_and,
    refused,
    set_role,
    whoami,
)
from ..support.processes import Serve
from ..support.room_steps import User, register, room_of
from ..support.servers import truncate_all
from ..support.sync_steps import on


@pytest.fixture
def second(io_loop, more_servers):
    """A second server on the same database."""
    return io_loop.run_sync(more_servers)


def record_delays(record_testsuite_property, label: str, delays: tuple[float, float]) -> None:
    """Keeps how long after the lock request the stream closed and the long-poll ended."""
    record_testsuite_property(f"lock_to_close_s[{label}]", round(delays[0], 4))
    record_testsuite_property(f"lock_to_long_poll_end_s[{label}]", round(delays[1], 4))


@pytest.mark.parametrize("direction", ["first-locks-second-holds", "second-locks-first-holds"])
async def test_a_lock_through_one_server_ends_streams_and_long_polls_on_the_other(
    server, api, second, direction, record_testsuite_property
):
    other = ApiClient(second.base_url)
    mod, bob = await moderator_and(server, api, "bob")
    if direction == "first-locks-second-holds":
        holder, acting = second, mod
    else:
        holder, acting = server, on(mod, other)
    held = on(bob, ApiClient(holder.base_url))
    delays = await lock_ends_stream_and_long_poll(acting, held, held, holder.base_url, "across processes")
    record_delays(record_testsuite_property, direction, delays)
    for client in (api, other):
        await expect_error(await whoami(on(bob, client), status=401), 401, "M_USER_LOCKED")
        await expect_error(await login_refused(client, "bob"), 401, "M_USER_LOCKED")

    await block(on(mod, other), bob, "lock", on=False)
    for client in (api, other):
        await whoami(on(bob, client))


async def test_the_other_server_judges_the_very_next_request_on_the_new_rule(server, api, second):
    """No moment passes in which the other server still lets a locked account
    in, or keeps an unlocked one out."""
    other = ApiClient(second.base_url)
    mod, bob = await moderator_and(server, api, "bob")
    for _ in range(10):
        await block(mod, bob, "lock")
        await expect_error(await whoami(on(bob, other), status=401), 401, "M_USER_LOCKED")
        await block(mod, bob, "lock", on=False)
        await whoami(on(bob, other))


async def test_suspensions_roles_and_deletions_reach_the_other_server(server, api, second):
    other = ApiClient(second.base_url)
    mod, alice, bob = await moderator_and(server, api, "alice", "bob")
    room_id = await room_of(alice, bob, name="Across")
    for client in (api, other):  # both servers now hold bob's session in memory
        await admin(on(bob, client), "GET", "/users", status=403)

    await block(mod, bob, "suspend")
    await refused(
        on(bob, other),
        "PUT",
        f"/rooms/{room_id}/send/m.room.message/s1",
        {"msgtype": "m.text", "body": "x"},
        status=403,
        errcode="M_USER_SUSPENDED",
    )
    await block(on(mod, other), bob, "suspend", on=False)
    await on(bob, api).say(room_id, "free again")

    await set_role(mod, bob, True)
    await admin(on(bob, other), "GET", "/users", schema="admin/users.response")
    await set_role(on(mod, other), bob, False)
    await admin(on(bob, api), "GET", "/users", status=403)

    await admin(mod, "DELETE", f"/rooms/{room_id}", {}, schema="matrix/empty.response")
    await refused(on(alice, other), "GET", f"/rooms/{room_id}/messages", status=404, errcode="M_NOT_FOUND")
    assert room_id not in await on(alice, other).joined_rooms()


async def test_a_lock_through_one_atomchat_serve_process_closes_a_stream_on_another(
    data_dir, database_dsn, record_testsuite_property
):
    await truncate_all(database_dsn)
    env = child_env(ATOMCHAT_SIGNING_KEY=secrets.token_hex(32))
    flags = (
        "--database-url",
        database_dsn,
        "--server-name",
        "test.local",
        "--argon2-time-cost",
        "1",
        "--argon2-memory-kib",
        "1024",
        "--no-track-presence",
    )  # as TEST_SETTINGS: a first sync would wake the long-polls
    with Serve(data_dir, *flags, env=env) as first, Serve(data_dir.parent / "other", *flags, env=env) as other:
        await asyncio.gather(first.ready(), other.ready())
        mod, bob = await register(first.api, "mod", "bob")
        conn = await asyncpg.connect(database_dsn)
        try:
            await set_moderator(conn, mod.user_id, True)
        finally:
            await conn.close()
        login = await first.api.login("mod")  # a session that starts with the role
        mod = User(first.api, mod.user_id, login["access_token"], login["device_id"])
        await admin(mod, "GET", "/users", schema="admin/users.response")
        held = on(bob, other.api)
        delays = await lock_ends_stream_and_long_poll(mod, held, held, other.base_url, "across processes")
        record_delays(record_testsuite_property, "serve", delays)
        answer = await other.api.request("GET", ADMIN + "/users", token=bob.access_token, status=401)
        assert answer["errcode"] == "M_USER_LOCKED"
