"""The durable outgoing queue: PDUs and EDUs for other servers, delivered
in order, one destination at a time each, as federation transactions.

Enqueueing commits a row per destination and wakes that destination's
sender; it never waits on a remote server, so local users never wait on a
slow or down one. Each destination has at most one sender task, which sends
one transaction at a time: the batch already formed and not yet accepted
(under the same transaction id, so the receiver, which deduplicates by
origin and transaction id, applies it once), else the next rows up to the
specification's limits (50 PDUs, 100 EDUs). An accepted transaction's rows
are deleted; a failure is retried with exponential back-off up to a cap,
cut short when the destination shows it is up again (it sent us a signed
request). Rows outlive a restart: ``start()`` resumes every destination
with rows waiting.

Assumes one server process sends for a database (several processes would
each send every destination's queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import asyncpg

from ..db.pool import UNREACHABLE
from ..storage import federation as store
from .remote import Remote, RemoteError, Unreachable

log = logging.getLogger("atomchat.federation")

MAX_PDUS = 50
MAX_EDUS = 100
SEND_TIMEOUT = 60.0
# Errors that a retry of the same transaction may get past; any other 4xx
# means the destination refuses the transaction as such, which is dropped
# rather than holding up everything queued behind it.
RETRIED_STATUSES = (401, 408, 429)


def new_txn_id() -> str:
    return f"{int(time.time() * 1000)}.{secrets.token_urlsafe(6)}"


class _Destination:
    def __init__(self) -> None:
        self.wake = asyncio.Event()  # more rows were queued
        self.up = asyncio.Event()  # the destination showed it is up: retry now
        self.failures = 0
        self.task: asyncio.Task[None] | None = None


class Outbox:
    def __init__(self, pool: asyncpg.Pool, client: Remote, server_name: str, *,
                 base_backoff: float = 1.0, max_backoff: float = 300.0) -> None:
        self._pool = pool
        self._client = client
        self._server_name = server_name
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self._destinations: dict[str, _Destination] = {}
        self._stopping = False

    async def start(self) -> None:
        for destination in await store.pending_destinations(self._pool):
            self._wake(destination)

    async def stop(self) -> None:
        self._stopping = True
        tasks = [state.task for state in self._destinations.values() if state.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._destinations.clear()

    async def enqueue_pdus(self, destinations: Iterable[str], pdus: Sequence[Mapping[str, Any]]) -> None:
        targets = sorted({d for d in destinations if d != self._server_name})
        if not targets or not pdus:
            return
        await store.enqueue(self._pool, targets, "pdu", pdus)
        for destination in targets:
            self._wake(destination)

    async def enqueue_edu(self, destination: str, edu_type: str, content: Mapping[str, Any]) -> None:
        if destination == self._server_name:
            return
        await store.enqueue(self._pool, [destination], "edu", [{"edu_type": edu_type, "content": dict(content)}])
        self._wake(destination)

    def destination_is_up(self, destination: str) -> None:
        """The destination reached us: a sender waiting out a back-off retries now."""
        state = self._destinations.get(destination)
        if state is not None and state.failures:
            state.up.set()

    def backing_off(self, destination: str) -> bool:
        state = self._destinations.get(destination)
        return state is not None and state.failures > 0

    def _wake(self, destination: str) -> None:
        if self._stopping:
            return
        state = self._destinations.get(destination)
        if state is None:
            state = self._destinations[destination] = _Destination()
        state.wake.set()
        if state.task is None:
            state.task = asyncio.ensure_future(self._run(destination, state))

    async def _run(self, destination: str, state: _Destination) -> None:
        while True:
            state.wake.clear()
            try:
                sent = await self._send_next(destination)
            except (Unreachable, RemoteError, *UNREACHABLE) as exc:
                await self._back_off(destination, state, str(exc))
                continue
            except Exception:  # a bug must not end this destination's deliveries
                log.exception("sending to %s failed", destination)
                await self._back_off(destination, state, "an unexpected error")
                continue
            if sent:
                state.failures = 0
                continue
            if not state.wake.is_set():
                # Nothing waits: end this sender (a later enqueue starts another).
                state.task = None
                del self._destinations[destination]
                return

    async def _back_off(self, destination: str, state: _Destination, reason: str) -> None:
        state.failures += 1
        delay = min(self.max_backoff, self.base_backoff * 2 ** min(state.failures - 1, 30))
        log.info("federation to %s failed (%s); retrying in %.1fs", destination, reason, delay)
        state.up.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(state.up.wait(), delay)

    async def _send_next(self, destination: str) -> bool:
        """Sends the next transaction; False when nothing is queued."""
        async with self._pool.acquire() as conn, conn.transaction():
            batch = await store.next_batch(conn, destination, new_txn_id(), MAX_PDUS, MAX_EDUS)
        if batch is None:
            return False
        txn_id, items = batch
        body = {"origin": self._server_name, "origin_server_ts": int(time.time() * 1000),
                "pdus": [item.body for item in items if item.kind == "pdu"],
                "edus": [item.body for item in items if item.kind == "edu"]}
        try:
            await self._client.request(destination, "PUT", f"/_matrix/federation/v1/send/{quote(txn_id, safe='')}",
                                       body=body, timeout=SEND_TIMEOUT)
        except RemoteError as exc:
            if exc.status >= 500 or exc.status in RETRIED_STATUSES:
                raise
            log.warning("%s refused transaction %s (%s); dropping its %d item(s)", destination, txn_id, exc,
                        len(items))
        await store.delete_batch(self._pool, destination, txn_id)
        return True
