"""Conversations through real Matrix client libraries: nio pages relations
and threads and reads presence; mautrix reacts, edits, tags rooms and sets
presence, and parses what the server bundles with its own event classes."""

from __future__ import annotations

import nio
import pytest
from mautrix.types import (
    EventType,
    InReplyTo,
    MessageEvent,
    MessageType,
    PresenceState,
    RelatesTo,
    RelationType,
    RoomTagInfo,
    TextMessageEventContent,
)

from ..support.real_clients import nio_sync, ok

pytestmark = pytest.mark.settings(track_presence=True, presence_timeout_seconds=60.0)


async def test_nio_reads_relations_threads_and_presence(clients):
    alice = await clients.nio_user("alice")
    bob = await clients.nio_user("bob")
    room_id = ok(await alice.room_create(invite=[bob.user_id]), nio.RoomCreateResponse).room_id
    ok(await bob.join(room_id), nio.JoinResponse)
    root = ok(
        await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "root"}), nio.RoomSendResponse
    ).event_id
    replies = []
    for n in range(3):
        content = {
            "msgtype": "m.text",
            "body": f"reply {n}",
            "m.relates_to": {"rel_type": "m.thread", "event_id": root},
        }
        replies.append(ok(await bob.room_send(room_id, "m.room.message", content), nio.RoomSendResponse).event_id)

    related = [event async for event in alice.room_get_event_relations(room_id, root, limit=2)]
    assert [event.event_id for event in related] == replies[::-1]  # paged by nio through next_batch
    roots = [event async for event in alice.room_get_threads(room_id)]
    assert [event.event_id for event in roots] == [root]
    thread = roots[0].source["unsigned"]["m.relations"]["m.thread"]
    assert (thread["count"], thread["latest_event"]["event_id"]) == (3, replies[-1])

    await nio_sync(bob)  # syncing as online
    presence = ok(await alice.get_presence(bob.user_id), nio.PresenceGetResponse)
    assert presence.presence == "online" and presence.currently_active
    ok(await bob.set_presence("unavailable", "brb"), nio.PresenceSetResponse)
    presence = ok(await alice.get_presence(bob.user_id), nio.PresenceGetResponse)
    assert (presence.presence, presence.status_msg) == ("unavailable", "brb")


async def test_mautrix_reacts_edits_tags_and_sets_presence(clients):
    alice = await clients.mautrix_user("alice")
    bob = await clients.mautrix_user("bob")
    room_id = await alice.create_room(invitees=[bob.mxid])
    await bob.join_room(room_id)
    original = await alice.send_text(room_id, "I like cake")
    edit = TextMessageEventContent(
        msgtype=MessageType.TEXT,
        body="* I like pie",
        relates_to=RelatesTo(rel_type=RelationType.REPLACE, event_id=original),
    )
    edit["m.new_content"] = {"msgtype": "m.text", "body": "I like pie"}
    edit_id = await alice.send_message_event(room_id, EventType.ROOM_MESSAGE, edit)
    await bob.react(room_id, original, "🍰")
    await bob.send_text(room_id, "indeed", relates_to=RelatesTo(in_reply_to=InReplyTo(event_id=original)))

    event = await bob.get_event(room_id, original)
    assert isinstance(event, MessageEvent) and event.content.body == "I like cake"
    relations = event.unsigned.serialize()["m.relations"]  # mautrix keeps what it has no field for
    assert relations["m.replace"]["event_id"] == edit_id
    assert set(relations) == {"m.replace"}  # reactions and replies are not aggregated

    await alice.set_room_tag(room_id, "m.favourite", RoomTagInfo(order=0.5))
    await alice.set_room_tag(room_id, "u.work")
    tags = await alice.get_room_tags(room_id)
    assert set(tags.tags) == {"m.favourite", "u.work"} and tags.tags["m.favourite"].order == 0.5
    await alice.remove_room_tag(room_id, "u.work")
    assert set((await alice.get_room_tags(room_id)).tags) == {"m.favourite"}

    await alice.set_presence(PresenceState.UNAVAILABLE, "in a meeting")
    presence = await bob.get_presence(alice.mxid)
    assert (presence.presence, presence.status_msg) == (PresenceState.UNAVAILABLE, "in a meeting")
