"""Canonical JSON, content hashes, event ids, redaction and ed25519
signatures of events (room versions 10, 11 and 12) as tables of cases.

The known vectors are the specification's (appendices: canonical JSON,
signing with the seed YJDBA9...); the rest pin what each rule keeps or
changes so a regression shows which rule moved.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from atomchat_server.events import signing
from atomchat_server.events.redaction import prune_event, pruned_content
from atomchat_server.events.room_versions import (
    DEFAULT_ROOM_VERSION,
    KNOWN_ROOM_VERSIONS,
    V10,
    V11,
    V12,
    UnknownRoomVersion,
    room_version,
    version_of_create,
)

SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
KEY = signing.signing_key_from_seed(SEED, "1")
VERIFY = signing.verify_key_of(KEY)
OTHER_KEY = signing.signing_key_from_seed("A" * 43, "1")


@pytest.mark.parametrize(
    "value, expected",
    [
        ({}, b"{}"),
        ({"one": 1, "two": "Two"}, b'{"one":1,"two":"Two"}'),
        ({"b": "2", "a": "1"}, b'{"a":"1","b":"2"}'),
        (
            {
                "auth": {
                    "success": True,
                    "mxid": "@john.doe:example.com",
                    "profile": {
                        "display_name": "John Doe",
                        "three_pids": [
                            {"medium": "email", "address": "john.doe@example.org"},
                            {"medium": "msisdn", "address": "123456789"},
                        ],
                    },
                }
            },
            b'{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":'
            b'[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},'
            b'"success":true}}',
        ),
        ({"a": "日本語"}, '{"a":"日本語"}'.encode()),
        ({"本": 2, "日": 1}, '{"日":1,"本":2}'.encode()),
        ({"a": "\u65e5"}, '{"a":"日"}'.encode()),
        ({"a": None}, b'{"a":null}'),
    ],
    ids=["empty", "one-two", "sorted", "nested", "utf8", "utf8-keys-sorted-by-code-point", "escape", "null"],
)
def test_canonical_json(value, expected):
    assert signing.canonical_json(value) == expected


@pytest.mark.parametrize(
    "value, signature",
    [
        ({}, "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"),
        (
            {"one": 1, "two": "Two"},
            "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw",
        ),
    ],
    ids=["empty-object", "object-with-data"],
)
def test_sign_json_spec_vectors(value, signature):
    signed = signing.sign_json(value, "domain", KEY)
    assert signed == {**value, "signatures": {"domain": {"ed25519:1": signature}}}
    assert "signatures" not in value  # the input is left alone
    signing.verify_json(signed, "domain", VERIFY)


MINIMAL = {
    "room_id": "!x:domain",
    "sender": "@a:domain",
    "origin": "domain",
    "origin_server_ts": 1000000,
    "signatures": {},
    "hashes": {},
    "type": "X",
    "content": {},
    "prev_events": [],
    "auth_events": [],
    "depth": 3,
    "unsigned": {"age_ts": 1000000},
}
REDACTABLE = {
    "content": {"body": "Here is the message content"},
    "event_id": "$0:domain",
    "origin": "domain",
    "origin_server_ts": 1000000,
    "type": "m.room.message",
    "room_id": "!r:domain",
    "sender": "@u:domain",
    "signatures": {},
    "unsigned": {"age_ts": 1000000},
}


@pytest.mark.parametrize(
    "event, content_hash, signature",
    [
        (
            MINIMAL,
            "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos",
            "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg",
        ),
        (
            REDACTABLE,
            "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g",
            "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA",
        ),
    ],
    ids=["minimal-event", "redactable-event"],
)
def test_sign_event_spec_vectors(event, content_hash, signature):
    """The appendix's vectors keep "origin", which version 10 signs."""
    signed = signing.sign_event(event, "domain", KEY, V10)
    assert signed == {**event, "hashes": {"sha256": content_hash}, "signatures": {"domain": {"ed25519:1": signature}}}
    assert signing.has_valid_content_hash(signed)
    signing.verify_event(signed, "domain", VERIFY, V10)


def _signed(version=V11, **changes: Any) -> dict[str, Any]:
    return signing.sign_event({**REDACTABLE, **changes}, "domain", KEY, version)


def _tampered(path: tuple[str, ...], value: Any, version=V11) -> dict[str, Any]:
    event = copy.deepcopy(_signed(version))
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return event


