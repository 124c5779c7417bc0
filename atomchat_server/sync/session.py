"""A client's sync session: where it is in the stream, and its next answer.

A session follows the notifier through a Listener. Its first answer, and any
answer after something the new events alone cannot describe (a membership
change, a redaction, a receipt, account data), is built from the database
by the SyncBuilder. Otherwise the answer is assembled in memory: from the
events the listener collected, kept or left out by the client's compiled
filter, encoded as JSON once per event for all readers; from the typing
notices the notifier holds; and for lazy-loading filters from the member
events the event cache (event_cache.py) remembers. The common case of new messages in rooms
the user is in costs no query beyond the unread counts of rooms it has not
counted yet, whatever filter the client sends.

The WebSocket stream keeps one session per socket. Long-polls park their
session between requests (see SyncSessions), so a client that comes back
with the token it was given picks up where it left.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Protocol

from ..auth.sessions import Requester
from ..auth.tokens import TokenClaims
from ..clock import REAL, Clock, Timer
from ..events.filters import CompiledFilter
from ..events.format import client_event
from ..notifier import Listener
from ..storage import events as event_store
from ..storage.events import Event
from . import response, tokens
from .builder import SyncResult
from .providers.counts import UNREAD_CAP

if TYPE_CHECKING:
    from ..app import AppContext

PARK_SECONDS = 30.0


class PushedTo(Protocol):
    """What a session's answers are pushed to (the WebSocket stream)."""

    def pushed(self, result: SyncResult) -> None: ...


