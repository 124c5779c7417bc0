"""Redactions taken from another server, over real HTTPS federation: a
redaction and its target both brought by backfill are applied as a live
redaction is, whether they come in one answer or the redaction first
(backfill goes newest first) and its target in a later one; a remote user's
redaction of their own message applies live and when fetched in a gap."""

import json
from dataclasses import replace

from atomchat_server.services.backfill import BATCH

from ..support.room_steps import register
from ..support.waiting import eventually
from .test_federation_backfill import join, rows
from .test_federation_catch_up import missed_by, room_with_bob
from .test_federation_outliers import found


async def pdu_on(server, event_id: str) -> str:
    stored = await rows(server.dsn, "SELECT pdu::text AS pdu FROM events WHERE event_id = $1", event_id)
    return stored[0]["pdu"]


async def test_backfilled_redactions_apply_to_their_targets(federation_pair):
    a, b = federation_pair
    alice, carol = await register(a.api, "alice", "carol")
    room_id = await alice.create_room(preset="public_chat")
    await carol.join(room_id)
    # Carol (power level 0) says something she takes back; so does Alice.
    early = await carol.say(room_id, "secret early")
    for n in range(BATCH + 5):  # Carol's redaction comes a whole answer before her message
        await alice.say(room_id, f"filler {n}")
    late = await alice.say(room_id, "secret late")
    sent = {event_id: await pdu_on(a, event_id) for event_id in (early, late)}
    redactions = {
        early: (await carol.redact(room_id, early))["event_id"],
        late: (await alice.redact(room_id, late))["event_id"],
    }
    # A serves the messages as they were sent, as a server that had not
    # applied the redactions would: B must apply them itself.
    for event_id, pdu in sent.items():
        await rows(a.dsn, "UPDATE events SET pdu = $2::text::jsonb WHERE event_id = $1", event_id, pdu)
    (bob,) = await register(b.api, "bob")
    await join(bob, a, room_id)
    events, _ = await bob.all_messages(room_id, limit=20, dir="b")
    by_id = {e["event_id"]: e for e in events}
    assert set(redactions.values()) <= by_id.keys()
    for event_id, redaction in redactions.items():
        assert by_id[event_id]["content"] == {}
        assert by_id[event_id]["unsigned"]["redacted_because"]["event_id"] == redaction
        assert (await bob.event(room_id, event_id))["content"] == {}
        # Served on to other servers redacted too.
        assert json.loads(await pdu_on(b, event_id))["content"] == {}
    assert await found(bob, "secret") == []
    assert len(await found(bob, "filler")) == 10  # search's first page: the rest is searchable


async def test_a_remote_user_redacting_their_own_message_redacts_it_on_the_rooms_server(federation_pair):
    a, b = federation_pair
    (alice,) = await register(a.api, "alice")
    room_id = await alice.create_room(preset="public_chat")
    (bob,) = await register(b.api, "bob")
    await join(bob, a, room_id)
    oops = await bob.say(room_id, "oops")
    redaction = (await bob.redact(room_id, oops))["event_id"]

    async def redacted_on_a():
        shown = {e["event_id"]: e for e in (await alice.messages(room_id, dir="b", limit=5))["chunk"]}
        return redaction in shown and shown[oops]["unsigned"].get("redacted_because", {}).get("event_id") == redaction

    await eventually(redacted_on_a)


async def test_a_redaction_fetched_in_a_gap_applies_to_its_target(federation_pair):
    """B misses Carol's message and her redaction of it (get_missing_events
    brings both): the message is redacted on B too, even served whole."""
    a, b = federation_pair
    alice, bob, room_id, (carol,) = await room_with_bob(a, b, "carol")
    said = {}

    async def say_and_take_back():
        said["oops"] = await carol.say(room_id, "oops")
        said["pdu"] = await pdu_on(a, said["oops"])
        said["redaction"] = (await carol.redact(room_id, said["oops"]))["event_id"]

    await missed_by(a, b, say_and_take_back)
    await rows(a.dsn, "UPDATE events SET pdu = $2::text::jsonb WHERE event_id = $1", said["oops"], said["pdu"])
    bob = replace(bob, api=b.api)  # b's client port is a new one
    await alice.say(room_id, "back")

    async def redacted_on_b():
        shown = {e["event_id"]: e for e in (await bob.messages(room_id, dir="b", limit=5))["chunk"]}
        return said["oops"] in shown and shown[said["oops"]]["unsigned"].get("redacted_because", {}).get("event_id")

    assert await eventually(redacted_on_b) == said["redaction"]
    assert (await bob.event(room_id, said["oops"]))["content"] == {}