@pytest.mark.parametrize(
    "event, version, server, key, verifies, hash_valid",
    [
        (_signed(), V11, "domain", VERIFY, True, True),
        # Content is redacted away before signing: a changed body keeps the
        # signature but breaks the content hash (the receiver then redacts it).
        (_tampered(("content", "body"), "changed"), V11, "domain", VERIFY, True, False),
        (_tampered(("unsigned", "age_ts"), 5), V11, "domain", VERIFY, True, True),
        (_tampered(("sender",), "@mallory:domain"), V11, "domain", VERIFY, False, False),
        (_tampered(("origin_server_ts",), 1), V11, "domain", VERIFY, False, False),
        # Version 11 no longer signs "origin"; version 10 does.
        (_tampered(("origin",), "elsewhere"), V11, "domain", VERIFY, True, False),
        (_tampered(("origin",), "elsewhere", V10), V10, "domain", VERIFY, False, False),
        (_signed(), V11, "other.example", VERIFY, False, True),
        (_signed(), V11, "domain", signing.verify_key_of(OTHER_KEY), False, True),
        (_tampered(("signatures",), {}), V11, "domain", VERIFY, False, True),
    ],
    ids=[
        "genuine",
        "content-changed",
        "unsigned-changed",
        "sender-changed",
        "timestamp-changed",
        "origin-changed-v11",
        "origin-changed-v10",
        "wrong-server",
        "wrong-key",
        "no-signature",
    ],
)
def test_verify_event(event, version, server, key, verifies, hash_valid):
    if verifies:
        signing.verify_event(event, server, key, version)
    else:
        with pytest.raises(signing.SignatureError):
            signing.verify_event(event, server, key, version)
    assert signing.has_valid_content_hash(event) is hash_valid


def test_verify_json_refuses_changed_object():
    signed = signing.sign_json({"server_name": "domain", "valid_until_ts": 5}, "domain", KEY)
    signing.verify_json({**signed, "unsigned": {"anything": 1}}, "domain", VERIFY)
    with pytest.raises(signing.SignatureError):
        signing.verify_json({**signed, "valid_until_ts": 6}, "domain", VERIFY)


def test_verify_key_round_trip():
    published = signing.verify_key_base64(VERIFY)
    assert signing.key_id(KEY) == signing.key_id(VERIFY) == "ed25519:1"
    restored = signing.verify_key_from_base64("ed25519:1", published)
    signing.verify_json(signing.sign_json({"a": 1}, "domain", KEY), "domain", restored)


def test_content_hash_ignores_unsigned_signatures_and_hashes():
    base = {"type": "m.room.message", "content": {"body": "x"}, "sender": "@u:domain"}
    decorated = {**base, "unsigned": {"age": 1}, "signatures": {"a": {}}, "hashes": {"sha256": "zzz"}}
    assert signing.content_hash(base) == signing.content_hash(decorated)
    assert signing.content_hash(base) != signing.content_hash({**base, "content": {"body": "y"}})
    assert not signing.has_valid_content_hash(base)


STATE_EVENT = {
    "type": "m.room.member",
    "state_key": "@u:domain",
    "room_id": "!r:domain",
    "sender": "@u:domain",
    "origin": "domain",
    "origin_server_ts": 7,
    "depth": 4,
    "prev_events": ["$p"],
    "auth_events": ["$a"],
    "hashes": {"sha256": "h"},
    "membership": "join",
    "prev_state": [],
    "content": {"membership": "join", "displayname": "U"},
}


@pytest.mark.parametrize(
    "change, same_id_v10, same_id_v11",
    [
        ({"signatures": {"domain": {"ed25519:1": "sig"}}}, True, True),
        ({"unsigned": {"age_ts": 99}}, True, True),
        ({"content": {"membership": "join", "displayname": "Other"}}, True, True),  # redacted away
        ({"hashes": {"sha256": "other"}}, False, False),  # a different content hash is a different event
        ({"origin": "elsewhere"}, False, True),
        ({"membership": "leave"}, False, True),
        ({"content": {"membership": "leave"}}, False, False),
        ({"depth": 5}, False, False),
    ],
    ids=[
        "signatures",
        "unsigned",
        "redactable-content",
        "hashes",
        "origin",
        "top-level-membership",
        "membership",
        "depth",
    ],
)
def test_event_id_covers_exactly_the_pruned_event(change, same_id_v10, same_id_v11):
    for version, same in ((V10, same_id_v10), (V11, same_id_v11), (V12, same_id_v11)):
        original, changed = signing.event_id(STATE_EVENT, version), signing.event_id({**STATE_EVENT, **change}, version)
        assert (original == changed) is same, version.identifier
        assert original.startswith("$") and len(original) == 44
        assert "+" not in original and "/" not in original and "=" not in original


def test_room_id_of_v12_create_event():
    create = {
        "type": "m.room.create",
        "state_key": "",
        "sender": "@u:domain",
        "origin_server_ts": 1,
        "content": {"room_version": "12"},
        "prev_events": [],
        "auth_events": [],
        "depth": 1,
    }
    room_id = signing.room_id_of_create(create, V12)
    assert room_id == "!" + signing.event_id(create, V12)[1:]
    with pytest.raises(ValueError, match="not derived"):
        signing.room_id_of_create(create, V11)