class SyncSession:
    # One per open stream and waiting long-poll: no per-instance dict.
    __slots__ = (
        "_ctx",
        "requester",
        "_claims",
        "_filter",
        "filter_key",
        "since",
        "typing_since",
        "_full_state",
        "_limit_timeline",
        "_gone",
        "_waiting",
        "_stream",
        "_tracking",
        "_counts",
        "listener",
        "_unacknowledged",
    )

    def __init__(
        self,
        ctx: AppContext,
        requester: Requester,
        claims: TokenClaims,
        sync_filter: CompiledFilter,
        since: int | None,
        *,
        typing_mark: str | None = None,
        full_state: bool = False,
        filter_key: str | None = None,
        limit_timeline: bool = True,
    ) -> None:
        self._ctx = ctx
        self.requester = requester
        self._claims = claims  # of the client's access token, which is not kept (see TokenCodec)
        self._filter = sync_filter
        self.filter_key = filter_key
        self.since = since
        # Where the client is in the typing notices (None: nowhere this process knows).
        self.typing_since = ctx.notifier.typing.since(typing_mark) if since is not None else None
        self._full_state = full_state
        # A long-poll answer shows at most a timeline's worth of new events per
        # room (the rest behind a limited timeline); a stream pushes them all,
        # its flow control bounding what a slow reader costs.
        self._limit_timeline = limit_timeline
        self._gone = False
        self._waiting = False
        self._stream: PushedTo | None = None
        self._tracking = False  # the listener has collected everything after `since`
        self._counts: dict[str, list[int]] = {}  # room -> [notifications, highlights, joined, invited]
        self.listener = Listener(requester.user_id)
        ctx.notifier.add_listener(self.listener)
        # To-device messages may wait for this device's acknowledgement (see
        # acknowledge()); unknown for a new session, so assumed.
        self._unacknowledged = True

    def close(self) -> None:
        self._ctx.notifier.remove_listener(self.listener)

    def typing_mark(self) -> str | None:
        """The typing mark of the client's position (see tokens)."""
        return None if self.typing_since is None else self._ctx.notifier.typing.mark(self.typing_since)

    def push_to(self, stream: PushedTo) -> None:
        """Lets the notifier write this session's answers to ``stream`` as
        events are dispatched (see push()). The listener and the session
        hold the session and the stream, not bound methods of them (a
        thousand open streams, 128 KB less)."""
        self._stream = stream
        self.listener.pusher = self

    def client_gone(self) -> None:
        """The client disconnected: a pending next() returns None."""
        self._gone = True
        self.listener.wake()

    @property
    def unacknowledged(self) -> bool:
        """Whether to-device messages may wait for this device's
        acknowledgement (else acknowledge() has nothing to do)."""
        return self._unacknowledged

    async def acknowledge(self, position: int) -> None:
        """The client has everything up to ``position`` (it came back with
        that token, or its stream answered a ping sent after that frame): the
        to-device messages at or below it are deleted, never to be sent
        again. Costs a query only when messages may be waiting."""
        if self._unacknowledged:
            self._unacknowledged = position < (self.since or 0)
            await self._ctx.keys.acknowledge(self.requester, position)

    async def next(self, timeout: float | None, *, new_request: bool = True) -> SyncResult | None:
        """The next answer: at once if something is waiting; else as soon as
        something happens, or an empty answer after ``timeout`` seconds
        (None: wait for ever). None once the client is gone.
        Raises M_UNKNOWN_TOKEN if the session's token was revoked meanwhile,
        and a 503 if a ``new_request`` finds the notifier unhealthy (a stream
        asking for its next frame is not new: it waits out a brief trouble)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        listener = self.listener
        if new_request:
            # What was committed before this request (the client's own send,
            # say) is in this answer: let the notifier hand it out first.
            await self._ctx.notifier.caught_up()
        while not self._gone:
            result = await self._ready()
            if result is not None:
                return result
            if self._gone:
                break
            if listener.revoked:
                return self._empty()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return self._empty()
            self._waiting = True  # from here the notifier may push() answers itself
            try:
                await listener.sleep(deadline, self._ctx.notifier.timeouts)
            finally:
                self._waiting = False
        return None

    async def frame(self, *, new_request: bool = False) -> SyncResult | None:
        """A stream's next frame if there is something to say now, else None,
        the session then waiting without a task of its own: the notifier
        push()es answers itself, and whatever it cannot answer wakes the
        listener, whose ``woken`` callback asks for the frame again."""
        if new_request:
            await self._ctx.notifier.caught_up()
        self._waiting = False
        result = await self._ready()
        if result is None and not self._gone:
            self._waiting = True
        return result

    async def _ready(self) -> SyncResult | None:
        """The answer there is to give without waiting, or None: nothing yet."""
        listener = self.listener
        answer_now = self.since is None or self._full_state  # an initial or full-state sync never waits
        while not self._gone:
            if listener.recheck:
                listener.recheck = False
                self.requester = await self._ctx.accounts.authenticate(self._claims)
            if not self._tracking or listener.needs_full:
                result = await self._full()
                if answer_now or not result.empty:
                    return result
                continue
            if listener.pending or listener.typing:
                if not (self._limit_timeline and self._too_many(listener.pending)):
                    result = await self._fast()
                    if not result.empty:
                        return result
                    continue
                listener.needs_full = True
                continue
            return None
        return None

    def _too_many(self, rows: list[Event]) -> bool:
        """More new events in one room than the filter's timeline shows: the
        answer must be a limited timeline, which the full build makes."""
        limit = self._filter.timeline_limit
        return any(len(room_rows) > limit for room_rows in self._shown(self._wanted(rows)).values())

    async def _full(self) -> SyncResult:
        notifier, listener = self._ctx.notifier, self.listener
        # Read the database up to what is committed, not just dispatched, so
        # a client sees its own writes at once; events dispatched later that
        # this answer already holds are skipped by _fast.
        upto = max(notifier.committed_position, self.since or 0)
        listener.pending = []
        listener.needs_full = False
        listener.typing = False
        result = await self._ctx.sync.sync(
            self.requester,
            since=self.since,
            upto=upto,
            sync_filter=self._filter.source,
            full_state=self._full_state,
            typing_since=self.typing_since,
        )
        assert result.body is not None and result.position is not None, (
            "a full sync builds the body, not its text, and says where it ends"
        )
        if result.body["to_device"]["events"]:
            self._unacknowledged = True
        upto = result.position
        if result.more:
            listener.needs_full = True  # the rest at once, in the next answer
        added = result.joined_rooms - listener.rooms
        notifier.set_rooms(listener, result.joined_rooms)
        if added and notifier.position > upto:
            # Events of the newly followed rooms may have passed while we built.
            listener.needs_full = True
        for room_id, room in result.body["rooms"]["join"].items():
            self._counts[room_id] = response.counts_of(room)
        for room_id in list(self._counts):
            if room_id not in result.joined_rooms:
                del self._counts[room_id]
        self.since = upto
        self.typing_since = result.typing_position
        if notifier.typing.position > self.typing_since:
            # Typers changed after the answer took its notices: perhaps in a
            # room the listener did not follow yet, which flagged nothing.
            listener.typing = True
        self._tracking = True
        self._full_state = False
        return result

    async def _fast(self) -> SyncResult:
        """The answer made of the collected events alone, filtered in memory."""
        notifier, listener = self._ctx.notifier, self.listener
        upto = notifier.position
        rows = self._wanted(listener.pending)
        listener.pending = []
        listener.typing = False
        typing_at, typing = self._typing()
        shown = self._shown(rows)
        members, missing = self._lazy_members(shown)  # from memory, as of upto, before anything is awaited
        # Rooms not counted yet, or with events whose push outcome was not
        # handed over (another process wrote them): counted now, with the new events.
        uncounted = self._uncounted(rows, shown) | (typing.keys() - self._counts.keys())
        if uncounted:
            counts: dict[str, Any] = {room_id: {} for room_id in uncounted}
            await self._ctx.sync.add_counts(self.requester.user_id, counts, upto)
            for room_id, room in counts.items():
                self._counts[room_id] = response.counts_of(room)
        for room_id, user_ids in missing.items():
            found = await event_store.member_events_of(self._ctx.pool, room_id, user_ids, at_stream=upto)
            self._ctx.event_cache.remember_members(found, upto)
            members[room_id] = sorted([*members.get(room_id, []), *found], key=lambda row: row.stream)
        return self._assemble(rows, shown, members, typing, typing_at, upto, uncounted)

    def push(self, rows: list[Event]) -> bool:
        """The notifier's shortcut for a stream waiting for its next frame:
        when these events alone make the answer, it is made and written at
        once, as they are dispatched, without waking the stream's task.
        False when the task must do it (it is then woken as usual)."""
        listener = self.listener
        if (
            self._stream is None
            or not self._waiting
            or listener.pending
            or listener.needs_full
            or listener.recheck
            or listener.typing
        ):
            return False
        rows = self._wanted(rows)
        shown = self._shown(rows)
        members, missing = self._lazy_members(shown)
        if missing or self._uncounted(rows, shown):
            return False
        result = self._assemble(rows, shown, members, {}, self.typing_since or 0, self._ctx.notifier.position, ())
        if not result.empty:
            self._stream.pushed(result)
        return True

    # -- the fast path: an answer from dispatched events and the filter -------------

    def _typing(self) -> tuple[int, dict[str, list[str]]]:
        """The typing position now, and the typers of the rooms the filter
        keeps whose typers changed since the client's typing position."""
        notices, keeps_room = self._ctx.notifier.typing, self._filter.keeps_room
        changed = notices.changes(self.listener.rooms, self.typing_since)
        return notices.position, {room_id: users for room_id, users in changed.items() if keeps_room(room_id)}

    def _wanted(self, rows: list[Event]) -> list[Event]:
        """The new events of the rooms the filter keeps."""
        since, keeps_room = self.since or 0, self._filter.keeps_room
        return [row for row in rows if row.stream > since and keeps_room(row.room_id)]

    def _shown(self, rows: list[Event]) -> dict[str, list[Event]]:
        """The events the filter's timeline shows, by room (never an
        outlier: it has no place in the room's history)."""
        keeps_event = self._filter.keeps_event
        by_room: dict[str, list[Event]] = {}
        for row in rows:
            if not row.outlier and keeps_event(row.type, row.sender):
                by_room.setdefault(row.room_id, []).append(row)
        return by_room

    def _lazy_members(self, shown: dict[str, list[Event]]) -> tuple[dict[str, list[Event]], dict[str, list[str]]]:
        """For a lazy-loading filter, the member events of each room's
        timeline senders (the reader's own aside) as they are before the
        timeline: those the event cache holds (sync/event_cache.py), and by
        room the users whose it does not. The new events hold no member event (one makes the answer
        a full one), so the newest known is the one before the timeline."""
        members: dict[str, list[Event]] = {}
        missing: dict[str, list[str]] = {}
        if not self._filter.lazy_members:
            return members, missing
        user_id, known = self.requester.user_id, self._ctx.event_cache.member_event
        for room_id, rows in shown.items():
            for sender in sorted({row.sender for row in rows} - {user_id}):
                row = known(room_id, sender)
                if row is None:
                    missing.setdefault(room_id, []).append(sender)
                else:
                    members.setdefault(room_id, []).append(row)
            if room_id in members:
                members[room_id].sort(key=lambda row: row.stream)
        return members, missing

    def _uncounted(self, rows: list[Event], shown: dict[str, list[Event]]) -> set[str]:
        """The rooms of the answer whose unread counts must be read from the
        database. A room the answer leaves out whose counts cannot be kept up
        in memory is forgotten, to be counted when it is next shown."""
        uncounted: set[str] = set()
        for row in rows:
            room_id = row.room_id
            if room_id in shown:
                if room_id not in self._counts or not _judged(row):
                    uncounted.add(room_id)
            elif room_id in self._counts and not _judged(row):
                del self._counts[room_id]
        return uncounted

    def _assemble(
        self,
        rows: list[Event],
        shown: dict[str, list[Event]],
        members: dict[str, list[Event]],
        typing: dict[str, list[str]],
        typing_at: int,
        upto: int,
        uncounted: Collection[str],
    ) -> SyncResult:
        listener = self.listener
        user_id = self.requester.user_id
        for row in rows:
            room_id = row.room_id
            if room_id in uncounted or room_id not in self._counts or row.sender == user_id:
                continue
            push = row.push
            assert push is not None, "a room counted in memory has only judged events (_uncounted)"
            own = next((entry for entry in push["own"] if entry[0] == user_id), None)
            notify, highlight = (
                (own[1], own[2])
                if own is not None
                else (push["default"] is not None, bool(push["default"] and push["default"][0]))
            )
            if notify:
                counts_row = self._counts[room_id]
                counts_row[0] = min(counts_row[0] + 1, UNREAD_CAP)
                if highlight:
                    counts_row[1] = min(counts_row[1] + 1, UNREAD_CAP)
        self.since = max(upto, self.since or 0)
        self.typing_since = typing_at
        rooms = [*shown, *(room_id for room_id in typing if room_id not in shown)]
        if not rooms:
            return SyncResult(self._empty_body(), empty=True, joined_rooms=listener.rooms)
        # The answer is the same for every receiver with the same filter,
        # position, events and counts, unless it holds this device's own
        # sends (which carry their transaction id): such answers are made
        # once per dispatch.
        own_device = (self.requester.user_id, self.requester.device_id)
        own = any(_own(row, own_device) for room_rows in (*shown.values(), *members.values()) for row in room_rows)
        shared = self._ctx.event_cache.shared_answers
        key = (
            None
            if own
            else (
                self._filter.number,
                self.since,
                typing_at,
                tuple(
                    (
                        room_id,
                        tuple(row.stream for row in shown.get(room_id, ())),
                        tuple(row.stream for row in members.get(room_id, ())),
                        tuple(typing.get(room_id, ("-",))),
                        *self._counts[room_id],
                    )
                    for room_id in rooms
                ),
            )
        )
        text = shared.get(key) if key is not None else None
        if text is None:
            join = {
                room_id: self._room(
                    room_id, shown.get(room_id, []), members.get(room_id, []), typing.get(room_id), upto, own_device
                )
                for room_id in rooms
            }
            text = response.encode(response.answer(self._next_batch(), join=join))
            if key is not None:
                shared[key] = text
        return SyncResult(None, empty=False, joined_rooms=listener.rooms, text=text)

    def _event_json(self, row: Event, own_device: tuple[str, str]) -> response.Encoded:
        if _own(row, own_device):
            return response.Encoded(
                json.dumps(client_event(row, device=own_device), ensure_ascii=False, separators=(",", ":"))
            )
        return response.Encoded(self._ctx.event_cache.encoded(row))

    def _room(
        self,
        room_id: str,
        rows: list[Event],
        members: list[Event],
        typing: list[str] | None,
        upto: int,
        own_device: tuple[str, str],
    ) -> dict[str, Any]:
        room = response.joined_room(
            [self._event_json(row, own_device) for row in rows],
            limited=False,
            prev_batch=tokens.make(rows[0].stream - 1 if rows else upto),
            state=[self._event_json(row, own_device) for row in members],
            ephemeral=[] if typing is None else [{"type": "m.typing", "content": {"user_ids": typing}}],
        )
        response.counts(room, *self._counts[room_id])
        return room

    def _empty_body(self) -> dict[str, Any]:
        return response.answer(self._next_batch())

    def _next_batch(self) -> str:
        return tokens.make_sync(self.since or 0, self.typing_mark())

    def _empty(self) -> SyncResult:
        """Nothing happened: the answer at a long-poll's timeout."""
        self.since = max(self._ctx.notifier.position, self.since or 0)
        return SyncResult(self._empty_body(), empty=True, joined_rooms=self.listener.rooms)


