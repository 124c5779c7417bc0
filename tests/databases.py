"""Scratch databases: new and empty, on the test PostgreSQL, dropped after use.

For tests that need a database nothing has migrated yet (the migration
runner, ``atomchat serve`` with ``DATABASE_URL``). They live on the same
server as ``database_dsn``: the embedded one or ATOMCHAT_TEST_DATABASE_URL's.
"""

from __future__ import annotations

import secrets

import asyncpg
import pytest

from .conftest import _with_database


async def _admin(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _scratch(io_loop, database_dsn):
    # A generated identifier of [a-z0-9_] only; CREATE DATABASE takes no parameters.
    name = f"atomchat_scratch_{secrets.token_hex(4)}"
    io_loop.run_sync(lambda: _admin(database_dsn, f"CREATE DATABASE {name}"))
    yield _with_database(database_dsn, name)
    io_loop.run_sync(lambda: _admin(database_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
def scratch_dsn(io_loop, database_dsn):
    """The DSN of an empty database, dropped after the test."""
    yield from _scratch(io_loop, database_dsn)


@pytest.fixture
def another_scratch_dsn(io_loop, database_dsn):
    """A second empty database beside ``scratch_dsn`` (a third server's)."""
    yield from _scratch(io_loop, database_dsn)
