"""Revocation across server processes.

Several AtomChat servers share one database; each caches live sessions in
memory. A revocation committed through one server must be honoured at once
by every other server that has the session cached: the notifier carries it
over PostgreSQL LISTEN/NOTIFY. Here two servers run on the same database and
a client talks to both, as it would behind a load balancer.
"""

import asyncpg
import pytest

from atomchat_server.notifier import LISTENER_NAME
from atomchat_server.storage.sessions import SESSIONS_CHANNEL

from ..support.client import MATRIX, ApiClient, password_auth
from ..support.waiting import eventually


@pytest.fixture
def second(io_loop, more_servers):
    """A client of a second server on the same database."""
    running = io_loop.run_sync(more_servers)
    return ApiClient(running.base_url)


async def whoami(api, token, status=200):
    answer = await api.request(
        "GET",
        f"{MATRIX}/account/whoami",
        token=token,
        status=status,
        schema="matrix/whoami.response" if status == 200 else None,
    )
    if status == 401:
        assert answer["errcode"] == "M_UNKNOWN_TOKEN"
        assert answer["soft_logout"] is False
    return answer


async def sql(dsn, query, *args):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def test_logout_on_one_server_is_honoured_by_the_other(api, second):
    kept = await api.register("alice")
    login = await second.login("alice")
    for client in (api, second):
        await whoami(client, login["access_token"])  # both servers now hold the session in memory
    await api.request("POST", f"{MATRIX}/logout", token=login["access_token"], schema="matrix/empty.response")
    await whoami(second, login["access_token"], status=401)
    await whoami(api, login["access_token"], status=401)
    for client in (api, second):
        await whoami(client, kept["access_token"])


async def test_revocations_travel_both_ways(api, second):
    await api.register("alice")
    logins = [await api.login("alice") for _ in range(2)]
    for login in logins:
        await whoami(api, login["access_token"])
    await second.request("POST", f"{MATRIX}/logout", token=logins[0]["access_token"], schema="matrix/empty.response")
    await whoami(api, logins[0]["access_token"], status=401)
    await whoami(api, logins[1]["access_token"])


async def test_logout_all(api, second):
    logins = [await api.register("alice")] + [await api.login("alice") for _ in range(2)]
    bob = await api.register("bob")
    for login in logins + [bob]:
        await whoami(second, login["access_token"])
    await api.request("POST", f"{MATRIX}/logout/all", token=logins[0]["access_token"], schema="matrix/empty.response")
    for login in logins:
        await whoami(second, login["access_token"], status=401)
    await whoami(second, bob["access_token"])


async def test_device_deletion(api, second):
    caller = await api.register("alice")
    others = [await api.login("alice", device_id=f"D{i}") for i in range(3)]
    for login in others:
        await whoami(second, login["access_token"])
    await api.request(
        "DELETE",
        f"{MATRIX}/devices/D0",
        {"auth": password_auth("alice")},
        token=caller["access_token"],
        schema="matrix/empty.response",
    )
    await whoami(second, others[0]["access_token"], status=401)
    await api.request(
        "POST",
        f"{MATRIX}/delete_devices",
        {"devices": ["D1"], "auth": password_auth("alice")},
        token=caller["access_token"],
        schema="matrix/empty.response",
    )
    await whoami(second, others[1]["access_token"], status=401)
    await whoami(second, others[2]["access_token"])


async def test_password_change_logging_out_other_devices(api, second):
    caller = await api.register("alice")
    other = await api.login("alice")
    for login in (caller, other):
        await whoami(second, login["access_token"])
    body = {"new_password": "a brand new password 7", "auth": password_auth("alice")}
    await api.request(
        "POST", f"{MATRIX}/account/password", body, token=caller["access_token"], schema="matrix/empty.response"
    )
    await whoami(second, other["access_token"], status=401)
    await whoami(second, caller["access_token"])


async def test_new_login_on_a_device_revokes_its_old_token_everywhere(api, second):
    await api.register("alice")
    first = await api.login("alice", device_id="PHONE")
    await whoami(second, first["access_token"])
    again = await api.login("alice", device_id="PHONE")
    await whoami(second, first["access_token"], status=401)
    await whoami(second, again["access_token"])


async def test_the_notification_is_what_revokes(api, second, database_dsn):
    """The second server answers from memory: a session deleted behind its
    back stays valid there until the revocation is announced on the channel."""
    login = await api.register("alice")
    await whoami(second, login["access_token"])
    await sql(database_dsn, "DELETE FROM sessions WHERE user_id = $1", "@alice:test.local")
    await whoami(second, login["access_token"])
    await sql(database_dsn, "SELECT pg_notify($1, $2)", SESSIONS_CHANNEL, "@alice:test.local")
    await whoami(second, login["access_token"], status=401)


async def listeners(dsn):
    rows = await sql(
        dsn,
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
        LISTENER_NAME,
    )
    return {row["pid"] for row in rows}


async def test_a_lost_listen_connection_is_not_trusted_and_is_restored(api, second, database_dsn):
    login = await api.register("alice")
    await whoami(second, login["access_token"])
    # A revocation that is never announced, and then the connections that
    # would carry announcements are lost.
    await sql(database_dsn, "DELETE FROM sessions WHERE user_id = $1", "@alice:test.local")
    old = await listeners(database_dsn)
    assert len(old) == 2  # one per server
    await sql(database_dsn, "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", list(old))
    # Whether or not the server has noticed the loss yet, it does not answer from memory.
    await whoami(second, login["access_token"], status=401)

    async def listening_again():
        return len((await listeners(database_dsn)) - old) == 2

    await eventually(listening_again, timeout=10, what="the servers listening again")
    # Announcements reach the server again.
    fresh = await api.login("alice")
    await whoami(second, fresh["access_token"])
    await api.request("POST", f"{MATRIX}/logout", token=fresh["access_token"], schema="matrix/empty.response")
    await whoami(second, fresh["access_token"], status=401)
