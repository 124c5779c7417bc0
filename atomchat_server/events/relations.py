"""Relations between events (``m.relates_to``): what an event points at, and
the aggregations a parent event carries in ``unsigned.m.relations``.

The server aggregates three relation types (spec v1.7 and later):
``m.replace`` (the most recent valid edit, as a whole event), ``m.thread``
(the thread's latest event, its size and whether the reader took part) and
``m.reference`` (the ids of the referring events). ``m.annotation``
(reactions) is not aggregated: clients count reactions from the events.
A redacted child loses its ``m.relates_to`` with the rest of its content,
so it drops out of every aggregation by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

THREAD = "m.thread"
REPLACE = "m.replace"
REFERENCE = "m.reference"
AGGREGATED = (THREAD, REPLACE, REFERENCE)
# How deep GET /relations?recurse=true follows relations of relations.
MAX_RECURSION_DEPTH = 3


def relation_of(content: Mapping[str, Any]) -> tuple[str, str] | None:
    """(rel_type, parent event id) of an event's content, or None when it
    relates to nothing (a reply's ``m.in_reply_to`` alone is not a relation)."""
    relates = content.get("m.relates_to")
    if not isinstance(relates, Mapping):
        return None
    rel_type, parent = relates.get("rel_type"), relates.get("event_id")
    if not isinstance(rel_type, str) or not isinstance(parent, str):
        return None
    return rel_type, parent


def thread_root_refusal(root_content: Mapping[str, Any]) -> str | None:
    """Why an event may not start a thread (it relates to another event
    itself: threads do not nest), or None when it may."""
    if "m.relates_to" in root_content:
        return "A thread cannot start from an event that itself relates to another event"
    return None


def bundle(
    aggregates: Sequence[Mapping[str, Any]], format_event: Callable[[Any], dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The ``m.relations`` object per parent event id, from the aggregate
    rows storage reads (``relations.aggregates``): each row has ``parent``,
    ``rel_type`` and, by type, ``event`` (the latest thread event or edit, a
    stored row), ``count``, ``participated`` or ``event_ids``.
    ``format_event`` turns a stored row into its client form."""
    result: dict[str, dict[str, Any]] = {}
    for row in aggregates:
        entry = result.setdefault(row["parent"], {})
        if row["rel_type"] == THREAD:
            entry[THREAD] = {
                "latest_event": format_event(row["event"]),
                "count": row["count"],
                "current_user_participated": bool(row["participated"]),
            }
        elif row["rel_type"] == REPLACE:
            entry[REPLACE] = format_event(row["event"])
        elif row["rel_type"] == REFERENCE:
            entry[REFERENCE] = {"chunk": [{"event_id": event_id} for event_id in row["event_ids"]]}
    return result
