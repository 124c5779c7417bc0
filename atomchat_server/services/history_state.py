"""The second half of judging a backfill answer: each event against the
state before it, as a live PDU is judged (the first half,
FederationEvents.check_history, judged each on its own auth events).

The answer is walked oldest first (by depth, each event after the prev
events it cites), the state after each event worked out in memory: the
state before an event is the state after its prev events (resolved by
state resolution when they differ). For an event citing a prev event not
judged in the answer (the answer's oldest; one after an event dropped)
the state before it is asked of the answering server (GET state_ids): the
history held here may not reach back far enough to make it. The
events of that state this server lacks are fetched (GET event, or GET
state when many) and checked as every fetched event is (format,
signature, hash, the rules on their own auth events; one failing is left
out of the state). They serve this judgement only: none is stored.

An event the rules reject against the state before it is rejected as
check_history's rejects are; the state after it is the state before it,
so the events after it are judged without it. Outliers held (taken in on
joining the room) were judged then: they change the state, unjudged.
When the state cannot be had (the server fails or times out), the answer
is not taken: UnknownState is raised, and the fill asks another server.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from ..events.auth import AuthError, check
from ..events.pdu import as_event
from ..events.pdu_checks import with_auth_events
from ..events.room_versions import RoomVersion
from ..storage import backfill as backfill_store
from ..storage import pdus as pdu_store
from .federation_events import (
    MAX_ROOM_EVENTS,
    FederationEvents,
    RemoteCalls,
    StateMap,
    resolve_states,
)

log = logging.getLogger(__name__)

# Up to how many events a state lacks are fetched one by one (GET event);
# beyond, the whole state is asked for at once (GET state).
MAX_EVENT_FETCHES = 10

Accepted = dict[str, tuple[dict[str, Any], dict[str, Any]]]  # event id -> (PDU kept, event)
Rejected = list[tuple[str, str, dict[str, Any]]]  # (event id, why, PDU)


class UnknownState(Exception):
    """The state before an event of the answer could not be had from the
    server that gave it: the answer is not taken."""


class HistoryState:
    def __init__(self, *, pool: asyncpg.Pool, client: RemoteCalls, events: FederationEvents, timeout: float) -> None:
        self._pool = pool
        self._client = client
        self._events = events
        self._timeout = timeout  # for each request to the answering server

    async def judge(
        self, origin: str, room_id: str, version: RoomVersion, accepted: Accepted, rejected: Rejected
    ) -> tuple[Accepted, Rejected]:
        """``check_history``'s accepted and rejected, with those of the
        accepted that fail against the state before them moved to the
        rejected. Raises UnknownState."""
        walk = _Walk(self, self._pool, origin, room_id, version, accepted, rejected)
        await walk.load()
        for event_id in _oldest_first(walk.events):
            await walk.step(event_id)
        return walk.accepted, walk.rejected

    async def remote_state(
        self, origin: str, room_id: str, version: RoomVersion, event_id: str, walk: _Walk
    ) -> StateMap:
        """The state before the event as ``origin`` gives it (GET state_ids),
        its events taken from the answer, from those held, or fetched."""
        answer = await self._ask(origin, f"/_matrix/federation/v1/state_ids/{room_id}", {"event_id": event_id})
        state_ids = _id_list(answer, "pdu_ids")
        wanted = set(state_ids) | set(_id_list(answer, "auth_chain_ids"))
        known = {i: e for i, e in walk.events.items() if i in wanted and i not in walk.rejected_ids}
        held = await pdu_store.pdus(self._pool, room_id, list(wanted - known.keys()))
        known.update({row.event_id: as_event(row.pdu, row.event_id, version) for row in held})
        refused = {row.event_id for row in await pdu_store.refused(self._pool, room_id, list(wanted - known.keys()))}
        missing = sorted(wanted - known.keys() - refused - walk.rejected_ids)
        if missing:
            fetched = await self._fetch(origin, room_id, event_id, missing)
            checked = await self._events.checked_fetched(origin, room_id, version, fetched, known, walk.create)
            known.update({i: e for i, e in checked.items() if e.get("room_id") == room_id})
        return {(e["type"], e["state_key"]): e for i in state_ids if "state_key" in (e := known.get(i, {}))}

    async def _fetch(self, origin: str, room_id: str, event_id: str, missing: Sequence[str]) -> list[Any]:
        """The PDUs of the missing events as ``origin`` gives them."""
        if len(missing) > MAX_EVENT_FETCHES:
            answer = await self._ask(origin, f"/_matrix/federation/v1/state/{room_id}", {"event_id": event_id})
            return [*_pdu_list(answer, "pdus"), *_pdu_list(answer, "auth_chain")]
        pdus: list[Any] = []
        for missing_id in missing:
            pdus += _pdu_list(await self._ask(origin, f"/_matrix/federation/v1/event/{missing_id}", None), "pdus")[:1]
        return pdus

    async def _ask(self, origin: str, path: str, query: Mapping[str, str] | None) -> Mapping[str, Any]:
        try:
            answer = await self._client.request(origin, "GET", path, query=query, timeout=self._timeout)
        except Exception as exc:  # noqa: BLE001 - the answer is then not taken
            raise UnknownState(f"{path} from {origin} failed: {exc}") from exc
        if not isinstance(answer, Mapping):
            raise UnknownState(f"{path} from {origin} answered no object")
        return answer


class _Walk:
    """One answer being judged: its events, the state after each judged."""

    def __init__(
        self,
        judge: HistoryState,
        pool: asyncpg.Pool,
        origin: str,
        room_id: str,
        version: RoomVersion,
        accepted: Accepted,
        rejected: Rejected,
    ) -> None:
        self.judge, self.pool, self.origin, self.room_id, self.version = judge, pool, origin, room_id, version
        self.accepted, self.rejected = dict(accepted), list(rejected)
        self.rejected_ids = {event_id for event_id, _, _ in rejected}
        # Every event of the answer judged so far, the rejected included (their prev events carry the state on).
        self.events = {i: e for i, (_, e) in accepted.items()}
        self.events.update({i: as_event(pdu, i, version) for i, _, pdu in rejected})
        self.after: dict[str, StateMap] = {}
        self.outliers: set[str] = set()
        self.auth: dict[str, dict[str, Any]] = {}
        self.create: dict[str, Any] | None = None

    async def load(self) -> None:
        """Reads what the walk needs of this server: the auth events held,
        which of the answer's events it holds as outliers."""
        pool, room_id, version = self.pool, self.room_id, self.version
        cited = {a for e in self.events.values() for a in e["auth_events"]} - self.events.keys()
        if version.room_id_is_create_event_id:
            cited.add("$" + room_id[1:])
        rows = await pdu_store.pdus(pool, room_id, list(cited))
        self.auth = {r.event_id: as_event(r.pdu, r.event_id, version) for r in rows}
        self.outliers = await backfill_store.outliers(pool, room_id, list(self.events))
        if version.room_id_is_create_event_id:
            self.create = self.auth.get("$" + room_id[1:]) or self.events.get("$" + room_id[1:])

    async def step(self, event_id: str) -> None:
        """Judges one event against the state before it (the accepted not
        held already) and notes the state after it."""
        event = self.events[event_id]
        before = await self._before(event)
        if event_id in self.rejected_ids:
            self.after[event_id] = before
            return
        if event_id not in self.outliers:
            auth = [e for a in event["auth_events"] if (e := self.events.get(a) or self.auth.get(a)) is not None]
            state = with_auth_events(before, auth)
            try:
                rejected_auth = next((a for a in event["auth_events"] if a in self.rejected_ids), None)
                if rejected_auth is not None:
                    raise AuthError(f"its auth event {rejected_auth} was rejected")
                check(event, state, received=True)
            except AuthError as exc:
                log.info("rejected backfilled event %s from %s by the state before it: %s", event_id, self.origin, exc)
                self.rejected.append((event_id, str(exc), self.accepted.pop(event_id)[0]))
                self.rejected_ids.add(event_id)
                self.after[event_id] = state
                return
            before = state
        if "state_key" in event:
            before = {**before, (event["type"], event["state_key"]): event}
        self.after[event_id] = before  # states are never changed once made: shared, not copied

    async def _before(self, event: Mapping[str, Any]) -> StateMap:
        """The state before the event: after its prev events, known when
        they were judged in the answer, else asked of the answering server."""
        if event["type"] == "m.room.create":
            return {}
        states: list[StateMap] = []
        for prev in event["prev_events"]:
            if prev in self.after:
                states.append(self.after[prev])
            else:
                return await self.judge.remote_state(self.origin, self.room_id, self.version, event["event_id"], self)
        return await resolve_states(self.pool, self.room_id, self.version, states, self.events)


def _oldest_first(events: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The events' ids by depth, each after the events it cites as prev events."""
    order: list[str] = []
    opened: set[str] = set()  # a cycle (a forged answer) is broken where it is met again
    for root in sorted(events, key=lambda i: (events[i]["depth"], i)):
        stack = [(root, False)]
        while stack:
            event_id, ready = stack.pop()
            if ready:
                order.append(event_id)
            elif event_id not in opened:
                opened.add(event_id)
                stack.append((event_id, True))
                stack.extend((p, False) for p in events[event_id]["prev_events"] if p in events and p not in opened)
    return order


def _id_list(answer: Mapping[str, Any], name: str) -> list[str]:
    ids = answer.get(name)
    if not isinstance(ids, list):
        raise UnknownState(f"the answer has no list {name}")
    return [i for i in ids[:MAX_ROOM_EVENTS] if isinstance(i, str)]


def _pdu_list(answer: Mapping[str, Any], name: str) -> list[Any]:
    pdus = answer.get(name)
    return pdus[:MAX_ROOM_EVENTS] if isinstance(pdus, list) else []
