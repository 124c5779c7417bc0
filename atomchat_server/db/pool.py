"""The asyncpg connection pool, with JSON columns decoded to Python values."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import partial
from typing import Any

import asyncpg
import orjson

from .. import metrics

# What asyncpg raises when PostgreSQL cannot be reached: refused or cut
# connections (OSError, class 08), a server shutting down or starting up
# (class 57), a pool or connection closed under a request (InterfaceError),
# and a connection whose backend was terminated (InternalClientError). The
# last is what a query gets between the client reading the FATAL error a
# stopping PostgreSQL sends each idle backend (asyncpg then refuses every
# query on it) and its noticing the closed socket a turn of the loop later.
UNREACHABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


# A run of digits as long as the smallest integer beyond 64 bits: orjson
# would read such a number as a float, so a text holding one (anywhere,
# strings included) is read by the json module, which keeps integers exact.
_LONG_NUMBER = re.compile(r"[0-9]{19}")


def decode_json(text: str) -> Any:
    """A JSON column's value, as json.loads reads it: through orjson, which
    reads the events' content several times faster, unless the text holds a
    long number (above) or something orjson refuses. An empty object (most
    events' unsigned) is made without a parser."""
    if text == "{}":
        return {}
    if _LONG_NUMBER.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


async def _init_connection(conn: asyncpg.Connection, timed: Callable[[Any], None] | None = None) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=json.dumps, decoder=decode_json, schema="pg_catalog")
    if timed is not None:
        conn.add_query_logger(timed)


def _query_timer(pool_name: str) -> Callable[[Any], None]:
    """Observes each query's time (asyncpg times it and calls this after)."""
    observe = metrics.QUERY_SECONDS.labels(pool=pool_name).observe
    return lambda record: observe(record.elapsed)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to undo when a connection goes back to the pool: the server
    sets no session state, and asyncpg still rolls back an open transaction.
    (The default reset costs a round trip on every release.)"""


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 20, name: str | None = None, time_queries: bool = True
) -> asyncpg.Pool:
    """``name`` becomes the connections' application_name, so that operators
    (and tests) can tell them apart in pg_stat_activity. ``time_queries``
    observes each query's time in the metrics (a few microseconds a query;
    the writer's many small statements are timed per commit instead)."""
    settings = {"application_name": name} if name else None
    init = partial(_init_connection, timed=_query_timer(name or "read") if time_queries else None)
    return await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init, reset=_keep_session, server_settings=settings
    )
