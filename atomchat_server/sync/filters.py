"""Sync filters, compiled once: inline filters by their text, uploaded ones
by their id (an uploaded filter never changes), and equal filters into one
CompiledFilter, so that clients asking alike share their answers."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Any

import asyncpg

from ..errors import MatrixError, not_found
from ..events.filters import CompiledFilter, FilterError, SyncFilter
from ..storage import filters as filter_store
from ..validation import load_json

# Distinct filters kept compiled; a client whose filter was dropped has it compiled again.
CACHED_FILTERS = 4096
MAX_FILTER_ID_DIGITS = 18


class Filters:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._numbers = itertools.count(1)
        self._compiled: OrderedDict[SyncFilter, CompiledFilter] = OrderedDict()
        self._inline: OrderedDict[str, CompiledFilter] = OrderedDict()
        self._stored: OrderedDict[tuple[str, int], CompiledFilter] = OrderedDict()
        self.no_filter = self.compile(SyncFilter())

    def compile(self, sync_filter: SyncFilter) -> CompiledFilter:
        """The one CompiledFilter of filters equal to this one."""
        compiled = _recall(self._compiled, sync_filter)
        if compiled is None:
            compiled = CompiledFilter(sync_filter, next(self._numbers))
            _remember(self._compiled, sync_filter, compiled)
        return compiled

    async def load(self, user_id: str, value: str | None) -> CompiledFilter:
        """A sync filter given inline as JSON or by the id of one the user
        uploaded; a 400 M_INVALID_PARAM for an unusable one, a 404 for an
        unknown id."""
        if not value:
            return self.no_filter
        if value.lstrip().startswith("{"):
            compiled = _recall(self._inline, value)
            if compiled is None:
                compiled = self.compile(_parse(load_json(value, "The filter", "M_INVALID_PARAM")))
                _remember(self._inline, value, compiled)
            return compiled
        if not value.isdigit() or len(value) > MAX_FILTER_ID_DIGITS:
            raise MatrixError(400, "M_INVALID_PARAM", "'filter' must be a filter id or a JSON object")
        key = (user_id, int(value))
        compiled = _recall(self._stored, key)
        if compiled is None:
            definition = await filter_store.get_filter(self._pool, user_id, key[1])
            if definition is None:
                raise not_found("Unknown filter")
            compiled = self.compile(_parse(definition))
            _remember(self._stored, key, compiled)
        return compiled

    async def upload(self, user_id: str, definition: dict[str, Any]) -> int:
        """Keeps a filter the user uploads, once it is known to be usable; its id."""
        _parse(definition)
        return await filter_store.create_filter(self._pool, user_id, definition)

    async def definition(self, user_id: str, filter_id: str) -> dict[str, Any]:
        """The filter the user uploaded under this id, as uploaded; a 404 for an unknown id."""
        known = filter_id.isdigit() and len(filter_id) <= MAX_FILTER_ID_DIGITS
        definition = await filter_store.get_filter(self._pool, user_id, int(filter_id)) if known else None
        if definition is None:
            raise not_found("Unknown filter")
        return definition


def _parse(definition: Any) -> SyncFilter:
    try:
        return SyncFilter.from_json(definition)
    except (FilterError, ValueError) as exc:
        raise MatrixError(400, "M_INVALID_PARAM", f"Invalid filter: {exc}") from None


def _recall(cache: OrderedDict[Any, CompiledFilter], key: Any) -> CompiledFilter | None:
    compiled = cache.get(key)
    if compiled is not None:
        cache.move_to_end(key)
    return compiled


def _remember(cache: OrderedDict[Any, CompiledFilter], key: Any, compiled: CompiledFilter) -> None:
    cache[key] = compiled
    if len(cache) > CACHED_FILTERS:
        cache.popitem(last=False)
