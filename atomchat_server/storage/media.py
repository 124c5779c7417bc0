"""The media tables: uploads and their thumbnails."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ..db import Database


@dataclass(frozen=True)
class MediaRow:
    media_id: str
    uploader: str
    content_type: str | None
    upload_name: str | None
    size: int | None
    uploaded: bool
    expires_at: datetime | None


def _row(record: asyncpg.Record | None) -> MediaRow | None:
    if record is None:
        return None
    return MediaRow(
        media_id=record["media_id"],
        uploader=record["uploader"],
        content_type=record["content_type"],
        upload_name=record["upload_name"],
        size=record["size"],
        uploaded=record["uploaded_at"] is not None,
        expires_at=record["expires_at"],
    )


async def get(db: Database, media_id: str) -> MediaRow | None:
    return _row(await db.fetchrow("SELECT * FROM media WHERE media_id = $1", media_id))


async def used_bytes(db: Database, uploader: str) -> int:
    used: int = await db.fetchval("SELECT COALESCE(sum(size), 0) FROM media WHERE uploader = $1", uploader)
    return used


async def create_pending(
    db: Database, media_id: str, uploader: str, lifetime_seconds: int, most_pending: int
) -> datetime | None:
    """Reserves ``media_id`` for content ``uploader`` sends later; returns
    when the reservation lapses, or None when the uploader already holds
    ``most_pending`` live reservations."""
    return await db.fetchval(
        "INSERT INTO media (media_id, uploader, expires_at)"
        " SELECT $1, $2, now() + make_interval(secs => $3)"
        " WHERE (SELECT count(*) FROM media WHERE uploader = $2 AND uploaded_at IS NULL AND expires_at > now()) < $4"
        " RETURNING expires_at",
        media_id,
        uploader,
        float(lifetime_seconds),
        most_pending,
    )


async def record_upload(
    pool: asyncpg.Pool,
    *,
    media_id: str,
    uploader: str,
    content_type: str,
    upload_name: str | None,
    size: int,
    quota: int,
    pending: bool,
) -> str:
    """Records arrived content: a new row, or (``pending``) the content of a
    reserved id that is still live and still empty. Under a lock per
    uploader, so concurrent uploads cannot together pass the quota. Returns
    'stored', 'quota' (the upload would take the uploader past ``quota``
    bytes; 0 is no limit) or 'gone' (the reservation is no longer open)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('media:' || $1, 0))", uploader)
        if quota and await used_bytes(conn, uploader) + size > quota:
            return "quota"
        if not pending:
            await conn.execute(
                "INSERT INTO media (media_id, uploader, content_type, upload_name, size, uploaded_at)"
                " VALUES ($1, $2, $3, $4, $5, now())",
                media_id,
                uploader,
                content_type,
                upload_name,
                size,
            )
            return "stored"
        done = await conn.execute(
            "UPDATE media SET content_type = $3, upload_name = $4, size = $5, uploaded_at = now(), expires_at = NULL"
            " WHERE media_id = $1 AND uploader = $2 AND uploaded_at IS NULL AND expires_at > now()",
            media_id,
            uploader,
            content_type,
            upload_name,
            size,
        )
        return "stored" if done == "UPDATE 1" else "gone"


async def thumbnail(db: Database, media_id: str, width: int, height: int, method: str) -> str | None:
    """The content type of a thumbnail made before, None if none was."""
    return await db.fetchval(
        "SELECT content_type FROM media_thumbnails WHERE media_id = $1 AND width = $2 AND height = $3 AND method = $4",
        media_id,
        width,
        height,
        method,
    )


async def add_thumbnail(
    db: Database, media_id: str, width: int, height: int, method: str, content_type: str, size: int
) -> None:
    await db.execute(
        "INSERT INTO media_thumbnails (media_id, width, height, method, content_type, size)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        media_id,
        width,
        height,
        method,
        content_type,
        size,
    )
