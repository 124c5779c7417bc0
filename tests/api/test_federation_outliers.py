"""The state a server takes in on joining a room over federation is held as
outliers, with no place in its history of the room until backfill places
them: no history read shows them to clients before that — not /event,
/context, /search, /relations or /threads — and every one of those does
once a reader's paging back has placed them."""

from ..support.room_steps import register
from .test_federation_backfill import join
from .test_relations import relates, relations, threads

NOTE = "org.example.note"


def search_body(term: str) -> dict:
    return {"search_categories": {"room_events": {"search_term": term, "order_by": "recent"}}}


async def found(user, term: str) -> list[str]:
    answer = await user.call("POST", "/search", search_body(term), schema="matrix/search.response")
    return [r["result"]["event_id"] for r in answer["search_categories"]["room_events"]["results"]]


async def test_outliers_are_no_history_until_backfill_places_them(federation_pair):
    a, b = federation_pair
    (alice,) = await register(a.api, "alice")
    room_id = await alice.create_room(preset="public_chat")
    topic = (await alice.put_state(room_id, "m.room.topic", {"topic": "walrus husbandry"}))["event_id"]
    # A state event in a thread under the topic: both are state B takes in on joining.
    note = (await alice.put_state(room_id, NOTE, relates("m.thread", topic, body="a note")))["event_id"]
    for n in range(3):
        await alice.say(room_id, f"earlier {n}")
    (bob,) = await register(b.api, "bob")
    await join(bob, a, room_id)
    held = {e["event_id"] for e in (await bob.state(room_id)).body}
    assert {topic, note} <= held, "the outliers make the room's current state"

    await bob.event(room_id, topic, status=404)
    await bob.context(room_id, topic, status=404)
    assert await found(bob, "walrus") == []
    await relations(bob, room_id, topic, status=404)
    assert (await threads(bob, room_id))["chunk"] == []

    # Paging back brings the room's history from A, which places them.
    events, _ = await bob.all_messages(room_id, limit=10, dir="b")
    assert {topic, note} <= {e["event_id"] for e in events}
    assert (await bob.event(room_id, topic))["content"] == {"topic": "walrus husbandry"}
    assert (await bob.context(room_id, topic))["event"]["event_id"] == topic
    assert await found(bob, "walrus") == [topic]
    assert [e["event_id"] for e in (await relations(bob, room_id, topic))["chunk"]] == [note]
