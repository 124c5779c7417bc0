"""The original API and the Matrix API over the same rooms: a message
posted on /api is an m.room.message event that /sync, /messages and the
WebSocket stream deliver, and a message sent on Matrix is listed on /api
(other events are not). The /api token opens the WebSocket stream.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from ..support.compat_client import CompatClient, Person, people, texts
from ..support.room_steps import text
from ..support.stream_steps import Stream, stream_url
from ..support.sync_steps import SyncLoop, timeline


@pytest.fixture
def compat(server):
    return CompatClient(server.base_url)


def iso(origin_server_ts: int) -> str:
    return datetime.fromtimestamp(origin_server_ts / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def matrix_room(someone: Person, api) -> str:
    rooms = await someone.on_matrix(api).joined_rooms()
    assert len(rooms) == 1, rooms
    return rooms[0]


async def token_stream(server, someone: Person) -> Stream:
    request = HTTPRequest(
        stream_url(server.base_url),
        headers={"Authorization": f"Token {someone.token}"},
        connect_timeout=5,
        request_timeout=5,
    )
    return Stream(await websocket_connect(request))


async def test_a_message_posted_on_api_reaches_matrix_sync_messages_and_the_stream(compat, server, api):
    alice, bob = await people(compat, "alice", "bob")
    room = await alice.create_room("Tea", [bob.id])
    room_id = await matrix_room(bob, api)
    matrix_bob = bob.on_matrix(api)
    loop = SyncLoop(matrix_bob, server)
    await loop.sync()
    stream = await token_stream(server, bob)
    await stream.frame()

    posted = (await alice.post(room["id"], "hello from /api")).body
    events = await stream.messages(room_id, 1)
    synced = [e for e in timeline(await loop.sync(), room_id) if e["type"] == "m.room.message"]
    page = await matrix_bob.messages(room_id, dir="b", limit=1, filter={"types": ["m.room.message"]})
    for event in (events[0], synced[0], page["chunk"][0]):
        assert event["type"] == "m.room.message"
        assert event["content"] == {"msgtype": "m.text", "body": "hello from /api"}
        assert event["sender"] == alice.user_id
        assert iso(event["origin_server_ts"]) == posted["created_at"]
    assert events[0]["event_id"] == synced[0]["event_id"] == page["chunk"][0]["event_id"]
    await stream.close()


async def test_matrix_messages_are_listed_on_api_and_other_events_are_not(compat, api):
    alice, bob = await people(compat, "alice", "bob")
    room = await alice.create_room("Tea", [bob.id])
    room_id = await matrix_room(bob, api)
    matrix_bob = bob.on_matrix(api)
    first = await matrix_bob.say(room_id, "from matrix")
    await matrix_bob.send(room_id, {"msgtype": "m.emote", "body": "waves"})
    # Not messages: state, other event types, a redacted message.
    await alice.on_matrix(api).put_state(room_id, "m.room.topic", {"topic": "not a message"})
    await matrix_bob.send(room_id, {"body": "a custom event"}, event_type="org.example.note")
    redacted = await matrix_bob.say(room_id, "regretted")
    await matrix_bob.redact(room_id, redacted)
    await alice.post(room["id"], "from /api")

    listed = (await alice.messages(room["id"])).body
    assert texts(listed) == ["from matrix", "waves", "from /api"]
    assert [m["author"] for m in listed] == [bob.id, bob.id, alice.id]
    event = (await matrix_bob.event(room_id, first)).body
    assert listed[0]["created_at"] == iso(event["origin_server_ts"])
    # The paged reading skips the same events.
    assert (await alice.messages(room["id"], limit=2)).body == listed[1:]


async def test_a_room_made_on_matrix_is_an_api_room(compat, api):
    alice, bob = await people(compat, "alice", "bob")
    matrix_alice, matrix_bob = alice.on_matrix(api), bob.on_matrix(api)
    room_id = await matrix_alice.create_room(name="Made on Matrix", invite=[bob.user_id])
    await matrix_bob.join(room_id)
    await matrix_alice.say(room_id, "hi")
    [room] = await bob.rooms()
    assert room["name"] == "Made on Matrix" and room["users"] == [alice.id, bob.id]
    await bob.post(room["id"], "hello")
    events, _ = await matrix_alice.all_messages(room_id, limit=10, dir="f", filter={"types": ["m.room.message"]})
    assert [(e["sender"], e["content"]["body"]) for e in events] == [(alice.user_id, "hi"), (bob.user_id, "hello")]
    # A Matrix room without a name is listed with an empty one.
    await matrix_alice.create_room()
    assert sorted(r["name"] for r in await alice.rooms()) == ["", "Made on Matrix"]


async def test_direct_messages_arrive_on_matrix_in_a_room_both_joined(compat, server, api):
    alice, bob = await people(compat, "Alice", "bob")
    matrix_bob = bob.on_matrix(api)
    loop = SyncLoop(matrix_bob, server)
    await loop.sync()
    await alice.direct(bob.id, "psst")
    answer = await loop.sync()
    [(room_id, joined)] = answer["rooms"]["join"].items()
    messages = [e for e in joined["timeline"]["events"] if e["type"] == "m.room.message"]
    assert [(e["sender"], e["content"]) for e in messages] == [(alice.user_id, text("psst"))]
    members = await matrix_bob.call("GET", f"/rooms/{room_id}/joined_members", schema="matrix/joined_members.response")
    assert set(members["joined"]) == {alice.user_id, bob.user_id}
    name = await matrix_bob.get_state(room_id, "m.room.name")
    assert name.body == {"name": "Alice&bob_private"}
