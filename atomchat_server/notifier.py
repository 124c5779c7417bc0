"""Wakes waiting clients when something they can see is committed, in every
server process: the LISTEN/NOTIFY bridge.

PostgreSQL is the bus. A writer announces the highest stream position it
committed (``atomchat_events``) and every revocation of sessions
(``atomchat_sessions``); one dedicated connection per process listens. The
notifier then reads the new events once, from its last known position up to
the announced one (the stream lock guarantees nothing below an announced
position is still uncommitted), and hands them to the listeners that care:
a listener is one client's sync session (a long-poll or an open stream),
interested in the rooms its user is in and in membership events about its
user. What is derived from the dispatched events (their JSON, the member
events lazy-loading answers need) is kept by whoever needs it, told of each
dispatch as a watcher: the sync package's event cache.

If the listening connection drops, the session cache is switched off (no
revoked token can be honoured from memory) and, once listening again, the
notifier catches up from the database, so no event is lost in the gap.

The notifier is fail-safe: one client whose delivery fails is logged and
left to rebuild its answer from the database, never stopping delivery to
the others; its tasks run under the server's Supervisor; and while it cannot
vouch for being current (no LISTEN connection, new events unreadable, its
dispatch task down) a request that needs it to be (``caught_up``) fails at
once with a 503 rather than waiting or answering from stale state.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Protocol

import asyncpg

from . import metrics
from .auth.sessions import SessionCache
from .clock import REAL, Clock, Timer
from .db.pool import UNREACHABLE
from .errors import MatrixError, unavailable
from .storage import ephemeral as ephemeral_store
from .storage import events as event_store
from .storage import sync as sync_store
from .storage.ephemeral import Wake
from .storage.events import EVENTS_CHANNEL, Event
from .storage.sessions import SESSIONS_CHANNEL
from .supervisor import Supervisor

log = logging.getLogger(__name__)

LISTENER_NAME = "atomchat-notifier"
KEEPALIVE_SECONDS = 2.0
KNOWN_BATCHES = 64  # own commits kept for the dispatch; older ones are read back if ever needed
# The rooms of a listener that follows none (most clients of a new user, and
# every listener until its first answer): one set shared by all of them.
NO_ROOMS: frozenset[str] = frozenset()


class DispatchWatcher(Protocol):
    """Keeps something derived from the dispatched events (the sync
    package's event cache): told of each dispatch's events before any
    listener is, and of a dispatch that failed halfway. Unlike an observer,
    a watcher that raises fails the whole dispatch, on purpose: what it
    keeps may then be wrong, so every listener rebuilds its answer from the
    database (_dispatch_failed)."""

    def dispatching(self, rows: list[Event]) -> None: ...

    def dispatch_failed(self) -> None: ...


class Pusher(Protocol):
    """Answers a listener's client as events are dispatched, when they
    alone make the answer (a stream's sync session): True if it did."""

    def push(self, rows: list[Event]) -> bool: ...


class Listener:
    """One client following the stream: its user, the rooms it follows, and
    what has arrived for it since it last answered its client.

    ``pending`` collects the new events of its rooms, in stream order, as
    long as they alone tell the client what changed; anything else (a
    receipt, account data, a membership change, too many events) sets
    ``needs_full`` instead, and the client's next answer is built from the
    database. A change of typers in one of its rooms sets ``typing``.
    """

    MAX_PENDING = 500
    # Thousands of listeners wait at once, each with the same few fields: no
    # per-instance dict.
    __slots__ = (
        "user_id",
        "rooms",
        "_waiter",
        "revoked",
        "recheck",
        "pending",
        "needs_full",
        "typing",
        "pusher",
        "woken",
    )

    def __init__(self, user_id: str, rooms: Iterable[str] = ()) -> None:
        self.user_id = user_id
        self.rooms: set[str] | frozenset[str] = set(rooms) or NO_ROOMS
        # What the client's task awaits while it sleeps: a future made per
        # sleep rather than an asyncio.Event per client (760 bytes each, with
        # thousands of clients idle).
        self._waiter: asyncio.Future | None = None
        self.revoked = False  # the server is shutting down
        self.recheck = False  # the user's sessions or standing changed: check the token again
        self.pending: list[Event] = []
        self.needs_full = False
        self.typing = False  # the typers of one of its rooms changed
        # A stream's session answers from here when it can (SyncSession.push).
        self.pusher: Pusher | None = None
        # Called by a wake() that finds nobody asleep: a stream, which waits
        # with no task (SyncSession.frame), starts one to answer.
        self.woken: Callable[[], None] | None = None

    def wake(self) -> None:
        """Ends the current sleep(), if any. The sleeper then looks at what
        changed; a wake-up while it is not asleep needs no keeping, as it
        looks before it sleeps again (or, for a listener that waits with no
        sleeper, ``woken`` is told)."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        elif self.woken is not None:
            self.woken()

    def sleep(self, deadline: float | None, timeouts: Timeouts) -> asyncio.Future[None]:
        """What to await for the next wake(), at most until ``deadline`` (the
        event loop's time; None: no limit), which ``timeouts`` keeps. A
        future rather than a coroutine: no frame held per sleeper; once
        done it stands for no sleeper, until the next sleep()."""
        self._waiter = waiter = asyncio.get_running_loop().create_future()
        if deadline is not None:
            timeouts.add(deadline, waiter)
        return waiter

    def check_again(self) -> None:
        self.recheck = True
        self.wake()

    def deliver(self, rows: list[Event], *, needs_full: bool) -> None:
        if not needs_full and self.pusher is not None and self.pusher.push(rows):
            return  # answered already, as the events were dispatched
        if needs_full or len(self.pending) + len(rows) > self.MAX_PENDING:
            self.needs_full = True
            self.pending = []
        elif not self.needs_full:
            self.pending.extend(rows)
        self.wake()


class Timeouts:
    """When the listeners' sleeps end: one heap of deadlines under one event
    loop timer for every waiting client, rather than a timer each (688 bytes
    a waiting long-poll, with thousands waiting). A sleep woken before its
    deadline leaves its entry behind, to be skipped when it falls due; the
    heap is swept of such entries whenever it has doubled since the last sweep."""

    __slots__ = ("_heap", "_order", "_swept", "_timer")

    SLACK = 64  # entries never worth a sweep

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()  # ties of deadlines end in the order the sleeps began
        self._swept = 0  # the heap's size after the last sweep
        self._timer: asyncio.TimerHandle | None = None

    def add(self, deadline: float, waiter: asyncio.Future[None]) -> None:
        """Settles ``waiter`` at ``deadline`` (the event loop's time) unless done by then."""
        if len(self._heap) > 2 * self._swept + self.SLACK:
            self._heap = [entry for entry in self._heap if not entry[2].done()]
            heapq.heapify(self._heap)
            self._swept = len(self._heap)
        heapq.heappush(self._heap, (deadline, next(self._order), waiter))
        if self._timer is None or deadline < self._timer.when():
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(self._heap[0][0], self._fire) if self._heap else None

    def _fire(self) -> None:
        self._timer = None
        now = asyncio.get_running_loop().time()
        heap = self._heap
        while heap and heap[0][0] <= now:
            waiter = heapq.heappop(heap)[2]
            if not waiter.done():
                waiter.set_result(None)
        self._arm()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._heap.clear()


class _Index:
    """Listeners by key (a user, a room): most keys have one listener (a user
    with one client, a direct chat's two users each in it once), so one is
    held as it is, and only two or more in a set (216 bytes a key saved,
    with thousands of users connected)."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[str, Listener | set[Listener]] = {}

    def get(self, key: str, default: Collection[Listener] = ()) -> Collection[Listener]:
        entry = self._entries.get(key)
        if entry is None:
            return default
        return (entry,) if isinstance(entry, Listener) else entry

    def add(self, key: str, listener: Listener) -> None:
        entry = self._entries.get(key)
        if entry is None or entry is listener:
            self._entries[key] = listener
        elif isinstance(entry, Listener):
            self._entries[key] = {entry, listener}
        else:
            entry.add(listener)

    def discard(self, key: str, listener: Listener) -> None:
        entry = self._entries.get(key)
        if entry is listener:
            del self._entries[key]
        elif isinstance(entry, set):
            entry.discard(listener)
            if len(entry) == 1:
                self._entries[key] = next(iter(entry))

    def every(self) -> list[Listener]:
        """All the listeners, in a list (which stays whole while they change)."""
        listeners: list[Listener] = []
        for entry in self._entries.values():
            if isinstance(entry, Listener):
                listeners.append(entry)
            else:
                listeners.extend(entry)
        return listeners


class TypingNotices:
    """Who is typing in which room: in memory, never stored, with a position
    of its own that each change of a room's typers advances. Every server
    process keeps its own copy, told of notices set through the others by
    NOTIFY, and lapses them itself at the time the notice gave. A position
    makes sense only to the process (``epoch``) that counted it; a sync
    token carries both as its typing mark (sync/tokens.py)."""

    def __init__(self, changed: Callable[[str], None], clock: Clock = REAL) -> None:
        self.epoch = secrets.token_hex(3)
        self._clock = clock
        self.position = 0
        self._typers: dict[str, dict[str, int]] = {}  # room -> user -> when the notice lapses (ms since the epoch)
        self._changed_at: dict[str, int] = {}  # room -> the position of its last change
        self._timers: dict[tuple[str, str], Timer] = {}
        self._changed = changed

    def mark(self, position: int | None = None) -> str:
        """The typing mark of a position (the current one by default)."""
        return f"{self.epoch}.{self.position if position is None else position}"

    def since(self, mark: str | None) -> int | None:
        """The position a mark names, or None when this process did not make
        it (another process, or before a restart): the reader is then sent
        every room's typers anew."""
        if mark is None or not mark.startswith(self.epoch + "."):
            return None
        position = int(mark[len(self.epoch) + 1 :])
        return position if position <= self.position else None

    def set(self, room_id: str, user_id: str, expires_ms: int) -> None:
        """The user types in the room until ``expires_ms`` (in the past: stops)."""
        key = (room_id, user_id)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        typers = self._typers.setdefault(room_id, {})
        remaining_ms = expires_ms - self._clock.time() * 1000
        if remaining_ms > 0:
            renewed = user_id in typers
            typers[user_id] = expires_ms
            self._timers[key] = self._clock.call_later(remaining_ms / 1000, self._lapse, room_id, user_id, expires_ms)
            if renewed:
                return  # the same typers: nothing for anyone to learn
        elif typers.pop(user_id, None) is None:
            return
        self._advance(room_id)

    def _lapse(self, room_id: str, user_id: str, expires_ms: int) -> None:
        typers = self._typers.get(room_id, {})
        if typers.get(user_id) == expires_ms:
            self._timers.pop((room_id, user_id), None)
            del typers[user_id]
            self._advance(room_id)

    def _advance(self, room_id: str) -> None:
        if not self._typers.get(room_id):
            self._typers.pop(room_id, None)
        self.position += 1
        self._changed_at[room_id] = self.position
        self._changed(room_id)

    def users(self, room_id: str) -> list[str]:
        return sorted(self._typers.get(room_id, ()))

    def changes(self, rooms: Collection[str], since: int | None) -> dict[str, list[str]]:
        """The typers of each of ``rooms`` whose typers changed after the
        position ``since``; with ``since`` None, of each room where someone types."""
        if since is None:
            known: Collection[str] = self._typers
        else:
            known = self._changed_at
        if len(known) < len(rooms):
            candidates: Iterable[str] = (room_id for room_id in known if room_id in rooms)
        else:
            candidates = (room_id for room_id in rooms if room_id in known)
        if since is None:
            return {room_id: self.users(room_id) for room_id in candidates}
        return {room_id: self.users(room_id) for room_id in candidates if self._changed_at[room_id] > since}

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


class Notifier:
    def __init__(
        self, dsn: str, pool: asyncpg.Pool, sessions: SessionCache, supervisor: Supervisor, clock: Clock = REAL
    ) -> None:
        self._dsn = dsn
        self._pool = pool
        self._sessions = sessions
        self._supervisor = supervisor
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._listening = False  # the LISTEN connection is up (else other processes' commits go unheard)
        self._read_failing = False  # the last attempt to read new events failed
        self._tasks: list[asyncio.Task] = []
        self.position = 0  # every event at or below this is committed and dispatched
        self._target = 0  # the highest position announced so far
        self._advanced = asyncio.Event()
        # Requests in caught_up(): the position each waits for, and its future.
        self._waiters: list[tuple[int, asyncio.Future]] = []
        # (after, position, events) of this process's recent commits (committed()).
        self._known: deque[tuple[int, int, list[Event]]] = deque()
        # This process's writer (Persister.settled), when it hands its commits over.
        self.writer_settled: Callable[[], Awaitable[None]] | None = None
        self._by_room = _Index()
        # Called with each committed event before listeners are told; one
        # returning a user id makes that user's clients check their token.
        self.observers: list[Callable[[Event], str | None]] = []
        # Told of each dispatch before any listener (sync's event cache).
        self.watchers: list[DispatchWatcher] = []
        self._by_user = _Index()
        self.typing = TypingNotices(self._typing_changed, clock)
        self.timeouts = Timeouts()  # of the waiting long-polls' sleeps

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        self.position = self._target = await event_store.max_stream(self._pool)
        await self._listen()
        self._tasks = [
            self._supervisor.spawn("listen", self._keep_listening, self._trouble),
            self._supervisor.spawn("dispatch", self._dispatch_loop, self._dispatch_failed),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._sessions.listening(None)
        self.typing.stop()
        self.release_all()
        self.timeouts.stop()
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()

    async def _listen(self) -> None:
        # Named, so operators (and tests) can tell it in pg_stat_activity.
        conn = await asyncpg.connect(self._dsn, server_settings={"application_name": LISTENER_NAME})
        try:
            await conn.add_listener(SESSIONS_CHANNEL, self._on_session_revoked)
            await conn.add_listener(EVENTS_CHANNEL, self._on_events_committed)
            await conn.add_listener(ephemeral_store.TYPING_CHANNEL, self._on_typing)
        except BaseException:
            conn.terminate()  # half set up: a retry starts from a new connection
            raise
        conn.add_termination_listener(lambda _conn: self._lose())
        self._conn = conn
        self._lost.clear()
        self._sessions.listening(conn)
        # Whatever was announced while nobody listened is in the database.
        self.committed(await event_store.max_stream(self._pool))
        self._listening = True

    def _lose(self) -> None:
        """The LISTEN connection is gone: what other processes commit goes
        unheard until it is back, so nobody may wait on it meanwhile."""
        self._listening = False
        self._lost.set()
        self._trouble()

    async def _keep_listening(self) -> None:
        delay = 0.5
        while True:
            try:
                await asyncio.wait_for(self._lost.wait(), KEEPALIVE_SECONDS)
            except asyncio.TimeoutError:
                # A connection the server dropped is not always noticed until
                # it is used: use it now and then (a failed round trip drops it).
                if await self._sessions.listening_alive():
                    continue
                self._lose()
            self._sessions.listening(None)
            log.warning("lost the PostgreSQL LISTEN connection; reconnecting")
            try:
                await self._listen()
                delay = 0.5
                log.info("listening on PostgreSQL again")
            except Exception as exc:  # whatever the failure, this loop must go on trying
                log.warning("cannot listen on PostgreSQL yet (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def release_all(self) -> None:
        """Shutdown: every waiting client is answered now."""
        for listener in self._by_user.every():
            listener.revoked = True
            listener.wake()

    # -- sessions --------------------------------------------------------------

    def _on_session_revoked(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        user_id = str(payload)  # a NOTIFY payload is text
        self._sessions.forget_user(user_id)
        self.check_user(user_id)

    def check_user(self, user_id: str) -> None:
        """Makes the user's waiting requests and streams check their token again at once."""
        for listener in self._by_user.get(user_id):
            listener.check_again()

    # -- typing ----------------------------------------------------------------

    async def set_typing(self, room_id: str, user_id: str, expires_ms: int) -> None:
        """A typing notice set through this process: in effect here at once,
        and announced to the others."""
        self.typing.set(room_id, user_id, expires_ms)
        await ephemeral_store.announce_typing(
            self._pool,
            json.dumps({"origin": self.typing.epoch, "room_id": room_id, "user_id": user_id, "expires_ms": expires_ms}),
        )

    def _on_typing(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            notice = json.loads(str(payload))
            if notice["origin"] != self.typing.epoch:  # this process's own took effect when it was set
                self.typing.set(str(notice["room_id"]), str(notice["user_id"]), int(notice["expires_ms"]))
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed typing notice")

    def _typing_changed(self, room_id: str) -> None:
        for listener in self._by_room.get(room_id):
            listener.typing = True
            listener.wake()

    # -- events ----------------------------------------------------------------

    def _on_events_committed(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        self.committed(int(str(payload)))

    def problem(self) -> str | None:
        """Why the notifier cannot now vouch for being current, or None."""
        if self._supervisor.fatal is not None:
            return self._supervisor.fatal
        if not self._supervisor.running("dispatch"):
            return "event dispatch is restarting"
        if not self._listening:
            return "the server lost its PostgreSQL LISTEN connection and is reconnecting"
        if self._read_failing:
            return "the server cannot read new events from PostgreSQL"
        return None

    @staticmethod
    def _unavailable(problem: str) -> MatrixError:
        return unavailable(f"Real-time delivery is unavailable: {problem}; try again shortly")

    def _trouble(self) -> None:
        """Fails every request waiting in caught_up(): it would wait in vain."""
        problem = self.problem()
        if problem is None:
            return
        waiters, self._waiters = self._waiters, []
        for _target, waiter in waiters:
            if not waiter.done():
                waiter.set_exception(self._unavailable(problem))

    async def caught_up(self, timeout: float = 2.0) -> None:
        """Waits until everything known to be committed now has been handed
        to the listeners (a client's own write, say), at most ``timeout``.
        Raises a 503 MatrixError at once while the notifier is unhealthy."""
        problem = self.problem()
        if problem is not None:
            raise self._unavailable(problem)
        target = self._target
        if self.position >= target:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        # A timeout means a slow database, not a broken notifier: answer from what was dispatched.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(waiter, timeout)

    def _release_waiters(self) -> None:
        waiting = []
        for target, waiter in self._waiters:
            if waiter.done():
                continue
            if target <= self.position:
                waiter.set_result(None)
            else:
                waiting.append((target, waiter))
        self._waiters = waiting

    @property
    def committed_position(self) -> int:
        """The highest position known to be committed (all below it are too);
        the database can be read up to here before the events are dispatched."""
        return self._target

    def committed(self, position: int, events: list[Event] | None = None, after: int | None = None) -> None:
        """Called when events up to ``position`` are known to be committed:
        by this process's persister at once, by other processes through NOTIFY.
        The persister also hands over what it wrote when that is everything
        in (``after``, ``position``]: its events, and no other write. Then the
        dispatch need not read them back from the database."""
        if events is not None and after is not None:
            self._known.append((after, position, events))
            if len(self._known) > KNOWN_BATCHES:
                self._known.popleft()
        if position > self._target:
            self._target = position
            self._advanced.set()

    def _known_between(self, after: int, upto: int) -> list[Event] | None:
        """The events in (after, upto] if this process's own commits, handed
        over to committed(), cover that whole stretch; else None."""
        while self._known and self._known[0][1] <= after:
            self._known.popleft()  # already dispatched
        rows: list[Event] = []
        reached = after
        for floor, last, events in self._known:
            if floor > reached or last > upto:
                return None  # a gap another process may have written in, or more than asked
            rows.extend(event for event in events if event.stream > reached)
            reached = last
            if reached == upto:
                return rows
        return None

    async def _dispatch_loop(self) -> None:
        while True:
            await self._advanced.wait()
            self._advanced.clear()
            while self.position < self._target:
                if self.writer_settled is not None:
                    await self.writer_settled()  # the announcement may be of its commit, about to be handed over
                target = self._target
                rows, updates = self._known_between(self.position, target), []
                if rows is None:
                    try:
                        rows = await sync_store.events_between(self._pool, self.position, target)
                        updates = await ephemeral_store.updates_between(self._pool, self.position, target)
                    except (*UNREACHABLE, asyncpg.PostgresError) as exc:
                        log.warning("cannot read new events yet (%s); retrying", exc)
                        self._read_failing = True
                        self._trouble()
                        await asyncio.sleep(0.5)
                        continue
                self._read_failing = False
                self.position = target
                self._dispatch(rows, updates)
                if rows:  # the oldest event waited longest; its timestamp was taken as it was written
                    metrics.NOTIFIER_LAG.observe(max(0.0, time.time() - rows[0].origin_server_ts / 1000))
            self._release_waiters()

    def _dispatch_failed(self) -> None:
        """The dispatch task failed, perhaps halfway through handing out
        events: every listener rebuilds its next answer from the database
        (where nothing is lost), and nobody waits for the task meanwhile."""
        for watcher in self.watchers:
            watcher.dispatch_failed()
        for listener in self._by_user.every():
            self._deliver(listener, [], needs_full=True)
        self._advanced.set()  # the restarted task looks again at once
        self._trouble()

    def _dispatch(self, rows: list[Event], updates: list[Wake]) -> None:
        for watcher in self.watchers:
            watcher.dispatching(rows)
        touched: dict[Listener, list[Event]] = {}
        full: set[Listener] = set()
        for update in updates:  # receipts (by room) and account data (by user), among others
            targets = (
                self._by_user.get(update.user_id)
                if update.user_id is not None
                else self._by_room.get(update.room_id or "")
            )
            full.update(targets)
        for row in rows:
            for observe in self.observers:
                try:
                    changed_user = observe(row)
                except Exception:  # one bad event must not stop delivery to everyone
                    log.exception("an observer failed on event %s", row.event_id)
                    continue
                if changed_user is not None:
                    self.check_user(changed_user)
            targets = self._by_room.get(row.room_id)
            if row.type == "m.room.redaction":
                full.update(targets)  # an unread message may be gone: counts are recounted
                continue
            if row.type == "m.room.member" and row.state_key is not None:
                # Member counts change, and for the member itself its rooms do.
                full.update(targets)
                for listener in list(self._by_user.get(row.state_key)):
                    self._follow(listener, row.room_id, row.content.get("membership"))
                    full.add(listener)
                continue
            for listener in targets:
                touched.setdefault(listener, []).append(row)
        for listener in full:
            self._deliver(listener, [], needs_full=True)
        for listener, delivered in touched.items():
            if listener not in full:
                self._deliver(listener, delivered, needs_full=False)

    @staticmethod
    def _deliver(listener: Listener, rows: list[Event], *, needs_full: bool) -> None:
        """Hands events to one listener; if that fails (its socket broke as
        it was written to, say), the listener rebuilds its next answer from
        the database instead, and the others are served regardless."""
        try:
            listener.deliver(rows, needs_full=needs_full)
        except Exception:
            log.exception("delivery to a client of %s failed; it will rebuild its answer", listener.user_id)
            listener.pending = []
            listener.needs_full = True
            listener.wake()

    def _follow(self, listener: Listener, room_id: str, membership: str | None) -> None:
        """Keeps a listener's rooms in step with its user's membership."""
        if membership == "join":
            if not isinstance(listener.rooms, set):
                listener.rooms = set(listener.rooms)
            listener.rooms.add(room_id)
            self._by_room.add(room_id, listener)
        elif membership in ("leave", "ban") and room_id in listener.rooms:
            if isinstance(listener.rooms, set):
                listener.rooms.discard(room_id)
            self._by_room.discard(room_id, listener)

    # -- listeners -------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        self._by_user.add(listener.user_id, listener)
        for room_id in listener.rooms:
            self._by_room.add(room_id, listener)

    def set_rooms(self, listener: Listener, rooms: Iterable[str]) -> None:
        """Replaces the rooms a registered listener follows."""
        for room_id in listener.rooms:
            self._by_room.discard(room_id, listener)
        listener.rooms = set(rooms) or NO_ROOMS
        for room_id in listener.rooms:
            self._by_room.add(room_id, listener)

    def remove_listener(self, listener: Listener) -> None:
        self._by_user.discard(listener.user_id, listener)
        for room_id in listener.rooms:
            self._by_room.discard(room_id, listener)
