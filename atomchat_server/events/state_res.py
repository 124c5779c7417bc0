"""State resolution version 2 (room versions 10 and 11) and 2.1 (room
version 12): the room state after a fork, from the states of its branches.

Pure functions over events held in memory: ``events`` maps event ids to
events (dicts with ``event_id``, ``type``, ``state_key``, ``sender``,
``origin_server_ts``, ``content`` and ``auth_events``) and must hold every
event of the state sets and of their auth chains. The authorization rules
are ``auth.check``, so the features it refuses (knocking, third-party
invites, restricted joins) are refused here too.

Two choices where the specification's words leave room, both as the
reference server (Synapse) does, so forks resolve the same way everywhere:
a state set's auth chain includes the state events themselves, and the
create event counts as a power event.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .auth import AuthError, auth_state_keys, check
from .power_levels import POWER_LEVELS_KEY, user_level
from .room_versions import RoomVersion

StateKey = tuple[str, str]
StateIds = Mapping[StateKey, str]
EventMap = Mapping[str, Mapping[str, Any]]


def split_states(state_sets: Sequence[StateIds]) -> tuple[dict[StateKey, str], set[str]]:
    """(unconflicted state map, conflicted state set): a key with the same
    event in every state set is unconflicted; every other event of any set
    is conflicted."""
    unconflicted: dict[StateKey, str] = {}
    conflicted: set[str] = set()
    for key in set().union(*state_sets):
        values = {state.get(key) for state in state_sets}
        only = next(iter(values)) if len(values) == 1 else None
        if only is not None:
            unconflicted[key] = only
        else:
            conflicted.update(value for value in values if value is not None)
    return unconflicted, conflicted


def auth_chain(event_ids: Iterable[str], events: EventMap, *, include_self: bool = False) -> set[str]:
    """The events reachable through ``auth_events`` (with the starting
    events themselves when ``include_self``)."""
    seen: set[str] = set()
    stack = list(event_ids) if include_self else [a for e in event_ids for a in events[e].get("auth_events", [])]
    while stack:
        event_id = stack.pop()
        if event_id not in seen and event_id in events:
            seen.add(event_id)
            stack.extend(events[event_id].get("auth_events", []))
    return seen


def auth_difference(state_sets: Sequence[StateIds], events: EventMap) -> set[str]:
    """The events in some but not all of the state sets' full auth chains."""
    chains = [auth_chain(state.values(), events, include_self=True) for state in state_sets]
    in_all = chains[0].intersection(*chains[1:]) if chains else set()
    return set().union(*chains) - in_all


def conflicted_subgraph(conflicted: set[str], events: EventMap) -> set[str]:
    """Version 2.1: the events on ``auth_events`` paths from one conflicted
    event to another, ends included."""
    below = auth_chain(conflicted, events, include_self=True)
    reaches: dict[str, bool] = {}

    def reaches_conflicted(event_id: str) -> bool:
        # Iterative post-order, so long auth chains cannot exhaust the stack.
        stack = [event_id]
        while stack:
            current = stack[-1]
            if current in reaches:
                stack.pop()
                continue
            parents = [a for a in events[current].get("auth_events", []) if a in events]
            pending = [a for a in parents if a not in reaches]
            if pending and current not in conflicted:
                stack.extend(pending)
                continue
            reaches[current] = current in conflicted or any(reaches[a] for a in parents)
            stack.pop()
        return reaches[event_id]

    return {event_id for event_id in below if reaches_conflicted(event_id)}


def is_power_event(event: Mapping[str, Any]) -> bool:
    """Events that may take a right away from someone."""
    if "state_key" not in event:
        return False
    if event["type"] in ("m.room.power_levels", "m.room.join_rules", "m.room.create"):
        return True
    return (
        event["type"] == "m.room.member"
        and event.get("content", {}).get("membership") in ("leave", "ban")
        and event["state_key"] != event.get("sender")
    )


def _auth_events_state(event: Mapping[str, Any], events: EventMap, version: RoomVersion) -> dict[StateKey, Any]:
    """The state the event's own ``auth_events`` make (in version 12 with
    the create event its room id names)."""
    ids = list(event.get("auth_events", []))
    if version.room_id_is_create_event_id and event.get("type") != "m.room.create":
        ids.append("$" + str(event.get("room_id", ""))[1:])
    return {(events[i]["type"], events[i]["state_key"]): events[i] for i in ids if i in events}


