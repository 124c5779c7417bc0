"""Rooms made now are made of PDUs: version 12 by default (10 and 11 on
request), each event hashed and signed by this server, its id the
reference hash, citing the state that authorized it."""

import json

import asyncpg
import pytest

from atomchat_server.events import signing
from atomchat_server.events.room_versions import room_version

from ..support.room_steps import SERVER, register, room_of


async def stored_pdus(server, room_id):
    conn = await asyncpg.connect(server.atomchat.dsn)
    try:
        rows = await conn.fetch(
            "SELECT event_id, type, state_key, pdu FROM events WHERE room_id = $1 ORDER BY stream", room_id
        )
        room = await conn.fetchrow("SELECT room_version, pdus, extremities FROM rooms WHERE room_id = $1", room_id)
    finally:
        await conn.close()
    return rows, room


@pytest.mark.parametrize("version", ["10", "11", "12"])
async def test_every_event_is_a_signed_pdu_whose_id_is_its_reference_hash(api, server, version):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob, room_version=version)
    await bob.say(room_id, "hello")
    message = await alice.say(room_id, "to be redacted")
    redaction = await alice.redact(room_id, message, reason="oops")
    rows, room = await stored_pdus(server, room_id)
    assert (room["room_version"], room["pdus"], room["extremities"]) == (version, True, [redaction["event_id"]])
    rules = room_version(version)
    key = signing.verify_key_of(server.atomchat.ctx.server_key)
    ids: dict[str, tuple[str, str]] = {}
    for depth, row in enumerate(rows, start=1):
        pdu = json.loads(row["pdu"])
        assert signing.event_id(pdu, rules) == row["event_id"]
        signing.verify_event(pdu, SERVER, key, rules)
        assert pdu["depth"] == depth
        assert pdu["prev_events"] == ([rows[depth - 2]["event_id"]] if depth > 1 else [])
        # auth_events cite only events before it, of the kinds the rules read.
        assert set(pdu["auth_events"]) <= set(ids)
        ids[row["event_id"]] = (row["type"], row["state_key"])
        if row["type"] == "m.room.create":
            assert ("room_id" in pdu) is (version != "12")
    if version == "12":
        assert room_id == "!" + rows[0]["event_id"][1:]
        assert ":" not in room_id
    else:
        assert room_id.endswith(":" + SERVER)
    # A message cites the create (before v12), power levels and its sender's membership.
    said = next(r for r in rows if r["type"] == "m.room.message")
    pdu = json.loads(said["pdu"])
    cited = sorted(ids[e] for e in pdu["auth_events"])
    expected = [("m.room.member", bob.user_id), ("m.room.power_levels", "")]
    if version != "12":
        expected.insert(0, ("m.room.create", ""))
    assert cited == expected


async def test_version_12_creators_are_above_power_levels(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    levels = (await alice.get_state(room_id, "m.room.power_levels")).body
    assert levels["users"] == {}
    create = (await alice.get_state(room_id, "m.room.create")).body
    assert create["room_version"] == "12"
    # The creator may not be listed; anyone else may be.
    refused = await alice.put_state(
        room_id, "m.room.power_levels", {**levels, "users": {alice.user_id: 100}}, status=403
    )
    assert refused["errcode"] == "M_FORBIDDEN"
    await alice.put_state(room_id, "m.room.power_levels", {**levels, "users": {bob.user_id: 100}})
    # The room id names the room everywhere a room id is taken.
    joined = await alice.call("GET", "/joined_rooms", schema="matrix/joined_rooms.response")
    assert joined.body == {"joined_rooms": [room_id]}
    message = await bob.say(room_id, "hi")
    redaction = await alice.redact(room_id, message, reason="typo")
    seen = await bob.event(room_id, redaction["event_id"])
    # From version 11 a redaction names its target in its content.
    assert seen["redacts"] == message
    assert seen["content"] == {"reason": "typo", "redacts": message}


async def test_capabilities_offer_versions_10_to_12(api):
    (alice,) = await register(api, "alice")
    answer = await alice.call("GET", "/capabilities", schema="matrix/capabilities.response")
    caps = answer.body["capabilities"]["m.room_versions"]
    assert caps == {"default": "12", "available": {"10": "stable", "11": "stable", "12": "stable"}}
    refused = await alice.call("POST", "/createRoom", {"room_version": "9"}, status=400)
    assert refused["errcode"] == "M_UNSUPPORTED_ROOM_VERSION"
