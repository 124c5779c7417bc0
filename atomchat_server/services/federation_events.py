"""Events other servers send into rooms this server is in.

``receive_pdus`` takes the PDUs of a transaction (or of a join, a fetch of
missing events...) room by room. Each PDU is checked on its own in the
order the server-server API gives: its format, its origin server's
signature (the keys the batch needs asked of the KeyRing once each), its
content hash (a mismatch keeps it redacted). Prev events and auth events
the batch cites and this server lacks are fetched from the origin first
(``get_missing_events``, ``event_auth``; bounded). Then, in depth order and
in memory, each is authorized against its own auth_events and against the
state before it (the state after its prev events: those of the batch are
known without a query; resolved by state resolution when they differ).

The accepted events of a room are committed together: each its own unit,
queued at once, so the Persister's group commit writes them in one
transaction and notifies once, while checking each against the room's
current state — an event failing there is soft-failed (acknowledged, kept
apart, never shown). Events the rules reject are kept apart too
(storage.pdus.keep_refused), so the same event sent again is answered
without being judged again, and events citing them are judged as the
specification says. So sync and the stream deliver remote events with no
change.

What this does not do yet: keep the state at every event (the state after
an event of the timeline is read in stream order, exact while this
server's stream follows the room's graph).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
from signedjson.types import VerifyKey

from ..errors import MatrixError
from ..events import state_res
from ..events.auth import AuthError, check
from ..events.drafts import EventDraft
from ..events.pdu import as_event, redacts_of
from ..events.pdu_checks import (
    PduError,
    auth_state,
    check_against_auth_events,
    check_format,
    check_signatures,
    required_signers,
    signature_key_ids,
    with_checked_hash,
)
from ..events.room_versions import V10, RoomVersion, room_version
from ..events.signing import event_id as reference_event_id
from ..storage import backfill as backfill_store
from ..storage import pdus as pdu_store
from .persister import Persister

StateMap = dict[tuple[str, str], dict[str, Any]]

log = logging.getLogger(__name__)

# How many missing prev_events one get_missing_events request asks for, and
# how many one batch may have fetched in all (asked again from the oldest
# fetched while the gap is not closed).
MAX_MISSING = 20
MAX_GAP = 100
# For how many events of a batch missing auth events are asked for.
MAX_AUTH_FETCHES = 5
# How far back through refused prev events the state before an event is worked out.
MAX_REFUSED_HOPS = 10
# How many events of a joined room's state and auth chain are taken in.
MAX_ROOM_EVENTS = 20000


class KeySource(Protocol):
    """The part of federation.keyring.KeyRing this service uses."""

    async def verify_key(self, server_name: str, key_id: str, *, at_ms: int | None = None) -> VerifyKey: ...


class RemoteCalls(Protocol):
    """The part of federation.client.FederationClient this service uses."""

    async def request(
        self, destination: str, method: str, path: str, *, query: Any = None, body: Any = None, timeout: float = 30.0
    ) -> Any: ...


class SenderPolicy(Protocol):
    """The part of moderation.Blocks this service uses: who the policy room blocks."""

    def of(self, user_id: str) -> str | None: ...

    def server_banned(self, server: str) -> bool: ...


@dataclass
class _Judging:
    """One room's share of a transaction while it is judged: the events it
    cites that this server has, and the state after each event judged so
    far (those of the batch, and those looked up), so that a chain of
    events costs one lookup rather than one per event."""

    room_id: str
    version: RoomVersion
    known: dict[str, dict[str, Any]] = field(default_factory=dict)  # timeline and soft-failed events
    rejected: set[str] = field(default_factory=set)
    after: dict[str, StateMap] = field(default_factory=dict)
    pending: list[EventDraft] = field(default_factory=list)  # accepted, not yet committed
    soft_failed: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (id, why, PDU)


class FederationEvents:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        persister: Persister,
        keyring: KeySource,
        client: RemoteCalls | None = None,
        policy: SenderPolicy | None = None,
    ) -> None:
        self._pool = pool
        self._persister = persister
        self._keyring = keyring
        self._client = client
        self._policy = policy  # m.policy.rule.user / m.policy.rule.server: their events are refused

    async def receive_pdus(
        self, origin: str, pdus: Sequence[Any], *, fetch_prevs: bool = True
    ) -> dict[str, dict[str, Any]]:
        """event id -> {} (accepted, or soft-failed) or {"error": why}, as /send answers.
        ``fetch_prevs`` off for events that were themselves fetched as missing
        prev events, so that one transaction asks for the gap once."""
        results: dict[str, dict[str, Any]] = {}
        by_room: dict[str | None, list[Any]] = {}
        for pdu in pdus:
            room_id = pdu.get("room_id") if isinstance(pdu, Mapping) else None
            by_room.setdefault(room_id if isinstance(room_id, str) else None, []).append(pdu)
        for room_id, group in by_room.items():
            room = await pdu_store.pdu_room(self._pool, room_id) if room_id is not None else None
            if room is None or room_id is None:
                results.update({_best_effort_id(pdu): {"error": f"room {room_id!r} is unknown here"} for pdu in group})
                continue
            version = room_version(room.room_version)
            results.update(await self._receive_room(origin, _Judging(room_id, version), group, fetch_prevs))
        return results

    async def _receive_room(
        self, origin: str, judging: _Judging, pdus: list[Any], fetch_prevs: bool
    ) -> dict[str, dict[str, Any]]:
        """The PDUs of one room: checked each on its own (format, policy,
        signature, hash) with the keys fetched once, then judged in depth
        order in memory, the accepted committed together."""
        version = judging.version
        results: dict[str, dict[str, Any]] = {}
        parsed: list[tuple[str, Any]] = []
        for pdu in pdus:
            try:
                check_format(pdu, version)
            except PduError as exc:
                results[_best_effort_id(pdu, version)] = {"error": str(exc)}
                continue
            parsed.append((reference_event_id(pdu, version), pdu))
        seen = await pdu_store.seen_events(self._pool, [event_id for event_id, _ in parsed])
        keys = await self._keys([pdu for event_id, pdu in parsed if event_id not in seen])
        checked: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}  # event id -> (PDU kept, event)
        for event_id, pdu in parsed:
            if event_id in seen:
                status, reason = seen[event_id]
                results[event_id] = {"error": f"rejected earlier: {reason}"} if status == "rejected" else {}
                continue
            try:
                if pdu["type"] == "m.room.create":
                    raise PduError("a room's create event cannot be sent into it")
                self._check_policy(pdu["sender"])
                check_signatures(pdu, version, keys)
            except PduError as exc:
                log.info("refused event %s from %s: %s", event_id, origin, exc)
                results[event_id] = {"error": str(exc)}
                continue
            kept, redacted = with_checked_hash(pdu, version)
            if redacted:
                log.info("event %s from %s has a wrong content hash: kept redacted", event_id, origin)
            checked[event_id] = (kept, as_event(kept, event_id, version))
        if not checked:
            return results
        events = sorted((event for _, event in checked.values()), key=lambda e: e["depth"])
        if fetch_prevs:
            await self._fetch_missing_prevs(origin, judging, events)
        await self._fetch_missing_auth(origin, judging, events)
        await self._load_cited(judging, events)
        rejected: list[tuple[str, str, dict[str, Any]]] = []
        for event in events:
            event_id = event["event_id"]
            error = await self._judge(judging, event, checked[event_id][0])
            results[event_id] = {} if error is None else {"error": str(error)}
            if isinstance(error, AuthError):
                # Kept apart; an event that cites unknown events is dropped instead,
                # so that it is judged anew once they are known.
                log.info("rejected event %s from %s: %s", event_id, origin, error)
                rejected.append((event_id, str(error), checked[event_id][0]))
                judging.rejected.add(event_id)
            elif error is not None:
                log.info("refused event %s from %s: %s", event_id, origin, error)
        await self._commit(judging)
        now_ms = int(time.time() * 1000)
        for status, refused in (("rejected", rejected), ("soft_failed", judging.soft_failed)):
            if refused:
                await pdu_store.keep_refused(self._pool, judging.room_id, status, refused, now_ms)
        return results

    async def _judge(
        self, judging: _Judging, event: dict[str, Any], kept: dict[str, Any]
    ) -> PduError | AuthError | None:
        """Why the event is refused (an AuthError: rejected by the rules), or
        None when it is accepted (added to ``judging.pending``, committed later)."""
        version, room_id = judging.version, judging.room_id
        if "state_key" in event or len(set(event["prev_events"]) - judging.rejected) > 1:
            # What follows reads the room from the database: it must hold what was accepted so far.
            await self._commit(judging)
        auth = []
        try:
            for auth_id in event["auth_events"]:
                if auth_id in judging.rejected:
                    raise AuthError(f"its auth event {auth_id} was rejected")
                if auth_id not in judging.known:
                    raise PduError(f"auth events unknown here: {auth_id}")
                auth.append(judging.known[auth_id])
            create = judging.known.get("$" + room_id[1:]) if version.room_id_is_create_event_id else None
            check_against_auth_events(event, auth, version, create)
        except AuthError as exc:
            # The state after a rejected event is the state before it.
            judging.after[event["event_id"]] = await self._state_before(judging, event["prev_events"], auth)
            return exc
        except PduError as exc:
            return exc  # not judged: to events after it, as if this server did not have it
        # Keys the state before lacks (events of a gap this server could not
        # fetch) are taken from the event's own auth events, which passed
        # their checks; an entry it has is never replaced by an older one.
        state = {
            **{key: dict(e) for key, e in auth_state(auth).items()},
            **await self._state_before(judging, event["prev_events"], auth),
        }
        try:
            check(event, state, received=True)
        except AuthError as exc:
            judging.after[event["event_id"]] = state
            return exc
        after = dict(state)
        if "state_key" in event:
            after[(event["type"], event["state_key"])] = event
        judging.after[event["event_id"]] = after
        judging.known[event["event_id"]] = event
        not_current = "state_key" in event and not await self._becomes_current(room_id, event, state, version)
        judging.pending.append(
            EventDraft(
                room_id=room_id,
                sender=event["sender"],
                type=event["type"],
                content=event["content"],
                state_key=event.get("state_key"),
                redacts=redacts_of(kept, version),
                event_id=event["event_id"],
                pdu=kept,
                not_current=not_current,
            )
        )
        return None

    async def _commit(self, judging: _Judging) -> None:
        """Commits the accepted events, each a unit of its own queued at
        once, so the persister commits them in one transaction and notifies
        once, while checking each against the room's current state: those
        it refuses are soft-failed (acknowledged, kept apart, never shown)."""
        pending, judging.pending = judging.pending, []
        if not pending:
            return
        outcomes = await asyncio.gather(*(self._persister.write([draft]) for draft in pending), return_exceptions=True)
        for draft, outcome in zip(pending, outcomes, strict=True):
            if isinstance(outcome, MatrixError) and outcome.status in (403, 404):
                log.info("soft-failed event %s: %s", draft.event_id, outcome.error)
                assert draft.pdu is not None, "received events carry their PDU"
                judging.soft_failed.append((draft.event_id, outcome.error, draft.pdu))
            elif isinstance(outcome, BaseException):
                raise outcome

    async def _load_cited(self, judging: _Judging, events: Sequence[Mapping[str, Any]]) -> None:
        """Reads, in two queries, the events the batch cites that this server
        has: its auth events and prev events (and from version 12 the create
        event), from the timeline or among the refused."""
        room_id, version = judging.room_id, judging.version
        cited = {i for e in events for i in (*e["auth_events"], *e["prev_events"])}
        if version.room_id_is_create_event_id:
            cited.add("$" + room_id[1:])
        cited -= judging.known.keys() | judging.rejected
        for row in await pdu_store.pdus(self._pool, room_id, list(cited)):
            judging.known[row.event_id] = as_event(row.pdu, row.event_id, version)
        for refused in await pdu_store.refused(self._pool, room_id, list(cited)):
            if refused.status == "rejected":
                judging.rejected.add(refused.event_id)
            else:
                judging.known[refused.event_id] = as_event(refused.pdu, refused.event_id, version)

    def _check_policy(self, sender: str) -> None:
        """Refuses the events of a user or a server the policy room blocks."""
        if self._policy is None:
            return
        _, _, server = sender.partition(":")
        if self._policy.server_banned(server):
            raise PduError(f"the server {server} is banned on this server")
        if self._policy.of(sender) is not None:
            raise PduError(f"the user {sender} is blocked on this server")

    async def take_room(
        self,
        origin: str,
        room_id: str,
        version: RoomVersion,
        state: Any,
        auth_chain: Any,
        join: Mapping[str, Any],
        join_id: str,
    ) -> None:
        """Takes in a room this server joins through ``origin``: the state
        before the join and its auth chain (send_join's answer), each event
        checked (format, signature, hash, authorization against its own auth
        events), then the join, checked against that state. Raises
        ValueError when the answer does not make a room."""
        if not isinstance(state, list) or not isinstance(auth_chain, list):
            raise ValueError("send_join answered no state or auth chain")
        state_ids: set[str] = set()
        for pdu in state[:MAX_ROOM_EVENTS]:
            with contextlib.suppress(PduError):
                check_format(pdu, version)
                state_ids.add(reference_event_id(pdu, version))
        pdus = await self._checked_pdus(origin, room_id, version, (auth_chain + state)[:MAX_ROOM_EVENTS])
        create_id = "$" + room_id[1:] if version.room_id_is_create_event_id else None
        creates = [e for _, e in pdus.values() if e["type"] == "m.room.create"]
        if len(creates) != 1 or (create_id is not None and creates[0]["event_id"] != create_id):
            raise ValueError("the room's create event is missing or is not the one its id names")
        accepted = self._authorized(origin, room_id, version, pdus, {}, creates[0])
        current = {(e["type"], e["state_key"]): e for e in accepted.values() if e["event_id"] in state_ids}
        joined = as_event(join, join_id, version)
        try:
            check(joined, current)
        except AuthError as exc:
            raise ValueError(f"the join does not follow the room's state: {exc}") from None
        already = await pdu_store.known_events(self._pool, list(accepted))
        # The state last, so each key ends at its current event.
        order = sorted(
            (e for e in accepted.values() if e["event_id"] not in already),
            key=lambda e: (e["event_id"] in state_ids, e["depth"], e["event_id"]),
        )
        drafts = [
            EventDraft(
                room_id=room_id,
                sender=e["sender"],
                type=e["type"],
                content=e["content"],
                state_key=e.get("state_key"),
                event_id=e["event_id"],
                pdu=pdus[e["event_id"]][0],
                by_server=True,
                outlier=True,
            )
            for e in order
        ]
        drafts.append(
            EventDraft(
                room_id=room_id,
                sender=joined["sender"],
                type="m.room.member",
                content=joined["content"],
                state_key=joined["state_key"],
                event_id=join_id,
                pdu=dict(join),
            )
        )
        stub = await pdu_store.stub_room(self._pool, room_id)
        await self._persister.write(drafts, new_room=None if stub else version.identifier)
        if stub:
            await pdu_store.unstub(self._pool, room_id)

    async def check_history(
        self, origin: str, room_id: str, version: RoomVersion, given: Sequence[Any]
    ) -> tuple[dict[str, tuple[dict[str, Any], dict[str, Any]]], list[tuple[str, str, dict[str, Any]]]]:
        """Judges PDUs of a room's past (a backfill answer) as received PDUs
        are judged on their own: format (without the limits on references),
        policy, signature, content hash (redacted on a mismatch), then the
        rules on their own auth events, found in the answer or here. Returns
        the accepted (event id -> (PDU kept, event)) and the rejected ((event
        id, why, PDU)), to be kept apart. An event whose auth events are
        unknown here, or that fails a check before the rules, is dropped
        (not judged: a later answer may bring what it lacks). An outlier
        held here is accepted as it is, to be placed in the history."""
        policed = []
        for pdu in given:
            try:
                if isinstance(pdu, Mapping) and isinstance(pdu.get("sender"), str):
                    self._check_policy(pdu["sender"])
                policed.append(pdu)
            except PduError as exc:
                log.info("dropped an event %s sent for %s: %s", origin, room_id, exc)
        checked = await self._checked_pdus(origin, room_id, version, policed, limit_references=False)
        if version.room_id_is_create_event_id:
            # A create event carries no room id: it is this room's only if its id names the room.
            create_id = "$" + room_id[1:]
            checked = {i: p for i, p in checked.items() if "room_id" in p[0] or i == create_id}
        seen = await pdu_store.seen_events(self._pool, list(checked))
        fresh = {event_id: pair for event_id, pair in checked.items() if event_id not in seen}
        cited = {a for _, e in fresh.values() for a in e["auth_events"]} - fresh.keys()
        if version.room_id_is_create_event_id:
            cited.add("$" + room_id[1:])
        known = {
            row.event_id: as_event(row.pdu, row.event_id, version)
            for row in await pdu_store.pdus(self._pool, room_id, list(cited))
        }
        refused = {row.event_id for row in await pdu_store.refused(self._pool, room_id, list(cited))}
        create = known.get("$" + room_id[1:]) if version.room_id_is_create_event_id else None
        accepted: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        rejected: list[tuple[str, str, dict[str, Any]]] = []
        rejected_ids = {i for i, status in seen.items() if status[0] == "rejected"} | refused
        # Oldest first, so a chain within the answer is judged from its root.
        for event_id, (kept, event) in sorted(fresh.items(), key=lambda p: (p[1][1]["depth"], p[0])):
            auth: list[Mapping[str, Any]] = []
            try:
                for auth_id in event["auth_events"]:
                    if auth_id in rejected_ids:
                        raise AuthError(f"its auth event {auth_id} was rejected")
                    found = accepted[auth_id][1] if auth_id in accepted else known.get(auth_id)
                    if found is None:
                        raise PduError(f"auth event unknown here: {auth_id}")
                    auth.append(found)
                check_against_auth_events(event, auth, version, create)
            except AuthError as exc:
                log.info("rejected backfilled event %s from %s: %s", event_id, origin, exc)
                rejected.append((event_id, str(exc), kept))
                rejected_ids.add(event_id)
                continue
            except PduError as exc:
                log.info("dropped backfilled event %s from %s: %s", event_id, origin, exc)
                continue
            accepted[event_id] = (kept, event)
        # Outliers held here (taken in on joining the room) were judged then:
        # accepted as they are, to take their place in the room's history.
        held = await backfill_store.outliers(self._pool, room_id, [i for i in checked if i in seen])
        accepted.update({event_id: checked[event_id] for event_id in held})
        return accepted, rejected

    async def _checked_pdus(
        self, origin: str, room_id: str, version: RoomVersion, given: Sequence[Any], *, limit_references: bool = True
    ) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
        """event id -> (PDU kept, event) of the given PDUs that pass the
        format, signature and hash checks (redacted on a wrong hash); the
        others are dropped."""
        keys = await self._keys([pdu for pdu in given if isinstance(pdu, Mapping)])
        checked: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        for pdu in given:
            try:
                check_format(pdu, version, limit_references=limit_references)
                event_id = reference_event_id(pdu, version)
                if event_id in checked:
                    continue
                check_signatures(pdu, version, keys)
            except PduError as exc:
                log.info("dropped an event %s sent for %s: %s", origin, room_id, exc)
                continue
            kept, _ = with_checked_hash(pdu, version)
            checked[event_id] = (kept, as_event(kept, event_id, version))
        return checked

    @staticmethod
    def _authorized(
        origin: str,
        room_id: str,
        version: RoomVersion,
        pdus: Mapping[str, tuple[dict[str, Any], dict[str, Any]]],
        known: Mapping[str, dict[str, Any]],
        create: Mapping[str, Any] | None,
    ) -> dict[str, dict[str, Any]]:
        """The events (of ``pdus``) that pass the rules on their own auth
        events, found among the accepted or ``known``; oldest first, so a
        chain is judged from its root. The refused are dropped."""
        accepted: dict[str, dict[str, Any]] = {}
        for _, event in sorted(pdus.values(), key=lambda p: (p[1]["depth"], p[1]["event_id"])):
            auth = [accepted.get(a) or known.get(a) for a in event["auth_events"]]
            try:
                if any(a is None for a in auth):
                    raise AuthError("an auth event is missing or was refused")
                check_against_auth_events(event, [a for a in auth if a is not None], version, create)
            except AuthError as exc:
                log.info("dropped event %s sent by %s for %s: %s", event["event_id"], origin, room_id, exc)
                continue
            accepted[event["event_id"]] = event
        return accepted

    async def _becomes_current(
        self,
        room_id: str,
        event: Mapping[str, Any],
        state: Mapping[tuple[str, str], Mapping[str, Any]],
        version: RoomVersion,
    ) -> bool:
        """Whether a received state event takes its place in the room's
        current state: yes when it follows the current entry of its key;
        when that entry is on another branch, as state resolution of the
        current state and the state after the event decides (so every
        server of the room ends with the same state)."""
        key = (event["type"], event["state_key"])
        current = await pdu_store.current_state_ids(self._pool, room_id)
        if current.get(key) is None or await pdu_store.is_ancestor(
            self._pool, room_id, current[key], event["prev_events"]
        ):
            return True
        after = {k: str(v["event_id"]) for k, v in state.items()}
        after[key] = event["event_id"]
        ids = set(current.values()) | set(after.values())
        chain = await pdu_store.auth_chain(self._pool, room_id, list(ids))
        events = {row.event_id: as_event(row.pdu, row.event_id, version) for row in chain}
        events[event["event_id"]] = dict(event)
        resolved = state_res.resolve([current, after], events, version)
        return resolved.get(key) == event["event_id"]

    async def check_signed(self, pdu: Mapping[str, Any], version: RoomVersion) -> None:
        """Raise PduError unless the servers that must have signed the PDU did."""
        check_signatures(pdu, version, await self._keys([pdu]))

    async def _keys(self, pdus: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], VerifyKey]:
        """The verify keys the PDUs' signatures need, each asked of the key
        ring once however many PDUs carry it; an unknown key is left out
        (the PDUs it signed then carry no signature known here)."""
        wanted = {
            (server, key_id)
            for pdu in pdus
            if isinstance(pdu.get("sender"), str)
            for server in required_signers(pdu)
            for key_id in signature_key_ids(pdu, server)
        }
        keys: dict[tuple[str, str], VerifyKey] = {}
        for server, key_id in sorted(wanted):
            try:
                keys[(server, key_id)] = await self._keyring.verify_key(server, key_id)
            except Exception as exc:  # noqa: BLE001 - an unknown key is a missing signature
                log.info("no key %s of %s: %s", key_id, server, exc)
        return keys

    async def _fetch_missing_prevs(self, origin: str, judging: _Judging, events: Sequence[Mapping[str, Any]]) -> None:
        """Asks the origin with get_missing_events for the prev events of the
        batch this server lacks (none older than the room's forward
        extremities here), MAX_MISSING at a time, asking again from the
        oldest fetched while the gap is open, up to MAX_GAP in all; then
        takes them in, oldest first, before the batch."""
        room_id = judging.room_id
        if self._client is None:
            return
        gap: dict[str, Mapping[str, Any]] = {}  # event id -> PDU, of the fetched
        citing: Sequence[Mapping[str, Any]] = events
        known = {e["event_id"] for e in events}
        min_depth: int | None = None
        earliest: list[str] = []
        while len(gap) < MAX_GAP:
            cited = {p for e in citing for p in e["prev_events"]} - known
            missing = cited - (await pdu_store.seen_events(self._pool, list(cited))).keys()
            if not missing:
                break
            if min_depth is None:
                room = await pdu_store.pdu_room(self._pool, room_id)
                earliest = list(room.extremities) if room is not None else []
                min_depth = await pdu_store.min_depth(self._pool, room_id, earliest)
            latest = [e["event_id"] for e in citing if missing & set(e["prev_events"])]
            fetched = await self._missing_events(
                origin, judging, earliest, latest, min_depth, min(MAX_MISSING, MAX_GAP - len(gap))
            )
            fresh = {i: p for i, p in fetched.items() if i not in gap and i not in known}
            if not fresh:
                break
            gap.update(fresh)
            known |= fresh.keys()
            citing = [{"event_id": i, "prev_events": p["prev_events"]} for i, p in fresh.items()]
        if gap:
            await self.receive_pdus(origin, sorted(gap.values(), key=_depth), fetch_prevs=False)

    async def _missing_events(
        self, origin: str, judging: _Judging, earliest: list[str], latest: list[str], min_depth: int, limit: int
    ) -> dict[str, Mapping[str, Any]]:
        """One get_missing_events request: event id -> PDU of the well-formed
        events of the room it answers (none when it fails)."""
        assert self._client is not None, "asked only with a client"
        try:
            answer = await self._client.request(
                origin,
                "POST",
                f"/_matrix/federation/v1/get_missing_events/{judging.room_id}",
                body={
                    "limit": limit,
                    "min_depth": min_depth,
                    "earliest_events": earliest,
                    "latest_events": latest,
                },
            )
        except Exception as exc:  # noqa: BLE001 - the gap stays; the events are judged on what is known
            log.info("get_missing_events from %s failed: %s", origin, exc)
            return {}
        found = answer.get("events") if isinstance(answer, Mapping) else None
        fetched: dict[str, Mapping[str, Any]] = {}
        for pdu in found[:limit] if isinstance(found, list) else ():
            with contextlib.suppress(PduError):
                check_format(pdu, judging.version)
                if pdu.get("room_id") == judging.room_id:
                    fetched[reference_event_id(pdu, judging.version)] = pdu
        return fetched

    async def _fetch_missing_auth(self, origin: str, judging: _Judging, events: Sequence[Mapping[str, Any]]) -> None:
        """Asks the origin for the auth chain (GET event_auth) of an event of
        the batch whose auth events this server lacks, for at most
        MAX_AUTH_FETCHES such events, and keeps the auth events that pass
        their own checks as part of the room's past (not its timeline's head
        nor its current state)."""
        room_id, version = judging.room_id, judging.version
        batch = {e["event_id"] for e in events}
        cited = {a for e in events for a in e["auth_events"]} - batch
        missing = cited - (await pdu_store.seen_events(self._pool, list(cited))).keys()
        lacking = [e for e in events if missing & set(e["auth_events"])][:MAX_AUTH_FETCHES]
        if self._client is None or not lacking:
            return
        for event in lacking:
            if not missing & set(event["auth_events"]):
                continue  # an earlier answer held them
            try:
                answer = await self._client.request(
                    origin, "GET", f"/_matrix/federation/v1/event_auth/{room_id}/{event['event_id']}"
                )
            except Exception as exc:  # noqa: BLE001 - the event is then refused for its unknown auth events
                log.info("event_auth from %s failed: %s", origin, exc)
                continue
            chain = answer.get("auth_chain") if isinstance(answer, Mapping) else None
            if not isinstance(chain, list):
                continue
            pdus = await self._checked_pdus(origin, room_id, version, chain[:MAX_ROOM_EVENTS])
            known = {
                row.event_id: as_event(row.pdu, row.event_id, version)
                for row in await pdu_store.pdus(
                    self._pool,
                    room_id,
                    [a for _, e in pdus.values() for a in e["auth_events"]]
                    + (["$" + room_id[1:]] if version.room_id_is_create_event_id else []),
                )
            }
            fresh = {i: p for i, p in pdus.items() if i not in known}
            create = known.get("$" + room_id[1:]) if version.room_id_is_create_event_id else None
            accepted = self._authorized(origin, room_id, version, fresh, known, create)
            already = await pdu_store.known_events(self._pool, list(accepted))
            current = await pdu_store.current_state_ids(self._pool, room_id)
            drafts = [
                EventDraft(
                    room_id=room_id,
                    sender=e["sender"],
                    type=e["type"],
                    content=e["content"],
                    state_key=e.get("state_key"),
                    event_id=i,
                    pdu=fresh[i][0],
                    by_server=True,
                    outlier=True,
                    not_current=not _supersedes(e, current, accepted),
                )
                for i, e in accepted.items()
                if i not in already
            ]
            if drafts:
                await self._persister.write(drafts)
            missing -= accepted.keys()

    async def _state_before(
        self, judging: _Judging, prev_events: Sequence[str], auth_events: Sequence[dict[str, Any]] = ()
    ) -> StateMap:
        """The room's state before an event with these prev_events: the state
        after each of them, resolved by state resolution when they differ. A
        prev event this server does not have counts for nothing; when it has
        none of them (a gap get_missing_events could not fill), the room's
        current state here, updated by the event's own auth events."""
        states: list[StateMap] = []
        for prev in prev_events:
            state = await self._state_after(judging, prev, MAX_REFUSED_HOPS)
            if state is not None and all(_ids(state) != _ids(s) for s in states):
                states.append(state)
        if not states:
            await self._commit(judging)  # the current state must hold what was accepted so far
            rows = await pdu_store.current_state_pdus(self._pool, judging.room_id)
            current: StateMap = {(r.type, r.key): as_event(r.pdu, r.event_id, judging.version) for r in rows}
            return {**current, **{key: dict(event) for key, event in auth_state(auth_events).items()}}
        if len(states) <= 1:
            return dict(states[0]) if states else {}
        room_id, version = judging.room_id, judging.version
        ids = {str(e["event_id"]) for state in states for e in state.values()}
        chain = await pdu_store.auth_chain(self._pool, room_id, list(ids))
        events = {row.event_id: as_event(row.pdu, row.event_id, version) for row in chain}
        for state in states:
            events.update({str(e["event_id"]): dict(e) for e in state.values()})
        resolved = state_res.resolve([_ids(state) for state in states], events, version)
        return {key: events[event_id] for key, event_id in resolved.items() if event_id in events}

    async def _state_after(self, judging: _Judging, event_id: str, hops: int) -> StateMap | None:
        """The state after an event: of this batch (in memory), of the
        timeline (read in stream order), or refused here — the state before
        it, with it for a soft-failed state event (a rejected one changes
        nothing). None when this server does not have the event."""
        if event_id in judging.after:
            return judging.after[event_id]
        room_id, version = judging.room_id, judging.version
        rows = await pdu_store.pdus(self._pool, room_id, [event_id])
        if rows:
            ids = await pdu_store.state_ids_after(self._pool, room_id, rows[0].stream)
            found = await pdu_store.pdus(self._pool, room_id, list(ids.values()))
            state: StateMap = {(r.type, r.key): as_event(r.pdu, r.event_id, version) for r in found}
        else:
            refused = await pdu_store.refused(self._pool, room_id, [event_id])
            if not refused or hops <= 0:
                return None
            event = as_event(refused[0].pdu, event_id, version)
            state = await self._state_before(
                judging,
                [p for p in event["prev_events"] if p != event_id],
                [judging.known[a] for a in event["auth_events"] if a in judging.known],
            )
            if refused[0].status == "soft_failed" and "state_key" in event:
                state[(event["type"], event["state_key"])] = event
        judging.after[event_id] = state
        return state


