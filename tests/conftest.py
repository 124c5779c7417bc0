"""Test fixtures: a real PostgreSQL and a real AtomChat server per test.

PostgreSQL is the embedded one (pgserver, in a temporary directory) unless
ATOMCHAT_TEST_DATABASE_URL names a server; then a fresh database is created
on that server for the run and dropped after it. The schema is migrated once
per run; every test starts from empty tables.

Each test gets an AtomChat server listening on 127.0.0.1 and an ``api``
client that checks every response body against its JSON Schema.
pytest-tornasync runs each async test on the ``io_loop`` the server lives on,
a uvloop loop as in ``atomchat serve``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import uvloop
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from atomchat_server import config
from atomchat_server.app import AtomChat, http_server
from atomchat_server.auth.passwords import Passwords
from atomchat_server.db import migrations
from atomchat_server.db.embedded import EmbeddedPostgres

from .client import DEFAULT_PASSWORD, ApiClient

# The loops the tests create (pytest-tornasync's io_loop included) are
# uvloop's, as `atomchat serve` runs on.
asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

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
SECRET_IN_LOG = re.compile(r"access_token=(?!\[redacted\])|eyJ[\w-]+\.[\w-]+\.[\w-]+|atomchat_rt_[\w-]+|"
                           + re.escape(DEFAULT_PASSWORD))


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


@pytest.fixture(autouse=True)
def log_scan():
    """Fails any test during which a server wrote a credential to its log,
    whatever the path (request log, Tornado's exception log, debug lines)."""
    scan = LogScan()
    root = logging.getLogger()
    level = root.level
    root.addHandler(scan)
    root.setLevel(logging.DEBUG)
    try:
        yield scan
    finally:
        root.removeHandler(scan)
        root.setLevel(level)
    leaked = scan.secrets()
    assert not leaked, "credentials in the log:\n" + "\n".join(line[:500] for line in leaked[:5])


def pytest_configure(config):
    config.addinivalue_line("markers", "settings(**overrides): settings for this test's server")


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def database_dsn():
    """The DSN of a freshly migrated database that lives for the whole run."""
    external = os.environ.get("ATOMCHAT_TEST_DATABASE_URL")
    if external:
        name = f"atomchat_test_{os.getpid()}_{secrets.token_hex(3)}"

        async def create():
            conn = await asyncpg.connect(external)
            try:
                # A generated identifier of [a-z0-9_] only; CREATE DATABASE takes no parameters.
                await conn.execute(f"CREATE DATABASE {name}")
            finally:
                await conn.close()

        async def drop():
            conn = await asyncpg.connect(external)
            try:
                await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            finally:
                await conn.close()

        asyncio.run(create())
        dsn = _with_database(external, name)
        asyncio.run(migrations.migrate(dsn))
        yield dsn
        asyncio.run(drop())
    else:
        root = Path(tempfile.mkdtemp(prefix="atomchat-test-pg-"))
        embedded = EmbeddedPostgres(root)
        embedded.start()
        try:
            dsn = asyncio.run(embedded.ensure_database())
            asyncio.run(migrations.migrate(dsn))
            yield dsn
        finally:
            embedded.stop()
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def test_passwords():
    """One cheap hasher for the whole run (its thread pool outlives each test's loop)."""
    passwords = Passwords(time_cost=1, memory_kib=1024, parallelism=1, workers=2)
    yield passwords
    passwords.close()


async def truncate_all(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT quote_ident(tablename) AS name FROM pg_tables"
            " WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        )
        if tables:
            await conn.execute(
                "TRUNCATE " + ", ".join(t["name"] for t in tables) + " RESTART IDENTITY CASCADE"
            )
    finally:
        await conn.close()


@pytest.fixture
def settings(request, tmp_path):
    overrides = dict(TEST_SETTINGS)
    marker = request.node.get_closest_marker("settings")
    if marker is not None:
        overrides.update(marker.kwargs)
    return config.load({}, environ={}).replace(data_dir=str(tmp_path / "data"), **overrides)


@dataclass
class RunningServer:
    atomchat: AtomChat
    base_url: str
    http: HTTPServer

    async def stop(self) -> None:
        self.http.stop()
        await self.http.close_all_connections()
        await self.atomchat.stop()


async def start_server(settings, dsn: str, passwords: Passwords | None) -> RunningServer:
    """Starts an AtomChat server on 127.0.0.1 inside the running loop."""
    atomchat = AtomChat(settings, dsn, passwords=passwords)
    sock, port = bind_unused_port()
    http = http_server(await atomchat.start(), settings)
    http.add_sockets([sock])
    return RunningServer(atomchat, f"http://127.0.0.1:{port}", http)


@pytest.fixture
def server(io_loop, database_dsn, settings, test_passwords):
    """An AtomChat server on 127.0.0.1, started on a database with empty
    tables. Everything is created inside the test's loop, which is the one
    the test then runs on."""

    async def start():
        await truncate_all(database_dsn)
        return await start_server(settings, database_dsn, test_passwords)

    running = io_loop.run_sync(start)
    yield running
    io_loop.run_sync(running.stop)


@pytest.fixture
def more_servers(io_loop, server, database_dsn, settings, test_passwords):
    """Starts further AtomChat servers on the database of ``server``, as
    several processes behind a load balancer (or a restart with new settings)
    would run. ``await more_servers(**overrides)`` returns a RunningServer;
    with ``own_hasher=True`` it hashes passwords with the argon2 parameters of
    its own settings instead of the shared test hasher. Stopped after the test."""
    started: list[RunningServer] = []

    async def start(*, own_hasher: bool = False, **overrides) -> RunningServer:
        running = await start_server(settings.replace(**overrides), database_dsn,
                                     None if own_hasher else test_passwords)
        started.append(running)
        return running

    yield start

    async def stop_all():
        for running in reversed(started):
            await running.stop()

    io_loop.run_sync(stop_all)


@pytest.fixture
def api(server):
    return ApiClient(server.base_url)


# Fixtures that live beside their helpers, offered to every test module from
# here (so no module imports a fixture it then takes as a parameter). Last:
# databases.py reads _with_database above.
from .databases import another_scratch_dsn, scratch_dsn  # noqa: E402, F401
from .federation_steps import federation_pair, federation_trio, tls_files  # noqa: E402, F401
from .processes import data_dir  # noqa: E402, F401
from .threaded_server import threaded_server  # noqa: E402, F401
