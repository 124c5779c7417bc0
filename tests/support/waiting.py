"""Waiting for something to happen: polled with a deadline, never a fixed
sleep, which is too short on a loaded machine and wasted time on an idle one."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

POLL_SECONDS = 0.02


async def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "the condition") -> Any:
    """Calls ``check`` (a function, or an async one) until it returns a true
    value, which is returned; fails the test if ``timeout`` seconds pass first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        assert loop.time() < deadline, f"{what} never held within {timeout}s"
        await asyncio.sleep(POLL_SECONDS)
