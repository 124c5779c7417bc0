"""Commits events to the log: authorization, stream order and group commit.

Every write goes through one queue per process. A single task drains it and
commits what has gathered in one transaction (group commit): many concurrent
sends cost one commit, and each caller is answered only after that commit, so
an acknowledged event is durable. Inside the transaction the global stream
lock is held, so positions are handed out in commit order across all server
processes; the room state used to authorize each event is read under the same
lock, so no two writers can both act on a stale view of a room.

A unit is a list of drafts that succeed or fail together (createRoom's initial
events are one unit). A unit refused by the rules fails alone; the rest of
its batch still commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from signedjson.types import SigningKey

from .. import metrics
from ..db import Database
from ..db.pool import UNREACHABLE
from ..errors import MatrixError, forbidden, not_found, unavailable
from ..events.auth import AuthError, auth_event_keys, auth_state_keys, check
from ..events.drafts import EventDraft
from ..events.format import client_event
from ..events.moderation import moderator_view
from ..events.pdu import MAX_PREV_EVENTS, build_pdu, finish_pdu
from ..events.power_levels import edits_members
from ..events.redaction import pruned_content
from ..events.room_versions import RoomVersion, room_version
from ..storage import events as event_store
from ..supervisor import Supervisor

log = logging.getLogger(__name__)

MAX_BATCH = 256

StateMap = dict[tuple[str, str], Any]


class RoomIdTaken(MatrixError):
    """A new room's id is an existing room's. From room version 12 the id is
    the create event's hash, so one user creating two rooms alike within
    the same millisecond makes the same id; the creator tries again with
    another timestamp."""

    def __init__(self) -> None:
        super().__init__(409, "M_ROOM_IN_USE", "A room with this id exists already")


@dataclass(frozen=True)
class Signer:
    """Who signs the PDUs of this server's events: its name and key."""

    server_name: str
    key: SigningKey


@dataclass
class _Head:
    """A room as the batch writes to it: its newest event and depth, its
    version when its events are PDUs (None for a room made before PDUs),
    and its forward extremities."""

    event_id: str | None
    depth: int
    version: RoomVersion | None
    extremities: list[str]


@dataclass
class WriteUnit:
    drafts: list[EventDraft]
    txn: tuple[str, str, str] | None = None  # (user id, device id, txn id) of a client send
    new_room: str | None = None  # room version, when the unit creates its room
    stub: bool = False  # the new room is known only by a remote invite (see rooms.stub)
    # A write that is not an event (a receipt, say): runs on the batch's
    # connection under the stream lock and returns the position it took.
    update: Callable[[Any], Awaitable[int | None]] | None = None
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


TASK = "persister"

# A commit hook: (the batch's connection, inside its transaction; the events
# appended; the stream position before the batch, None if unknown; the last
# position the batch took) -> what to do once the batch is committed.
CommitHook = Callable[[Any, list[dict[str, Any]], int | None, int], Awaitable[Callable[[], None]]]


