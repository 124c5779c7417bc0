"""Room state over HTTP (PUT and GET of single state events, the full
state) and redaction."""

import asyncio

import pytest

from atomchat_server.events.redaction import pruned_content

from ..support.room_steps import another_device, ids_of, register, room_of, text


@pytest.mark.parametrize("put_slash, get_slash", [(False, True), (True, False)])
async def test_the_empty_state_key_with_and_without_a_trailing_slash(api, put_slash, get_slash):
    """nio leaves the empty state key out of the path, mautrix ends the path with '/'."""
    (alice,) = await register(api, "alice")
    room_id = await alice.create_room()
    path = f"/rooms/{room_id}/state/m.room.name"
    put = await alice.call(
        "PUT", path + ("/" if put_slash else ""), {"name": "Attic"}, schema="matrix/event_id.response"
    )
    got = await alice.call("GET", path + ("/" if get_slash else ""), schema="matrix/state_content.response")
    assert got.body == {"name": "Attic"}
    event = await alice.event(room_id, put["event_id"])
    assert (event["type"], event["state_key"], event["content"]) == ("m.room.name", "", {"name": "Attic"})


async def test_concurrent_changes_of_one_state_key_chain_in_commit_order(api):
    """Sends that arrive together are committed together; two of them for
    the same state key must still each replace the one before, in order."""
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room_id = await room_of(alice, bob)
    await alice.invite(room_id, carol)
    answers = await asyncio.gather(
        *(alice.put_state(room_id, "m.room.topic", {"topic": f"topic {n}"}) for n in range(12)),
        *(bob.say(room_id, f"chatter {n}") for n in range(12)),
        carol.join(room_id),
    )
    topic_ids = {answer["event_id"] for answer in answers[:12]}
    timeline, _ = await alice.all_messages(room_id, limit=50, dir="f")
    topics = [e for e in timeline if e["type"] == "m.room.topic"]
    assert {e["event_id"] for e in topics} == topic_ids
    for earlier, later in zip(topics, topics[1:], strict=False):
        assert later["unsigned"]["replaces_state"] == earlier["event_id"]
        assert later["unsigned"]["prev_content"] == earlier["content"]
    assert (await alice.get_state(room_id, "m.room.topic")).body == topics[-1]["content"]
    assert len([e for e in timeline if e["sender"] == bob.user_id and e["type"] == "m.room.message"]) == 12
    joined = (
        await alice.call("GET", f"/rooms/{room_id}/joined_members", schema="matrix/joined_members.response")
    ).body["joined"]
    assert set(joined) == {alice.user_id, bob.user_id, carol.user_id}


