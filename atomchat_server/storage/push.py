"""Push rules' inputs and outcomes: who is in the rooms an event batch
touches (with their display names and the version of their own rules), the
notifications the rules decided, and the counts and pages read from them.

A user's rules live in their ``m.push_rules`` account data (written through
storage.ephemeral.put_account_data), so a change reaches their clients in
/sync like any account data."""

from __future__ import annotations

from typing import Sequence

import asyncpg

from .events import EVENT_COLUMNS

PUSH_RULES_TYPE = "m.push_rules"


async def room_members(conn, room_ids: Sequence[str]) -> list[asyncpg.Record]:
    """The joined members of the rooms, one round trip: (room_id, user_id,
    display name, stream of their push rules or NULL when they have none)."""
    return await conn.fetch(
        "SELECT m.room_id, m.user_id, e.content->>'displayname' AS display_name, ad.stream AS rules_stream"
        " FROM memberships m JOIN events e ON e.event_id = m.event_id"
        " LEFT JOIN account_data ad ON ad.user_id = m.user_id AND ad.room_id = '' AND ad.type = $2"
        " WHERE m.room_id = ANY($1::text[]) AND m.membership = 'join'",
        list(room_ids), PUSH_RULES_TYPE,
    )


async def stored_rules(db, user_ids: Sequence[str]) -> list[asyncpg.Record]:
    """(user_id, content, stream) of the users' stored push rules."""
    return await db.fetch(
        "SELECT user_id, content, stream FROM account_data WHERE user_id = ANY($1::text[]) AND room_id = ''"
        " AND type = $2",
        list(user_ids), PUSH_RULES_TYPE,
    )


async def insert_actions(conn, rows: Sequence[tuple[str, str, int, bool, str]]) -> None:
    """Stores (user_id, room_id, stream, highlight, actions as JSON text) in one statement."""
    if not rows:
        return
    await conn.execute(
        "INSERT INTO event_push_actions (user_id, room_id, stream, highlight, actions)"
        " SELECT u, r, s, h, a::jsonb FROM unnest($1::text[], $2::text[], $3::bigint[], $4::boolean[], $5::text[])"
        " AS x(u, r, s, h, a)",
        [row[0] for row in rows], [row[1] for row in rows], [row[2] for row in rows],
        [row[3] for row in rows], [row[4] for row in rows],
    )


async def notification_counts(db, user_id: str, room_ids: Sequence[str], cap: int) -> dict[str, tuple[int, int]]:
    """Per room, (notifications, highlights) of the user after their read
    receipt (or their joining, if later) on events not redacted since; each
    counted up to ``cap``."""
    rows = await db.fetch(
        "SELECT r.room_id, c.notify, c.highlight FROM unnest($2::text[]) AS r(room_id)"
        " JOIN memberships m ON m.room_id = r.room_id AND m.user_id = $1"
        " CROSS JOIN LATERAL (SELECT count(*) AS notify, count(*) FILTER (WHERE x.highlight) AS highlight"
        "   FROM (SELECT pa.highlight FROM event_push_actions pa JOIN events e ON e.stream = pa.stream"
        "     WHERE pa.user_id = $1 AND pa.room_id = r.room_id AND e.redacted_by IS NULL"
        "     AND pa.stream > GREATEST(m.since_stream, COALESCE((SELECT max(event_stream) FROM receipts rc"
        "                                  WHERE rc.room_id = r.room_id AND rc.user_id = $1), 0))"
        "     LIMIT $3) x) c",
        user_id, list(room_ids), cap,
    )
    return {row["room_id"]: (row["notify"], row["highlight"]) for row in rows}


async def notifications(db, user_id: str, *, before: int | None, limit: int,
                        only_highlight: bool) -> list[asyncpg.Record]:
    """The user's notifications, newest first, below ``before``: the event
    (its columns), the actions, and whether a receipt of theirs covers it."""
    columns = ", ".join(f"e.{c.strip()}" for c in EVENT_COLUMNS.split(","))
    return await db.fetch(
        f"SELECT {columns}, pa.actions AS push_actions,"
        " EXISTS (SELECT 1 FROM receipts rc WHERE rc.room_id = pa.room_id AND rc.user_id = $1"
        "         AND rc.event_stream >= pa.stream) AS read"
        " FROM event_push_actions pa JOIN events e ON e.stream = pa.stream"
        " WHERE pa.user_id = $1 AND ($2::bigint IS NULL OR pa.stream < $2) AND (NOT $4 OR pa.highlight)"
        " AND e.redacted_by IS NULL"
        " ORDER BY pa.stream DESC LIMIT $3",
        user_id, before, limit, only_highlight,
    )


async def pushers(db, user_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data"
        " FROM pushers WHERE user_id = $1 ORDER BY app_id, pushkey",
        user_id,
    )


async def set_pusher(db, user_id: str, pusher: dict, *, append: bool) -> None:
    """Adds or replaces the user's pusher (app_id, pushkey); unless
    ``append``, other users' pushers with that pair go (one transaction)."""
    async with db.acquire() as conn, conn.transaction():
        if not append:
            await conn.execute("DELETE FROM pushers WHERE app_id = $1 AND pushkey = $2 AND user_id <> $3",
                               pusher["app_id"], pusher["pushkey"], user_id)
        await conn.execute(
            "INSERT INTO pushers (user_id, app_id, pushkey, kind, app_display_name, device_display_name,"
            " profile_tag, lang, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            " ON CONFLICT (app_id, pushkey, user_id) DO UPDATE SET kind = EXCLUDED.kind,"
            " app_display_name = EXCLUDED.app_display_name, device_display_name = EXCLUDED.device_display_name,"
            " profile_tag = EXCLUDED.profile_tag, lang = EXCLUDED.lang, data = EXCLUDED.data",
            user_id, pusher["app_id"], pusher["pushkey"], pusher["kind"], pusher["app_display_name"],
            pusher["device_display_name"], pusher.get("profile_tag"), pusher["lang"], pusher["data"],
        )


async def delete_pusher(db, user_id: str, app_id: str, pushkey: str) -> None:
    await db.execute("DELETE FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3",
                     user_id, app_id, pushkey)
