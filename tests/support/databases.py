"""Scratch databases: new and empty, on the test PostgreSQL, dropped after use.

For tests that need a database nothing has migrated yet (the migration
runner, ``atomchat serve`` with ``DATABASE_URL``). They live on the same
server as ``database_dsn``: the embedded one or ATOMCHAT_TEST_DATABASE_URL's.
The ``scratch_dsn`` fixture (tests/conftest.py) makes and drops them.
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
