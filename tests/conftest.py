"""Test fixtures, for every tier (unit/, api/, processes/): a real
PostgreSQL and a real AtomChat server per test, and what the process and
federation tests start beside them. The helpers behind them live in
tests/support/; fixtures are defined here only, so test modules take them as
parameters and never import them.

PostgreSQL is the embedded one (pgserver, in a temporary directory) unless
ATOMCHAT_TEST_DATABASE_URL names a server; then a fresh database is created
on that server for the run and dropped after it. The schema is migrated once
per run; every test starts from empty tables. A unit test asks for none of
these and so starts no database.

Each test gets an AtomChat server listening on 127.0.0.1 and an ``api``
client that checks every response body against its JSON Schema.
pytest-tornasync runs each async test on the ``io_loop`` the server lives on,
a uvloop loop as in ``atomchat serve``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest
import uvloop

from atomchat_server import config
from atomchat_server.auth.passwords import Passwords
from atomchat_server.db import migrations
from atomchat_server.db.embedded import DATABASE, EmbeddedPostgres

from .support.client import ApiClient
from .support.clock import ShiftedClock
from .support.databases import admin, create_database, relax_commits
from .support.federation_steps import Federation, federating_servers
from .support.harness import self_signed_certificate, with_database
from .support.servers import TEST_SETTINGS, LogScan, RunningServer, start_server, truncate_all
from .support.threaded_server import ThreadedServer

# The loops the tests create (pytest-tornasync's io_loop included) are
# uvloop's, as `atomchat serve` runs on.
asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


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


@pytest.fixture(scope="session")
def database_dsn():
    """The DSN of a freshly migrated database that lives for the whole run."""
    external = os.environ.get("ATOMCHAT_TEST_DATABASE_URL")
    if external:
        name = f"atomchat_test_{os.getpid()}_{secrets.token_hex(3)}"
        asyncio.run(create_database(external, name))
        dsn = with_database(external, name)
        asyncio.run(migrations.migrate(dsn))
        yield dsn
        asyncio.run(admin(external, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    else:
        root = Path(tempfile.mkdtemp(prefix="atomchat-test-pg-"))
        embedded = EmbeddedPostgres(root)
        embedded.start()
        try:
            dsn = asyncio.run(embedded.ensure_database())
            asyncio.run(relax_commits(dsn, DATABASE))
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


@pytest.fixture
def settings(request, tmp_path):
    overrides = dict(TEST_SETTINGS)
    marker = request.node.get_closest_marker("settings")
    if marker is not None:
        overrides.update(marker.kwargs)
    return config.load({}, environ={}).replace(data_dir=str(tmp_path / "data"), **overrides)


@pytest.fixture
def clock():
    """The time the test's servers read: real time until the test calls
    ``clock.advance(seconds)`` instead of sleeping while the server's time
    passes (a token's expiry, a rate limit's refill)."""
    return ShiftedClock()


@pytest.fixture
def server(io_loop, database_dsn, settings, test_passwords, clock):
    """An AtomChat server on 127.0.0.1, started on a database with empty
    tables. Everything is created inside the test's loop, which is the one
    the test then runs on."""

    async def start():
        await truncate_all(database_dsn)
        return await start_server(settings, database_dsn, test_passwords, clock)

    running = io_loop.run_sync(start)
    yield running
    io_loop.run_sync(running.stop)


@pytest.fixture
def more_servers(io_loop, server, database_dsn, settings, test_passwords, clock):
    """Starts further AtomChat servers on the database of ``server``, as
    several processes behind a load balancer (or a restart with new settings)
    would run. ``await more_servers(**overrides)`` returns a RunningServer;
    with ``own_hasher=True`` it hashes passwords with the argon2 parameters of
    its own settings instead of the shared test hasher. Stopped after the test."""
    started: list[RunningServer] = []

    async def start(*, own_hasher: bool = False, **overrides) -> RunningServer:
        running = await start_server(
            settings.replace(**overrides), database_dsn, None if own_hasher else test_passwords, clock
        )
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


def _scratch_database(io_loop, database_dsn):
    """The DSN of an empty database (support/databases.py), dropped after the test."""
    name = f"atomchat_scratch_{secrets.token_hex(4)}"
    io_loop.run_sync(lambda: create_database(database_dsn, name))
    yield with_database(database_dsn, name)
    io_loop.run_sync(lambda: admin(database_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
def scratch_dsn(io_loop, database_dsn):
    """The DSN of an empty database, dropped after the test."""
    yield from _scratch_database(io_loop, database_dsn)


@pytest.fixture
def another_scratch_dsn(io_loop, database_dsn):
    """A second empty database beside ``scratch_dsn`` (a third server's)."""
    yield from _scratch_database(io_loop, database_dsn)


@pytest.fixture
def data_dir():
    """A data directory for ``atomchat`` (not created yet), removed after the test.

    It lies outside pytest's own temporary root on purpose: every pytest run
    that starts makes that root private to its owner again, and an embedded
    PostgreSQL running as its own user (as it does when the tests run as
    root) could then no longer reach its files."""
    root = Path(tempfile.mkdtemp(prefix="atomchat-test-data-"))
    yield root / "data"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def threaded_server(database_dsn, test_passwords, tmp_path_factory):
    """One server on a loop of its own (support/threaded_server.py) for a
    whole module, with the test settings, on a database emptied when it starts."""
    settings = config.load({}, environ={}).replace(data_dir=str(tmp_path_factory.mktemp("server")), **TEST_SETTINGS)
    with ThreadedServer(settings, database_dsn, test_passwords) as server:
        yield server


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM files)."""
    cert, key = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    return str(cert), str(key)


@pytest.fixture
def federation_pair(io_loop, database_dsn, scratch_dsn, settings, test_passwords, tls_files, tmp_path):
    """``(a, b)``: two federating servers (support/federation_steps.py),
    started; ``a`` on the run's database, ``b`` on a scratch one. Both are
    stopped after the test."""
    yield from federating_servers(
        io_loop, Federation(settings, tls_files, test_passwords, tmp_path), database_dsn, scratch_dsn
    )


@pytest.fixture
def federation_trio(
    io_loop, database_dsn, scratch_dsn, another_scratch_dsn, settings, test_passwords, tls_files, tmp_path
):
    """``(a, b, c)``: three federating servers, as ``federation_pair`` with a third."""
    yield from federating_servers(
        io_loop,
        Federation(settings, tls_files, test_passwords, tmp_path),
        database_dsn,
        scratch_dsn,
        another_scratch_dsn,
    )