async def test_state_replaces_state_and_remembers_what_it_replaced(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    first = await alice.put_state(room_id, "m.room.topic", {"topic": "one"})
    second = await alice.put_state(room_id, "m.room.topic", {"topic": "two"})
    assert (await bob.get_state(room_id, "m.room.topic")).body == {"topic": "two"}
    event = await bob.event(room_id, second["event_id"])
    assert event["unsigned"]["prev_content"] == {"topic": "one"}
    assert event["unsigned"]["replaces_state"] == first["event_id"]
    assert event["unsigned"]["prev_sender"] == alice.user_id
    # The full state holds the newest event of each type and key, once.
    state = (await bob.state(room_id)).body
    keys = [(e["type"], e["state_key"]) for e in state]
    assert len(keys) == len(set(keys))
    topics = [e for e in state if e["type"] == "m.room.topic"]
    assert ids_of(topics) == [second["event_id"]]
    assert set(keys) == {
        ("m.room.create", ""),
        ("m.room.member", alice.user_id),
        ("m.room.power_levels", ""),
        ("m.room.join_rules", ""),
        ("m.room.history_visibility", ""),
        ("m.room.guest_access", ""),
        ("m.room.member", bob.user_id),
        ("m.room.topic", ""),
    }
    assert all(e["room_id"] == room_id and e["event_id"].startswith("$") for e in state)


async def test_custom_state_with_a_state_key(api):
    (alice,) = await register(api, "alice")
    room_id = await alice.create_room()
    await alice.put_state(room_id, "org.example.widget", {"url": "https://example.org/w"}, "widget/1")
    await alice.put_state(room_id, "org.example.widget", {"url": "https://example.org/x"}, "widget 2 ✓")
    assert (await alice.get_state(room_id, "org.example.widget", "widget/1")).body == {"url": "https://example.org/w"}
    assert (await alice.get_state(room_id, "org.example.widget", "widget 2 ✓")).body == {"url": "https://example.org/x"}
    missing = await alice.get_state(room_id, "org.example.widget", "widget/3", status=404)
    assert missing["errcode"] == "M_NOT_FOUND"
    missing = await alice.get_state(room_id, "org.example.nothing", status=404)
    assert missing["errcode"] == "M_NOT_FOUND"


async def test_a_state_key_that_is_a_user_id_belongs_to_that_user(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob, power_level_content_override={"state_default": 0})
    refused = await alice.put_state(room_id, "org.example.status", {"away": True}, bob.user_id, status=403)
    assert refused["errcode"] == "M_FORBIDDEN"
    await bob.put_state(room_id, "org.example.status", {"away": True}, bob.user_id)
    assert (await alice.get_state(room_id, "org.example.status", bob.user_id)).body == {"away": True}
    # Raw in the path as nio sends it, too.
    raw = await alice.call(
        "GET", f"/rooms/{room_id}/state/org.example.status/{bob.user_id}", schema="matrix/state_content.response"
    )
    assert raw.body == {"away": True}


async def test_state_needs_power(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob, room_version="10")
    for event_type, content in (
        ("m.room.name", {"name": "Bob's"}),
        ("org.example.thing", {}),
        ("m.room.power_levels", {"users": {bob.user_id: 100}}),
    ):
        refused = await bob.put_state(room_id, event_type, content, status=403)
        assert refused["errcode"] == "M_FORBIDDEN"
    # A moderator allowed to change power levels still cannot demote a
    # superior nor raise anyone above themselves.
    levels = (await alice.get_state(room_id, "m.room.power_levels")).body
    levels = {
        **levels,
        "users": {alice.user_id: 100, bob.user_id: 50},
        "events": {**levels["events"], "m.room.power_levels": 50},
    }
    await alice.put_state(room_id, "m.room.power_levels", levels)
    for users in ({alice.user_id: 0, bob.user_id: 50}, {alice.user_id: 100, bob.user_id: 60}):
        refused = await bob.put_state(room_id, "m.room.power_levels", {**levels, "users": users}, status=403)
        assert refused["errcode"] == "M_FORBIDDEN"
    await bob.put_state(room_id, "m.room.name", {"name": "Bob's now"})
    await bob.put_state(room_id, "m.room.power_levels", {**levels, "users_default": 10})


async def test_membership_is_not_set_through_the_state_endpoint_by_others(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room(preset="public_chat")
    refused = await alice.put_state(room_id, "m.room.member", {"membership": "join"}, bob.user_id, status=403)
    assert refused["errcode"] == "M_FORBIDDEN"
    assert (await alice.members(room_id, membership="join"))["chunk"][0]["state_key"] == alice.user_id


async def test_a_redacted_message_loses_its_content(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob, room_version="10")
    message = await bob.send(room_id, {"msgtype": "m.text", "body": "oops", "extra": [1]}, txn_id="mine")
    redaction = await bob.redact(room_id, message["event_id"], reason="typo")
    redacted = await alice.event(room_id, message["event_id"])
    assert redacted["content"] == {}
    because = redacted["unsigned"]["redacted_because"]
    assert (because["event_id"], because["type"], because["sender"]) == (
        redaction["event_id"],
        "m.room.redaction",
        bob.user_id,
    )
    assert because["redacts"] == message["event_id"] and because["content"] == {"reason": "typo"}
    # The redaction is itself in the timeline, after the message.
    page = await alice.messages(room_id, limit=2)
    assert ids_of(page["chunk"]) == [redaction["event_id"], message["event_id"]]
    assert page["chunk"][0]["redacts"] == message["event_id"]
    assert page["chunk"][1]["content"] == {}


async def test_a_redacted_state_event_keeps_what_the_rules_need(api):
    alice, bob = await register(api, "alice", "bob")
    await bob.call(
        "PUT", f"/profile/{bob.user_id}/displayname", {"displayname": "Bobby"}, schema="matrix/empty.response"
    )
    room_id = await room_of(alice, bob, room_version="10")
    member = await alice.call(
        "GET", f"/rooms/{room_id}/state/m.room.member/{bob.user_id}", schema="matrix/state_content.response"
    )
    assert member.body == {"membership": "join", "displayname": "Bobby"}
    join_event = [
        e for e in (await alice.state(room_id)).body if (e["type"], e["state_key"]) == ("m.room.member", bob.user_id)
    ][0]
    await alice.redact(room_id, join_event["event_id"])
    after = await alice.get_state(room_id, "m.room.member", bob.user_id)
    assert after.body == pruned_content("m.room.member", member.body) == {"membership": "join"}
    # Bob is still in the room: the membership survived.
    await bob.say(room_id, "still here")
    levels = (await alice.get_state(room_id, "m.room.power_levels")).body
    power = await alice.put_state(room_id, "m.room.power_levels", {**levels, "notifications": {"room": 10}})
    await alice.redact(room_id, power["event_id"])
    pruned = (await alice.get_state(room_id, "m.room.power_levels")).body
    assert pruned == pruned_content("m.room.power_levels", {**levels, "notifications": {"room": 10}})
    assert "notifications" not in pruned and pruned["users"] == levels["users"]


async def test_a_redacted_state_event_is_pruned_where_its_successor_remembers_it(api):
    """unsigned.prev_content of the next state event is a copy of the redacted
    content: it is pruned too, or the redaction would not hide anything."""
    (alice,) = await register(api, "alice")
    room_id = await alice.create_room()
    secret = await alice.put_state(room_id, "m.room.topic", {"topic": "the secret plan"})
    public = await alice.put_state(room_id, "m.room.topic", {"topic": "nothing to see"})
    await alice.redact(room_id, secret["event_id"])
    successor = await alice.event(room_id, public["event_id"])
    assert successor["unsigned"]["prev_content"] == {}
    assert successor["unsigned"]["replaces_state"] == secret["event_id"]
    page = await alice.messages(room_id, limit=3)
    assert "the secret plan" not in str(page.body)
    assert (await alice.get_state(room_id, "m.room.topic")).body == {"topic": "nothing to see"}


async def test_redacting_others_needs_power(api):
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room_id = await room_of(alice, bob, carol)
    from_alice = await alice.say(room_id, "admin words")
    from_carol = await carol.say(room_id, "carol's words")
    refused = await bob.redact(room_id, from_alice, status=403)
    assert refused["errcode"] == "M_FORBIDDEN"
    refused = await bob.redact(room_id, from_carol, status=403)
    assert refused["errcode"] == "M_FORBIDDEN"
    assert (await bob.event(room_id, from_carol))["content"]["body"] == "carol's words"
    # The admin may redact anyone's.
    await alice.redact(room_id, from_carol, reason="moderation")
    assert (await bob.event(room_id, from_carol))["content"] == {}
    # A stranger may not redact at all.
    (dave,) = await register(api, "dave")
    refused = await dave.redact(room_id, from_alice, status=403)
    assert refused["errcode"] == "M_FORBIDDEN"


async def test_redaction_is_idempotent_and_checks_its_target(api, database_dsn):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    message = await alice.say(room_id, "to be removed")
    first = await alice.redact(room_id, message, txn_id="r1")
    again = await alice.redact(room_id, message, txn_id="r1")
    assert again["event_id"] == first["event_id"]
    # Redacting twice stores a second redaction but keeps the first reason.
    phone = await another_device(alice)
    second = await phone.redact(room_id, message, txn_id="r1")
    assert second["event_id"] != first["event_id"]
    event = await bob.event(room_id, message)
    assert event["unsigned"]["redacted_because"]["event_id"] == first["event_id"]
    missing = await alice.redact(room_id, "$nothing-like-this", status=404)
    assert missing["errcode"] == "M_NOT_FOUND"
    other_room = await alice.create_room()
    elsewhere = await alice.redact(other_room, message, status=404)
    assert elsewhere["errcode"] == "M_NOT_FOUND"
    # Redacted messages still read as messages of the room, in their place.
    page = await bob.messages(room_id, limit=4)
    assert ids_of(page["chunk"]) == [second["event_id"], first["event_id"], message, page["chunk"][3]["event_id"]]
    assert page["chunk"][2]["content"] == {}
    # Sending text after all that still works.
    await alice.send(room_id, text("and life goes on"))
