"""What asyncpg raises when PostgreSQL goes away under a connection is
classified as "the database is unreachable" (``db.pool.UNREACHABLE``), which
requests answer with a 503 to retry and the persister logs as no bug.

Checked with real connections to the test PostgreSQL whose backends are
really terminated, as a PostgreSQL shutdown or restart terminates them all."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from atomchat_server.db.pool import UNREACHABLE


async def terminated(dsn: str) -> tuple[asyncpg.Connection, asyncpg.Connection]:
    """A connection whose backend has been terminated (the server has sent it
    its FATAL "terminating connection" error and closed the socket), before
    the client has read any of it; and the connection that terminated it."""
    victim, killer = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    assert await killer.fetchval("SELECT pg_terminate_backend($1)", victim.get_server_pid())
    time.sleep(0.5)  # the loop stands still: the error and the close wait unread in the socket
    return victim, killer


async def test_a_query_after_the_backend_sent_its_fatal_error_but_before_the_close_is_read(database_dsn):
    # The client reads the server's FATAL error while idle (asyncpg then
    # refuses any query on the connection) and only in a later turn of the
    # loop sees the socket closed. A request querying in that gap must be
    # told the database is unreachable, not fail as a server bug; under load
    # the gap is wide enough to be hit. The gap is one turn of the loop: an
    # attempt that misses it (the backend slow to get its signal, say) is
    # tried again, and one of a few must hit it.
    errors = []
    for _attempt in range(5):
        victim, killer = await terminated(database_dsn)
        try:
            await asyncio.sleep(0)  # one turn of the loop: the error is read...
            await asyncio.sleep(0)
            if victim.is_closed():  # ...and here the close was too
                continue
            try:
                await victim.execute("SELECT 1")
            except Exception as exc:  # noqa: BLE001 (the point is which class it is)
                errors.append(exc)
                break
        finally:
            victim.terminate()
            await killer.close()
    assert errors, "no attempt queried between the error and the close"
    assert isinstance(errors[0], UNREACHABLE), repr(errors[0])


async def test_a_query_after_the_close_is_read(database_dsn):
    victim, killer = await terminated(database_dsn)
    try:
        for _ in range(100):
            if victim.is_closed():
                break
            await asyncio.sleep(0.01)
        try:
            await victim.execute("SELECT 1")
        except Exception as exc:  # noqa: BLE001
            error = exc
        else:
            raise AssertionError("a query on a closed connection succeeded")
        assert isinstance(error, UNREACHABLE), repr(error)
    finally:
        victim.terminate()
        await killer.close()
