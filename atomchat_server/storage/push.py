"""Push rules' inputs and outcomes: users' stored rules, the counts and
pages of notifications read from what the rules decided (written with the
events by storage.events.append_events), and pushers.

A user's rules live in their ``m.push_rules`` account data (written through
storage.ephemeral.put_account_data), so a change reaches their clients in
/sync like any account data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import asyncpg

from ..db import Database
from .events import EVENT_COLUMNS, Event, as_event

PUSH_RULES_TYPE = "m.push_rules"


@dataclass(frozen=True, slots=True)
class StoredRules:
    """A user's push rules as stored in their account data, and the
    position of that write (what a cached compilation of them is keyed by)."""

    user_id: str
    content: dict[str, Any]
    stream: int


async def stored_rules(db: Database, user_ids: Sequence[str]) -> list[StoredRules]:
    rows = await db.fetch(
        "SELECT user_id, content, stream FROM account_data WHERE user_id = ANY($1::text[]) AND room_id = ''"
        " AND type = $2",
        list(user_ids),
        PUSH_RULES_TYPE,
    )
    return [StoredRules(**dict(row)) for row in rows]


async def notification_counts(
    db: Database, user_id: str, room_ids: Sequence[str], cap: int, upto: int
) -> dict[str, tuple[int, int]]:
    """Per room, (notifications, highlights) of the user after their read
    receipt (or their joining, if later) up to position ``upto``, each
    counted up to ``cap``: the
    events that notify a member with the default rules (unless the user
    fares otherwise, or sent them) and the user's own notifying outcomes;
    redacted events left out. The user's own outcomes in the counted stretch
    of a room are read once per room (``o.own``), not probed once per event.
    Those stretches are written as bounds on (room, position) pairs, which
    only the primary key (user, room, position) can serve as one index
    range: the user's index (user, position) would otherwise look cheaper
    where the table has no statistics yet, and walk every outcome of the
    user for each room."""
    rows = await db.fetch(
        "SELECT r.room_id, c.notify, c.highlight FROM unnest($2::text[]) AS r(room_id)"
        " JOIN memberships m ON m.room_id = r.room_id AND m.user_id = $1"
        " CROSS JOIN LATERAL (SELECT GREATEST(m.since_stream, COALESCE((SELECT max(event_stream) FROM receipts rc"
        "     WHERE rc.room_id = r.room_id AND rc.user_id = $1), 0)) AS floor) f"
        " CROSS JOIN LATERAL (SELECT ARRAY(SELECT pa.stream FROM event_push_actions pa"
        "     WHERE pa.user_id = $1 AND (pa.room_id, pa.stream) > (r.room_id, f.floor)"
        "       AND (pa.room_id, pa.stream) <= (r.room_id, $4)) AS own) o"
        " CROSS JOIN LATERAL (SELECT count(*) AS notify, count(*) FILTER (WHERE n.push_highlight) AS highlight FROM ("
        "   SELECT e.push_highlight FROM events e"
        "    WHERE e.room_id = r.room_id AND e.stream > f.floor AND e.stream <= $4 AND e.push_actions IS NOT NULL"
        "      AND e.sender <> $1 AND e.redacted_by IS NULL AND e.stream <> ALL (o.own)"
        "   UNION ALL"
        "   SELECT pa.highlight FROM event_push_actions pa JOIN events e ON e.stream = pa.stream"
        "    WHERE pa.user_id = $1 AND (pa.room_id, pa.stream) > (r.room_id, f.floor)"
        "      AND (pa.room_id, pa.stream) <= (r.room_id, $4) AND pa.notify"
        "      AND e.redacted_by IS NULL"
        "   LIMIT $3) n) c",
        user_id,
        list(room_ids),
        cap,
        upto,
    )
    return {row["room_id"]: (row["notify"], row["highlight"]) for row in rows}


async def notifications(
    db: Database, user_id: str, *, before: int | None, limit: int, only_highlight: bool
) -> list[Notification]:
    """The user's notifications, newest first, below ``before``: their own
    notifying outcomes (an invite, say), and the events of the rooms they are
    in that notify a member with the default rules (unless they fare
    otherwise, or sent them); redacted events left out."""
    columns = ", ".join(f"e.{c.strip()}" for c in EVENT_COLUMNS.split(","))
    rows = await db.fetch(
        f"SELECT {columns}, n.actions AS push_actions,"
        " EXISTS (SELECT 1 FROM receipts rc WHERE rc.room_id = e.room_id AND rc.user_id = $1"
        "         AND rc.event_stream >= e.stream) AS read"
        " FROM ((SELECT pa.stream, pa.actions FROM event_push_actions pa JOIN events e ON e.stream = pa.stream"
        "        WHERE pa.user_id = $1 AND pa.notify AND ($2::bigint IS NULL OR pa.stream < $2)"
        "          AND (NOT $4 OR pa.highlight) AND e.redacted_by IS NULL"
        "        ORDER BY pa.stream DESC LIMIT $3)"
        "       UNION ALL"
        "       (SELECT e.stream, e.push_actions FROM memberships m"
        "        JOIN events e ON e.room_id = m.room_id AND e.stream > m.since_stream"
        "        WHERE m.user_id = $1 AND m.membership = 'join' AND ($2::bigint IS NULL OR e.stream < $2)"
        "          AND e.push_actions IS NOT NULL AND (NOT $4 OR e.push_highlight)"
        "          AND e.sender <> $1 AND e.redacted_by IS NULL"
        "          AND NOT EXISTS (SELECT 1 FROM event_push_actions pa"
        "                          WHERE pa.user_id = $1 AND pa.room_id = e.room_id AND pa.stream = e.stream)"
        "        ORDER BY e.stream DESC LIMIT $3)) n"
        " JOIN events e ON e.stream = n.stream"
        " ORDER BY n.stream DESC LIMIT $3",
        user_id,
        before,
        limit,
        only_highlight,
    )
    return [Notification(as_event(tuple(row)[:-2]), row["push_actions"], row["read"]) for row in rows]


class Notification(NamedTuple):
    """An event that notified a user: what push rules decided it does, and
    whether a receipt of the user's covers it."""

    event: Event
    actions: list[Any]
    read: bool


