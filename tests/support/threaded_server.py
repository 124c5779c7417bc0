"""An AtomChat server on a loop of its own, in a thread, for clients that
block (schemathesis sends with requests): the test's thread waits on the
socket while the server answers. The server is the one the other tests
start (servers.start_server), on the run's database; the
``threaded_server`` fixture (tests/conftest.py) gives one to a module."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

import uvloop

from .servers import RunningServer, start_server, truncate_all


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
