"""Cross-check of AtomChat's pure federation functions against Synapse's own.

Builds events and forks and compares, function by function, what AtomChat
(``atomchat_server/events``) and Synapse compute: event ids, content hashes,
event signatures, redaction (pruning), authorization decisions and state
resolution, for room versions 10, 11 and 12, and X-Matrix request
signatures (each side's header read and checked by the other). The events are the ones the
test suite uses (tests/unit/test_state_res.py's forks, tests/unit/test_event_signing.py's
redaction table, tests/unit/test_auth_rules*.py's authorization tables), so every
case the tests pin down is also checked against the reference server.

Synapse is not a dependency of AtomChat; run this from a separate venv:

    python3 -m venv /tmp/synvenv
    /tmp/synvenv/bin/pip install matrix-synapse pytest
    /tmp/synvenv/bin/python interop/synapse_crosscheck.py

It prints the agreement counts per check and each disagreement, and exits
non-zero when a check that must agree does not. Authorization has expected
differences (AtomChat's local rules, features it refuses); they are printed
with the reason and counted apart.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import itertools
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synapse.api.errors import AuthError as SynapseAuthError  # noqa: E402
from synapse.api.errors import SynapseError  # noqa: E402
from synapse.api.room_versions import KNOWN_ROOM_VERSIONS as SYNAPSE_VERSIONS  # noqa: E402
from synapse.crypto.event_signing import compute_content_hash, compute_event_signature  # noqa: E402
from synapse.event_auth import _check_create, auth_types_for_event, check_state_dependent_auth_rules  # noqa: E402
from synapse.events import make_event_from_dict  # noqa: E402
from synapse.federation.transport.server._base import _parse_auth_header  # noqa: E402
from synapse.http.matrixfederationclient import MatrixFederationHttpClient  # noqa: E402
from synapse.state.v2 import resolve_events_with_store  # noqa: E402
from synapse.storage.databases.main.event_federation import StateDifference  # noqa: E402
from synapse.synapse_rust.events import redact_event_dict  # noqa: E402
from unpaddedbase64 import encode_base64  # noqa: E402

from atomchat_server.events import signing  # noqa: E402
from atomchat_server.events.auth import AuthError, auth_event_keys, check  # noqa: E402
from atomchat_server.events.redaction import prune_event  # noqa: E402
from atomchat_server.events.room_versions import KNOWN_ROOM_VERSIONS as KNOWN_VERSIONS  # noqa: E402
from atomchat_server.events.room_versions import V10, V11, V12  # noqa: E402
from atomchat_server.events.state_res import resolve  # noqa: E402
from atomchat_server.federation.x_matrix import authorization_header, parse_authorization, verify_request  # noqa: E402
from tests.unit import test_auth_rules, test_auth_rules_versions, test_event_signing, test_state_res  # noqa: E402

SERVER = "hs"
KEY = signing.signing_key_from_seed("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1", "1")

agree: Counter[str] = Counter()
differ: Counter[str] = Counter()
expected_differences: Counter[str] = Counter()
reports: list[str] = []


def tally(check_name: str, same: bool, detail: str) -> None:
    if same:
        agree[check_name] += 1
    else:
        differ[check_name] += 1
        reports.append(f"DIFFERENT {check_name}: {detail}")


def param_cases(function) -> list[dict[str, Any]]:
    """The keyword arguments of each case a pytest-parametrized test runs."""
    axes = []
    for mark in getattr(function, "pytestmark", []):
        if mark.name != "parametrize":
            continue
        names = [n.strip() for n in mark.args[0].split(",")]
        rows = []
        for value in mark.args[1]:
            values = value.values if hasattr(value, "values") else (value if len(names) > 1 else (value,))
            case_id = getattr(value, "id", None)
            rows.append((dict(zip(names, values, strict=True)), case_id))
        axes.append(rows)
    cases = []
    for combination in itertools.product(*axes):
        arguments: dict[str, Any] = {}
        ids = []
        for values, case_id in combination:
            arguments.update(values)
            ids.append(str(case_id) if case_id else "")
        arguments["_id"] = "-".join(i for i in ids if i)
        cases.append(arguments)
    return cases


# -- events: ids, hashes, signatures, pruning -------------------------------


def compare_event(pdu: dict[str, Any], version, label: str) -> str:
    """Compare everything of one PDU (without event_id); its id."""
    synapse_version = SYNAPSE_VERSIONS[version.identifier]
    signed = signing.sign_event(pdu, SERVER, KEY, version)
    ours_id = signing.event_id(signed, version)
    theirs = make_event_from_dict(copy.deepcopy(signed), synapse_version)
    tally("event id", ours_id == theirs.event_id, f"{label}: {ours_id} != {theirs.event_id}")
    their_hash = encode_base64(compute_content_hash(copy.deepcopy(pdu), hashlib.sha256)[1])
    tally("content hash", signing.content_hash(pdu) == their_hash, label)
    their_signature = compute_event_signature(synapse_version, copy.deepcopy(signed), SERVER, KEY)
    tally("event signature", signed["signatures"] == their_signature, label)
    their_pruned = redact_event_dict(synapse_version, copy.deepcopy(signed))
    their_pruned.pop("unsigned", None)
    ours_pruned = prune_event(signed, version)
    tally("redaction", ours_pruned == their_pruned, f"{label}: {ours_pruned} != {their_pruned}")
    return ours_id


def compare_redaction_table() -> None:
    base = {
        "room_id": "!r:hs",
        "sender": "@u:hs",
        "origin": "hs",
        "origin_server_ts": 5,
        "depth": 3,
        "prev_events": [],
        "auth_events": [],
        "unsigned": {"age_ts": 5},
        "membership": "join",
    }
    for case in param_cases(test_event_signing.test_pruned_content):
        for version in (V10, V11, V12):
            pdu = {**base, "type": case["event_type"], "content": case["content"], "state_key": ""}
            if version.room_id_is_create_event_id and pdu["type"] == "m.room.create":
                del pdu["room_id"]  # the room id is made from it
            compare_event(pdu, version, f"{case['_id']} v{version.identifier}")


# -- state resolution -------------------------------------------------------


class Store:
    """What Synapse's resolution reads beyond the events it is given: all
    events are passed in as unpersisted, so Synapse computes the auth
    difference and the conflicted subgraph itself; the store only answers
    for the (empty) persisted part."""

    def __init__(self, events):
        self.events = events

    async def get_events(self, event_ids, allow_rejected=False):
        return {e: self.events[e] for e in event_ids if e in self.events}

    async def get_auth_chain_difference(self, room_id, state_sets, conflicted_state, additional):
        return StateDifference(auth_difference=set(), conflicted_subgraph=set())


def real_pdus(room) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The room's events as signed PDUs with their true event ids (a fork
    scenario names them "$IPL" and so on); also the map old id -> true id."""
    mapping: dict[str, str] = {}
    real: dict[str, dict[str, Any]] = {}
    for depth, (old_id, event) in enumerate(room.events.items(), start=1):  # auth events come first
        pdu = {key: value for key, value in event.items() if key != "event_id"}
        pdu["auth_events"] = [mapping[a] for a in event["auth_events"]]
        pdu["prev_events"] = [mapping[p] for p in event["prev_events"]]
        pdu["depth"] = depth
        if room.version.room_id_is_create_event_id and pdu["type"] != "m.room.create":
            pdu["room_id"] = "!" + mapping["$CREATE"][1:]
        true_id = compare_event(pdu, room.version, old_id)
        mapping[old_id] = true_id
        real[true_id] = {**signing.sign_event(pdu, SERVER, KEY, room.version), "event_id": true_id}
    return real, mapping


