"""Scratch databases: new and empty, on the test PostgreSQL, dropped after use.

For tests that need a database nothing has migrated yet (the migration
runner, ``atomchat serve`` with ``DATABASE_URL``). They live on the same
server as ``database_dsn``: the embedded one or ATOMCHAT_TEST_DATABASE_URL's.
The ``scratch_dsn`` fixture (tests/conftest.py) makes and drops them.

Every database the tests make commits without waiting for its WAL to reach
the disk (synchronous_commit off, for that database only): they are thrown
away after the run, and a server that syncs each commit to disk would
otherwise spend much of the run waiting on it. The server's own settings,
and so its durability for every other database, are left alone.
"""

from __future__ import annotations

import asyncpg


async def admin(dsn: str, statement: str) -> None:
    """Runs one statement that cannot run in a transaction (CREATE or DROP DATABASE)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def create_database(dsn: str, name: str) -> None:
    """Creates database ``name`` (a generated identifier of [a-z0-9_] only:
    CREATE DATABASE takes no parameters) on ``dsn``'s server, committing
    without waiting for the disk."""
    await admin(dsn, f"CREATE DATABASE {name}")
    await relax_commits(dsn, name)


async def relax_commits(dsn: str, name: str) -> None:
    """Sessions opened on database ``name`` from now on commit without
    waiting for the WAL to be flushed (a crash may lose their last commits,
    never corrupt the database)."""
    await admin(dsn, f"ALTER DATABASE {name} SET synchronous_commit = off")
