"""Events other servers send into rooms this server is in.

``receive_pdus`` takes the PDUs of one transaction (or of a join, a
backfill...) and, for each, in the order the server-server API gives:
checks its format, its origin server's signature (keys through the
KeyRing), its content hash (a mismatch keeps it redacted), authorization
against its own auth_events and against the state before it (resolved by
state resolution when its prev_events' states differ), fetching a bounded
number of missing prev_events with ``get_missing_events``. An event that
passes is committed through the same Persister as local events, which
checks it once more against the room's current state: an event that fails
there is soft-failed (acknowledged, never shown). So sync and the stream
deliver remote events with no change.

What this does not do yet: keep rejected and soft-failed events (they are
refused and dropped rather than stored apart), fetch missing auth events,
and keep the state at every event (the state after an event is read in
stream order, exact while this server's stream follows the room's graph).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
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
    check_against_auth_events,
    check_format,
    check_signatures,
    required_signers,
    signature_key_ids,
    with_checked_hash,
)
from ..events.room_versions import V10, RoomVersion, room_version
from ..events.signing import event_id as reference_event_id
from ..storage import pdus as pdu_store
from .persister import Persister

log = logging.getLogger(__name__)

# How many missing prev_events one received event may have fetched.
MAX_MISSING = 20
# How many events of a joined room's state and auth chain are taken in.
MAX_ROOM_EVENTS = 20000


class KeySource(Protocol):
    """The part of federation.keyring.KeyRing this service uses."""

    async def verify_key(self, server_name: str, key_id: str, *, at_ms: int | None = None) -> VerifyKey: ...


class RemoteCalls(Protocol):
    """The part of federation.client.FederationClient this service uses."""

    async def request(self, destination: str, method: str, path: str, *, query: Any = None, body: Any = None,
                      timeout: float = 30.0) -> Any: ...


class SenderPolicy(Protocol):
    """The part of moderation.Blocks this service uses: who the policy room blocks."""

    def of(self, user_id: str) -> str | None: ...

    def server_banned(self, server: str) -> bool: ...


class FederationEvents:
    def __init__(self, *, pool: asyncpg.Pool, persister: Persister, keyring: KeySource,
                 client: RemoteCalls | None = None, policy: SenderPolicy | None = None) -> None:
        self._pool = pool
        self._persister = persister
        self._keyring = keyring
        self._client = client
        self._policy = policy  # m.policy.rule.user / m.policy.rule.server: their events are refused

    async def receive_pdus(self, origin: str, pdus: Sequence[Any]) -> dict[str, dict[str, Any]]:
        """event id -> {} (accepted) or {"error": why}, as /send answers."""
        results: dict[str, dict[str, Any]] = {}
        # Oldest first, so an event's prev events of the same transaction come before it.
        for pdu in sorted(pdus, key=_depth):
            event_id, error = await self._receive(origin, pdu, fetch_missing=True)
            results[event_id] = {} if error is None else {"error": error}
        return results

    async def _receive(self, origin: str, pdu: Any, *, fetch_missing: bool) -> tuple[str, str | None]:
        room_id = pdu.get("room_id") if isinstance(pdu, Mapping) else None
        room = await pdu_store.pdu_room(self._pool, room_id) if isinstance(room_id, str) else None
        if room is None or not isinstance(room_id, str):
            return _best_effort_id(pdu), f"room {room_id!r} is unknown here"
        version = room_version(room["room_version"])
        try:
            check_format(pdu, version)
        except PduError as exc:
            return _best_effort_id(pdu, version), str(exc)
        event_id = reference_event_id(pdu, version)
        try:
            if await pdu_store.has_event(self._pool, event_id):
                return event_id, None
            if pdu["type"] == "m.room.create":
                raise PduError("a room's create event cannot be sent into it")
            self._check_policy(pdu["sender"])
            await self._check_signatures(pdu, version)
            kept, redacted = with_checked_hash(pdu, version)
            if redacted:
                log.info("event %s from %s has a wrong content hash: kept redacted", event_id, origin)
            event = as_event(kept, event_id, version)
            await self._check_auth_events(event, room_id, version)
            if fetch_missing:
                await self._fetch_missing(origin, room_id, event, version)
            state = await self.state_before(room_id, event["prev_events"], version)
            check(event, state)
        except (PduError, AuthError) as exc:
            log.info("refused event %s from %s: %s", event_id, origin, exc)
            return event_id, str(exc)
        not_current = "state_key" in event and not await self._becomes_current(room_id, event, state, version)
        draft = EventDraft(room_id=room_id, sender=event["sender"], type=event["type"], content=event["content"],
                           state_key=event.get("state_key"), redacts=redacts_of(kept, version), event_id=event_id,
                           pdu=kept, not_current=not_current)
        try:
            await self._persister.write([draft])
        except MatrixError as refusal:
            if refusal.status != 403 and refusal.status != 404:
                raise
            # Soft failure: allowed by the state before it, not by the room's
            # state now. Acknowledged, so the origin does not send it again.
            log.info("soft-failed event %s from %s: %s", event_id, origin, refusal.error)
        return event_id, None

    def _check_policy(self, sender: str) -> None:
        """Refuses the events of a user or a server the policy room blocks."""
        if self._policy is None:
            return
        _, _, server = sender.partition(":")
        if self._policy.server_banned(server):
            raise PduError(f"the server {server} is banned on this server")
        if self._policy.of(sender) is not None:
            raise PduError(f"the user {sender} is blocked on this server")

    async def take_room(self, origin: str, room_id: str, version: RoomVersion, state: Any, auth_chain: Any,
                        join: Mapping[str, Any], join_id: str) -> None:
        """Takes in a room this server joins through ``origin``: the state
        before the join and its auth chain (send_join's answer), each event
        checked (format, signature, hash, authorization against its own auth
        events), then the join, checked against that state. Raises
        ValueError when the answer does not make a room."""
        if not isinstance(state, list) or not isinstance(auth_chain, list):
            raise ValueError("send_join answered no state or auth chain")
        events: dict[str, dict[str, Any]] = {}
        pdus: dict[str, dict[str, Any]] = {}
        state_ids: set[str] = set()
        given = [(pdu, False) for pdu in auth_chain] + [(pdu, True) for pdu in state]
        for pdu, in_state in given[:MAX_ROOM_EVENTS]:
            try:
                check_format(pdu, version)
                event_id = reference_event_id(pdu, version)
                if in_state:
                    state_ids.add(event_id)
                if event_id in pdus:
                    continue
                await self._check_signatures(pdu, version)
            except PduError as exc:
                log.info("dropped an event of %s's answer for %s: %s", origin, room_id, exc)
                continue
            kept, _ = with_checked_hash(pdu, version)
            pdus[event_id] = kept
            events[event_id] = as_event(kept, event_id, version)
        create_id = "$" + room_id[1:] if version.room_id_is_create_event_id else None
        creates = [e for e in events.values() if e["type"] == "m.room.create"]
        if len(creates) != 1 or (create_id is not None and creates[0]["event_id"] != create_id):
            raise ValueError("the room's create event is missing or is not the one its id names")
        create = creates[0]
        # Each event against its own auth events, oldest first; the refused go.
        accepted: dict[str, dict[str, Any]] = {}
        for event in sorted(events.values(), key=lambda e: (e["depth"], e["event_id"])):
            auth = [accepted[a] for a in event["auth_events"] if a in accepted]
            try:
                if len(auth) != len(event["auth_events"]):
                    raise AuthError("an auth event is missing or was refused")
                check_against_auth_events(event, auth, version, create)
            except AuthError as exc:
                log.info("dropped event %s of %s's answer for %s: %s", event["event_id"], origin, room_id, exc)
                continue
            accepted[event["event_id"]] = event
        current = {(e["type"], e["state_key"]): e for e in accepted.values() if e["event_id"] in state_ids}
        joined = as_event(join, join_id, version)
        try:
            check(joined, current)
        except AuthError as exc:
            raise ValueError(f"the join does not follow the room's state: {exc}") from None
        already = await pdu_store.known_events(self._pool, list(accepted))
        # The state last, so each key ends at its current event.
        order = sorted((e for e in accepted.values() if e["event_id"] not in already),
                       key=lambda e: (e["event_id"] in state_ids, e["depth"], e["event_id"]))
        drafts = [EventDraft(room_id=room_id, sender=e["sender"], type=e["type"], content=e["content"],
                             state_key=e.get("state_key"), event_id=e["event_id"], pdu=pdus[e["event_id"]],
                             by_server=True, outlier=True) for e in order]
        drafts.append(EventDraft(room_id=room_id, sender=joined["sender"], type="m.room.member",
                                 content=joined["content"], state_key=joined["state_key"], event_id=join_id,
                                 pdu=dict(join)))
        stub = await pdu_store.stub_room(self._pool, room_id)
        await self._persister.write(drafts, new_room=None if stub else version.identifier)
        if stub:
            await pdu_store.unstub(self._pool, room_id)

    async def _becomes_current(self, room_id: str, event: Mapping[str, Any],
                               state: Mapping[tuple[str, str], Mapping[str, Any]], version: RoomVersion) -> bool:
        """Whether a received state event takes its place in the room's
        current state: yes when it follows the current entry of its key;
        when that entry is on another branch, as state resolution of the
        current state and the state after the event decides (so every
        server of the room ends with the same state)."""
        key = (event["type"], event["state_key"])
        current = await pdu_store.current_state_ids(self._pool, room_id)
        if current.get(key) is None or await pdu_store.is_ancestor(self._pool, room_id, current[key],
                                                                   event["prev_events"]):
            return True
        after = {k: str(v["event_id"]) for k, v in state.items()}
        after[key] = event["event_id"]
        ids = set(current.values()) | set(after.values())
        chain = await pdu_store.auth_chain(self._pool, room_id, list(ids))
        events = {row["event_id"]: as_event(row["pdu"], row["event_id"], version) for row in chain}
        events[event["event_id"]] = dict(event)
        resolved = state_res.resolve([current, after], events, version)
        return resolved.get(key) == event["event_id"]

    async def check_signed(self, pdu: Mapping[str, Any], version: RoomVersion) -> None:
        """Raise PduError unless the servers that must have signed the PDU did."""
        await self._check_signatures(pdu, version)

    async def _check_signatures(self, pdu: Mapping[str, Any], version: RoomVersion) -> None:
        keys: dict[tuple[str, str], VerifyKey] = {}
        for server in required_signers(pdu):
            for key_id in signature_key_ids(pdu, server):
                try:
                    keys[(server, key_id)] = await self._keyring.verify_key(server, key_id)
                except Exception as exc:  # noqa: BLE001 - an unknown key is a missing signature
                    log.info("no key %s of %s: %s", key_id, server, exc)
        check_signatures(pdu, version, keys)

    async def _check_auth_events(self, event: Mapping[str, Any], room_id: str, version: RoomVersion) -> None:
        wanted = list(event["auth_events"])
        create_id = "$" + room_id[1:] if version.room_id_is_create_event_id else None
        rows = await pdu_store.pdus(self._pool, room_id, wanted + ([create_id] if create_id else []))
        found = {row["event_id"]: as_event(row["pdu"], row["event_id"], version) for row in rows}
        missing = [e for e in wanted if e not in found]
        if missing:
            raise PduError(f"auth events unknown here: {', '.join(missing[:5])}")
        check_against_auth_events(event, [found[e] for e in wanted], version,
                                  found.get(create_id) if create_id else None)

    async def _fetch_missing(self, origin: str, room_id: str, event: Mapping[str, Any], version: RoomVersion) -> None:
        """Asks the origin for the prev_events this server lacks (a bounded
        number, oldest first) and takes each in before the event."""
        known = {row["event_id"] for row in await pdu_store.pdus(self._pool, room_id, event["prev_events"])}
        if self._client is None or known >= set(event["prev_events"]):
            return
        room = await pdu_store.pdu_room(self._pool, room_id)
        earliest = list(room["extremities"]) if room is not None else []
        try:
            answer = await self._client.request(
                origin, "POST", f"/_matrix/federation/v1/get_missing_events/{room_id}",
                body={"limit": MAX_MISSING, "min_depth": 0, "earliest_events": earliest,
                      "latest_events": [event["event_id"]]})
        except Exception as exc:  # noqa: BLE001 - the gap stays; the event is judged on what is known
            log.info("get_missing_events from %s failed: %s", origin, exc)
            return
        missing = answer.get("events") if isinstance(answer, Mapping) else None
        if not isinstance(missing, list):
            return
        for pdu in sorted((p for p in missing[:MAX_MISSING] if isinstance(p, Mapping)), key=_depth):
            await self._receive(origin, pdu, fetch_missing=False)

    async def state_before(self, room_id: str, prev_events: Sequence[str],
                           version: RoomVersion) -> dict[tuple[str, str], dict[str, Any]]:
        """The room's state before an event with these prev_events: the state
        after each of them, resolved when they differ."""
        rows = await pdu_store.pdus(self._pool, room_id, prev_events)
        states: list[dict[tuple[str, str], str]] = []
        for row in rows:
            state = await pdu_store.state_ids_after(self._pool, room_id, row["stream"])
            if state not in states:
                states.append(state)
        if not states:
            return {}
        resolved = states[0]
        if len(states) > 1:
            ids = {e for state in states for e in state.values()}
            chain = await pdu_store.auth_chain(self._pool, room_id, list(ids))
            events = {row["event_id"]: as_event(row["pdu"], row["event_id"], version) for row in chain}
            resolved = state_res.resolve(states, events, version)
        found = await pdu_store.pdus(self._pool, room_id, list(resolved.values()))
        return {(row["type"], row["state_key"]): as_event(row["pdu"], row["event_id"], version) for row in found}


def _depth(pdu: Any) -> int:
    depth = pdu.get("depth") if isinstance(pdu, Mapping) else None
    return depth if isinstance(depth, int) else 0


def _best_effort_id(pdu: Any, version: RoomVersion = V10) -> str:
    """An id to answer about a PDU that could not be judged."""
    try:
        return reference_event_id(pdu, version)
    except Exception:  # noqa: BLE001 - not even hashable as an event
        return "$unknown"