def synapse_resolve(version, room_id, state_sets, events) -> dict:
    synapse_version = SYNAPSE_VERSIONS[version.identifier]
    frozen = {}
    for event_id, event in events.items():
        frozen[event_id] = make_event_from_dict({k: v for k, v in event.items() if k != "event_id"}, synapse_version)
    resolved = asyncio.run(
        resolve_events_with_store(None, room_id, synapse_version, state_sets, dict(frozen), Store(frozen))
    )
    return dict(resolved)


def compare_auth_of_events(events, version) -> None:
    """Each event against its own auth events, as both servers judge it."""
    synapse_version = SYNAPSE_VERSIONS[version.identifier]
    frozen = {
        e: make_event_from_dict({k: v for k, v in ev.items() if k != "event_id"}, synapse_version)
        for e, ev in events.items()
    }
    for event_id, event in events.items():
        ids = list(event["auth_events"])
        if version.room_id_is_create_event_id and event["type"] != "m.room.create":
            ids.append("$" + event["room_id"][1:])
        state = {(events[i]["type"], events[i]["state_key"]): events[i] for i in ids}
        compare_selection(event, frozen[event_id], version, event_id)
        ours = _ours(event, state)
        theirs = _theirs(frozen[event_id], [frozen[i] for i in ids])
        tally("auth (fork events)", ours == theirs, f"{event_id}: ours {ours}, Synapse {theirs}")