class Persister:
    """``judge``, when given, decides what each event notifies before it is
    appended (services.push's PushEvaluator), so the outcome is committed
    with the event in the same statement."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        supervisor: Supervisor,
        signer: Signer,
        on_commit: Callable[[int, list[event_store.Event] | None, int | None], None] | None = None,
        judge: Any = None,
    ) -> None:
        self._pool = pool
        self._signer = signer
        self._supervisor = supervisor
        self._judge = judge
        self._queue: asyncio.Queue[WriteUnit] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._on_commit = on_commit
        # Called inside each commit's transaction, once its events are
        # written, with them (every one, in order), the stream position
        # before the batch and the last one it took: what a hook writes
        # commits with the events or not at all (federation queues this
        # server's PDUs for other servers here, so a crash cannot lose
        # them). What a hook returns is called once the commit is done.
        self.commit_hooks: list[CommitHook] = []
        self._committing: asyncio.Future | None = None  # see settled()

    def start(self) -> None:
        self._task = self._supervisor.spawn(TASK, self._run, self._fail_queued)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._fail_queued("The server is shutting down")

    def _fail_queued(self, reason: str = "The server could not commit writes; try again shortly") -> None:
        """Answers every write still queued with a 503 (nothing of it was
        committed): at shutdown, and when the commit task has failed (a
        client retrying with the same transaction id loses nothing)."""
        while not self._queue.empty():
            unit = self._queue.get_nowait()
            if not unit.future.done():
                unit.future.set_exception(unavailable(reason))

    def _require_running(self) -> None:
        if not self._supervisor.running(TASK):
            raise unavailable("The server could not commit writes; try again shortly")

    async def write(
        self,
        drafts: list[EventDraft],
        *,
        txn: tuple[str, str, str] | None = None,
        new_room: str | None = None,
        stub: bool = False,
    ) -> list[Any]:
        """Commits the drafts as one unit; returns their stored rows. With a
        transaction id already used, returns the row of the event it made."""
        self._require_running()
        unit = WriteUnit(list(drafts), txn, new_room, stub)
        await self._queue.put(unit)
        return await unit.future

    async def update(self, write: Callable[[Any], Awaitable[int | None]]) -> int | None:
        """Runs a non-event write under the stream lock; returns its position."""
        self._require_running()
        unit = WriteUnit([], update=write)
        await self._queue.put(unit)
        return await unit.future

    async def _run(self) -> None:
        while True:
            units = [await self._queue.get()]
            while len(units) < MAX_BATCH and not self._queue.empty():
                units.append(self._queue.get_nowait())
            try:
                await self._commit_batch(units)
            finally:
                # Unanswered only if this task is failing or cancelled: the
                # writers are told now rather than left waiting for ever.
                for unit in units:
                    if not unit.future.done():
                        unit.future.set_exception(unavailable("The server could not commit the write; try again"))

    async def _commit_batch(self, units: list[WriteUnit]) -> None:
        try:
            await self._commit(units)
        except Exception as exc:
            # Something other than a refusal broke the batch; commit each
            # unit alone so that one bad unit cannot fail the others.
            if isinstance(exc, UNREACHABLE):  # no bug: PostgreSQL is down or restarting
                log.warning("batch of %d failed (%s: %s); retrying one by one", len(units), type(exc).__name__, exc)
            else:
                log.exception("batch of %d failed; retrying one by one", len(units))
            for unit in units:
                try:
                    await self._commit([unit])
                except Exception as exc:
                    if not unit.future.done():
                        unit.future.set_exception(exc)

    async def _commit(self, units: list[WriteUnit]) -> None:
        outcomes: list[Any] = []
        started = time.monotonic()
        async with self._pool.acquire() as conn:
            await event_store.begin_locked(conn)
            try:
                batch = _Batch(conn, self._signer, self._judge)
                await batch.load(units)
                for unit in units:
                    try:
                        outcomes.append(await batch.apply(unit))
                    except MatrixError as refusal:
                        outcomes.append(refusal)
                await batch.flush()
                after_commit = (
                    [await hook(conn, batch.appended, batch.floor, batch.last_position) for hook in self.commit_hooks]
                    if batch.appended
                    else []
                )
                if batch.last_position > batch.last_event:
                    # Events announce themselves; a batch ending in other writes must too.
                    await event_store.announce(conn, batch.last_position)
                self._committing = asyncio.get_running_loop().create_future()
                await event_store.commit(conn)
                metrics.COMMIT_SECONDS.observe(time.monotonic() - started)
                metrics.BATCH_SIZE.observe(len(units))
                metrics.EVENTS_PERSISTED.inc(len(batch.appended))
            except BaseException:
                self._settle()
                if not conn.is_closed():
                    await event_store.rollback(conn)
                raise
        try:
            for unit, outcome in zip(units, outcomes, strict=True):
                if unit.future.done():
                    continue
                if isinstance(outcome, MatrixError):
                    unit.future.set_exception(outcome)
                else:
                    unit.future.set_result(outcome)
            if batch.last_position and self._on_commit is not None:
                # Hand the events over when they are all this batch did: no
                # other write took a position, and no redaction changed an
                # event after it was appended.
                whole = batch.floor is not None and batch.last_position == batch.last_event and not batch.redacted
                handed = [event_store.event_of(row) for row in batch.appended] if whole else None
                self._on_commit(batch.last_position, handed, batch.floor)
            for done in after_commit:
                try:
                    done()
                except Exception:  # committed already: one hook's bug must not stop the writer
                    log.exception("a commit hook failed after its commit")
        finally:
            self._settle()

    def _settle(self) -> None:
        committing, self._committing = self._committing, None
        if committing is not None:
            committing.set_result(None)

    async def settled(self) -> None:
        """Returns once no commit of this process lies between its COMMIT
        and the hand-over to on_commit. The commit's NOTIFY can arrive in
        that gap; a reader that waits here finds the events handed over."""
        if self._committing is not None:
            await asyncio.shield(self._committing)


class _Batch:
    """One transaction's view of the rooms it writes to: their heads and the
    state the batch has changed so far."""

    def __init__(self, conn: Database, signer: Signer, judge: Any = None) -> None:
        self.conn = conn
        self.signer = signer
        self.judge = judge
        # A draft's provisional event id -> the id its PDU got, for the
        # later drafts of its unit that cite it.
        self.renamed: dict[str, str] = {}
        # Ids of the PDU-carrying drafts of this batch, and of those stored before it.
        self.received: set[str] = set()
        # Per room, its joined member count and the members push rules must
        # judge one by one (see storage.events.batch_context).
        self.members: dict[str, tuple[int, list[Any]]] = {}
        self.heads: dict[str, _Head] = {}
        self.state: dict[str, StateMap] = {}  # state written by this batch
        self.loaded: dict[str, dict[tuple[str, str], Any]] = {}  # state read from the database (None: absent)
        self.txns: dict[tuple[str, str, str], Any] = {}
        self.last_position = 0  # the highest stream position this batch took
        self.last_event = 0  # the highest position an event of this batch took
        # Events appended but not yet written, and the state keys among them:
        # written together by flush(), before anything that must see them.
        self._pending: list[dict[str, Any]] = []
        self._pending_keys: set[tuple[str, str, str]] = set()
        self.appended: list[dict[str, Any]] = []  # every event written, in stream order
        self.redacted = False  # a redaction changed events as it was written
        # The highest stream position taken before this batch held the lock:
        # everything after it up to last_position is this batch's.
        self.floor: int | None = None

    async def load(self, units: list[WriteUnit]) -> None:
        """Reads, in one query, what the batch needs: its rooms' heads, the
        state that authorizes its drafts, and the events its retried
        transaction ids already made."""
        rooms = {d.room_id for u in units for d in u.drafts}
        wanted = {(d.room_id, *key) for u in units for d in u.drafts for key in _keys(d)}
        txn_keys = [unit.txn for unit in units if unit.txn is not None]
        if not rooms:
            return
        received = [d.event_id for u in units for d in u.drafts if d.pdu is not None]
        if received:
            # Which received events are stored already, asked once for the batch.
            self.received |= await event_store.existing_events(self.conn, received)
        named = self.judge.named([d.as_event() for u in units for d in u.drafts]) if self.judge else []
        for room_id in rooms:
            self.loaded[room_id] = {(key[1], key[2]): None for key in wanted if key[0] == room_id}
        for row in await event_store.batch_context(self.conn, list(rooms), list(wanted), txn_keys, named):
            data = row["data"]
            if row["kind"] == "joined":
                self.members[row["k1"]] = (data, self.members.get(row["k1"], (0, []))[1])
            elif row["kind"] == "member":
                self.members.setdefault(row["k1"], (0, []))[1].append({"user_id": row["k2"], **data})
            elif row["kind"] == "floor":
                self.floor = data
            elif row["kind"] == "head":
                self.heads[row["k1"]] = _Head(
                    data["head_event_id"],
                    data["head_depth"],
                    room_version(data["room_version"]) if data["pdus"] else None,
                    list(data["extremities"]),
                )
            elif row["kind"] == "state":
                self.loaded[row["k1"]][(row["k2"], row["k3"])] = data
            else:
                self.txns[(row["k1"], row["k2"], row["k3"])] = data

    async def _state(self, room_id: str, keys: list[tuple[str, str]], overlay: dict[str, StateMap]) -> StateMap:
        """The state entries named by ``keys``: what this batch has written
        (or the unit being checked has drafted) over what the database holds.
        Each entry is read from the database at most once per batch."""
        known = overlay.get(room_id, {})
        loaded = self.loaded.setdefault(room_id, {})
        missing = [k for k in keys if k not in known and k not in loaded]
        if missing:
            rows = await event_store.state_events(self.conn, room_id, missing) if room_id in self.heads else {}
            for key in missing:
                loaded[key] = rows[key]._asdict() if key in rows else None
        state = {}
        for key in keys:
            value = known[key] if key in known else loaded.get(key)
            if value is not None:
                state[key] = value
        return state

    def _forget_redacted(self, target: event_store.Event, pruned: dict[str, Any]) -> None:
        """Later events of this batch that replace a redacted state event
        must see its pruned content (their prev_content), as the database does."""
        if target.state_key is None:
            return
        key = (target.type, target.state_key)
        for known in (self.state.get(target.room_id, {}), self.loaded.get(target.room_id, {})):
            entry = known.get(key)
            if entry is not None and entry["event_id"] == target.event_id:
                known[key] = {**entry, "content": pruned}

    async def apply(self, unit: WriteUnit) -> Any:
        if unit.update is not None:
            await self.flush()  # positions stay in the order the units came
            position = await unit.update(self.conn)
            self.last_position = max(self.last_position, position or 0)
            return position
        if unit.txn is not None and unit.txn in self.txns:
            return [self.txns[unit.txn]]
        received = [d.event_id for d in unit.drafts if d.pdu is not None]
        if received:
            # An event another server sent twice at once (or fetched while it
            # was being sent) is stored once: the later copy is dropped here.
            unit.drafts = [d for d in unit.drafts if d.pdu is None or d.event_id not in self.received]
            self.received.update(received)
            if not unit.drafts:
                return []

        if unit.new_room is not None and (
            unit.drafts[0].room_id in self.heads or await event_store.room_exists(self.conn, unit.drafts[0].room_id)
        ):
            raise RoomIdTaken()

        # Check every draft first, against the state as the earlier drafts leave it.
        overlay = {room: dict(state) for room, state in self.state.items()}
        previous: list[Any] = []
        states: list[StateMap] = []
        for draft in unit.drafts:
            if draft.room_id not in self.heads and unit.new_room is None:
                raise not_found("Unknown room")
            event = draft.as_event()
            keys = _keys(draft)
            state = await self._state(draft.room_id, keys, overlay)
            redacted: dict[str, Any] | None = None
            if draft.redacts is not None:
                await self.flush()  # the target may be an event of this batch
                found = await event_store.get_event(self.conn, draft.redacts)
                if found is None or found.room_id != draft.room_id:
                    raise not_found("Unknown event")
                redacted = found._asdict()
            try:
                if not draft.by_server:
                    check(event, moderator_view(state, event) if draft.by_moderator else state, redacted_event=redacted)
                if draft.added_by is not None and not edits_members(state, draft.added_by):
                    raise AuthError(
                        f"this room does not let {draft.added_by} add members at once: an added user is invited"
                    )
            except AuthError as exc:
                raise forbidden(str(exc)) from None
            previous.append(state.get((draft.type, draft.state_key)) if draft.state_key is not None else None)
            states.append(state)
            if draft.state_key is not None:
                overlay.setdefault(draft.room_id, {})[(draft.type, draft.state_key)] = event

        # All allowed: append them.
        if unit.new_room is not None:
            first = unit.drafts[0]
            await event_store.insert_room(
                self.conn, room_id=first.room_id, room_version=unit.new_room, creator=first.sender, stub=unit.stub
            )
            self.heads[first.room_id] = _Head(None, 0, room_version(unit.new_room), [])
        rows = []
        now_ms = int(time.time() * 1000)
        for draft, prev, state in zip(unit.drafts, previous, states, strict=True):
            if draft.is_state and (draft.room_id, draft.type, draft.state_key) in self._pending_keys:
                await self.flush()
            head = self.heads[draft.room_id]
            unsigned = {}
            if prev is not None:
                unsigned = {
                    "prev_content": prev["content"],
                    "prev_sender": prev["sender"],
                    "replaces_state": self.renamed.get(prev["event_id"], prev["event_id"]),
                }
            row: dict[str, Any] = {
                "stream": None,
                "event_id": draft.event_id,
                "room_id": draft.room_id,
                "type": draft.type,
                "state_key": draft.state_key,
                "sender": draft.sender,
                "content": draft.content,
                "origin_server_ts": now_ms,
                "depth": head.depth + 1,
                "prev_events": [head.event_id] if head.event_id else [],
                "unsigned": unsigned,
                "redacts": draft.redacts,
                "redacted_by": None,
                "txn_device": unit.txn[1] if unit.txn else None,
                "txn_id": unit.txn[2] if unit.txn else None,
                "pdu": None,
                "outlier": draft.outlier,
            }
            if head.version is not None:
                self._make_pdu(draft, row, state, head, now_ms)
            if self.judge is not None and not draft.outlier:  # never a timeline event: nobody is notified
                row["push"] = await self.judge(self.conn, row, state, self.members.get(draft.room_id, (0, [])))
            self._pending.append(row)
            head.event_id, head.depth = row["event_id"], max(head.depth, row["depth"])
            if not draft.outlier:
                cited = set(row["prev_events"])
                head.extremities = [e for e in head.extremities if e not in cited] + [row["event_id"]]
            row["extremities"] = list(head.extremities)
            row["not_current"] = draft.not_current
            if draft.state_key is not None and not draft.not_current:
                self._pending_keys.add((draft.room_id, draft.type, draft.state_key))
                self.state.setdefault(draft.room_id, {})[(draft.type, draft.state_key)] = row
            if draft.redacts is not None:
                await self.flush()
                self.redacted = True
                target = await event_store.get_event(self.conn, draft.redacts)
                assert target is not None, "checked before appending"
                if target.redacted_by is None:
                    because = client_event(event_store.event_of(row), now_ms=now_ms)
                    del because["unsigned"]
                    pruned = pruned_content(
                        target.type, target.content, *((head.version,) if head.version is not None else ())
                    )
                    await event_store.redact(self.conn, draft.redacts, pruned, because)
                    self._forget_redacted(target, pruned)
            rows.append(row)
        if unit.txn is not None:
            self.txns[unit.txn] = rows[0]
        return rows

    def _make_pdu(self, draft: EventDraft, row: dict[str, Any], state: StateMap, head: _Head, now_ms: int) -> None:
        """Makes the row's event a PDU: this server's signed one, citing the
        room's forward extremities and the state that authorized it, or the
        one the draft carries; the row takes its id, time, depth and place."""
        version = head.version
        assert version is not None, "only rooms whose events are PDUs"
        pdu = draft.pdu
        if pdu is None:
            auth_ids = [
                self.renamed.get(state[key]["event_id"], state[key]["event_id"])
                for key in auth_event_keys(draft.as_event(), version)
                if state.get(key) is not None
            ]
            prev_events = head.extremities[-MAX_PREV_EVENTS:] if head.extremities else row["prev_events"]
            unsigned_pdu = build_pdu(
                room_id=draft.room_id,
                sender=draft.sender,
                event_type=draft.type,
                content=draft.content,
                state_key=draft.state_key,
                redacts=draft.redacts,
                origin_server_ts=now_ms,
                depth=row["depth"],
                prev_events=prev_events,
                auth_events=auth_ids,
                version=version,
            )
            event_id, pdu = finish_pdu(unsigned_pdu, self.signer.server_name, self.signer.key, version)
        else:
            event_id = draft.event_id
        self.renamed[draft.event_id] = event_id
        row.update(
            event_id=event_id,
            content=pdu["content"],
            origin_server_ts=pdu["origin_server_ts"],
            depth=pdu["depth"],
            prev_events=list(pdu["prev_events"]),
            pdu={k: v for k, v in pdu.items() if k != "unsigned"},
        )

    async def flush(self) -> None:
        """Appends the events gathered since the last flush, in one statement.
        Their rows (already handed out) get their stream positions here."""
        if not self._pending:
            return
        for row, stream in zip(self._pending, await event_store.append_events(self.conn, self._pending), strict=True):
            row["stream"] = stream
        self.appended.extend(self._pending)
        self.last_position = max(self.last_position, stream)
        self.last_event = max(self.last_event, stream)
        self._pending = []
        self._pending_keys = set()


def _keys(draft: EventDraft) -> list[tuple[str, str]]:
    """The state a draft's authorization reads, and for state the entry it replaces."""
    own = [(draft.type, draft.state_key)] if draft.state_key is not None else []
    return list(dict.fromkeys(auth_state_keys(draft.as_event()) + own))