LEVELS = {
    "ban": 50,
    "events": {"m.room.name": 50},
    "events_default": 0,
    "invite": 0,
    "kick": 50,
    "notifications": {"room": 50},
    "redact": 50,
    "state_default": 50,
    "users": {"@u:d": 100},
    "users_default": 0,
    "historical": 100,
}
LEVELS_V10 = {key: value for key, value in LEVELS.items() if key not in ("invite", "notifications", "historical")}
LEVELS_V11 = {**LEVELS_V10, "invite": 0}
INVITE = {
    "membership": "invite",
    "displayname": "U",
    "join_authorised_via_users_server": "@a:d",
    "third_party_invite": {"display_name": "x", "signed": {"mxid": "@u:d", "token": "t"}},
}


@pytest.mark.parametrize(
    "event_type, content, kept_v10, kept_v11",
    [
        ("m.room.message", {"body": "hi", "msgtype": "m.text"}, {}, {}),
        (
            "m.room.member",
            INVITE,
            {"membership": "invite", "join_authorised_via_users_server": "@a:d"},
            {
                "membership": "invite",
                "join_authorised_via_users_server": "@a:d",
                "third_party_invite": {"signed": {"mxid": "@u:d", "token": "t"}},
            },
        ),
        (
            "m.room.member",
            {"membership": "join", "third_party_invite": {"display_name": "x"}},
            {"membership": "join"},
            {"membership": "join", "third_party_invite": {}},
        ),
        (
            "m.room.member",
            {"membership": "join", "third_party_invite": "x"},
            {"membership": "join"},
            {"membership": "join"},
        ),
        (
            "m.room.create",
            {"creator": "@u:d", "room_version": "11", "m.federate": False, "type": "m.space"},
            {"creator": "@u:d"},
            {"creator": "@u:d", "room_version": "11", "m.federate": False, "type": "m.space"},
        ),
        (
            "m.room.join_rules",
            {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}], "x": 1},
            {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}]},
            {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}]},
        ),
        ("m.room.power_levels", LEVELS, LEVELS_V10, LEVELS_V11),
        (
            "m.room.history_visibility",
            {"history_visibility": "shared", "x": 1},
            {"history_visibility": "shared"},
            {"history_visibility": "shared"},
        ),
        ("m.room.redaction", {"redacts": "$e", "reason": "spam"}, {}, {"redacts": "$e"}),
        ("m.room.aliases", {"aliases": ["#a:d"]}, {}, {}),
    ],
    ids=[
        "message",
        "member-invite",
        "member-third-party-without-signed",
        "member-third-party-not-object",
        "create",
        "join-rules",
        "power-levels",
        "history-visibility",
        "redaction",
        "aliases",
    ],
)
def test_pruned_content(event_type, content, kept_v10, kept_v11):
    assert pruned_content(event_type, content) == kept_v10  # the server's own rooms: version 10
    assert pruned_content(event_type, content, V10) == kept_v10
    assert pruned_content(event_type, content, V11) == kept_v11
    assert pruned_content(event_type, content, V12) == kept_v11


def test_prune_event_top_level_keys():
    event = {
        **STATE_EVENT,
        "event_id": "$e",
        "signatures": {"d": {}},
        "unsigned": {"age": 1},
        "redacts": "$x",
        "extra": True,
    }
    common = {
        "event_id": "$e",
        "type": "m.room.member",
        "room_id": "!r:domain",
        "sender": "@u:domain",
        "state_key": "@u:domain",
        "content": {"membership": "join"},
        "hashes": {"sha256": "h"},
        "signatures": {"d": {}},
        "depth": 4,
        "prev_events": ["$p"],
        "auth_events": ["$a"],
        "origin_server_ts": 7,
    }
    assert prune_event(event, V10) == {**common, "origin": "domain", "membership": "join", "prev_state": []}
    assert prune_event(event, V11) == common
    assert prune_event(event, V12) == common
    assert prune_event({"type": "m.room.message"}, V11) == {"type": "m.room.message", "content": {}}


@pytest.mark.parametrize("identifier, expected", [("10", V10), ("11", V11), ("12", V12)])
def test_room_version_table(identifier, expected):
    assert room_version(identifier) is expected is KNOWN_ROOM_VERSIONS[identifier]
    assert version_of_create({"room_version": identifier}) is expected


@pytest.mark.parametrize("identifier", ["1", "9", "13", 10, None, ""])
def test_unknown_room_versions(identifier):
    with pytest.raises(UnknownRoomVersion, match="not supported"):
        room_version(identifier)


def test_room_version_flags():
    assert DEFAULT_ROOM_VERSION is V10
    flags = (
        "updated_redaction_rules",
        "implicit_room_creator",
        "room_id_is_create_event_id",
        "privileged_creators",
        "state_res_v2_1",
    )
    assert [[getattr(v, f) for f in flags] for v in (V10, V11, V12)] == [
        [False, False, False, False, False],
        [True, True, False, False, False],
        [True, True, True, True, True],
    ]
    with pytest.raises(UnknownRoomVersion):
        version_of_create({})  # no room_version means version 1
