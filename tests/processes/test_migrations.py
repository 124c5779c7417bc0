"""The migration runner: from empty, re-run, newer databases, concurrent
runners, failing files. Each test works on a scratch database of its own."""

from __future__ import annotations

import asyncio
import subprocess

import asyncpg
import pytest

from atomchat_server.db import migrations

from ..support.harness import ATOMCHAT, child_env

SHIPPED = [m.version for m in migrations.available()]


async def recorded(dsn: str) -> list[tuple[int, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    return [(row["version"], row["name"]) for row in rows]


async def tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {row["tablename"] for row in rows}


def write_migrations(folder, files: dict[str, str]):
    folder.mkdir(exist_ok=True)
    for name, sql in files.items():
        (folder / name).write_text(sql)
    return folder


async def test_shipped_migrations_are_numbered_from_one_without_gaps():
    assert list(range(1, len(SHIPPED) + 1)) == SHIPPED


async def test_from_empty_applies_all_then_nothing(scratch_dsn):
    with pytest.raises(migrations.MigrationError, match="lacks migrations"):
        await migrations.check_current(scratch_dsn)

    assert await migrations.migrate(scratch_dsn) == SHIPPED
    assert await recorded(scratch_dsn) == [(m.version, m.name) for m in migrations.available()]
    assert {"schema_migrations", "users", "devices", "sessions"} <= await tables(scratch_dsn)
    await migrations.check_current(scratch_dsn)

    assert await migrations.migrate(scratch_dsn) == []
    assert [version for version, _ in await recorded(scratch_dsn)] == SHIPPED


async def test_database_newer_than_the_code_is_refused(scratch_dsn):
    await migrations.migrate(scratch_dsn)
    newer = SHIPPED[-1] + 1
    conn = await asyncpg.connect(scratch_dsn)
    try:
        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_the_future')", newer)
    finally:
        await conn.close()

    with pytest.raises(migrations.MigrationError, match=rf"\[{newer}\].*newer"):
        await migrations.migrate(scratch_dsn)
    with pytest.raises(migrations.MigrationError, match=rf"\[{newer}\].*newer"):
        await migrations.check_current(scratch_dsn)


async def test_two_runners_at_once_apply_each_file_once(scratch_dsn):
    results = await asyncio.gather(migrations.migrate(scratch_dsn), migrations.migrate(scratch_dsn))
    assert sorted(results) == [[], SHIPPED]
    assert [version for version, _ in await recorded(scratch_dsn)] == SHIPPED


async def test_two_migrate_commands_at_once_apply_each_file_once(scratch_dsn):
    env = child_env(DATABASE_URL=scratch_dsn)
    commands = [
        subprocess.Popen(
            [*ATOMCHAT, "migrate"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outputs = []
    for command in commands:
        stdout, stderr = command.communicate(timeout=60)
        assert command.returncode == 0, stderr
        outputs.append(stdout.strip())
    applied = "applied migrations: " + ", ".join(f"{v:04d}" for v in SHIPPED)
    assert sorted(outputs) == sorted([applied, "the database is up to date"])
    assert [version for version, _ in await recorded(scratch_dsn)] == SHIPPED


async def test_a_failing_migration_leaves_nothing_half_applied(scratch_dsn, tmp_path):
    folder = write_migrations(
        tmp_path / "migrations",
        {
            "0001_first.sql": "CREATE TABLE first_table (id integer);",
            "0002_broken.sql": "CREATE TABLE second_table (id integer);\n"
            "INSERT INTO second_table VALUES (1);\n"
            "INSERT INTO first_table VALUES (1 / 0);",
            "README.md": "not a migration: ignored",
        },
    )

    with pytest.raises(migrations.MigrationError, match="0002_broken failed and was rolled back: DivisionByZero"):
        await migrations.migrate(scratch_dsn, folder)

    assert await recorded(scratch_dsn) == [(1, "first")]
    assert await tables(scratch_dsn) == {"schema_migrations", "first_table"}
    conn = await asyncpg.connect(scratch_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM first_table") == 0
    finally:
        await conn.close()

    # Once the file is fixed, the next run applies it and only it.
    write_migrations(folder, {"0002_broken.sql": "CREATE TABLE second_table (id integer);"})
    assert await migrations.migrate(scratch_dsn, folder) == [2]
    assert await tables(scratch_dsn) == {"schema_migrations", "first_table", "second_table"}


async def test_two_files_with_one_version_are_refused(tmp_path):
    folder = write_migrations(tmp_path / "migrations", {"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 2;"})
    with pytest.raises(migrations.MigrationError, match="share a version number"):
        migrations.available(folder)