@dataclass(frozen=True, slots=True)
class Pusher:
    """Where to push a user's notifications to: one (app_id, pushkey) of theirs."""

    app_id: str
    pushkey: str
    kind: str
    app_display_name: str
    device_display_name: str
    profile_tag: str | None
    lang: str
    data: dict[str, Any]


async def pushers(db: Database, user_id: str) -> list[Pusher]:
    rows = await db.fetch(
        "SELECT app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data"
        " FROM pushers WHERE user_id = $1 ORDER BY app_id, pushkey",
        user_id,
    )
    return [Pusher(**dict(row)) for row in rows]


async def set_pusher(db: asyncpg.Pool, user_id: str, pusher: dict[str, Any], *, append: bool) -> None:
    """Adds or replaces the user's pusher (app_id, pushkey); unless
    ``append``, other users' pushers with that pair go (one transaction)."""
    async with db.acquire() as conn, conn.transaction():
        if not append:
            await conn.execute(
                "DELETE FROM pushers WHERE app_id = $1 AND pushkey = $2 AND user_id <> $3",
                pusher["app_id"],
                pusher["pushkey"],
                user_id,
            )
        await conn.execute(
            "INSERT INTO pushers (user_id, app_id, pushkey, kind, app_display_name, device_display_name,"
            " profile_tag, lang, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            " ON CONFLICT (app_id, pushkey, user_id) DO UPDATE SET kind = EXCLUDED.kind,"
            " app_display_name = EXCLUDED.app_display_name, device_display_name = EXCLUDED.device_display_name,"
            " profile_tag = EXCLUDED.profile_tag, lang = EXCLUDED.lang, data = EXCLUDED.data",
            user_id,
            pusher["app_id"],
            pusher["pushkey"],
            pusher["kind"],
            pusher["app_display_name"],
            pusher["device_display_name"],
            pusher.get("profile_tag"),
            pusher["lang"],
            pusher["data"],
        )


async def delete_pusher(db: Database, user_id: str, app_id: str, pushkey: str) -> None:
    await db.execute(
        "DELETE FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3", user_id, app_id, pushkey
    )
