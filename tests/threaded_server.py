"""An AtomChat server on a loop of its own, in a thread, for clients that
block (schemathesis sends with requests): the test's thread waits on the
socket while the server answers. The server is the one the other tests
start (conftest.start_server), on the run's database."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

import pytest
import uvloop

from atomchat_server import config

from .conftest import TEST_SETTINGS, RunningServer, start_server, truncate_all


class ThreadedServer:
    def __init__(self, settings, dsn: str, passwords) -> None:
        self._settings = settings
        self._dsn = dsn
        self._passwords = passwords
        self._loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="atomchat-server", daemon=True)
        self.running: RunningServer | None = None

    def __enter__(self) -> ThreadedServer:
        self._thread.start()

        async def start() -> RunningServer:
            await truncate_all(self._dsn)
            return await start_server(self._settings, self._dsn, self._passwords)

        self.running = self.run(start())
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            if self.running is not None:
                self.run(self.running.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()

    @property
    def base_url(self) -> str:
        return self.running.base_url

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        """Runs a coroutine on the server's loop and returns its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)


@pytest.fixture(scope="module")
def threaded_server(database_dsn, test_passwords, tmp_path_factory):
    """One server for a whole module, with the test settings, on a database
    emptied when it starts (conftest offers it to every module)."""
    settings = config.load({}, environ={}).replace(data_dir=str(tmp_path_factory.mktemp("server")), **TEST_SETTINGS)
    with ThreadedServer(settings, database_dsn, test_passwords) as server:
        yield server
