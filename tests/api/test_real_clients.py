# mypy: disable-error-code="arg-type"
# (mautrix types its arguments with NewTypes, JSON, UserID, SyncToken, which
# these tests, feeding it the server's raw JSON and plain ids, would have to
# wrap at every call.)
"""Whole conversations through real Matrix client libraries: matrix-nio and
mautrix, each with its own HTTP habits (nio sends identifiers raw and empty
bodies on some POSTs, mautrix percent-encodes everything and puts a slash
after an empty state key), its own response schemas and its own event
classes. What they need from a server is listed in
../shared/MATRIX_CLIENTS.md; these tests hold AtomChat to it.

nio reports failures as error responses and turns an event it cannot parse
into a BadEvent; mautrix raises. Every nio sync here is checked for bad
events, and every mautrix sync is parsed strictly with mautrix's own event
classes (its sync loop would only log a warning).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import nio
import pytest
from mautrix import errors as mautrix_errors
from mautrix.types import (
    EventType,
    Filter,
    MessageEvent,
    MessageType,
    PaginationDirection,
    ReceiptEvent,
    ReceiptType,
    RoomCreatePreset,
    RoomDirectoryVisibility,
    RoomEventFilter,
    RoomFilter,
    StateEvent,
    TextMessageEventContent,
    TypingEvent,
)

from ..support.client import DEFAULT_PASSWORD as PASSWORD
from ..support.real_clients import (
    BAD_EVENTS,
    SERVER,
    SYNC_MS,
    WAIT,
    joined_section,
    mautrix_sync,
    mautrix_sync_until,
    nio_ephemeral,
    nio_sync,
    nio_sync_until,
    nio_timeline,
    ok,
    register_with_mautrix,
    shared_room,
    user_id,
)
from ..support.sync_steps import long_polls_waiting


async def test_nio_registers_logs_in_with_the_full_user_id_and_logs_out(clients):
    alice = await clients.nio_user("alice")
    phone = clients.nio(user_id("alice"))
    login = ok(await phone.login(PASSWORD, device_name="phone"), nio.LoginResponse)
    assert login.user_id == user_id("alice")
    assert login.device_id != alice.device_id and login.access_token != alice.access_token
    whoami = ok(await phone.whoami(), nio.WhoamiResponse)
    assert (whoami.user_id, whoami.device_id) == (user_id("alice"), login.device_id)

    taken = ok(await clients.nio().register("alice", PASSWORD), nio.responses.RegisterErrorResponse)
    assert taken.status_code == "M_USER_IN_USE"
    refused = ok(await clients.nio(user_id("alice")).login("not the password"), nio.LoginError)
    assert refused.status_code == "M_FORBIDDEN"

    ok(await phone.logout(), nio.LogoutResponse)  # a POST with an empty body
    phone.access_token = login.access_token
    assert ok(await phone.whoami(), nio.WhoamiError).status_code == "M_UNKNOWN_TOKEN"
    assert ok(await alice.whoami(), nio.WhoamiResponse).device_id == alice.device_id


async def test_mautrix_registers_logs_in_with_the_full_user_id_and_logs_out(clients):
    alice = await clients.mautrix_user("alice")
    whoami = await alice.whoami()
    assert (whoami.user_id, whoami.device_id) == (user_id("alice"), alice.device_id)
    versions = await alice.versions()
    assert versions.versions and all(str(v).startswith(("v1.", "r0.")) for v in versions.versions)

    with pytest.raises(mautrix_errors.MUserInUse):
        await register_with_mautrix(clients.mautrix(), "alice")
    with pytest.raises(mautrix_errors.MForbidden):
        await clients.mautrix().login(identifier=user_id("alice"), password="not the password")

    token = alice.api.token
    await alice.logout()
    with pytest.raises(mautrix_errors.MUnknownToken):
        await clients.mautrix(token=token).whoami()


@pytest.mark.settings(rc_login_per_second=0.01, rc_login_burst=2)
async def test_rate_limits_reach_both_libraries_with_retry_after(clients):
    await clients.nio_user("alice")
    ok(await clients.nio(user_id("alice")).login(PASSWORD), nio.LoginResponse)
    await clients.mautrix().login(identifier=user_id("alice"), password=PASSWORD)
    limited = ok(await clients.nio(user_id("alice")).login(PASSWORD), nio.LoginError)
    assert limited.status_code == "M_LIMIT_EXCEEDED"
    assert limited.retry_after_ms > 0
    with pytest.raises(mautrix_errors.MLimitExceeded):
        await clients.mautrix().login(identifier=user_id("alice"), password=PASSWORD)


# -- a room nio creates and mautrix joins ---------------------------------------


async def test_nio_creates_a_room_and_talks_with_mautrix(clients):
    alice = await clients.nio_user("alice")
    bob = await clients.mautrix_user("bob")
    carol = await clients.nio_user("carol")
    await nio_sync(alice)
    created = ok(await alice.room_create(name="Tea", topic="Green or black", invite=[bob.mxid]), nio.RoomCreateResponse)
    room_id = created.room_id
    await nio_sync_until(alice, lambda _: room_id in alice.rooms and alice.rooms[room_id].name == "Tea")
    assert alice.rooms[room_id].topic == "Green or black"

    # bob is invited: mautrix reads the invite and the room's stripped state.
    syncs = await mautrix_sync_until(bob, None, lambda ss: any(room_id in s.invites for s in ss))
    invite, stripped = next(s.invites[room_id] for s in syncs if room_id in s.invites)
    assert (invite.sender, invite.state_key, str(invite.content.membership)) == (alice.user_id, bob.mxid, "invite")
    assert {"m.room.create", "m.room.join_rules", "m.room.name"} <= {str(e.type) for e in stripped}
    assert any(str(e.type) == "m.room.member" and e.state_key == alice.user_id for e in stripped)
    assert await bob.join_room(room_id, max_retries=0) == room_id

    # bob's first sync after joining brings the name, the topic and the members.
    syncs = await mautrix_sync_until(bob, syncs[-1].next_batch, lambda ss: any(room_id in s.timeline for s in ss))
    state = joined_section(syncs, room_id, "state") + joined_section(syncs, room_id)
    names = [e.content.name for e in state if e.type == EventType.ROOM_NAME]
    topics = [e.content.topic for e in state if e.type == EventType.ROOM_TOPIC]
    members = {e.state_key: str(e.content.membership) for e in state if e.type == EventType.ROOM_MEMBER}
    assert (names, topics) == (["Tea"], ["Green or black"])
    assert members == {alice.user_id: "join", bob.mxid: "join"}
    since = syncs[-1].next_batch

    # Messages both ways, each library reading the other's.
    sent = ok(
        await alice.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "hello from nio"}, tx_id="nio-txn-1"
        ),
        nio.RoomSendResponse,
    )
    syncs = await mautrix_sync_until(bob, since, lambda ss: any(s.messages(room_id) for s in ss))
    [message] = [m for s in syncs for m in s.messages(room_id)]
    assert (message.event_id, message.sender, message.content.body) == (sent.event_id, alice.user_id, "hello from nio")
    since = syncs[-1].next_batch
    reply_id = await bob.send_text(room_id, "hello from mautrix")
    responses = await nio_sync_until(alice, lambda rs: len(nio_timeline(rs, room_id, nio.RoomMessageText)) >= 2)
    echo, reply = nio_timeline(responses, room_id, nio.RoomMessageText)
    assert (echo.event_id, echo.transaction_id) == (sent.event_id, "nio-txn-1")  # nio's local echo
    assert (reply.event_id, reply.sender, reply.body, reply.transaction_id) == (
        reply_id,
        bob.mxid,
        "hello from mautrix",
        None,
    )
    syncs = await mautrix_sync_until(bob, since, lambda ss: any(s.messages(room_id) for s in ss))
    [own] = [m for s in syncs for m in s.messages(room_id)]
    assert own.event_id == reply_id and own.unsigned.transaction_id.startswith("mautrix-python_")
    since = syncs[-1].next_batch

    # A retried transaction returns the same event and stores nothing new.
    again = ok(
        await alice.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "hello from nio"}, tx_id="nio-txn-1"
        ),
        nio.RoomSendResponse,
    )
    assert again.event_id == sent.event_id
    content = TextMessageEventContent(msgtype=MessageType.TEXT, body="retried")
    retried = [
        await bob.send_message_event(room_id, EventType.ROOM_MESSAGE, content, txn_id="mautrix-retry") for _ in range(2)
    ]
    assert retried[0] == retried[1]
    syncs = await mautrix_sync_until(bob, since, lambda ss: any(s.messages(room_id) for s in ss))
    assert [m.event_id for s in syncs for m in s.messages(room_id)] == [retried[0]]
    since = syncs[-1].next_batch

    # State: nio writes (no slash after the empty state key), mautrix reads (with one).
    ok(await alice.room_put_state(room_id, "m.room.name", {"name": "Tea time"}), nio.RoomPutStateResponse)
    assert (await bob.get_state_event(room_id, EventType.ROOM_NAME)).name == "Tea time"
    topic = ok(await alice.room_get_state_event(room_id, "m.room.topic"), nio.RoomGetStateEventResponse)
    assert topic.content == {"topic": "Green or black"}
    assert str((await bob.get_state_event(room_id, EventType.ROOM_JOIN_RULES)).join_rule) == "invite"
    full_state = await bob.get_state(room_id)
    join_rules = [e for e in full_state if e.type == EventType.ROOM_JOIN_RULES]
    assert [str(e.content.join_rule) for e in join_rules] == ["invite"]
    nio_state = ok(await alice.room_get_state(room_id), nio.RoomGetStateResponse)
    assert {e["type"] for e in nio_state.events} >= {"m.room.create", "m.room.power_levels", "m.room.name"}
    with pytest.raises(mautrix_errors.MForbidden):  # bob has no power to rename
        await bob.send_state_event(room_id, EventType.ROOM_NAME, {"name": "Coffee"})
    with pytest.raises(mautrix_errors.MNotFound):
        await bob.get_state_event(room_id, EventType.ROOM_AVATAR)

    # Members: an invited user is a member but not a joined one.
    ok(await alice.room_invite(room_id, carol.user_id), nio.RoomInviteResponse)
    joined = ok(await alice.joined_members(room_id), nio.JoinedMembersResponse)
    assert {m.user_id for m in joined.members} == {alice.user_id, bob.mxid}
    assert set(await bob.get_joined_members(room_id)) == {alice.user_id, bob.mxid}
    everyone = {e.state_key: str(e.content.membership) for e in await bob.get_members(room_id)}
    assert everyone == {alice.user_id: "join", bob.mxid: "join", carol.user_id: "invite"}

    # carol sees the invite through nio, with the room's name.
    responses = await nio_sync_until(carol, lambda _: room_id in carol.invited_rooms)
    invite_state = [e for r in responses if room_id in r.rooms.invite for e in r.rooms.invite[room_id].invite_state]
    assert any(
        isinstance(e, nio.InviteMemberEvent)
        and e.state_key == carol.user_id
        and e.membership == "invite"
        and e.sender == alice.user_id
        for e in invite_state
    )
    invited = carol.invited_rooms[room_id]
    assert invited.name == "Tea time"
    assert invited.inviter == alice.user_id

    # bob leaves: mautrix sees its own leave, nio sees bob go.
    await bob.leave_room(room_id)
    syncs = await mautrix_sync_until(bob, since, lambda ss: any(room_id in s.left for s in ss))
    left = [e for s in syncs for e in s.left.get(room_id, [])]
    assert any(
        e.type == EventType.ROOM_MEMBER and e.state_key == bob.mxid and str(e.content.membership) == "leave"
        for e in left
    )
    responses = await nio_sync_until(
        alice,
        lambda rs: any(
            e.state_key == bob.mxid and e.membership == "leave" for e in nio_timeline(rs, room_id, nio.RoomMemberEvent)
        ),
    )
    assert bob.mxid not in alice.rooms[room_id].users


# -- a public room mautrix creates and nio joins by alias -----------------------


async def test_mautrix_creates_a_public_room_and_nio_joins_by_alias(clients):
    alice = await clients.mautrix_user("alice")
    bob = await clients.nio_user("bob")
    room_id = await alice.create_room(
        alias_localpart="lounge",
        visibility=RoomDirectoryVisibility.PUBLIC,
        preset=RoomCreatePreset.PUBLIC,
        name="Lounge",
        topic="Anyone welcome",
    )
    since = (await mautrix_sync(alice)).next_batch

    # Aliases made by mautrix, resolved by both libraries.
    await alice.add_room_alias(room_id, "den")
    for alias in ("lounge", "den"):
        resolved = await alice.resolve_room_alias(f"#{alias}:{SERVER}")
        assert (resolved.room_id, resolved.servers) == (room_id, [SERVER])
        answer = ok(await bob.room_resolve_alias(f"#{alias}:{SERVER}"), nio.RoomResolveAliasResponse)
        assert (answer.room_id, answer.servers) == (room_id, [SERVER])
    with pytest.raises(mautrix_errors.MNotFound):
        await alice.resolve_room_alias(f"#nowhere:{SERVER}")
    missing = ok(await bob.room_resolve_alias(f"#nowhere:{SERVER}"), nio.RoomResolveAliasError)
    assert missing.status_code == "M_NOT_FOUND"

    # The public directory, read by both.
    listed = ok(await bob.list_public_rooms(), nio.responses.PublicRoomsResponse)
    [entry] = [room for room in listed.public_rooms if room.room_id == room_id]
    assert (entry.name, entry.topic, entry.num_joined_members) == ("Lounge", "Anyone welcome", 1)
    directory = await alice.get_room_directory()
    assert [room.room_id for room in directory.chunk] == [room_id]
    assert directory.chunk[0].canonical_alias == f"#lounge:{SERVER}"

    # nio joins by alias (the '#' escaped, the rest raw) and sees the room at once.
    joined = ok(await bob.join(f"#lounge:{SERVER}"), nio.JoinResponse)
    assert joined.room_id == room_id
    await nio_sync_until(bob, lambda _: room_id in bob.rooms and bob.rooms[room_id].name == "Lounge")
    room = bob.rooms[room_id]
    assert room.topic == "Anyone welcome"
    assert set(room.users) == {alice.mxid, bob.user_id}
    assert room.canonical_alias == f"#lounge:{SERVER}"
    # A member may add an alias. (nio reports any answer to this call as a
    # success, so only resolving it proves it.)
    ok(await bob.room_put_alias(f"#nook:{SERVER}", room_id), nio.RoomPutAliasResponse)
    assert (await alice.resolve_room_alias(f"#nook:{SERVER}")).room_id == room_id

    # State written by mautrix (slash after the empty key) reaches nio.
    await alice.send_state_event(room_id, EventType.ROOM_NAME, {"name": "Big lounge"})
    await alice.send_state_event(room_id, EventType.ROOM_TOPIC, {"topic": "Still welcome"})
    await nio_sync_until(
        bob, lambda _: (bob.rooms[room_id].name, bob.rooms[room_id].topic) == ("Big lounge", "Still welcome")
    )
    name = ok(await bob.room_get_state_event(room_id, "m.room.name"), nio.RoomGetStateEventResponse)
    assert name.content == {"name": "Big lounge"}
    refused = ok(await bob.room_put_state(room_id, "m.room.name", {"name": "Mine"}), nio.RoomPutStateError)
    assert refused.status_code == "M_FORBIDDEN"

    # Messages both ways.
    first = await alice.send_text(room_id, "welcome, bob")
    responses = await nio_sync_until(bob, lambda rs: bool(nio_timeline(rs, room_id, nio.RoomMessageText)))
    [welcome] = nio_timeline(responses, room_id, nio.RoomMessageText)
    assert (welcome.event_id, welcome.sender, welcome.body) == (first, alice.mxid, "welcome, bob")
    thanks = ok(
        await bob.room_send(room_id, "m.room.message", {"msgtype": "m.notice", "body": "thanks"}), nio.RoomSendResponse
    )
    emote = ok(
        await bob.room_send(room_id, "m.room.message", {"msgtype": "m.emote", "body": "waves"}), nio.RoomSendResponse
    )
    syncs = await mautrix_sync_until(alice, since, lambda ss: len([m for s in ss for m in s.messages(room_id)]) >= 3)
    messages = [m for s in syncs for m in s.messages(room_id)]
    assert [(m.event_id, str(m.content.msgtype), m.content.body) for m in messages] == [
        (first, "m.text", "welcome, bob"),
        (thanks.event_id, "m.notice", "thanks"),
        (emote.event_id, "m.emote", "waves"),
    ]
    since = syncs[-1].next_batch
    responses = await nio_sync_until(bob, lambda rs: len(nio_timeline(rs, room_id, nio.RoomMessage)) >= 2)
    assert [type(e) for e in nio_timeline(responses, room_id, nio.RoomMessage)] == [
        nio.RoomMessageNotice,
        nio.RoomMessageEmote,
    ]

    # nio leaves (a POST with an empty body) and sees its own leave; mautrix sees bob go.
    ok(await bob.room_leave(room_id), nio.RoomLeaveResponse)
    responses = await nio_sync_until(bob, lambda rs: any(room_id in r.rooms.leave for r in rs))
    [left] = [r.rooms.leave[room_id] for r in responses if room_id in r.rooms.leave]
    assert any(
        isinstance(e, nio.RoomMemberEvent) and e.state_key == bob.user_id and e.membership == "leave"
        for e in left.timeline.events
    )
    syncs = await mautrix_sync_until(
        alice,
        since,
        lambda ss: any(
            e.type == EventType.ROOM_MEMBER and e.state_key == bob.user_id for e in joined_section(ss, room_id)
        ),
    )
    [gone] = [e for e in joined_section(syncs, room_id) if e.type == EventType.ROOM_MEMBER]
    assert str(gone.content.membership) == "leave"
    assert set(await alice.get_joined_members(room_id)) == {alice.mxid}


# -- history -------------------------------------------------------------------


async def test_both_libraries_paginate_history_from_the_sync_prev_batch(clients):
    alice = await clients.nio_user("alice")
    bob = await clients.mautrix_user("bob")
    room_id = await shared_room(alice, bob, name="History")
    sent = []
    for n in range(30):
        if n % 3:
            sent.append(await bob.send_text(room_id, f"m{n}"))
        else:
            response = ok(
                await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"m{n}"}),
                nio.RoomSendResponse,
            )
            sent.append(response.event_id)

    # nio: a sync with a short timeline, then /messages backwards from its prev_batch.
    narrow = {"room": {"timeline": {"limit": 4}}}
    timeline = (await nio_sync(alice, sync_filter=narrow)).rooms.join[room_id].timeline
    assert timeline.limited is True
    newest = [e.event_id for e in timeline.events]
    assert newest == sent[-4:]
    older: list[str] = []
    token = timeline.prev_batch
    for _ in range(50):
        page = ok(await alice.room_messages(room_id, start=token, limit=7), nio.RoomMessagesResponse)
        assert not [e for e in page.chunk if isinstance(e, BAD_EVENTS)]
        older += [e.event_id for e in page.chunk if isinstance(e, nio.RoomMessageText)]
        if page.end is None:
            break
        token = page.end
    assert page.end is None
    assert older[::-1] + newest == sent

    # mautrix: the same with an uploaded filter and get_messages.
    filter_id = await bob.create_filter(Filter(room=RoomFilter(timeline=RoomEventFilter(limit=4))))
    raw = (await mautrix_sync(bob, filter_id=filter_id)).raw["rooms"]["join"][room_id]["timeline"]
    assert [e["event_id"] for e in raw["events"]] == sent[-4:]
    older, token = [], raw["prev_batch"]
    for _ in range(50):
        page = await bob.get_messages(room_id, PaginationDirection.BACKWARD, from_token=token, limit=7)
        older += [e.event_id for e in page.events if isinstance(e, MessageEvent)]
        if page.end is None:
            break
        token = page.end
    assert page.end is None
    assert older[::-1] + sent[-4:] == sent
    # Forwards from where the oldest page began: everything newer than that page.
    oldest_page = [e.event_id for e in page.events if isinstance(e, MessageEvent)]
    forward = await bob.get_messages(room_id, PaginationDirection.FORWARD, from_token=page.start, limit=100)
    assert [e.event_id for e in forward.events if isinstance(e, MessageEvent)] == sent[len(oldest_page) :]

    # Someone who never joined may not read the history.
    stranger = await clients.mautrix_user("stranger")
    with pytest.raises(mautrix_errors.MForbidden):
        await stranger.get_messages(room_id, PaginationDirection.BACKWARD)
    lurker = await clients.nio_user("lurker")
    assert ok(await lurker.room_messages(room_id), nio.RoomMessagesError).status_code == "M_FORBIDDEN"


# -- ephemeral: typing and receipts ---------------------------------------------


async def test_typing_and_receipts_between_the_libraries(clients):
    alice = await clients.nio_user("alice")
    bob = await clients.mautrix_user("bob")
    room_id = await shared_room(alice, bob)
    await nio_sync(alice)
    since = (await mautrix_sync(bob)).next_batch

    def mautrix_ephemeral(syncs, kind):
        return [e for e in joined_section(syncs, room_id, "ephemeral") if isinstance(e, kind)]

    # Typing: nio starts, mautrix sees it; mautrix starts, nio sees both.
    ok(await alice.room_typing(room_id, True, timeout=20_000), nio.RoomTypingResponse)
    syncs = await mautrix_sync_until(bob, since, lambda ss: bool(mautrix_ephemeral(ss, TypingEvent)))
    assert [e.content.user_ids for e in mautrix_ephemeral(syncs, TypingEvent)] == [[alice.user_id]]
    since = syncs[-1].next_batch
    await bob.set_typing(room_id, timeout=20_000)
    responses = await nio_sync_until(alice, lambda rs: bool(nio_ephemeral(rs, room_id, nio.TypingNoticeEvent)))
    [typing] = nio_ephemeral(responses, room_id, nio.TypingNoticeEvent)
    assert sorted(typing.users) == sorted([alice.user_id, bob.mxid])
    assert sorted(alice.rooms[room_id].typing_users) == sorted(typing.users)
    ok(await alice.room_typing(room_id, False), nio.RoomTypingResponse)
    await bob.set_typing(room_id, timeout=0)
    await nio_sync_until(alice, lambda _: alice.rooms[room_id].typing_users == [])

    # Receipts: nio reads mautrix's message, mautrix reads nio's.
    from_bob = await bob.send_text(room_id, "read this")
    ok(await alice.update_receipt_marker(room_id, from_bob), nio.UpdateReceiptMarkerResponse)
    syncs = await mautrix_sync_until(
        bob, since, lambda ss: any(from_bob in e.content for e in mautrix_ephemeral(ss, ReceiptEvent))
    )
    [receipt] = [e for e in mautrix_ephemeral(syncs, ReceiptEvent) if from_bob in e.content]
    assert receipt.content[from_bob][ReceiptType.READ][alice.user_id].ts > 0
    from_alice = ok(
        await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "and this"}),
        nio.RoomSendResponse,
    ).event_id
    await bob.send_receipt(room_id, from_alice)
    responses = await nio_sync_until(
        alice,
        lambda rs: any(
            r.event_id == from_alice for e in nio_ephemeral(rs, room_id, nio.ReceiptEvent) for r in e.receipts
        ),
    )
    [read] = [
        r for e in nio_ephemeral(responses, room_id, nio.ReceiptEvent) for r in e.receipts if r.event_id == from_alice
    ]
    assert (read.receipt_type, read.user_id) == ("m.read", bob.mxid)
    assert read.timestamp > 0

    # Read markers from both.
    ok(
        await alice.room_read_markers(room_id, fully_read_event=from_alice, read_event=from_alice),
        nio.RoomReadMarkersResponse,
    )
    await bob.set_fully_read_marker(room_id, from_alice, from_alice)
    await mautrix_sync_until(
        bob,
        syncs[-1].next_batch,
        lambda ss: any(
            alice.user_id in e.content.get(from_alice, {}).get(ReceiptType.READ, {})
            for e in mautrix_ephemeral(ss, ReceiptEvent)
        ),
    )


# -- profiles ------------------------------------------------------------------


async def test_display_names_set_and_read_by_both_reach_member_events(clients):
    alice = await clients.nio_user("alice")
    bob = await clients.mautrix_user("bob")
    room_id = await shared_room(alice, bob)
    await nio_sync(alice)
    since = (await mautrix_sync(bob)).next_batch

    ok(await alice.get_displayname(), nio.ProfileGetDisplayNameResponse)
    ok(await alice.set_displayname("Alice Liddell"), nio.ProfileSetDisplayNameResponse)
    assert await bob.get_displayname(alice.user_id) == "Alice Liddell"
    assert (await bob.get_profile(alice.user_id)).displayname == "Alice Liddell"
    await bob.set_displayname("Bob Builder")
    assert ok(await alice.get_displayname(bob.mxid), nio.ProfileGetDisplayNameResponse).displayname == "Bob Builder"
    assert ok(await alice.get_profile(bob.mxid), nio.ProfileGetResponse).displayname == "Bob Builder"

    # The new names reach the rooms as member events, for both libraries.
    await nio_sync_until(alice, lambda _: alice.rooms[room_id].user_name(bob.mxid) == "Bob Builder")
    syncs = await mautrix_sync_until(
        bob,
        since,
        lambda ss: any(
            e.type == EventType.ROOM_MEMBER and e.state_key == alice.user_id for e in joined_section(ss, room_id)
        ),
    )
    [renamed] = [
        e for e in joined_section(syncs, room_id) if e.type == EventType.ROOM_MEMBER and e.state_key == alice.user_id
    ]
    assert (renamed.content.displayname, str(renamed.content.membership)) == ("Alice Liddell", "join")


# -- sync loops ----------------------------------------------------------------


async def test_nio_long_polls_and_sync_forever_see_every_message_once(clients, server):
    alice = await clients.nio_user("alice")
    bob = await clients.mautrix_user("bob")
    room_id = await shared_room(alice, bob)
    await nio_sync(alice)

    # Nothing new: the long-poll is held for its timeout, then answers empty.
    started = time.monotonic()
    quiet = await nio_sync(alice, 1_000)
    assert 0.9 <= time.monotonic() - started < 5
    assert room_id not in quiet.rooms.join

    # A message ends a pending long-poll at once.
    waiting = asyncio.ensure_future(nio_sync(alice, 20_000))
    await long_polls_waiting(server, 1)
    sent_at = time.monotonic()
    event_id = await bob.send_text(room_id, "wake up")
    woken = await asyncio.wait_for(waiting, WAIT)
    assert time.monotonic() - sent_at < 1.0
    assert [e.event_id for e in woken.rooms.join[room_id].timeline.events] == [event_id]

    # Twelve messages between two syncs all come in the next one, not limited
    # by a default timeline limit; a sync right after a confirmed send has it,
    # whoever sent it.
    burst = [await bob.send_text(room_id, f"burst {n}") for n in range(11)]
    burst.append(
        ok(
            await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "mine"}, tx_id="own-txn"),
            nio.RoomSendResponse,
        ).event_id
    )
    timeline = (await nio_sync(alice)).rooms.join[room_id].timeline
    assert [e.event_id for e in timeline.events] == burst
    assert timeline.limited is False
    assert timeline.events[-1].transaction_id == "own-txn"

    # sync_forever with a callback: each message once, in order.
    seen: list[str] = []
    all_seen = asyncio.Event()

    async def on_message(room: nio.MatrixRoom, event: nio.RoomMessageText) -> None:
        assert room.room_id == room_id
        seen.append(event.event_id)
        if len(seen) >= 15:
            all_seen.set()

    alice.add_event_callback(on_message, nio.RoomMessageText)
    looping = asyncio.ensure_future(alice.sync_forever(timeout=SYNC_MS))
    try:
        sent = []
        for n in range(15):  # from both: the sender sees its own messages once too
            if n % 3:
                sent.append(await bob.send_text(room_id, f"loop {n}"))
            else:
                sent.append(
                    ok(
                        await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"{n}"}),
                        nio.RoomSendResponse,
                    ).event_id
                )
            if n % 5 == 4:
                await asyncio.sleep(0.2)  # kept: some arrive one by one, others together
        await asyncio.wait_for(all_seen.wait(), WAIT)
        await asyncio.sleep(0.3)  # kept: anything repeated would arrive now (no condition to poll)
    finally:
        looping.cancel()
        await asyncio.gather(looping, return_exceptions=True)
    assert seen == sent


async def test_mautrix_sync_loop_sees_nio_messages_once_in_order(clients):
    alice = await clients.nio_user("alice")
    bob = await clients.mautrix_user("bob")
    room_id = await shared_room(alice, bob)

    seen: list[str] = []
    members: list[str] = []
    all_seen = asyncio.Event()

    async def on_message(event: Any) -> None:
        assert isinstance(event, MessageEvent), f"mautrix could not parse {event}"
        if event.room_id == room_id:
            seen.append(event.event_id)
            if len(seen) >= 15:
                all_seen.set()

    async def on_member(event: Any) -> None:
        assert isinstance(event, StateEvent), f"mautrix could not parse {event}"
        members.append(event.state_key)

    bob.add_event_handler(EventType.ROOM_MESSAGE, on_message)
    bob.add_event_handler(EventType.ROOM_MEMBER, on_member)
    looping = bob.start(None)
    try:
        sent = []
        for n in range(15):
            sent.append(
                ok(
                    await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"{n}"}),
                    nio.RoomSendResponse,
                ).event_id
            )
            if n % 5 == 4:
                await asyncio.sleep(0.2)  # kept, as above: some arrive one by one, others together
        await asyncio.wait_for(all_seen.wait(), WAIT)
        await asyncio.sleep(0.3)  # kept: anything repeated would arrive now (no condition to poll)
    finally:
        bob.stop()
        await asyncio.gather(looping, return_exceptions=True)
    assert seen == sent
    assert {alice.user_id, bob.mxid} <= set(members)


# -- moderation and redaction ---------------------------------------------------


async def test_kicks_bans_and_redactions_through_both_libraries(clients):
    alice = await clients.nio_user("alice")
    bob = await clients.mautrix_user("bob")
    carol = await clients.mautrix_user("carol")
    room_id = await shared_room(alice, bob, preset=nio.RoomPreset.public_chat)
    assert await carol.join_room(room_id, max_retries=0) == room_id
    since = (await mautrix_sync(bob)).next_batch

    with pytest.raises(mautrix_errors.MForbidden):  # bob has no power to kick
        await bob.kick_user(room_id, carol.mxid, reason="no")
    ok(await alice.room_kick(room_id, carol.mxid, reason="quiet please"), nio.RoomKickResponse)
    with pytest.raises(mautrix_errors.MForbidden):  # kicked: no longer in the room
        await carol.send_text(room_id, "still here?")
    ok(await alice.room_ban(room_id, carol.mxid, reason="enough"), nio.RoomBanResponse)
    with pytest.raises(mautrix_errors.MForbidden):
        await carol.join_room(room_id, max_retries=0)
    ok(await alice.room_unban(room_id, carol.mxid), nio.responses.RoomUnbanResponse)
    assert await carol.join_room(room_id, max_retries=0) == room_id

    # Redaction: nio redacts bob's message; both libraries parse what follows.
    spam = await bob.send_text(room_id, "spam")
    redaction = ok(await alice.room_redact(room_id, spam, reason="spam"), nio.RoomRedactResponse)
    syncs = await mautrix_sync_until(
        bob, since, lambda ss: any(e.type == EventType.ROOM_REDACTION for e in joined_section(ss, room_id))
    )
    [redacts] = [e for e in joined_section(syncs, room_id) if e.type == EventType.ROOM_REDACTION]
    assert (redacts.event_id, redacts.redacts) == (redaction.event_id, spam)
    memberships = [
        (e.state_key, str(e.content.membership))
        for e in joined_section(syncs, room_id)
        if e.type == EventType.ROOM_MEMBER
    ]
    assert memberships == [(carol.mxid, "leave"), (carol.mxid, "ban"), (carol.mxid, "leave"), (carol.mxid, "join")]
    responses = await nio_sync_until(alice, lambda rs: bool(nio_timeline(rs, room_id, nio.RedactionEvent)))
    [nio_redaction] = nio_timeline(responses, room_id, nio.RedactionEvent)
    assert nio_redaction.redacts == spam
    redacted = await bob.get_event(room_id, spam)
    assert redacted.content.serialize() == {}