def compare_state_resolution() -> None:
    names = [n for n in dir(test_state_res) if n.startswith("test_")]
    for name in names:
        function = getattr(test_state_res, name)
        for case in param_cases(function):
            if "version" not in case:
                continue
            captured = []
            original = test_state_res.Room.resolve

            def capture(room, *branches, _original=original, _captured=captured):
                _captured.append((room, branches))
                return _original(room, *branches)

            test_state_res.Room.resolve = capture
            try:
                function(**{k: v for k, v in case.items() if k != "_id"})
            finally:
                test_state_res.Room.resolve = original
            for room, branches in captured:
                events, mapping = real_pdus(room)
                compare_auth_of_events(events, room.version)
                states = [
                    {key: mapping["$" + n] for key, n in ((k, v[1:]) for k, v in room.state(*branch).items())}
                    for branch in branches
                ]
                room_id = next(iter(events.values())).get("room_id") or "!" + mapping["$CREATE"][1:]
                if room.version.room_id_is_create_event_id:
                    room_id = "!" + mapping["$CREATE"][1:]
                ours = resolve(states, events, room.version)
                theirs = synapse_resolve(room.version, room_id, states, events)
                inverse = {v: k for k, v in mapping.items()}
                tally(
                    "state resolution",
                    ours == theirs,
                    f"{name}[{case['_id']}]: ours {_named(ours, inverse)} Synapse {_named(theirs, inverse)}",
                )


def compare_selection(event, frozen, version, label: str) -> None:
    """Which state entries may be auth events: Synapse names the create
    event in every version, and leaves it out of v12 PDUs when it builds them."""
    try:
        theirs = set(auth_types_for_event(SYNAPSE_VERSIONS[version.identifier], frozen))
    except (KeyError, TypeError):  # a shape Synapse's event validator refuses first
        expected_differences["auth events selection"] += 1
        reports.append(f"expected auth events selection {label}: Synapse cannot read the event")
        return
    if version.room_id_is_create_event_id:
        theirs.discard(("m.room.create", ""))
    ours = set(auth_event_keys(event, version))
    tally("auth events selection", ours == theirs, f"{label}: ours {sorted(ours)}, Synapse {sorted(theirs)}")


def _named(state, inverse) -> dict:
    return {f"{k[0]}|{k[1]}": inverse.get(v, v) for k, v in sorted(state.items())}


# -- authorization tables ---------------------------------------------------


def _ours(event, state) -> str:
    try:
        check(event, state)
        return "allow"
    except AuthError:
        return "refuse"


def _theirs(event, auth_events) -> str:
    try:
        if event.type == "m.room.create":
            _check_create(event)
        else:
            check_state_dependent_auth_rules(event, auth_events)
        return "allow"
    except (SynapseAuthError, SynapseError, KeyError, TypeError, AttributeError, ValueError):
        # the last four: shapes its event validator refuses before the rules run
        return "refuse"


# Where AtomChat's check and Synapse's rule functions answer differently on
# purpose, by words of AtomChat's reason or of the case id, with why.
EXPECTED_BY_REASON = {
    "not supported": "AtomChat refuses knocking, third-party invites, restricted joins and versions before 10",
    "must be its sender": "AtomChat's own rule for version 10 create events",
    "redacting an event not known": "AtomChat's redaction pre-check for local clients",
    "belongs to another room": "Synapse checks this before its state-dependent rules",
    "edit_members": "AtomChat's own power level (org.atomchat.edit_members)",
    "only be the first event": "Synapse refuses a create with prev_events before its rules run",
    "empty state key": "Synapse's event validator refuses this before its rules run",
    "not the id of the room's m.room.create": "Synapse checks the room id before its state-dependent rules",
}
EXPECTED_BY_CASE = {
    "right-after-create": "Synapse knows the creator's first join by prev_events only; the table's events have none",
    "edit-members/": "AtomChat's own power level (org.atomchat.edit_members)",
}


def _expected(case_id: str, reason: str) -> str | None:
    for words, why in EXPECTED_BY_REASON.items():
        if words in reason:
            return why
    for words, why in EXPECTED_BY_CASE.items():
        if words in case_id:
            return why
    return None


