"""Database plumbing: the connection pool, the migration runner and the
embedded PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import asyncpg


class Database(Protocol):
    """What storage/ asks of a database handle. A pool, a connection and a
    pooled connection all are one, so a caller decides whether several
    storage calls share a connection (and a transaction); a unit test may
    pass a fake."""

    async def execute(self, query: str, *args: Any, timeout: float | None = ...) -> str: ...

    async def executemany(
        self, command: str, args: Iterable[Sequence[Any]], *, timeout: float | None = ...
    ) -> None: ...

    async def fetch(self, query: str, *args: Any, timeout: float | None = ...) -> list[asyncpg.Record]: ...

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = ...) -> asyncpg.Record | None: ...

    async def fetchval(self, query: str, *args: Any, column: int = ..., timeout: float | None = ...) -> Any: ...