def _own(row: Event, own_device: tuple[str, str]) -> bool:
    """Whether the event was sent from this device with a transaction id,
    which its answers carry."""
    return row.txn_id is not None and (row.sender, row.txn_device) == own_device


def _judged(row: Event) -> bool:
    """Whether the row carries its push outcome (events this process's
    persister judged, and those the notifier read back, do)."""
    return row.push is not None


class SyncSessions:
    """Long-poll sessions parked between a client's requests, one per login
    session, kept for PARK_SECONDS. A request that brings back the token its
    predecessor answered with resumes the parked session."""

    def __init__(self, clock: Clock = REAL) -> None:
        self._clock = clock
        self._parked: dict[str, tuple[SyncSession, Timer]] = {}

    def take(
        self, session_id: str, since: int | None, typing_mark: str | None, filter_key: str | None
    ) -> SyncSession | None:
        parked = self._parked.pop(session_id, None)
        if parked is None:
            return None
        session, timer = parked
        timer.cancel()
        if (
            since is not None
            and session.since == since
            and session.filter_key == filter_key
            and session.typing_since is not None
            and session.typing_mark() == typing_mark
        ):
            return session
        session.close()
        return None

    def park(self, session_id: str, session: SyncSession) -> None:
        previous = self._parked.pop(session_id, None)
        if previous is not None:
            previous[1].cancel()
            previous[0].close()
        timer = self._clock.call_later(PARK_SECONDS, self._expire, session_id, session)
        self._parked[session_id] = (session, timer)

    def _expire(self, session_id: str, session: SyncSession) -> None:
        parked = self._parked.get(session_id)
        if parked is not None and parked[0] is session:
            del self._parked[session_id]
            session.close()

    def close_all(self) -> None:
        for session, timer in self._parked.values():
            timer.cancel()
            session.close()
        self._parked.clear()
