"""An AtomChat server in the test's own process and loop: the settings the
tests run it with, starting and stopping it, emptying the database between
tests, and the scan of its log for credentials. The fixtures that use these
are in tests/conftest.py."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import asyncpg
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from atomchat_server.app import AtomChat, http_server
from atomchat_server.auth.passwords import Passwords
from atomchat_server.clock import REAL, Clock

from .client import DEFAULT_PASSWORD

# Settings for the server under test: cheap password hashing and rate limits
# high enough that only the tests about rate limits meet them.
TEST_SETTINGS: dict[str, Any] = dict(
    server_name="test.local",
    # Presence from syncing would wake every co-member's long-poll at a
    # user's first sync; the presence tests turn it on for themselves.
    track_presence=False,
    argon2_time_cost=1,
    argon2_memory_kib=1024,
    argon2_parallelism=1,
    rc_register_per_second=1000.0,
    rc_register_burst=1000,
    rc_login_per_second=1000.0,
    rc_login_burst=1000,
    rc_failed_login_per_second=1000.0,
    rc_failed_login_burst=1000,
    pool_min_size=1,
    pool_max_size=10,
    signing_key="test-signing-key-not-secret-0123456789abcdef",
)


# Credentials as they could show in a log line: a token parameter, a JWT
# (access token), a refresh token, or the password the tests use.
SECRET_IN_LOG = re.compile(
    r"access_token=(?!\[redacted\])|eyJ[\w-]+\.[\w-]+\.[\w-]+|atomchat_rt_[\w-]+|" + re.escape(DEFAULT_PASSWORD)
)


# The loggers the server writes to (the servers run in the test's process);
# client libraries the tests drive (nio, say) log their own tokens.
SERVER_LOGGERS = ("atomchat", "tornado", "asyncio", "asyncpg", "pgserver", "root")


class LogScan(logging.Handler):
    """Every line the server logs during a test, at every level, formatted
    with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(SERVER_LOGGERS):
            self.lines.append(self.format(record))

    def secrets(self) -> list[str]:
        return [line for line in self.lines if SECRET_IN_LOG.search(line)]


# The sequences TRUNCATE ... RESTART IDENTITY would restart: those owned by
# a column (serial, identity) of a table that is emptied; setval(name,
# start, false) leaves each as RESTART does (the next value is its start).
_OWNED_SEQUENCES = """
SELECT format('%I', seq.relname) AS name, s.start_value
FROM pg_class seq
JOIN pg_namespace ns ON ns.oid = seq.relnamespace AND ns.nspname = 'public'
JOIN pg_depend dep ON dep.objid = seq.oid AND dep.deptype IN ('a', 'i')
JOIN pg_class tab ON tab.oid = dep.refobjid AND tab.relname <> 'schema_migrations'
JOIN pg_sequences s ON s.schemaname = 'public' AND s.sequencename = seq.relname
WHERE seq.relkind = 'S'
"""


async def truncate_all(dsn: str) -> None:
    """Empties every table but schema_migrations and restarts the sequences
    their columns own, as TRUNCATE ... RESTART IDENTITY would. By DELETE,
    with the foreign keys' and other triggers off for the transaction
    (session_replication_role): a TRUNCATE makes new files for every table
    and index, some 0.2 s per test on a PostgreSQL that syncs them to disk,
    while deleting the few rows a test wrote takes a millisecond."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT quote_ident(tablename) AS name FROM pg_tables"
            " WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        )
        sequences = await conn.fetch(_OWNED_SEQUENCES)
        statements = ["SET LOCAL session_replication_role = replica"]
        statements += [f"DELETE FROM {t['name']}" for t in tables]
        statements += [f"SELECT setval('{s['name']}', {int(s['start_value'])}, false)" for s in sequences]
        async with conn.transaction():
            await conn.execute("; ".join(statements))
    finally:
        await conn.close()


@dataclass
class RunningServer:
    atomchat: AtomChat
    base_url: str
    http: HTTPServer

    async def stop(self) -> None:
        self.http.stop()
        await self.http.close_all_connections()
        await self.atomchat.stop()


async def start_server(settings, dsn: str, passwords: Passwords | None, clock: Clock = REAL) -> RunningServer:
    """Starts an AtomChat server on 127.0.0.1 inside the running loop;
    ``clock``: the time it reads (a tests.support.clock.ShiftedClock lets a
    test move it on)."""
    atomchat = AtomChat(settings, dsn, passwords=passwords, clock=clock)
    sock, port = bind_unused_port()
    http = http_server(await atomchat.start(), settings)
    http.add_sockets([sock])
    return RunningServer(atomchat, f"http://127.0.0.1:{port}", http)
