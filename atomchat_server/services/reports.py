"""Reporting content: users report events, rooms and users; moderators
read the reports and resolve or dismiss them.

A reporter may report only what they could see: an event they may read
(otherwise the report is refused exactly as for an unknown event, so a
report cannot probe for events), an existing room, a local account.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg

from ..auth.sessions import Requester
from ..errors import MatrixError, invalid_param, not_found
from ..events import ids
from ..events.format import client_event
from ..paging import fetch_page
from ..storage import events as event_store
from ..storage import reports as store
from ..storage import users as user_store
from .rooms import Rooms

STATUSES = ("open", "resolved", "dismissed")


def _now_ms() -> int:
    return int(time.time() * 1000)


class Reports:
    def __init__(self, *, pool: asyncpg.Pool, rooms: Rooms) -> None:
        self._pool = pool
        self._rooms = rooms

    async def report_event(
        self, requester: Requester, room_id: str, event_id: str, reason: str, score: int | None
    ) -> None:
        try:
            event, _ = await self._rooms.readable_event(requester, room_id, event_id)
        except MatrixError as refusal:
            if refusal.status != 403:
                raise
            raise not_found("Event not found") from None  # no telling a hidden room from an unknown one
        await store.add_report(
            self._pool,
            kind="event",
            reporter=requester.user_id,
            room_id=room_id,
            event_id=event_id,
            user_id=event.sender,
            reason=reason,
            score=score,
            received_ts=_now_ms(),
        )

    async def report_room(self, requester: Requester, room_id: str, reason: str) -> None:
        room = await event_store.get_room(self._pool, room_id) if ids.is_room_id(room_id) else None
        if room is None or room.deleted:
            raise not_found("Unknown room")
        await store.add_report(
            self._pool,
            kind="room",
            reporter=requester.user_id,
            room_id=room_id,
            event_id=None,
            user_id=None,
            reason=reason,
            score=None,
            received_ts=_now_ms(),
        )

    async def report_user(self, requester: Requester, user_id: str, reason: str) -> None:
        if ids.split_user_id(user_id) is None:
            raise invalid_param(f"Invalid user id {user_id!r}")
        if await user_store.get_user(self._pool, user_id) is None:
            raise not_found("Unknown user")
        await store.add_report(
            self._pool,
            kind="user",
            reporter=requester.user_id,
            room_id=None,
            event_id=None,
            user_id=user_id,
            reason=reason,
            score=None,
            received_ts=_now_ms(),
        )

    # -- for moderators (the admin API checks the role) ------------------------------

    @staticmethod
    def _json(row: dict[str, Any]) -> dict[str, Any]:
        report: dict[str, Any] = {"report_id": row["report_id"]}
        for key in (
            "kind",
            "reporter",
            "room_id",
            "event_id",
            "user_id",
            "reason",
            "score",
            "received_ts",
            "status",
            "handled_by",
            "handled_ts",
            "note",
        ):
            if row[key] is not None:
                report[key] = row[key]
        if row["event"] is not None:
            report["event"] = client_event(row["event"])
        return report

    async def reports(self, *, status: str | None, before: int | None, limit: int) -> dict[str, Any]:
        """A page of reports, newest first; ``status`` None for all."""
        rows, more = await fetch_page(
            lambda n: store.list_reports(self._pool, status=status, before_id=before, limit=n), limit
        )
        body: dict[str, Any] = {"reports": [self._json(row) for row in rows]}
        if more:
            body["next_from"] = str(rows[-1]["report_id"])
        return body

    async def report(self, report_id: int) -> dict[str, Any]:
        row = await store.get_report(self._pool, report_id)
        if row is None:
            raise not_found("Unknown report")
        return self._json(row)

    async def handle(self, moderator: str, report_id: int, status: str, note: str | None) -> dict[str, Any]:
        """Resolves or dismisses a report (or opens it again), noting who did."""
        done = status != "open"
        found = await store.set_status(
            self._pool,
            report_id,
            status=status,
            handled_by=moderator if done else None,
            handled_ts=_now_ms() if done else None,
            note=note,
        )
        if not found:
            raise not_found("Unknown report")
        return await self.report(report_id)
