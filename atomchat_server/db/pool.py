"""The asyncpg connection pool, with JSON columns decoded to Python values."""

from __future__ import annotations

import json

import asyncpg

# What asyncpg raises when PostgreSQL cannot be reached: refused or cut
# connections (OSError, class 08), a server shutting down or starting up
# (class 57), a pool or connection closed under a request (InterfaceError).
UNREACHABLE = (OSError, asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
               asyncpg.InterfaceError)


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to undo when a connection goes back to the pool: the server
    sets no session state, and asyncpg still rolls back an open transaction.
    (The default reset costs a round trip on every release.)"""


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20, name: str | None = None) -> asyncpg.Pool:
    """``name`` becomes the connections' application_name, so that operators
    (and tests) can tell them apart in pg_stat_activity."""
    settings = {"application_name": name} if name else None
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_connection,
                                     reset=_keep_session, server_settings=settings)
