"""The schemas as a third-party client uses them, with standard libraries only.

Every file in schemas/ declares its ``$id``; a ``referencing`` registry built
from the files by those ids (nothing registered by path) resolves every
``$ref``, validates every example, and so validates the examples marked in
protocol/*.md (code blocks opened with ```json schema=<name>). Responses that
carry events hand each event to the schema of its type through the
dispatching schemas (events/event, ephemeral/event, account_data/event).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

CHECKOUT = Path(__file__).resolve().parents[2]
SCHEMAS = CHECKOUT / "schemas"
PROTOCOL = CHECKOUT / "protocol"
BASE = "https://atomchat.invalid/schemas/"
FILES = sorted(SCHEMAS.rglob("*.json"))
# Folders of per-type schemas, each with an event.json that dispatches to them.
DISPATCHERS = {"events": ("core", "state", "event", "stripped"), "ephemeral": ("event",), "account_data": ("event",)}
EXAMPLE_BLOCK = re.compile(r"^```json schema=(?P<name>\S+)\n(?P<body>.*?)^```$", re.S | re.M)


def name_of(path: Path) -> str:
    return path.relative_to(SCHEMAS).with_suffix("").as_posix()


@lru_cache(maxsize=1)
def documents() -> dict[str, dict[str, Any]]:
    return {name_of(path): json.loads(path.read_text(encoding="utf-8")) for path in FILES}


@lru_cache(maxsize=1)
def registry() -> Registry:
    """By each file's own $id: the files could come from anywhere."""
    return [Resource.from_contents(document) for document in documents().values()] @ Registry()


def validator(name: str) -> Draft202012Validator:
    """``name`` may end with a JSON pointer into the file (``matrix/sync.response#/$defs/joined_room``)."""
    path, _, pointer = name.partition("#")
    return Draft202012Validator({"$ref": f"{BASE}{path}.json#{pointer}"}, registry=registry())


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def errors(name: str, instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}"
        for e in validator(name).iter_errors(instance)
    ]


def test_every_schema_has_a_stable_id_and_every_ref_resolves_by_it():
    found = documents()
    assert len(found) == len(FILES) > 150
    ids = [document.get("$id") for document in found.values()]
    assert ids == [BASE + name + ".json" for name in found]
    known = registry()
    resolved = 0
    for document in found.values():
        resolver = known.resolver(base_uri=document["$id"])
        for ref in refs(document):
            target = resolver.lookup(ref).contents  # raises if it does not resolve
            assert isinstance(target, (dict, bool)), (document["$id"], ref)
            resolved += 1
    assert resolved > 200


@pytest.mark.parametrize("name", sorted(documents()))
def test_every_example_in_a_schema_validates(name):
    for example in documents()[name].get("examples", []):
        assert not errors(name, example), (name, errors(name, example))


def test_the_examples_in_the_protocol_text_validate():
    checked: dict[str, int] = {}
    for page in sorted(PROTOCOL.glob("*.md")):
        for block in EXAMPLE_BLOCK.finditer(page.read_text(encoding="utf-8")):
            name = block["name"]
            assert name.partition("#")[0] in documents(), f"{page.name}: no schema {name}"
            example = json.loads(block["body"])
            assert not errors(name, example), (page.name, name, errors(name, example))
            checked[page.name] = checked.get(page.name, 0) + 1
    assert sum(checked.values()) >= 20, checked


def test_each_dispatcher_names_every_type_of_its_folder():
    found = documents()
    for folder, shared in DISPATCHERS.items():
        types = {name.split("/", 1)[1] for name in found if name.startswith(folder + "/")} - set(shared)
        dispatched = {}
        for branch in found[f"{folder}/event"]["allOf"]:
            if "if" in branch:
                dispatched[branch["if"]["properties"]["type"]["const"]] = branch["then"]["$ref"]
        assert dispatched == {t: f"{t}.json" for t in types}, folder
        for event_type in types:
            assert found[f"{folder}/{event_type}"]["properties"]["type"] == {"const": event_type}
    stripped = {
        branch["if"]["properties"]["type"]["const"]: branch["then"]["properties"]["content"]["$ref"]
        for branch in found["events/stripped"]["allOf"]
    }
    room_types = {name.split("/", 1)[1] for name in found if name.startswith("events/")} - set(DISPATCHERS["events"])
    assert stripped == {t: f"{t}.json#/properties/content" for t in room_types}


def test_events_in_responses_go_through_the_dispatchers():
    """Outside the per-type folders no schema names core.json or state.json:
    every event a response carries is checked by its type."""
    for name, document in documents().items():
        if name.split("/")[0] in DISPATCHERS:
            continue
        for ref in refs(document):
            assert not re.search(r"events/(core|state)\.json", ref), (name, ref)


def test_dispatch_checks_content_and_lets_unknown_types_through():
    message = {
        "event_id": "$a",
        "room_id": "!r:example.org",
        "sender": "@a:example.org",
        "type": "m.room.message",
        "content": {"msgtype": "m.text", "body": "hi"},
        "origin_server_ts": 1,
        "unsigned": {"age": 0},
    }
    assert not errors("events/event", message)
    assert errors("events/event", {**message, "unsigned": {}})  # age is always there
    assert errors("events/event", {**message, "content": {"msgtype": "m.text"}})
    assert not errors("events/event", {**message, "type": "org.example.x", "content": {"msgtype": 1}})
    assert errors("events/event", {**message, "type": "org.example.x", "content": []})
    assert errors("ephemeral/event", {"type": "m.typing", "content": {"user_ids": ["bob"]}})
    assert not errors("ephemeral/event", {"type": "org.example.x", "content": {"user_ids": ["bob"]}})
    assert errors("account_data/event", {"type": "m.fully_read", "content": {}})
    invited = {
        "type": "m.room.member",
        "state_key": "@b:example.org",
        "sender": "@a:example.org",
        "content": {"membership": "invite"},
    }
    assert not errors("events/stripped", invited)
    assert errors("events/stripped", {**invited, "content": {"membership": "invited"}})
    sync = copy.deepcopy(documents()["stream/sync.frame"]["examples"][0])
    sync["rooms"]["join"]["!r:example.org"] = {
        "timeline": {"events": [{**message, "content": {"body": 5}}], "limited": False, "prev_batch": "s1"},
        "state": {"events": []},
        "ephemeral": {"events": []},
        "account_data": {"events": []},
        "unread_notifications": {"highlight_count": 0, "notification_count": 0},
        "summary": {"m.joined_member_count": 1, "m.invited_member_count": 0},
    }
    assert any("timeline/events/0/content" in e for e in errors("stream/sync.frame", sync))


def test_policy_rule_examples_that_are_rules_have_the_shape_the_server_acts_on():
    for kind in ("user", "server"):
        name = f"events/m.policy.rule.{kind}"
        rule = Draft202012Validator({"$ref": f"{BASE}{name}.json#/$defs/rule"}, registry=registry())
        contents = [example["content"] for example in documents()[name]["examples"]]
        assert [rule.is_valid(content) for content in contents] == [True, False]
        assert contents[1] == {}  # the lifted rule
