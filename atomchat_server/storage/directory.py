"""Room aliases and the public room directory."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from ..db import Database
from ..patterns import like_search


class AliasTaken(Exception):
    pass


async def create_alias(db: Database, alias: str, room_id: str, creator: str) -> None:
    try:
        await db.execute(
            "INSERT INTO room_aliases (alias, room_id, creator) VALUES ($1, $2, $3)", alias, room_id, creator
        )
    except asyncpg.UniqueViolationError:
        raise AliasTaken(alias) from None


@dataclass(frozen=True, slots=True)
class Alias:
    """A local room alias and who made it (who may always delete it)."""

    alias: str
    room_id: str
    creator: str


async def get_alias(db: Database, alias: str) -> Alias | None:
    row = await db.fetchrow("SELECT alias, room_id, creator FROM room_aliases WHERE alias = $1", alias)
    return Alias(**dict(row)) if row is not None else None


async def delete_alias(db: Database, alias: str) -> bool:
    return await db.execute("DELETE FROM room_aliases WHERE alias = $1", alias) != "DELETE 0"


async def aliases_of(db: Database, room_id: str) -> list[str]:
    rows = await db.fetch("SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY alias", room_id)
    return [row["alias"] for row in rows]


async def set_published(db: Database, room_id: str, published: bool) -> bool:
    return await db.execute("UPDATE rooms SET published = $2 WHERE room_id = $1", room_id, published) != "UPDATE 0"


@dataclass(frozen=True, slots=True)
class PublicRoom:
    """A room as the public directory lists it: its member count and the
    state an entry shows (None where the room has no such state)."""

    room_id: str
    members: int
    name: str | None
    topic: str | None
    canonical_alias: str | None
    history_visibility: str | None
    join_rule: str | None
    guest_access: str | None


async def public_rooms(
    db: Database, *, search: str | None, after: tuple[int, str] | None, limit: int
) -> list[PublicRoom]:
    """Published rooms that anyone may join or read, with the state a
    directory entry shows, most members first (an invite-only room stays
    unlisted while published); ``after`` is the (members, room id) of the previous page's last entry."""
    rows = await db.fetch(
        """
        WITH listed AS (
            SELECT r.room_id,
                   (SELECT count(*) FROM memberships m
                     WHERE m.room_id = r.room_id AND m.membership = 'join') AS members,
                   (SELECT e.content->>'name' FROM current_state cs JOIN events e USING (event_id)
                     WHERE cs.room_id = r.room_id AND cs.type = 'm.room.name' AND cs.state_key = '') AS name,
                   (SELECT e.content->>'topic' FROM current_state cs JOIN events e USING (event_id)
                     WHERE cs.room_id = r.room_id AND cs.type = 'm.room.topic' AND cs.state_key = '') AS topic,
                   (SELECT e.content->>'alias' FROM current_state cs JOIN events e USING (event_id)
                     WHERE cs.room_id = r.room_id AND cs.type = 'm.room.canonical_alias'
                       AND cs.state_key = '') AS canonical_alias,
                   (SELECT e.content->>'history_visibility' FROM current_state cs JOIN events e USING (event_id)
                     WHERE cs.room_id = r.room_id AND cs.type = 'm.room.history_visibility'
                       AND cs.state_key = '') AS history_visibility,
                   (SELECT e.content->>'join_rule' FROM current_state cs JOIN events e USING (event_id)
                     WHERE cs.room_id = r.room_id AND cs.type = 'm.room.join_rules' AND cs.state_key = '') AS join_rule,
                   (SELECT e.content->>'guest_access' FROM current_state cs JOIN events e USING (event_id)
                     WHERE cs.room_id = r.room_id AND cs.type = 'm.room.guest_access'
                       AND cs.state_key = '') AS guest_access
              FROM rooms r WHERE r.published
        )
        SELECT * FROM listed
         WHERE (join_rule = 'public' OR history_visibility = 'world_readable')
           AND ($1::text IS NULL OR name ILIKE $1 OR topic ILIKE $1 OR canonical_alias ILIKE $1)
           AND ($2::bigint IS NULL OR (members, room_id) < ($2, $3))
         ORDER BY members DESC, room_id DESC
         LIMIT $4
        """,
        like_search(search),
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [PublicRoom(**dict(row)) for row in rows]
