"""The embedded PostgreSQL that runs when no database URL is configured.

The ``pgserver`` package ships PostgreSQL binaries and keeps one server per
data directory, counting the processes that use it: the server started by
``atomchat serve`` is shared with ``atomchat user ...`` commands run beside it,
and stops when the last of them lets go.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import asyncpg
import psutil

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

log = logging.getLogger(__name__)

DATABASE = "atomchat"
# pgserver's count of the processes using the server: their pids, in pgdata.
HOLDERS_FILE = ".handle_pids.json"
# Arbitrary constant naming the advisory lock held while the database is created.
_CREATE_LOCK_KEY = 0x41544D43_00000002


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir / "postgres"
        self._server: PostgresServer | None = None

    def start(self) -> None:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); harmless.
            warnings.simplefilter("ignore")
            import pgserver
            from pgserver.postgres_server import PostgresServer

            # Made here, not by pgserver: it creates the directory outside its
            # lock and fails if another process (a command run beside a
            # starting server) made it a moment before.
            self.pgdata.mkdir(parents=True, exist_ok=True)
            with PostgresServer._lock:
                self._forget_dead_holders()
            self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        log.info("embedded PostgreSQL ready in %s", self.pgdata)

    def _forget_dead_holders(self) -> None:
        """pgserver stops the server when the last process using it lets go.
        A process that was killed never lets go, and the server would then
        outlive every later ``atomchat serve`` on this data directory; so the
        pids of processes that are gone are dropped before this one counts in.
        Runs under pgserver's own lock, as its counting does."""
        path = self.pgdata / HOLDERS_FILE
        try:
            pids = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return
        alive = [pid for pid in pids if _alive(pid)]
        if alive != pids:
            log.warning(
                "embedded PostgreSQL: forgetting processes that used it and died without stopping: %s",
                sorted(set(pids) - set(alive)),
            )
            path.write_text(json.dumps(alive))

    def dsn(self, database: str = DATABASE) -> str:
        assert self._server is not None, "start() first"
        socket_dir = self._server.get_postmaster_info().socket_dir
        return f"postgresql://postgres@/{database}?host={quote(str(socket_dir))}"

    async def ensure_database(self) -> str:
        """Creates the AtomChat database on first use; returns its DSN."""
        conn = await asyncpg.connect(self.dsn("postgres"))
        try:
            # Processes starting together (a server and a command beside it)
            # take turns: the first creates the database, the others find it.
            # The lock ends with the connection.
            await conn.execute("SELECT pg_advisory_lock($1)", _CREATE_LOCK_KEY)
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
            if not exists:
                await conn.execute("CREATE DATABASE atomchat")
        finally:
            await conn.close()
        return self.dsn()

    def stop(self) -> None:
        """Lets go of the server; it stops if no other process still uses it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
            log.info("embedded PostgreSQL released")
