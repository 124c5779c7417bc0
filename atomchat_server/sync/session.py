"""A client's sync session: where it is in the stream, and its next answer.

A session follows the notifier through a Listener. Its first answer, and any
answer after something the new events alone cannot describe (a membership
change, a receipt, typing, account data), is built from the database by the
SyncBuilder. Otherwise the answer is assembled from the events the listener
collected, from JSON encoded once per event for all readers: the common case
of new messages in rooms the user is in costs no query beyond the unread
counts of rooms it has not counted yet.

The WebSocket stream keeps one session per socket. Long-polls park their
session between requests (see SyncSessions), so a client that comes back
with the token it was given picks up where it left.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

from ..auth.sessions import Requester
from ..events.filters import SyncFilter
from ..events.format import client_event
from ..notifier import Listener
from . import tokens
from .builder import DEFAULT_TIMELINE_LIMIT, UNREAD_CAP, SyncResult

PARK_SECONDS = 30.0


class SyncSession:
    def __init__(self, ctx, requester: Requester, access_token: str, sync_filter: SyncFilter,
                 since: int | None, *, full_state: bool = False, filter_key: str | None = None,
                 limit_timeline: bool = True) -> None:
        self._ctx = ctx
        self.requester = requester
        self._token = access_token
        self._filter = sync_filter
        self.filter_key = filter_key
        self.since = since
        self._full_state = full_state
        self._fast_ok = sync_filter == SyncFilter()
        # A long-poll answer shows at most a timeline's worth of new events per
        # room (the rest behind a limited timeline); a stream pushes them all,
        # its flow control bounding what a slow reader costs.
        self._limit_timeline = limit_timeline
        self._gone = False
        self._waiting = False
        self._writer: Callable[[SyncResult], None] | None = None
        self._tracking = False  # the listener has collected everything after `since`
        self._counts: dict[str, list[int]] = {}  # room -> [notifications, highlights, joined, invited]
        self.listener = Listener(requester.user_id)
        ctx.notifier.add_listener(self.listener)
        # To-device messages may wait for this device's acknowledgement (see
        # acknowledge()); unknown for a new session, so assumed.
        self._unacknowledged = True

    def close(self) -> None:
        self._ctx.notifier.remove_listener(self.listener)

    def push_to(self, writer: Callable[[SyncResult], None]) -> None:
        """Lets the notifier write this session's answers through ``writer``
        as events are dispatched (a stream; see push())."""
        self._writer = writer
        self.listener.push = self.push

    def client_gone(self) -> None:
        """The client disconnected: a pending next() returns None."""
        self._gone = True
        self.listener.wake()

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
        answer_now = self.since is None or self._full_state  # an initial or full-state sync never waits
        if new_request:
            # What was committed before this request (the client's own send,
            # say) is in this answer: let the notifier hand it out first.
            await self._ctx.notifier.caught_up()
        while not self._gone:
            if listener.recheck:
                listener.recheck = False
                self.requester = await self._ctx.accounts.authenticate(self._token)
            if not self._tracking or listener.needs_full:
                result = await self._full()
                if answer_now or not result.empty:
                    return result
                continue
            if listener.pending:
                if self._fast_ok and not (self._limit_timeline and self._too_many(listener.pending)):
                    result = await self._fast()
                    if not result.empty:
                        return result
                    continue
                listener.needs_full = True
                continue
            if listener.revoked:
                return self._empty()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return self._empty()
            self._waiting = True  # from here the notifier may push() answers itself
            try:
                await listener.sleep(remaining)
            finally:
                self._waiting = False
        return None

    @staticmethod
    def _too_many(rows: list[Any]) -> bool:
        """More new events in one room than a timeline shows: the answer must
        be a limited timeline, which the full build makes."""
        per_room: dict[str, int] = {}
        for row in rows:
            per_room[row["room_id"]] = per_room.get(row["room_id"], 0) + 1
        return max(per_room.values(), default=0) > DEFAULT_TIMELINE_LIMIT

    async def _full(self) -> SyncResult:
        notifier, listener = self._ctx.notifier, self.listener
        # Read the database up to what is committed, not just dispatched, so
        # a client sees its own writes at once; events dispatched later that
        # this answer already holds are skipped by _fast.
        upto = max(notifier.committed_position, self.since or 0)
        listener.pending = []
        listener.needs_full = False
        result = await self._ctx.sync.sync(self.requester, since=self.since, upto=upto,
                                           sync_filter=self._filter, full_state=self._full_state)
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
            self._counts[room_id] = _counts_of(room)
        for room_id in list(self._counts):
            if room_id not in result.joined_rooms:
                del self._counts[room_id]
        self.since = upto
        self._tracking = True
        self._full_state = False
        return result

    async def _fast(self) -> SyncResult:
        """The answer made of the collected events alone."""
        notifier, listener = self._ctx.notifier, self.listener
        upto = notifier.position
        rows = [row for row in listener.pending if row["stream"] > (self.since or 0)]
        listener.pending = []
        # Rooms not counted yet, or with events whose push outcome was not
        # handed over (another process wrote them): counted now, with the new events.
        uncounted = {row["room_id"] for row in rows if row["room_id"] not in self._counts or not _judged(row)}
        if uncounted:
            counts: dict[str, Any] = {room_id: {} for room_id in uncounted}
            await self._ctx.sync.add_counts(self.requester.user_id, counts, upto)
            for room_id, room in counts.items():
                self._counts[room_id] = _counts_of(room)
        return self._assemble(rows, upto, uncounted)

    def push(self, rows: list[Any]) -> bool:
        """The notifier's shortcut for a stream waiting for its next frame:
        when these events alone make the answer, it is made and written at
        once, as they are dispatched, without waking the stream's task.
        False when the task must do it (it is then woken as usual)."""
        listener = self.listener
        if (self._writer is None or not self._waiting or not self._fast_ok or listener.pending
                or listener.needs_full or listener.recheck):
            return False
        rows = [row for row in rows if row["stream"] > (self.since or 0)]
        if any(row["room_id"] not in self._counts or not _judged(row) for row in rows):
            return False
        result = self._assemble(rows, self._ctx.notifier.position, ())
        if not result.empty:
            self._writer(result)
        return True

    def _assemble(self, rows: list[Any], upto: int, uncounted) -> SyncResult:
        listener = self.listener
        by_room: dict[str, list[Any]] = {}
        for row in rows:
            by_room.setdefault(row["room_id"], []).append(row)
        user_id = self.requester.user_id
        for row in rows:
            if row["room_id"] in uncounted or row["sender"] == user_id:
                continue
            push = row["push"]
            own = next((entry for entry in push["own"] if entry[0] == user_id), None)
            notify, highlight = ((own[1], own[2]) if own is not None
                                 else (push["default"] is not None, bool(push["default"] and push["default"][0])))
            if notify:
                counts_row = self._counts[row["room_id"]]
                counts_row[0] = min(counts_row[0] + 1, UNREAD_CAP)
                if highlight:
                    counts_row[1] = min(counts_row[1] + 1, UNREAD_CAP)
        self.since = max(upto, self.since or 0)
        if not by_room:
            return SyncResult(self._empty_body(), empty=True, joined_rooms=frozenset(listener.rooms))
        # The answer is the same for every receiver with the same position,
        # events and counts, unless it holds this device's own sends (which
        # carry their transaction id): such answers are made once per dispatch.
        own_device = (self.requester.user_id, self.requester.device_id)
        own = any(row["txn_id"] is not None and (row["sender"], row["txn_device"]) == own_device for row in rows)
        shared = self._ctx.notifier.shared_answers
        key = None if own else (self.since, tuple(
            (room_id, tuple(row["stream"] for row in room_rows), *self._counts[room_id])
            for room_id, room_rows in by_room.items()))
        text = shared.get(key) if key is not None else None
        if text is None:
            rooms_json = ",".join(json.dumps(room_id) + ":" + self._room_json(room_id, room_rows, own_device)
                                  for room_id, room_rows in by_room.items())
            text = (f'{{"next_batch":"{tokens.make(self.since)}","rooms":{{"join":{{{rooms_json}}},"invite":{{}},'
                    f'"leave":{{}}}},{_EMPTY_TAIL}}}')
            if key is not None:
                shared[key] = text
        return SyncResult(None, empty=False, joined_rooms=frozenset(listener.rooms), text=text)

    def _room_json(self, room_id: str, rows: list[Any], own_device: tuple[str, str]) -> str:
        events = ",".join(
            json.dumps(client_event(row, device=own_device), ensure_ascii=False, separators=(",", ":"))
            if row["txn_id"] is not None and (row["sender"], row["txn_device"]) == own_device
            else self._ctx.notifier.encoded(row)
            for row in rows)
        unread, highlights, joined, invited = self._counts[room_id]
        return (f'{{"timeline":{{"events":[{events}],"limited":false,"prev_batch":"{tokens.make(rows[0]["stream"] - 1)}"}},'
                f'"state":{{"events":[]}},"ephemeral":{{"events":[]}},"account_data":{{"events":[]}},'
                f'"unread_notifications":{{"highlight_count":{highlights},"notification_count":{unread}}},'
                f'"summary":{{"m.joined_member_count":{joined},"m.invited_member_count":{invited}}}}}')

    def _empty_body(self) -> dict[str, Any]:
        return {"next_batch": tokens.make(self.since or 0), "rooms": {"join": {}, "invite": {}, "leave": {}},
                **json.loads("{" + _EMPTY_TAIL + "}")}

    def _empty(self) -> SyncResult:
        """Nothing happened: the answer at a long-poll's timeout."""
        self.since = max(self._ctx.notifier.position, self.since or 0)
        return SyncResult(self._empty_body(), empty=True, joined_rooms=frozenset(self.listener.rooms))


