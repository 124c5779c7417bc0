"""Keeps the server's long-lived tasks running, or stops the server loudly.

The notifier's dispatch and LISTEN tasks and the persister's commit task
carry every real-time delivery and every write; a server running on without
one of them would accept requests it can no longer serve (sends that are
never committed, streams that are never woken). Each runs under a
``Supervisor``: a task that fails (or ends, which these never should) is
logged with its traceback and started again after a short back-off; one that
keeps failing (``max_failures`` times within ``window`` seconds) makes the
supervisor give up and call ``on_fatal``, which for ``atomchat serve`` stops
the process with exit status 1. While a task is down its owner fails
requests fast (503) instead of letting them wait for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

MAX_FAILURES = 5
WINDOW_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 5.0


class Supervisor:
    def __init__(
        self,
        on_fatal: Callable[[str], None] | None = None,
        *,
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW_SECONDS,
    ) -> None:
        self._on_fatal = on_fatal
        self._max_failures = max_failures
        self._window = window
        self._down: set[str] = set()
        self.fatal: str | None = None  # why the supervisor gave up, once it has

    def spawn(
        self, name: str, run: Callable[[], Awaitable[None]], on_failure: Callable[[], None] | None = None
    ) -> asyncio.Task:
        """Runs ``run()`` until the returned task is cancelled; ``on_failure``
        is called each time it fails, before it is restarted."""
        return asyncio.create_task(self._keep(name, run, on_failure), name=name)

    def running(self, name: str) -> bool:
        """False while the named task is down (failed and not yet restarted)."""
        return self.fatal is None and name not in self._down

    async def _keep(self, name: str, run: Callable[[], Awaitable[None]], on_failure: Callable[[], None] | None) -> None:
        loop = asyncio.get_running_loop()
        failures: deque[float] = deque()
        while True:
            try:
                await run()
                log.error("the %s task ended by itself", name)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the %s task failed", name)
            self._down.add(name)
            if on_failure is not None:
                on_failure()
            now = loop.time()
            failures.append(now)
            while failures[0] < now - self._window:
                failures.popleft()
            if len(failures) >= self._max_failures:
                self.fatal = f"the {name} task failed {len(failures)} times within {self._window:g}s"
                log.critical("%s: the server cannot go on without it", self.fatal)
                if self._on_fatal is not None:
                    self._on_fatal(self.fatal)
                return
            await asyncio.sleep(min(0.1 * 2 ** (len(failures) - 1), MAX_BACKOFF_SECONDS))
            self._down.discard(name)
            log.warning("restarting the %s task", name)
