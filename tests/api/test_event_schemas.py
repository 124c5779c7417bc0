"""Event schemas: well-formed, their examples valid, wrong content refused.

The per-type schemas in schemas/events/ serve twice: the server checks the
content of every sent event of those types against them (400 before
anything is stored), and they describe the events clients receive,
including redacted ones. The first tests need no server; the last ones
send through the HTTP API.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from atomchat_server.errors import MatrixError
from atomchat_server.events.redaction import pruned_content
from atomchat_server.validation import schemas

from ..support.client import MATRIX, check_schema, path_param

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
EVENT_SCHEMAS = sorted(name for name in schemas().names if name.startswith("events/"))
TYPED_EVENT_SCHEMAS = [
    name for name in EVENT_SCHEMAS if name not in ("events/core", "events/state", "events/event", "events/stripped")
]
ALICE = "@alice:example.org"

# Per event type: contents the server must refuse. Each names the rule it breaks.
INVALID_CONTENT = {
    "m.room.create": [
        {"room_version": "10"},  # creator is required in room version 10
        {"creator": "alice"},  # not a user id
        {"creator": ALICE, "m.federate": "no"},
        {"creator": ALICE, "room_version": 10},
        {"creator": ALICE, "predecessor": {"event_id": "$abc"}},  # predecessor needs room_id
    ],
    "m.room.member": [
        {},
        {"displayname": "Alice"},
        {"membership": "joined"},
        {"membership": "join", "displayname": 7},
        {"membership": "join", "avatar_url": ["mxc://example.org/a"]},
        {"membership": "invite", "is_direct": "yes"},
        {"membership": "leave", "reason": None},
    ],
    "m.room.power_levels": [
        {"kick": "50"},  # room version 10: levels are integers, never strings
        {"users_default": 0.5},
        {"ban": True},
        {"redact": 2**53},  # outside canonical JSON's integer range
        {"events": {"m.room.name": "50"}},
        {"events": []},
        {"users": {"@bob:example.org": "100"}},
        {"users": {"bob": 50}},  # keys are user ids
        {"notifications": {"room": "50"}},
    ],
    "m.room.join_rules": [
        {},
        {"join_rule": "open"},
        {"join_rule": None},
        {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}]},  # which room?
        {"join_rule": "restricted", "allow": {"type": "m.room_membership", "room_id": "!a:example.org"}},
    ],
    "m.room.history_visibility": [
        {},
        {"history_visibility": "everyone"},
        {"history_visibility": True},
    ],
    "m.room.name": [
        {"name": 42},
        {"name": None},
        {"name": ["Book club"]},
    ],
    "m.room.topic": [
        {"topic": 5},
        {"topic": None},
        {"m.topic": {"m.text": [{"body": "no plain topic"}]}},
        {"topic": "x", "m.topic": {"m.text": [{"mimetype": "text/html"}]}},
    ],
    "m.room.canonical_alias": [
        {"alias": "book-club"},
        {"alias": "!room:example.org"},
        {"alias": 3},
        {"alt_aliases": "#books:example.org"},
        {"alt_aliases": ["#books:example.org", ""]},
    ],
    "m.room.guest_access": [
        {"guest_access": "yes"},
        {"guest_access": None},
        {"other": "can_join"},
    ],
    "m.room.redaction": [
        {"reason": 3},
        {"redacts": "not-an-event-id"},
    ],
    "m.room.message": [
        {"msgtype": "m.text"},
        {"msgtype": "m.notice"},
        {"msgtype": "m.emote"},
        {"msgtype": "org.example.custom", "url": "mxc://example.org/a"},
        {"body": "no msgtype"},
        {"msgtype": "m.text", "body": 12},
        {"msgtype": 1, "body": "hi"},
        {"msgtype": "m.text", "body": "hi", "format": "org.matrix.custom.html", "formatted_body": None},
        {"msgtype": "m.text", "body": "hi", "m.relates_to": "$abc"},
        {"m.relates_to": {"rel_type": "m.thread"}},
    ],
    "m.room.encryption": [
        {"rotation_period_ms": 1000},  # which algorithm?
        {"algorithm": ""},
        {"algorithm": "m.megolm.v1.aes-sha2", "rotation_period_msgs": "100"},
    ],
    # Any object is stored: a rule the server does not understand acts on nobody (protocol/moderation.md).
    "m.policy.rule.user": [],
    "m.policy.rule.server": [],
    "org.atomchat.room.deleted": [
        {"room_id": "!r:example.org", "purge": "no", "reason": ""},
        {"room_id": "r", "purge": False, "reason": ""},
        {"room_id": "!r:example.org", "purge": False},
    ],
    "m.room.encrypted": [
        {"algorithm": "m.megolm.v1.aes-sha2"},  # nothing encrypted
        {"ciphertext": "AwgAEnAC"},
        {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": 42},
    ],
}

# Contents that real clients send and the server must accept.
VALID_CONTENT: dict[str, list[Any]] = {
    "m.room.create": [{"creator": ALICE, "room_version": "10", "type": "m.space", "additional_creators": []}],
    "m.room.member": [
        {"membership": "join", "displayname": None, "avatar_url": None},
        {"membership": "ban", "reason": "spam"},
        {"membership": "invite", "is_direct": True, "org.example.note": 1},
    ],
    "m.room.power_levels": [{}, {"users": {ALICE: 100}, "users_default": -1, "events": {"org.example.x": 0}}],
    "m.room.join_rules": [{"join_rule": "public"}, {"join_rule": "invite", "allow": []}],
    "m.room.history_visibility": [{"history_visibility": "world_readable"}],
    "m.room.name": [{"name": "Book club"}, {"name": ""}, {}],
    "m.room.topic": [{"topic": ""}, {"topic": "t", "m.topic": {"m.text": [{"body": "t"}]}}, {}],
    "m.room.canonical_alias": [{}, {"alias": None}, {"alias": ""}, {"alt_aliases": ["#a:example.org"]}],
    "m.room.guest_access": [{"guest_access": "forbidden"}],
    "m.room.redaction": [{}, {"reason": "spam"}],
    "m.room.message": [
        {"msgtype": "m.text", "body": ""},
        {"msgtype": "m.notice", "body": "build passed"},
        {"msgtype": "m.emote", "body": "waves", "format": "org.matrix.custom.html", "formatted_body": "<em>waves</em>"},
        {"msgtype": "m.location", "body": "Here", "geo_uri": "geo:51.5,-0.1"},
        {"msgtype": "org.example.sticker", "body": "a cat", "anything": {"goes": [1, None]}},
    ],
    "m.room.encryption": [{"algorithm": "m.megolm.v1.aes-sha2"}, {}],
    "m.policy.rule.user": [
        {},
        {"entity": "@bob:example.org", "recommendation": "m.ban"},
        {"entity": "@bob:example.org", "recommendation": "org.example.other", "reason": ""},
        {"entity": "@bob:example.org", "recommendation": ["m.ban"]},
    ],
    "m.policy.rule.server": [
        {},
        {"entity": "*.evil.example.net", "recommendation": "m.ban", "reason": "spam"},
        {"entity": 5},
    ],
    "org.atomchat.room.deleted": [{"room_id": "!r:example.org", "purge": True, "reason": "spam"}],
    "m.room.encrypted": [
        {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEnAC", "session_id": "X3lU", "device_id": "D"},
        {
            "algorithm": "m.olm.v1.curve25519-aes-sha2",
            "sender_key": "Il",
            "ciphertext": {"Il": {"type": 0, "body": "Awo"}},
        },
        {},
    ],
}


def refusal(event_type: str, content) -> MatrixError | None:
    try:
        schemas().check_content(event_type, content)
    except MatrixError as error:
        return error
    return None


def test_every_schema_file_passes_the_metaschema():
    files = sorted(SCHEMAS_DIR.rglob("*.json"))
    assert len(files) > len(EVENT_SCHEMAS) > 10
    for path in files:
        document = json.loads(path.read_text(encoding="utf-8"))
        assert document.get("$schema") == "https://json-schema.org/draft/2020-12/schema", path
        Draft202012Validator.check_schema(document)


@pytest.mark.parametrize("name", EVENT_SCHEMAS)
def test_examples_validate_against_their_own_schema(name):
    examples = schemas().document(name).get("examples")
    assert examples, f"{name} has no examples"
    for example in examples:
        check_schema(name, example)
        if name in TYPED_EVENT_SCHEMAS:
            assert example["type"] == name.removeprefix("events/")
            check_schema("events/core", example)


def test_every_event_type_has_a_schema_with_checks():
    assert set(INVALID_CONTENT) == set(VALID_CONTENT) == {n.removeprefix("events/") for n in TYPED_EVENT_SCHEMAS}
    for name in TYPED_EVENT_SCHEMAS:
        # check_content reads the content schema from there.
        assert "content" in schemas().document(name)["properties"], name


@pytest.mark.parametrize("event_type", sorted(INVALID_CONTENT))
def test_invalid_content_is_refused(event_type):
    for content in INVALID_CONTENT[event_type]:
        error = refusal(event_type, content)
        assert error is not None, f"{event_type} accepted {content}"
        assert (error.status, error.errcode) in ((400, "M_BAD_JSON"), (400, "M_MISSING_PARAM")), error.to_json()


@pytest.mark.parametrize("event_type", sorted(VALID_CONTENT))
def test_valid_content_is_accepted(event_type):
    for content in VALID_CONTENT[event_type]:
        error = refusal(event_type, content)
        assert error is None, f"{event_type} refused {content}: {error and error.error}"


def test_types_without_a_schema_take_any_object():
    for content in ({}, {"a": [1, {"b": None}]}, {"body": 5, "msgtype": None}):
        assert refusal("org.example.custom", content) is None
        assert refusal("m.reaction", content) is None


def test_wrong_types_and_missing_message_bodies_are_bad_json():
    """The three refusals clients meet most: each names the field."""
    for event_type, content, field in [
        ("m.room.name", {"name": 42}, "name"),
        ("m.room.power_levels", {"users": {ALICE: "100"}}, "users"),
        ("m.room.message", {"msgtype": "m.text"}, "body"),
    ]:
        error = refusal(event_type, content)
        assert error is not None and error.errcode == "M_BAD_JSON", (event_type, error and error.to_json())
        assert field in error.error


def _example(name: str, predicate) -> dict:
    return copy.deepcopy(next(e for e in schemas().document(name)["examples"] if predicate(e)))


def _valid(name: str, event: dict) -> bool:
    return schemas().validator(name).is_valid(event)


@pytest.mark.parametrize("name", TYPED_EVENT_SCHEMAS)
def test_redacted_events_match_what_the_server_keeps(name):
    """Every example, redacted as the server redacts it, still matches its
    schema; a key the redaction would have removed does not."""
    because = _example("events/m.room.message", lambda e: "redacted_because" in e["unsigned"])
    for example in schemas().document(name)["examples"]:
        event = copy.deepcopy(example)
        event["unsigned"] = {"age": 5, "redacted_because": because["unsigned"]["redacted_because"]}
        event["content"] = pruned_content(event["type"], {**example["content"], "org.example.note": "x"})
        assert _valid(name, event), event
        event["content"]["org.example.note"] = "x"
        assert not _valid(name, event)


def test_event_level_rules():
    """What the per-type schemas require of whole events beyond content."""
    name = _example("events/m.room.name", lambda e: e["content"].get("name"))
    for broken in ({"state_key": "x"}, {"type": "m.room.topic"}, {"origin_server_ts": "now"}):
        assert not _valid("events/m.room.name", {**name, **broken}), broken
    del name["state_key"]
    assert not _valid("events/m.room.name", name)

    member = _example("events/m.room.member", lambda e: True)
    assert not _valid("events/m.room.member", {**member, "state_key": "alice"})

    redaction = _example("events/m.room.redaction", lambda e: e["content"])
    del redaction["redacts"]
    assert not _valid("events/m.room.redaction", redaction)


# -- over HTTP ---------------------------------------------------------------


async def _messages(api, token: str, room_id: str) -> list[dict]:
    page = await api.request(
        "GET",
        f"{MATRIX}/rooms/{path_param(room_id)}/messages?dir=b&limit=1000",
        token=token,
        schema="matrix/messages.response",
    )
    assert "end" not in page.body
    return page["chunk"]


def _check_typed(events: list[dict]) -> None:
    """Each event against the schema of its type, where it has one."""
    for event in events:
        if f"events/{event['type']}" in EVENT_SCHEMAS:
            check_schema(f"events/{event['type']}", event)


async def test_bad_content_is_refused_over_http_and_stores_nothing(api):
    alice = await api.register("alice")
    token = alice["access_token"]
    created = await api.request(
        "POST",
        f"{MATRIX}/createRoom",
        {"name": "Schemas", "topic": "checked", "room_alias_name": "schemas"},
        token=token,
        schema="matrix/createRoom.response",
    )
    room = path_param(created["room_id"])

    async def send(event_type, content, txn, status=200):
        return await api.request(
            "PUT",
            f"{MATRIX}/rooms/{room}/send/{event_type}/{txn}",
            content,
            token=token,
            status=status,
            schema="matrix/event_id.response" if status == 200 else None,
        )

    async def put_state(path, content, status=200):
        return await api.request(
            "PUT",
            f"{MATRIX}/rooms/{room}/state/{path}",
            content,
            token=token,
            status=status,
            schema="matrix/event_id.response" if status == 200 else None,
        )

    hello = await send("m.room.message", {"msgtype": "m.text", "body": "hello"}, "t1")
    before = await _messages(api, token, created["room_id"])
    state_before = await api.request(
        "GET", f"{MATRIX}/rooms/{room}/state", token=token, schema="matrix/room_state.response"
    )
    _check_typed(before)
    _check_typed(state_before.body)
    levels = next(e["content"] for e in state_before.body if e["type"] == "m.room.power_levels")

    refusals = [
        await put_state("m.room.name", {"name": 42}, status=400),
        await put_state("m.room.name/", {"name": ["x"]}, status=400),
        await put_state("m.room.power_levels", {**levels, "kick": "50"}, status=400),
        await put_state(
            "m.room.power_levels/", {**levels, "users": {**levels["users"], "@bob:test.local": "50"}}, status=400
        ),
        await send("m.room.message", {"msgtype": "m.text"}, "t2", status=400),
        await send("m.room.message", {"msgtype": "m.text", "body": None}, "t3", status=400),
    ]
    assert [r["errcode"] for r in refusals] == ["M_BAD_JSON"] * len(refusals)
    assert _ageless(await _messages(api, token, created["room_id"])) == _ageless(before)
    state_after = await api.request(
        "GET", f"{MATRIX}/rooms/{room}/state", token=token, schema="matrix/room_state.response"
    )
    assert [e["event_id"] for e in state_after.body] == [e["event_id"] for e in state_before.body]

    # A refused send leaves its transaction id unused.
    retried = await send("m.room.message", {"msgtype": "m.text", "body": "now with a body"}, "t2")
    assert retried["event_id"] != hello["event_id"]

    # Event types without a schema take any object; unknown msgtypes need only a body.
    custom = {"move": {"from": "e2", "to": "e4"}, "clock": [3.5, None, True], "": {}}
    custom_id = (await send("org.example.chess.move", custom, "t4"))["event_id"]
    empty_id = (await send("org.example.ping", {}, "t5"))["event_id"]
    sticker = {"msgtype": "org.example.sticker", "body": "a cat", "pack": {"id": 7}}
    sticker_id = (await send("m.room.message", sticker, "t6"))["event_id"]
    setting_id = (await put_state("org.example.settings/colour", {"rgb": [1, 2, 3]}))["event_id"]
    after = {e["event_id"]: e for e in await _messages(api, token, created["room_id"])}
    assert after[custom_id]["content"] == custom
    assert after[empty_id]["content"] == {}
    assert after[sticker_id]["content"] == sticker
    assert after[setting_id]["state_key"] == "colour"
    _check_typed(list(after.values()))

    # What a redaction leaves still matches the message schema.
    await api.request(
        "PUT",
        f"{MATRIX}/rooms/{room}/redact/{path_param(hello['event_id'])}/r1",
        {"reason": "test"},
        token=token,
        schema="matrix/event_id.response",
    )
    redacted = await api.request(
        "GET",
        f"{MATRIX}/rooms/{room}/event/{path_param(hello['event_id'])}",
        token=token,
        schema="events/m.room.message",
    )
    # The room is of version 12, where a redaction names its target in its content.
    assert redacted["content"] == {} and redacted["unsigned"]["redacted_because"]["content"] == {
        "reason": "test",
        "redacts": hello["event_id"],
    }


def _ageless(events: list[dict]) -> list[dict]:
    """Events without unsigned.age, which grows between two reads."""
    return [{**e, "unsigned": {k: v for k, v in e["unsigned"].items() if k != "age"}} for e in events]
