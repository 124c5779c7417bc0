"""The pure checks of received PDUs (events/pdu_checks.py), as tables: no
server, no database."""

import pytest
import signedjson.key

from atomchat_server.events import signing
from atomchat_server.events.auth import AuthError
from atomchat_server.events.pdu import as_event, build_pdu, finish_pdu
from atomchat_server.events.pdu_checks import (
    PduError,
    check_against_auth_events,
    check_format,
    check_signatures,
    with_checked_hash,
)
from atomchat_server.events.room_versions import V10, V11, V12

KEY = signedjson.key.generate_signing_key("k1")
OTHER_KEY = signedjson.key.generate_signing_key("k1")
KEYS = {("a.example", "ed25519:k1"): signing.verify_key_of(KEY)}
ALICE, BOB = "@alice:a.example", "@bob:b.example"


def make(
    version,
    event_type,
    content,
    state_key=None,
    *,
    sender=ALICE,
    room_id="!r:a.example",
    auth=(),
    prev=(),
    depth=1,
    key=KEY,
    server="a.example",
):
    pdu = build_pdu(
        room_id=room_id,
        sender=sender,
        event_type=event_type,
        content=content,
        state_key=state_key,
        redacts=None,
        origin_server_ts=1000 + depth,
        depth=depth,
        prev_events=list(prev),
        auth_events=list(auth),
        version=version,
    )
    return finish_pdu(pdu, server, key, version)


def room(version):
    """create, Alice's join, power levels, public join rules: (room id, events by id, ids)."""
    create_id, create = make(version, "m.room.create", {"creator": ALICE, "room_version": version.identifier}, "")
    room_id = "!" + create_id[1:] if version.room_id_is_create_event_id else "!r:a.example"
    with_create = [] if version.room_id_is_create_event_id else [create_id]
    join_id, join = make(
        version,
        "m.room.member",
        {"membership": "join"},
        ALICE,
        room_id=room_id,
        auth=with_create,
        prev=[create_id],
        depth=2,
    )
    pl_id, pl = make(
        version,
        "m.room.power_levels",
        {"users": {} if version is V12 else {ALICE: 100}},
        "",
        room_id=room_id,
        auth=[*with_create, join_id],
        prev=[join_id],
        depth=3,
    )
    jr_id, jr = make(
        version,
        "m.room.join_rules",
        {"join_rule": "public"},
        "",
        room_id=room_id,
        auth=[*with_create, join_id, pl_id],
        prev=[pl_id],
        depth=4,
    )
    events = {i: as_event(p, i, version) for i, p in ((create_id, create), (join_id, join), (pl_id, pl), (jr_id, jr))}
    return room_id, events, (create_id, join_id, pl_id, jr_id)


GOOD = make(V10, "m.room.message", {"body": "hi"})[1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": 1}, "the PDU needs a string type"),
        ({"sender": "alice"}, "the sender is not a user id"),
        ({"room_id": "r"}, "the PDU needs a room id"),
        ({"content": []}, "the PDU content must be an object"),
        ({"state_key": 3}, "the state key must be a string"),
        ({"depth": -1}, "the PDU needs a non-negative integer depth"),
        ({"depth": True}, "the PDU needs a non-negative integer depth"),
        ({"origin_server_ts": "now"}, "the PDU needs a non-negative integer origin_server_ts"),
        ({"prev_events": ["nope"]}, "prev_events must be a list of event ids"),
        ({"auth_events": "$a"}, "auth_events must be a list of event ids"),
        ({"prev_events": [f"$e{i}" for i in range(21)]}, "prev_events cites more than 20 events"),
        ({"hashes": {}}, "the PDU needs hashes.sha256"),
        ({"signatures": None}, "the PDU needs signatures"),
        ({"content": {"body": "x" * 70000}}, "the PDU is larger than 65536 bytes"),
    ],
)
def test_format_refusals(change, message):
    check_format(GOOD, V10)
    with pytest.raises(PduError, match=f"^{message}$"):
        check_format({**GOOD, **change}, V10)


def test_a_version_12_create_has_no_room_id_and_others_need_one():
    create = make(V12, "m.room.create", {"room_version": "12"}, "")[1]
    check_format(create, V12)
    with pytest.raises(PduError, match="needs a room id"):
        check_format({k: v for k, v in GOOD.items() if k != "room_id"}, V12)


@pytest.mark.parametrize("version", [V10, V11, V12])
def test_signatures(version):
    _, pdu = make(version, "m.room.message", {"body": "hi"})
    check_signatures(pdu, version, KEYS)
    # The content is not signed (only its hash is): changed content still verifies.
    check_signatures({**pdu, "content": {"body": "changed"}}, version, KEYS)
    cases = [
        ({**pdu, "depth": 9}, "the signature of a.example does not match the PDU"),
        (
            make(version, "m.room.message", {"body": "hi"}, key=OTHER_KEY)[1],
            "the signature of a.example does not match the PDU",
        ),
        ({**pdu, "signatures": {}}, "the PDU carries no signature of a.example by a key known here"),
        (make(version, "m.room.message", {}, sender=BOB)[1], "the PDU carries no signature of b.example"),
    ]
    for bad, message in cases:
        with pytest.raises(PduError, match=f"^{message}"):
            check_signatures(bad, version, KEYS)


@pytest.mark.parametrize("version", [V10, V11, V12])
def test_a_wrong_content_hash_keeps_the_redacted_event(version):
    event_id, pdu = make(version, "m.room.member", {"membership": "join", "displayname": "Al"}, ALICE)
    assert with_checked_hash(pdu, version) == (pdu, False)
    kept, redacted = with_checked_hash({**pdu, "content": {"membership": "join", "displayname": "Evil"}}, version)
    assert redacted and kept["content"] == {"membership": "join"}
    # The reference hash is of the redacted form: the id stays the same.
    assert signing.event_id(kept, version) == event_id


@pytest.mark.parametrize("version", [V10, V11, V12])
def test_auth_against_the_events_own_auth_events(version):
    room_id, events, (create_id, join_id, pl_id, jr_id) = room(version)
    create = events[create_id]
    with_create = [] if version.room_id_is_create_event_id else [create_id]
    for event in events.values():
        auth = [events[a] for a in event["auth_events"]]
        check_against_auth_events(event, auth, version, create)
    bob_id, bob_join = make(
        version,
        "m.room.member",
        {"membership": "join"},
        BOB,
        sender=BOB,
        room_id=room_id,
        auth=[*with_create, pl_id, jr_id],
        prev=[jr_id],
        depth=5,
        server="b.example",
    )
    bob = as_event(bob_join, bob_id, version)
    check_against_auth_events(bob, [events[a] for a in bob["auth_events"]], version, create)
    refusals = [
        # Without the join rules among its auth events, the room is invite-only.
        ([*with_create, pl_id], "join"),
        # Two events for the power levels key... Alice's join is not one Bob's join may cite.
        ([*with_create, pl_id, jr_id, join_id], "does not use"),
    ]
    for auth_ids, message in refusals:
        event = {**bob, "auth_events": auth_ids}
        with pytest.raises(AuthError, match=message):
            check_against_auth_events(event, [events[a] for a in auth_ids], version, create)
    if version.room_id_is_create_event_id:
        with pytest.raises(AuthError, match="create event is unknown"):
            check_against_auth_events(bob, [events[a] for a in bob["auth_events"]], version, None)
        with pytest.raises(AuthError, match="does not use"):
            check_against_auth_events(
                {**bob, "auth_events": [create_id, pl_id, jr_id]},
                [create, events[pl_id], events[jr_id]],
                version,
                create,
            )
