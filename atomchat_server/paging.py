"""Pages read with one row more than asked for: the extra row says whether
anything follows the page, so a client gets a next-page token exactly when
there is a next page (never an empty page after a full last one)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

Row = TypeVar("Row")


async def fetch_page(fetch: Callable[[int], Awaitable[Sequence[Row]]], limit: int) -> tuple[list[Row], bool]:
    """Up to ``limit`` rows from ``fetch`` (called with how many rows to
    read), and whether more follow them."""
    rows = list(await fetch(limit + 1))
    return rows[:limit], len(rows) > limit