def _as_pdu(event: dict[str, Any], version_id: str) -> dict[str, Any]:
    pdu = {
        "auth_events": [],
        "prev_events": [],
        "depth": 1,
        "origin_server_ts": 0,
        "hashes": {},
        "signatures": {},
        **{k: v for k, v in event.items() if k != "event_id"},
    }
    return pdu


def compare_auth_tables() -> None:
    tables = [(test_auth_rules.test_rule, "10"), (test_auth_rules_versions.test_rule, None)]
    for function, fixed_version in tables:
        for case in param_cases(function):
            state = case.get("room_state", case.get("state"))
            event = case["ev"]
            if case.get("redacted") is not None:
                continue  # the redaction pre-check is AtomChat's own, not an auth rule
            create = state.get(("m.room.create", "")) if state else None
            source = create if create is not None else event
            version_id = fixed_version or source.get("content", {}).get("room_version", "10")
            if version_id not in SYNAPSE_VERSIONS:
                continue
            try:
                synapse_version = SYNAPSE_VERSIONS[version_id]
                frozen = make_event_from_dict(_as_pdu(event, version_id), synapse_version)
                auth_events = [make_event_from_dict(_as_pdu(e, version_id), synapse_version) for e in state.values()]
            except Exception as exc:  # noqa: BLE001 - a shape Synapse cannot even build
                expected_differences["auth (tables)"] += 1
                reports.append(f"expected auth (tables) {case['_id']}: Synapse's event parser refuses it ({exc})")
                continue
            compare_selection(event, frozen, KNOWN_VERSIONS[version_id], case["_id"])
            try:
                check(event, state)
                ours, reason = "allow", ""
            except AuthError as exc:
                ours, reason = "refuse", str(exc)
            theirs = _theirs(frozen, auth_events)
            why = _expected(case["_id"], reason)
            if ours != theirs and why is not None:
                expected_differences["auth (tables)"] += 1
                reports.append(f"expected auth (tables) {case['_id']}: ours {ours}, Synapse {theirs}: {why}")
                continue
            tally("auth (tables)", ours == theirs, f"{case['_id']}: ours {ours} ({reason}), Synapse {theirs}")


# -- X-Matrix request signing ----------------------------------------------

REQUESTS = [
    ("GET", "/_matrix/federation/v1/version", None),
    ("GET", "/_matrix/federation/v1/state/!r:hs?event_id=%24e", None),
    ("PUT", "/_matrix/federation/v1/send/txn1", {"origin": "hs", "pdus": [], "edus": []}),
    ("PUT", "/_matrix/federation/v1/invite/!r:hs/%24e", {"event": {"content": {"body": "日本語 ☕"}}}),
    ("POST", "/_matrix/federation/v1/user/keys/query", {}),
]


def compare_x_matrix() -> None:
    """Headers each server builds for the same request: the same signature,
    each parser reads the other's header, and ours accepts Synapse's."""
    synapse_client = SimpleNamespace(server_name=SERVER, signing_key=KEY)
    keys = {signing.key_id(KEY): signing.verify_key_of(KEY)}
    for method, uri, content in REQUESTS:
        label = f"{method} {uri}"
        theirs = MatrixFederationHttpClient.build_auth_headers(
            synapse_client, b"dest.example", method.encode(), uri.encode(), content
        )[0].decode()
        ours = authorization_header(SERVER, "dest.example", KEY, method, uri, content)
        parsed_theirs, parsed_ours = parse_authorization(theirs), parse_authorization(ours)
        tally("X-Matrix signature", parsed_theirs == parsed_ours, f"{label}: {parsed_ours} != {parsed_theirs}")
        origin, key, sig, destination = _parse_auth_header(ours.encode())
        tally(
            "X-Matrix parsing",
            (origin, key, sig, destination) == (SERVER, parsed_ours.key, parsed_ours.sig, "dest.example"),
            label,
        )
        try:
            verify_request(parsed_theirs, method, uri, content, "dest.example", keys)
            accepted = True
        except ValueError:
            accepted = False
        tally("X-Matrix verification", accepted, f"{label}: Synapse's header refused")


def main() -> int:
    compare_x_matrix()
    compare_redaction_table()
    compare_state_resolution()
    compare_auth_tables()
    for line in reports:
        print(line)
    print()
    for name in sorted(set(agree) | set(differ)):
        print(f"{name:22} agree {agree[name]:4}  differ {differ[name]:3}")
    for name, count in expected_differences.items():
        print(f"{name:22} expected differences (listed above with why): {count}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
