"""Reports of events, rooms and users, kept for the moderators."""

from __future__ import annotations

from typing import Any

import asyncpg

from ..db import Database
from .events import _columns, event_of

# A report with, for an event report, the reported event as stored now
# (``event``, NULL once the event or its room is purged).
_REPORT = (
    "SELECT r.report_id, r.kind, r.reporter, r.room_id, r.event_id, r.user_id, r.reason, r.score,"
    " r.received_ts, r.status, r.handled_by, r.handled_ts, r.note,"
    " (SELECT to_jsonb(e) FROM (SELECT {columns} FROM events e WHERE e.event_id = r.event_id) e) AS event"
    " FROM reports r"
).format(columns=_columns("e"))


async def add_report(
    db: Database,
    *,
    kind: str,
    reporter: str,
    room_id: str | None,
    event_id: str | None,
    user_id: str | None,
    reason: str,
    score: int | None,
    received_ts: int,
) -> int:
    return await db.fetchval(
        "INSERT INTO reports (kind, reporter, room_id, event_id, user_id, reason, score, received_ts)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING report_id",
        kind,
        reporter,
        room_id,
        event_id,
        user_id,
        reason,
        score,
        received_ts,
    )


def _report(row: asyncpg.Record) -> dict[str, Any]:
    """A report's columns by name, its ``event`` an Event (or None)."""
    return {**dict(row), "event": None if row["event"] is None else event_of(row["event"])}


async def list_reports(db: Database, *, status: str | None, before_id: int | None, limit: int) -> list[dict[str, Any]]:
    """A page of reports, newest first, with ids below ``before_id`` (None:
    from the newest); ``status`` None for every status."""
    rows = await db.fetch(
        _REPORT + " WHERE ($1::text IS NULL OR r.status = $1) AND ($2::bigint IS NULL OR r.report_id < $2)"
        " ORDER BY r.report_id DESC LIMIT $3",
        status,
        before_id,
        limit,
    )
    return [_report(row) for row in rows]


async def get_report(db: Database, report_id: int) -> dict[str, Any] | None:
    row = await db.fetchrow(_REPORT + " WHERE r.report_id = $1", report_id)
    return None if row is None else _report(row)


async def set_status(
    db: Database, report_id: int, *, status: str, handled_by: str | None, handled_ts: int | None, note: Any
) -> bool:
    result = await db.execute(
        "UPDATE reports SET status = $2, handled_by = $3, handled_ts = $4, note = $5 WHERE report_id = $1",
        report_id,
        status,
        handled_by,
        handled_ts,
        note,
    )
    return result != "UPDATE 0"