def sender_power(event: Mapping[str, Any], events: EventMap, version: RoomVersion) -> int | float:
    return user_level(_auth_events_state(event, events, version), event["sender"])


def reverse_topological_power_order(event_ids: Iterable[str], events: EventMap, version: RoomVersion) -> list[str]:
    """Kahn's algorithm over the ``auth_events`` edges within the set, taking
    at each step the event whose sender has the most power, then the
    earliest ``origin_server_ts``, then the smallest event id."""
    chosen = set(event_ids)
    waiting_on = {e: {a for a in events[e].get("auth_events", []) if a in chosen} for e in chosen}
    dependants: dict[str, list[str]] = {e: [] for e in chosen}
    for event_id, parents in waiting_on.items():
        for parent in parents:
            dependants[parent].append(event_id)

    def rank(event_id: str) -> tuple[Any, ...]:
        event = events[event_id]
        return (-sender_power(event, events, version), event.get("origin_server_ts", 0), event_id)

    ready = [rank(e) for e, parents in waiting_on.items() if not parents]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        event_id = heapq.heappop(ready)[-1]
        order.append(event_id)
        for child in dependants[event_id]:
            waiting_on[child].discard(event_id)
            if not waiting_on[child]:
                heapq.heappush(ready, rank(child))
    return order


def _power_levels_in_auth(event: Mapping[str, Any], events: EventMap) -> str | None:
    for auth_id in event.get("auth_events", []):
        auth_event = events.get(auth_id)
        if auth_event is not None and (auth_event["type"], auth_event.get("state_key")) == POWER_LEVELS_KEY:
            return auth_id
    return None


def mainline(power_levels_id: str | None, events: EventMap) -> list[str]:
    """[P0, P1, ...]: the power levels event and the power levels events
    each one cites in its ``auth_events``."""
    line: list[str] = []
    while power_levels_id is not None:
        line.append(power_levels_id)
        power_levels_id = _power_levels_in_auth(events[power_levels_id], events)
    return line


def mainline_order(event_ids: Iterable[str], power_levels_id: str | None, events: EventMap) -> list[str]:
    """Events based on older power levels first (an event whose power
    levels chain never meets the mainline first of all), then by
    ``origin_server_ts`` and event id."""
    positions = {event_id: index for index, event_id in enumerate(mainline(power_levels_id, events))}

    def position(event_id: str) -> float:
        current = _power_levels_in_auth(events[event_id], events)
        while current is not None:
            if current in positions:
                return positions[current]
            current = _power_levels_in_auth(events[current], events)
        return float("inf")

    return sorted(event_ids, key=lambda e: (-position(e), events[e].get("origin_server_ts", 0), e))


def iterative_auth_checks(
    event_ids: Iterable[str], state: Mapping[StateKey, str], events: EventMap, version: RoomVersion
) -> dict[StateKey, str]:
    """Apply each event in turn to the state if the authorization rules let
    it follow the state; the state's entries take precedence over the
    event's own ``auth_events`` for the keys the rules read. Events rejected
    against their own auth chain must not be in ``events`` (they are never
    in state, so a caller has no reason to pass them)."""
    resolved = dict(state)
    for event_id in event_ids:
        event = events[event_id]
        auth_state = _auth_events_state(event, events, version)
        for key in auth_state_keys(event):
            if key in resolved:
                auth_state[key] = events[resolved[key]]
        try:
            check(event, auth_state)
        except AuthError:
            continue
        resolved[(event["type"], event["state_key"])] = event_id
    return resolved


def resolve(state_sets: Sequence[StateIds], events: EventMap, version: RoomVersion) -> dict[StateKey, str]:
    """The resolution of the given states: (type, state key) -> event id."""
    unconflicted, conflicted = split_states(state_sets)
    if not conflicted:
        return unconflicted
    full = conflicted | auth_difference(state_sets, events)
    if version.state_res_v2_1:
        full |= conflicted_subgraph(conflicted, events)
    full &= events.keys()
    power = {e for e in full if is_power_event(events[e])}
    power |= auth_chain(power, events) & full
    power_order = reverse_topological_power_order(power, events, version)
    partial = iterative_auth_checks(power_order, {} if version.state_res_v2_1 else unconflicted, events, version)
    others = mainline_order(full - power, partial.get(POWER_LEVELS_KEY), events)
    resolved = iterative_auth_checks(others, partial, events, version)
    resolved.update(unconflicted)
    return resolved
