"""argon2id password hashing, always off the event loop.

Hashing costs tens of milliseconds of CPU by design; it runs in a thread pool
(argon2 releases the GIL), so other requests keep being served while it works.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

T = TypeVar("T")


class Passwords:
    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int, workers: int = 0) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._threads = workers or os.cpu_count() or 1
        self._executor = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="argon2")
        self._submitted = 0  # hashes and checks handed to the threads and not yet done
        # A hash of a random string, verified against when the user does not
        # exist, so a failed login takes as long whether or not the name is taken.
        self._decoy = self._hasher.hash(os.urandom(16).hex())

    @property
    def parameters(self) -> str:
        h = self._hasher
        return f"argon2id t={h.time_cost} m={h.memory_cost}KiB p={h.parallelism}"

    @property
    def queued(self) -> int:
        """Hashes and checks waiting for a free thread."""
        return max(0, self._submitted - self._threads)

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        self._submitted += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        finally:
            self._submitted -= 1

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> tuple[bool, str | None]:
        """Checks a password; returns (matches, new hash if the parameters changed)."""
        return await self._run(self._verify_sync, stored_hash, password)

    def _verify_sync(self, stored_hash: str | None, password: str) -> tuple[bool, str | None]:
        try:
            self._hasher.verify(stored_hash or self._decoy, password)
        except (VerificationError, InvalidHashError):
            return False, None
        if stored_hash is None:
            return False, None
        if self._hasher.check_needs_rehash(stored_hash):
            return True, self._hasher.hash(password)
        return True, None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
