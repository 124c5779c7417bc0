"""The durable outgoing queue: PDUs and EDUs for other servers, delivered
in order, one destination at a time each, as federation transactions.

Enqueueing writes a row per destination (this server's PDUs in the
transaction that commits their events: ``queue_pdus``) and, once
committed, wakes that destination's sender at once; it never waits on a
remote server, so local users never wait on a slow or down one. Each
destination has at most one sender task, which sends one transaction at a
time, the next as soon as the last is accepted: the batch already formed
and not yet accepted
(under the same transaction id, so the receiver, which deduplicates by
origin and transaction id, applies it once), else the next rows up to the
specification's limits (50 PDUs, 100 EDUs). An accepted transaction's rows
are deleted; a failure is retried with exponential back-off up to a cap,
cut short when the destination shows it is up again (it sent us a signed
request). A sender with nothing left to send waits ``idle_seconds`` for
more before it ends, so a busy destination's sends skip the taking of its
lock. Rows outlive a restart: ``start()`` resumes every destination with
rows waiting. Nothing runs (no connection, no sweep) until ``start()``,
which the server calls only when federation is enabled.

Several server processes may share one database: exactly one of them sends
a given destination at a time. A sender holds a PostgreSQL session advisory
lock named after its destination, on a connection of its own, for as long
as it runs (including its back-off waits); a process that cannot take the
lock leaves that destination to its holder and tells it about new rows with
a NOTIFY. A holder that ends releases the lock and then looks once more for
rows, so rows queued by another process meanwhile are never stranded. When
a process dies, its connection closes and PostgreSQL drops its locks; every
process sweeps the queue every ``sweep_seconds`` for destinations with rows
and no sender anywhere, so another takes over.
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

from ..db import Database
from ..db.pool import UNREACHABLE
from ..storage import federation as store
from ..storage import federation_locks as locks
from .remote import Remote, RemoteError, Unreachable

log = logging.getLogger("atomchat.federation")

MAX_PDUS = 50
MAX_EDUS = 100
SEND_TIMEOUT = 60.0
# Errors that a retry of the same transaction may get past; any other 4xx
# means the destination refuses the transaction as such, which is dropped
# rather than holding up everything queued behind it.
RETRIED_STATUSES = (401, 408, 429)
# The NOTIFY channel on which a process tells a destination's sender (in
# whichever process holds its lock) that rows were queued.
WAKE_CHANNEL = "atomchat_outbox"
LOCK_CONNECTION_NAME = "atomchat-outbox"


def new_txn_id() -> str:
    return f"{int(time.time() * 1000)}.{secrets.token_urlsafe(6)}"


class _Destination:
    def __init__(self) -> None:
        self.wake = asyncio.Event()  # more rows were queued
        self.up = asyncio.Event()  # the destination showed it is up: retry now
        self.failures = 0
        self.task: asyncio.Task[None] | None = None
        self.locked = False  # this process holds the destination's lock


class Outbox:
    def __init__(
        self,
        pool: asyncpg.Pool,
        client: Remote,
        server_name: str,
        *,
        dsn: str,
        base_backoff: float = 1.0,
        max_backoff: float = 300.0,
        sweep_seconds: float = 10.0,
        idle_seconds: float = 30.0,
    ) -> None:
        self._pool = pool
        self._client = client
        self._server_name = server_name
        self._dsn = dsn
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.sweep_seconds = sweep_seconds
        self.idle_seconds = idle_seconds
        self._destinations: dict[str, _Destination] = {}
        self._running = False  # between start() and stop()
        # The connection whose session holds this process's destination locks
        # and LISTENs for wake-ups; one query at a time on it.
        self._lock_conn: asyncpg.Connection | None = None
        self._lock_use = asyncio.Lock()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._connect()
        self._running = True
        await self.sweep()
        self._sweeper = asyncio.ensure_future(self._keep_sweeping())

    async def stop(self) -> None:
        self._running = False
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self._stop_senders()
        if self._lock_conn is not None and not self._lock_conn.is_closed():
            await self._lock_conn.close()

    async def _stop_senders(self) -> None:
        tasks = [state.task for state in self._destinations.values() if state.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._destinations.clear()

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._dsn, server_settings={"application_name": LOCK_CONNECTION_NAME})
        try:
            await conn.add_listener(WAKE_CHANNEL, self._on_wake_notice)
        except BaseException:
            conn.terminate()
            raise
        self._lock_conn = conn

    def _on_wake_notice(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        state = self._destinations.get(str(payload))  # a NOTIFY payload is text
        if state is not None and state.locked:
            state.wake.set()

    async def _keep_sweeping(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_seconds)
            try:
                if self._lock_conn is None or self._lock_conn.is_closed():
                    # The locks went with the connection: whatever this process
                    # was sending may now be another's; start over.
                    log.warning("lost the outbox lock connection; reconnecting")
                    await self._stop_senders()
                    await self._connect()
                await self.sweep()
            except (OSError, *UNREACHABLE) as exc:
                log.warning("outbox sweep failed (%s); retrying", exc)
            except Exception:  # the sweep must outlive a bug in one round
                log.exception("outbox sweep failed")

    async def sweep(self) -> None:
        """Starts a sender for each destination with rows and none here (it
        ends at once when another process holds the lock)."""
        for destination in await store.pending_destinations(self._pool):
            if destination not in self._destinations:
                self._wake(destination, announce=False)

    def sending(self, destination: str) -> bool:
        """This process holds the destination's lock and sends its queue."""
        state = self._destinations.get(destination)
        return state is not None and state.locked

    async def _try_lock(self, destination: str) -> bool:
        async with self._lock_use:
            if self._lock_conn is None or self._lock_conn.is_closed():
                return False
            return await locks.try_lock(self._lock_conn, destination)

    async def _unlock(self, destination: str) -> None:
        async with self._lock_use:
            if self._lock_conn is not None and not self._lock_conn.is_closed():
                await locks.unlock(self._lock_conn, destination)

    async def queue_pdus(self, db: Database, destinations: Iterable[str], pdus: Sequence[Mapping[str, Any]]) -> None:
        """Queues PDUs on ``db``, in the caller's transaction; ``wake`` the
        destinations once it is committed."""
        targets = sorted({d for d in destinations if d != self._server_name})
        if targets and pdus:
            await store.enqueue(db, targets, "pdu", pdus)

    def wake(self, destinations: Iterable[str]) -> None:
        """Rows were committed for these destinations: their senders send now."""
        for destination in destinations:
            if destination != self._server_name:
                self._wake(destination)

    async def enqueue_pdus(self, destinations: Iterable[str], pdus: Sequence[Mapping[str, Any]]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await self.queue_pdus(conn, destinations, pdus)
        self.wake(destinations)

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

    def _wake(self, destination: str, *, announce: bool = True) -> None:
        if not self._running:
            return
        state = self._destinations.get(destination)
        if state is None:
            state = self._destinations[destination] = _Destination()
        state.wake.set()
        if state.task is None:
            state.task = asyncio.ensure_future(self._guarded(destination, state, announce))

    async def _guarded(self, destination: str, state: _Destination, announce: bool) -> None:
        """Sends the destination's queue while holding its lock; when another
        process holds it, tells that process (if rows were just queued here)."""
        while True:
            try:
                state.locked = await self._try_lock(destination)
            except (OSError, *UNREACHABLE) as exc:
                log.warning("could not take the outbox lock for %s (%s)", destination, exc)
                state.locked = False
            if not state.locked:
                if announce:
                    with contextlib.suppress(OSError, *UNREACHABLE):
                        await locks.announce(self._pool, WAKE_CHANNEL, destination)
                self._forget(destination, state)
                return
            try:
                await self._run(destination, state)
            finally:
                state.locked = False
                if self._running:
                    with contextlib.suppress(OSError, *UNREACHABLE):
                        await self._unlock(destination)
            # Rows queued by another process while this one held the lock
            # (its NOTIFY may have come after the last look): look again.
            if not self._running or not await store.queued_count(self._pool, destination):
                self._forget(destination, state)
                return
            announce = False

    def _forget(self, destination: str, state: _Destination) -> None:
        state.task = None
        if self._destinations.get(destination) is state:
            del self._destinations[destination]

    async def _run(self, destination: str, state: _Destination) -> None:
        """Sends until nothing has been queued for ``idle_seconds``. Rows
        queued after a batch was formed set ``wake`` (here or, through the
        NOTIFY, in another process), so a batch that took everything there
        was needs no second look."""
        more = True  # rows may wait that no wake-up announced
        while True:
            if not more and not state.wake.is_set():
                try:
                    await asyncio.wait_for(state.wake.wait(), self.idle_seconds)
                except asyncio.TimeoutError:
                    return  # nothing waits: the caller releases the lock
            state.wake.clear()
            try:
                more = await self._send_next(destination)
            except (Unreachable, RemoteError, *UNREACHABLE) as exc:
                await self._back_off(destination, state, str(exc))
                more = True
                continue
            except Exception:  # a bug must not end this destination's deliveries
                log.exception("sending to %s failed", destination)
                await self._back_off(destination, state, "an unexpected error")
                more = True
                continue
            state.failures = 0

    async def _back_off(self, destination: str, state: _Destination, reason: str) -> None:
        state.failures += 1
        delay = min(self.max_backoff, self.base_backoff * 2 ** min(state.failures - 1, 30))
        log.info("federation to %s failed (%s); retrying in %.1fs", destination, reason, delay)
        state.up.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(state.up.wait(), delay)

    async def _send_next(self, destination: str) -> bool:
        """Sends the next transaction. True when more rows may wait than it
        took (it was full, or a batch formed before), False when it took all
        there was or nothing was queued."""
        fresh = new_txn_id()
        batch = await store.next_batch(self._pool, destination, fresh, MAX_PDUS, MAX_EDUS)
        if batch is None:
            return False
        txn_id, items = batch
        pdu_count = sum(1 for item in items if item.kind == "pdu")
        more = txn_id != fresh or pdu_count == MAX_PDUS or len(items) - pdu_count == MAX_EDUS
        body = {
            "origin": self._server_name,
            "origin_server_ts": int(time.time() * 1000),
            "pdus": [item.body for item in items if item.kind == "pdu"],
            "edus": [item.body for item in items if item.kind == "edu"],
        }
        try:
            await self._client.request(
                destination,
                "PUT",
                f"/_matrix/federation/v1/send/{quote(txn_id, safe='')}",
                body=body,
                timeout=SEND_TIMEOUT,
            )
        except RemoteError as exc:
            if exc.status >= 500 or exc.status in RETRIED_STATUSES:
                raise
            log.warning("%s refused transaction %s (%s); dropping its %d item(s)", destination, txn_id, exc, len(items))
        await store.delete_batch(self._pool, destination, txn_id)
        return more
