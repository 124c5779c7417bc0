"""Applies the numbered SQL files in ``migrations/``, each once, in order.

Every file runs in its own transaction together with the row that records it,
so a failed migration leaves nothing half-applied. A PostgreSQL advisory lock
serialises runners, so two servers starting at once on one database apply each
file exactly once. A database that has versions this code does not know was
migrated by newer code, and the runner refuses to touch it.

The folder defaults to the one shipped with the package; the functions take
another so that the runner's own behaviour (a failing file, for one) can be
exercised on migrations written for the purpose.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import asyncpg

from ..resources import Traversable, migrations_dir
from . import Database

log = logging.getLogger(__name__)

# Arbitrary constant identifying AtomChat's migration lock among advisory locks.
_LOCK_KEY = 0x41746F6D  # "Atom"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    """The database cannot be brought to the schema this code expects."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available(directory: Traversable | None = None) -> list[Migration]:
    found = []
    for entry in (directory or migrations_dir()).iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version number: {versions}")
    return found


async def applied_versions(conn: Database) -> list[int]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return []
    return [row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]


async def migrate(dsn: str, directory: Traversable | None = None) -> list[int]:
    """Applies pending migrations; returns the versions applied by this call."""
    migrations = available(directory)
    known = {m.version for m in migrations}
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY,"
                " name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = set(await applied_versions(conn))
            unknown = sorted(done - known)
            if unknown:
                raise MigrationError(
                    f"the database has schema versions {unknown} that this AtomChat does not know "
                    f"(newest known: {max(known, default=0)}); it was migrated by a newer release"
                )
            newly = []
            for migration in migrations:
                if migration.version in done:
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                            migration.version,
                            migration.name,
                        )
                except asyncpg.PostgresError as exc:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} failed and was rolled back: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                log.info("applied migration %04d_%s", migration.version, migration.name)
                newly.append(migration.version)
            return newly
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()


async def check_current(dsn: str, directory: Traversable | None = None) -> None:
    """Refuses to serve a database whose schema differs from this code's."""
    conn = await asyncpg.connect(dsn)
    try:
        done = set(await applied_versions(conn))
    finally:
        await conn.close()
    known = {m.version for m in available(directory)}
    if done - known:
        raise MigrationError(f"the database has schema versions {sorted(done - known)} newer than this AtomChat")
    if known - done:
        raise MigrationError(
            f"the database lacks migrations {sorted(known - done)}: "
            "run `atomchat migrate` or start without --no-migrate"
        )