def _supersedes(
    event: Mapping[str, Any], current: Mapping[tuple[str, str], str], fetched: Mapping[str, Mapping[str, Any]]
) -> bool:
    """Whether a fetched auth event takes its key's place in the room's
    current state: when the key has none, or its current entry is among the
    event's auth ancestors (a change this server missed: a power levels event
    cites the one it replaces, a membership the one before)."""
    if "state_key" not in event:
        return False
    entry = current.get((event["type"], event["state_key"]))
    if entry is None:
        return True
    seen: set[str] = set()
    walk = list(event["auth_events"])
    while walk and len(seen) < MAX_ROOM_EVENTS:
        auth_id = walk.pop()
        if auth_id == entry:
            return True
        if auth_id not in seen:
            seen.add(auth_id)
            walk.extend(fetched[auth_id]["auth_events"] if auth_id in fetched else ())
    return False


def _ids(state: StateMap) -> dict[tuple[str, str], str]:
    return {key: str(event["event_id"]) for key, event in state.items()}


def _depth(pdu: Any) -> int:
    depth = pdu.get("depth") if isinstance(pdu, Mapping) else None
    return depth if isinstance(depth, int) else 0


def _best_effort_id(pdu: Any, version: RoomVersion = V10) -> str:
    """An id to answer about a PDU that could not be judged."""
    try:
        return reference_event_id(pdu, version)
    except Exception:  # noqa: BLE001 - not even hashable as an event
        return "$unknown"