def _judged(row: Any) -> bool:
    """Whether the row carries its push outcome (events this process's
    persister wrote do; rows read back from the database do not)."""
    return isinstance(row, dict) and "push" in row


def _counts_of(room: dict[str, Any]) -> list[int]:
    unread, summary = room["unread_notifications"], room["summary"]
    return [unread["notification_count"], unread["highlight_count"], summary["m.joined_member_count"],
            summary["m.invited_member_count"]]


_EMPTY_TAIL = ('"account_data":{"events":[]},"presence":{"events":[]},"to_device":{"events":[]},'
               '"device_lists":{"changed":[],"left":[]},"device_one_time_keys_count":{}')


class SyncSessions:
    """Long-poll sessions parked between a client's requests, one per login
    session, kept for PARK_SECONDS. A request that brings back the token its
    predecessor answered with resumes the parked session."""

    def __init__(self) -> None:
        self._parked: dict[str, tuple[SyncSession, asyncio.TimerHandle]] = {}

    def take(self, session_id: str, since: int | None, filter_key: str | None) -> SyncSession | None:
        parked = self._parked.pop(session_id, None)
        if parked is None:
            return None
        session, timer = parked
        timer.cancel()
        if since is not None and session.since == since and session.filter_key == filter_key:
            return session
        session.close()
        return None

    def park(self, session_id: str, session: SyncSession) -> None:
        previous = self._parked.pop(session_id, None)
        if previous is not None:
            previous[1].cancel()
            previous[0].close()
        timer = asyncio.get_running_loop().call_later(PARK_SECONDS, self._expire, session_id, session)
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
