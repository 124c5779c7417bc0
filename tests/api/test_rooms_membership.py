"""Membership over HTTP: invite, join, leave, forget, kick, ban and unban,
each with its reason, the power each needs, joining by alias, and the
membership lists (/members, /joined_members, /joined_rooms)."""

import pytest

from ..support.client import path_param
from ..support.room_steps import SERVER, register, room_of, text


async def member_content(reader, room_id, user):
    return (await reader.get_state(room_id, "m.room.member", user.user_id)).body


async def test_invite_join_leave_each_with_its_reason(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room(preset="private_chat")
    await alice.invite(room_id, bob, reason="tea at five")
    assert await member_content(alice, room_id, bob) == {"membership": "invite", "reason": "tea at five"}
    joined = await bob.call("POST", f"/rooms/{room_id}/join", {"reason": "on my way"}, schema="matrix/join.response")
    assert joined.body == {"room_id": room_id}
    assert await member_content(alice, room_id, bob) == {"membership": "join", "reason": "on my way"}
    assert await bob.joined_rooms() == [room_id]
    await bob.leave(room_id, reason="off to bed")
    assert await member_content(alice, room_id, bob) == {"membership": "leave", "reason": "off to bed"}
    assert await bob.joined_rooms() == []
    # Someone who left is invited back and rejoins.
    await alice.invite(room_id, bob)
    await bob.join(room_id)
    assert await member_content(alice, room_id, bob) == {"membership": "join"}


async def test_an_empty_body_reads_as_no_reason(api):
    """nio posts join and leave with Content-Type JSON and no body at all."""
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room(preset="public_chat")
    joined = await bob.call("POST", f"/join/{room_id}", raw="", schema="matrix/join.response")
    assert joined.body == {"room_id": room_id}
    await bob.call("POST", f"/rooms/{room_id}/leave", raw="", schema="matrix/empty.response")
    assert await member_content(alice, room_id, bob) == {"membership": "leave"}


async def test_an_invitee_may_decline(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room(invite=[bob.user_id])
    await bob.leave(room_id, reason="not today")
    assert await member_content(alice, room_id, bob) == {"membership": "leave", "reason": "not today"}
    refused = await bob.join(room_id, status=403)
    assert refused["errcode"] == "M_FORBIDDEN"


async def test_an_invite_only_room_refuses_whoever_is_not_invited(api):
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room_id = await room_of(alice, bob)
    refused = await carol.join(room_id, status=403)
    assert refused["errcode"] == "M_FORBIDDEN"
    # Nor can an outsider invite herself in through someone else.
    refused = await carol.invite(room_id, carol, status=403)
    assert refused["errcode"] == "M_FORBIDDEN"
    members = await alice.members(room_id)
    assert sorted(e["state_key"] for e in members["chunk"]) == sorted([alice.user_id, bob.user_id])


async def test_a_public_room_lets_anyone_join_and_rejoin(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    await bob.leave(room_id)
    await bob.join(room_id)
    assert await bob.joined_rooms() == [room_id]
    # Joining twice is harmless: the membership stays "join".
    await bob.join(room_id)
    assert await member_content(alice, room_id, bob) == {"membership": "join"}


async def test_invites_that_make_no_sense_are_refused(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    already = await alice.invite(room_id, bob, status=403)
    assert already["errcode"] == "M_FORBIDDEN"
    unknown = await alice.invite(room_id, f"@nobody:{SERVER}", status=404)
    assert unknown["errcode"] == "M_NOT_FOUND"
    malformed = await alice.call("POST", f"/rooms/{room_id}/invite", {"user_id": "bob"}, status=400)
    assert malformed["errcode"] == "M_BAD_JSON"
    missing = await alice.call("POST", f"/rooms/{room_id}/invite", {}, status=400)
    assert missing["errcode"] == "M_MISSING_PARAM"


async def test_leaving_a_room_one_is_not_in_is_refused(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room(preset="public_chat")
    refused = await bob.leave(room_id, status=403)
    assert refused["errcode"] == "M_FORBIDDEN"


async def test_kick_with_reason(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    await alice.act("kick", room_id, bob, reason="too loud")
    member = await alice.call("GET", f"/rooms/{room_id}/members?membership=leave", schema="matrix/members.response")
    [kicked] = member["chunk"]
    assert (kicked["state_key"], kicked["sender"]) == (bob.user_id, alice.user_id)
    assert kicked["content"] == {"membership": "leave", "reason": "too loud"}
    refused = await bob.send(room_id, text("let me back"), status=403)
    assert refused["errcode"] == "M_FORBIDDEN"
    # A kick is not a ban: an invite lets them back.
    await alice.invite(room_id, bob)
    await bob.join(room_id)


async def test_rescinding_an_invite_is_a_kick(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room(invite=[bob.user_id])
    await alice.act("kick", room_id, bob, reason="changed my mind")
    assert await member_content(alice, room_id, bob) == {"membership": "leave", "reason": "changed my mind"}
    refused = await bob.join(room_id, status=403)
    assert refused["errcode"] == "M_FORBIDDEN"


async def test_ban_keeps_out_until_unban(api):
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    await alice.act("ban", room_id, bob, reason="spam")
    assert await member_content(alice, room_id, bob) == {"membership": "ban", "reason": "spam"}
    for attempt in (
        bob.join(room_id, status=403),
        alice.invite(room_id, bob, status=403),
        bob.leave(room_id, status=403),
    ):
        assert (await attempt)["errcode"] == "M_FORBIDDEN"
    # Someone never in the room can be banned ahead of time.
    await alice.act("ban", room_id, carol)
    assert (await carol.join(room_id, status=403))["errcode"] == "M_FORBIDDEN"
    await alice.act("unban", room_id, bob, reason="served their time")
    assert await member_content(alice, room_id, bob) == {"membership": "leave", "reason": "served their time"}
    await bob.join(room_id)
    assert sorted(await bob.joined_rooms()) == [room_id]


async def test_unban_only_lifts_bans_and_kick_does_not_unban(api):
    """An unban of a member would otherwise kick them, and a kick of a banned
    user would lift the ban: each action keeps to its meaning."""
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room_id = await room_of(alice, bob, carol)
    refused = await alice.act("unban", room_id, bob, status=403)
    assert refused["errcode"] == "M_FORBIDDEN"
    assert await member_content(alice, room_id, bob) == {"membership": "join"}
    await alice.act("ban", room_id, carol)
    refused = await alice.act("kick", room_id, carol, status=403)
    assert refused["errcode"] == "M_FORBIDDEN"
    assert (await member_content(alice, room_id, carol))["membership"] == "ban"
    # Kicking someone who already left does nothing useful either.
    await bob.leave(room_id)
    refused = await alice.act("kick", room_id, bob, status=403)
    assert refused["errcode"] == "M_FORBIDDEN"


@pytest.mark.parametrize("action", ["kick", "ban"])
async def test_kick_and_ban_need_power_above_the_target(api, action):
    alice, bob, molly, carol = await register(api, "alice", "bob", "molly", "carol")
    room_id = await room_of(
        alice,
        bob,
        molly,
        carol,
        power_level_content_override={"users": {alice.user_id: 100, bob.user_id: 50, molly.user_id: 50}},
    )
    # Too little power: an ordinary member.
    refused = await carol.act(action, room_id, bob, status=403)
    assert refused["errcode"] == "M_FORBIDDEN"
    # Equal power: one moderator against another, and against oneself.
    refused = await bob.act(action, room_id, molly, status=403)
    assert refused["errcode"] == "M_FORBIDDEN"
    # Against a superior.
    refused = await bob.act(action, room_id, alice, status=403)
    assert refused["errcode"] == "M_FORBIDDEN"
    members = await alice.members(room_id, membership="join")
    assert len(members["chunk"]) == 4
    # Enough power: a moderator against an ordinary member.
    await bob.act(action, room_id, carol, reason="as a moderator")
    assert await member_content(alice, room_id, carol) == {
        "membership": "leave" if action == "kick" else "ban",
        "reason": "as a moderator",
    }


async def test_unban_needs_the_ban_level(api):
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room_id = await room_of(alice, bob, preset="public_chat")
    await alice.act("ban", room_id, carol)
    refused = await bob.act("unban", room_id, carol, status=403)
    assert refused["errcode"] == "M_FORBIDDEN"
    await alice.act("unban", room_id, carol)
    await carol.join(room_id)


@pytest.mark.parametrize("style", ["nio", "mautrix"])
async def test_join_by_alias(api, style):
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room(preset="public_chat", room_alias_name="garden")
    alias = f"#garden:{SERVER}"
    # nio escapes only '#'; mautrix percent-encodes every reserved character.
    target = alias.replace("#", "%23") if style == "nio" else path_param(alias)
    joined = await bob.join(target, encode=False)
    assert joined.body == {"room_id": room_id}
    assert await bob.joined_rooms() == [room_id]


@pytest.mark.parametrize("encode", [True, False])
async def test_join_by_room_id_raw_or_encoded(api, encode):
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room_id = await alice.create_room(preset="public_chat")
    joined = await bob.join(room_id, encode=encode)
    assert joined.body == {"room_id": room_id}
    path_id = path_param(room_id) if encode else room_id
    joined = await carol.call("POST", f"/rooms/{path_id}/join", {}, schema="matrix/join.response")
    assert joined.body == {"room_id": room_id}


async def test_joining_what_does_not_exist(api):
    (bob,) = await register(api, "bob")
    for target, status, errcode in (
        (f"#nowhere:{SERVER}", 404, "M_NOT_FOUND"),
        (f"!nowhere:{SERVER}", 404, "M_NOT_FOUND"),
        ("nowhere", 400, "M_INVALID_PARAM"),
    ):
        refused = await bob.join(target, status=status)
        assert refused["errcode"] == errcode, target


async def test_forget(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    await alice.say(room_id, "before bob leaves")
    refused = await bob.call("POST", f"/rooms/{room_id}/forget", {}, status=400)
    assert refused["errcode"] == "M_UNKNOWN"
    await bob.leave(room_id)
    # Before forgetting, the history up to the leave is still readable...
    page = await bob.messages(room_id)
    assert page["chunk"][0]["content"]["membership"] == "leave"
    await bob.call("POST", f"/rooms/{room_id}/forget", {}, schema="matrix/empty.response")
    # ...after, it is gone for them.
    refused = await bob.messages(room_id, status=403)
    assert refused["errcode"] == "M_FORBIDDEN"
    assert await bob.joined_rooms() == []
    # Joining again makes the room theirs again.
    await bob.join(room_id)
    page = await bob.messages(room_id, limit=1)
    assert page["chunk"][0]["content"]["membership"] == "join"
    (carol,) = await register(api, "carol")
    never = await carol.call("POST", f"/rooms/{room_id}/forget", {}, status=404)
    assert never["errcode"] == "M_NOT_FOUND"


async def test_joined_rooms_lists_joined_rooms_only(api):
    alice, bob = await register(api, "alice", "bob")
    joined = await room_of(alice, bob)
    invited = await alice.create_room(invite=[bob.user_id])
    left = await room_of(alice, bob)
    await bob.leave(left)
    banned = await room_of(alice, bob)
    await alice.act("ban", banned, bob)
    assert await bob.joined_rooms() == [joined]
    assert sorted(await alice.joined_rooms()) == sorted([joined, invited, left, banned])


async def test_members_filtered_by_membership(api):
    alice, bob, carol, dave, eve = await register(api, "alice", "bob", "carol", "dave", "eve")
    room_id = await room_of(alice, bob, carol, dave)
    await alice.invite(room_id, eve)
    await carol.leave(room_id)
    await alice.act("ban", room_id, dave)

    async def listed(**params):
        answer = await bob.members(room_id, **params)
        return {e["state_key"]: e["content"]["membership"] for e in answer["chunk"]}

    everyone = {
        alice.user_id: "join",
        bob.user_id: "join",
        carol.user_id: "leave",
        dave.user_id: "ban",
        eve.user_id: "invite",
    }
    assert await listed() == everyone
    assert await listed(membership="join") == {alice.user_id: "join", bob.user_id: "join"}
    assert await listed(membership="invite") == {eve.user_id: "invite"}
    assert await listed(not_membership="leave") == {k: v for k, v in everyone.items() if v != "leave"}
    assert await listed(membership="join", not_membership="join") == {}


async def test_joined_members_lists_joined_users_with_profiles(api):
    alice, bob, carol, dave = await register(api, "alice", "bob", "carol", "dave")
    await alice.call(
        "PUT", f"/profile/{alice.user_id}/displayname", {"displayname": "Alice"}, schema="matrix/empty.response"
    )
    room_id = await room_of(alice, bob)
    await alice.invite(room_id, carol)
    answer = await bob.call("GET", f"/rooms/{room_id}/joined_members", schema="matrix/joined_members.response")
    assert set(answer["joined"]) == {alice.user_id, bob.user_id}
    assert answer["joined"][alice.user_id]["display_name"] == "Alice"
    # Neither the invited nor a stranger may list them.
    for outsider in (carol, dave):
        refused = await outsider.call("GET", f"/rooms/{room_id}/joined_members", status=403)
        assert refused["errcode"] == "M_FORBIDDEN"
    await bob.leave(room_id)
    refused = await bob.call("GET", f"/rooms/{room_id}/joined_members", status=403)
    assert refused["errcode"] == "M_FORBIDDEN"
