"""Moderation over HTTP: locks and suspensions, the moderator's powers in
rooms they are not in, redacting everything a user sent, deleting rooms, the
moderator role, the policy room as audit log, and the ``atomchat user``
commands an operator runs beside the server.

Every block and every deletion is an event in the moderation policy room;
the tests read it back as a moderator reads any room, through /joined_rooms
and /messages. The first moderator of each test is made as
``atomchat user promote`` makes one (the role, a seat in the policy room,
the user's cached sessions dropped), by the running server's own service;
the CLI test runs the real command.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from atomchat_server.events.moderation import POLICY_RULE
from atomchat_server.services.moderation import ROOM_DELETED

from ..support.client import MATRIX, path_param
from ..support.moderation_steps import (
    ADMIN,
    SPEC_ADMIN,
    SYSTEM_USER,
    admin,
    block,
    expect_error,
    lock_ends_stream_and_long_poll,
    login_refused,
    moderator_and,
    policy_events,
    policy_room,
    refused,
    rule,
    rules_of,
    set_role,
    stream_refused,
    user_path,
    whoami,
)
from ..support.processes import run_atomchat
from ..support.room_steps import SERVER, User, another_device, bodies, room_of, text
from ..support.stream_steps import Stream
from ..support.sync_steps import SyncLoop, timeline
from .test_session_revocation import sql


async def test_a_lock_ends_the_users_stream_and_long_poll_and_refuses_them_until_unlocked(server, api):
    mod, bob, carol = await moderator_and(server, api, "bob", "carol")
    room_id = await room_of(carol, bob)
    phone = await another_device(bob)
    bystander = await Stream.open(server.base_url, token=carol.access_token)
    await bystander.frame()
    await lock_ends_stream_and_long_poll(mod, bob, phone, server.base_url, "spam")

    for device in (bob, phone):
        await expect_error(await whoami(device, status=401), 401, "M_USER_LOCKED")
        await refused(device, "GET", "/sync", status=401, errcode="M_USER_LOCKED")
        await refused(device, "GET", f"/rooms/{room_id}/messages", status=401, errcode="M_USER_LOCKED")
    assert await stream_refused(server, bob) == {
        "status": 401,
        "errcode": "M_USER_LOCKED",
        "error": "This account has been locked",
        "soft_logout": True,
    }
    await expect_error(await login_refused(api, "bob"), 401, "M_USER_LOCKED")
    # Others go on as before.
    event_id = await carol.say(room_id, "still here")
    assert [e["event_id"] for e in await bystander.messages(room_id, 1)] == [event_id]
    await bystander.close()

    await block(mod, bob, "lock", on=False)
    for device in (bob, phone):  # the very same tokens
        assert (await whoami(device))["user_id"] == bob.user_id
    reopened = await Stream.open(server.base_url, token=bob.access_token)
    assert room_id in (await reopened.frame())["rooms"]["join"]
    await reopened.close()
    assert (await api.login("bob"))["user_id"] == bob.user_id
    await bob.say(room_id, "back")


# -- suspending ----------------------------------------------------------------------------


async def test_a_locked_user_may_still_log_out(server, api):
    """Account locking leaves a locked account POST /logout and /logout/all."""
    mod, bob = await moderator_and(server, api, "bob")
    phone, laptop = await another_device(bob), await another_device(bob)
    await block(mod, bob, "lock", reason="spam")
    await expect_error(await whoami(bob, status=401), 401, "M_USER_LOCKED")
    await bob.call("POST", "/logout", {}, schema="matrix/empty.response")
    await expect_error(await whoami(phone, status=401), 401, "M_USER_LOCKED")  # nothing else is allowed
    await block(mod, bob, "lock", on=False)
    # The session that logged out is gone; the others work again.
    await expect_error(await whoami(bob, status=401), 401, "M_UNKNOWN_TOKEN")
    assert (await whoami(phone))["user_id"] == bob.user_id

    await block(mod, bob, "lock")
    await phone.call("POST", "/logout/all", {}, schema="matrix/empty.response")
    await block(mod, bob, "lock", on=False)
    for device in (phone, laptop):
        await expect_error(await whoami(device, status=401), 401, "M_UNKNOWN_TOKEN")


async def test_a_suspended_user_reads_and_leaves_but_cannot_act(server, api):
    mod, alice, bob, carol = await moderator_and(server, api, "alice", "bob", "carol")
    room_id = await room_of(alice, bob, name="Tea")
    public = await alice.create_room(preset="public_chat")
    own = await bob.say(room_id, "before")
    await alice.say(room_id, "hello bob")
    loop = SyncLoop(bob, server)
    await loop.sync()

    await block(mod, bob, "suspend", reason="cool down")
    phone = await another_device(bob)  # logging in still works, and the new session is suspended too
    for device in (bob, phone):
        assert (await whoami(device))["user_id"] == bob.user_id
        assert bodies((await device.messages(room_id, dir="b"))["chunk"]) == ["hello bob", "before"]
        await device.state(room_id)
        assert room_id in await device.joined_rooms()
        await refused(
            device,
            "PUT",
            f"/rooms/{room_id}/send/m.room.message/t1",
            text("hi"),
            status=403,
            errcode="M_USER_SUSPENDED",
        )
        await refused(
            device,
            "PUT",
            f"/rooms/{room_id}/state/m.room.topic/",
            {"topic": "t"},
            status=403,
            errcode="M_USER_SUSPENDED",
        )
        await refused(device, "POST", "/createRoom", {}, status=403, errcode="M_USER_SUSPENDED")
        await refused(device, "POST", f"/join/{path_param(public)}", {}, status=403, errcode="M_USER_SUSPENDED")
        await refused(
            device,
            "POST",
            f"/rooms/{room_id}/invite",
            {"user_id": carol.user_id},
            status=403,
            errcode="M_USER_SUSPENDED",
        )
        await refused(
            device,
            "PUT",
            f"/profile/{path_param(bob.user_id)}/displayname",
            {"displayname": "B"},
            status=403,
            errcode="M_USER_SUSPENDED",
        )
        for action in ("kick", "ban", "unban"):  # acting on others is acting
            await refused(
                device,
                "POST",
                f"/rooms/{room_id}/{action}",
                {"user_id": carol.user_id},
                status=403,
                errcode="M_USER_SUSPENDED",
            )
    # What happens in the room still reaches them.
    said = await alice.say(room_id, "are you there?")
    assert [e["event_id"] for e in timeline(await loop.sync(), room_id) if e["type"] == "m.room.message"] == [said]
    # They may clean up after themselves and leave.
    await bob.redact(room_id, own)
    await bob.leave(room_id)
    assert room_id not in await bob.joined_rooms()
    answer = await admin(mod, "GET", user_path(bob), schema="admin/user.response")
    assert (answer["suspended"], answer["locked"]) == (True, False)

    await block(mod, bob, "suspend", on=False)
    await bob.join(public)
    await bob.say(public, "thanks")


async def test_a_locked_account_cannot_refresh_and_its_refresh_token_survives(server, api):
    """Found by the authorization table: POST /refresh gave a locked account
    new tokens. Its refresh token is one of its tokens: refused like the
    others, and unchanged, so it works again once the account is unlocked."""
    mod, bob = await moderator_and(server, api, "bob")
    login = await api.login(bob.user_id, refresh_token=True)
    await block(mod, bob, "lock")
    answer = await api.request("POST", f"{MATRIX}/refresh", {"refresh_token": login["refresh_token"]}, status=401)
    await expect_error(answer, 401, "M_USER_LOCKED")
    await block(mod, bob, "lock", on=False)
    await api.request(
        "POST", f"{MATRIX}/refresh", {"refresh_token": login["refresh_token"]}, schema="matrix/refresh.response"
    )


async def test_a_suspension_is_no_lock_and_a_lock_replaces_it(server, api):
    """One rule per user: the latest block wins, and lifting either lifts the user's rule."""
    mod, bob = await moderator_and(server, api, "bob")
    await block(mod, bob, "suspend")
    await whoami(bob)
    await block(mod, bob, "lock")
    await expect_error(await whoami(bob, status=401), 401, "M_USER_LOCKED")
    await block(mod, bob, "suspend", on=False)  # lifting replaces the rule with empty content
    await whoami(bob)
    await bob.create_room()


# -- the moderator in rooms they are not in -----------------------------------------------


async def test_a_moderator_reads_posts_and_moderates_in_a_room_they_are_not_in(server, api):
    mod, alice, bob, carol = await moderator_and(server, api, "alice", "bob", "carol")
    room_id = await room_of(alice, bob, name="Private", preset="private_chat")
    hello = await alice.say(room_id, "hello")
    rude = await bob.say(room_id, "something rude")
    await refused(carol, "GET", f"/rooms/{room_id}/messages", status=403, errcode="M_FORBIDDEN")

    assert bodies((await mod.messages(room_id, dir="b"))["chunk"]) == ["something rude", "hello"]
    assert (await mod.event(room_id, hello))["content"]["body"] == "hello"
    assert (await mod.context(room_id, rude, limit=4))["event"]["event_id"] == rude
    assert (await mod.get_state(room_id, "m.room.name"))["name"] == "Private"
    await mod.state(room_id)
    said = await mod.say(room_id, "a word from the moderators")
    seen = (await alice.messages(room_id, dir="b", limit=1))["chunk"]
    assert [(e["event_id"], e["sender"]) for e in seen] == [(said, mod.user_id)]

    await mod.redact(room_id, rude, reason="not here")
    assert (await alice.event(room_id, rude))["content"] == {}
    await mod.act("kick", room_id, bob, reason="calm down")
    assert (await alice.get_state(room_id, "m.room.member", bob.user_id))["membership"] == "leave"
    await mod.act("ban", room_id, bob)
    assert (await alice.get_state(room_id, "m.room.member", bob.user_id))["membership"] == "ban"
    await mod.act("unban", room_id, bob)
    assert (await alice.get_state(room_id, "m.room.member", bob.user_id))["membership"] == "leave"
    # Moderating is not running the room: its admins keep the room's settings.
    await refused(
        mod,
        "PUT",
        f"/rooms/{room_id}/state/m.room.power_levels/",
        {"users": {mod.user_id: 100, alice.user_id: 100}},
        status=403,
        errcode="M_FORBIDDEN",
    )
    await refused(
        mod, "PUT", f"/rooms/{room_id}/state/m.room.topic/", {"topic": "mine"}, status=403, errcode="M_FORBIDDEN"
    )
    await mod.act("kick", room_id, alice, status=403)  # the room's admin is above the kick level

    # All along the moderator was never one of its members.
    members = {e["state_key"] for e in (await mod.members(room_id))["chunk"]}
    assert members == {alice.user_id, bob.user_id}
    assert mod.user_id not in {e["state_key"] for e in (await alice.members(room_id))["chunk"]}
    joined = await mod.call("GET", f"/rooms/{room_id}/joined_members", schema="matrix/joined_members.response")
    assert set(joined["joined"]) == {alice.user_id}
    assert room_id not in await mod.joined_rooms()
    assert room_id not in (await mod.call("GET", "/sync", schema="matrix/sync.response"))["rooms"]["join"]


async def test_redact_all_redacts_every_message_the_user_sent_in_every_room(server, api):
    mod, alice, bob = await moderator_and(server, api, "alice", "bob")
    rooms = [await room_of(alice, bob), await room_of(alice, bob)]
    spam = [await bob.say(rooms[i % 2], f"spam {i}") for i in range(5)]
    kept = [await alice.say(room_id, "fine") for room_id in rooms]
    await bob.redact(rooms[0], spam[0])  # already redacted: not redacted again

    answer = await admin(mod, "POST", f"{user_path(bob)}/redact", {"reason": "spam"}, schema="admin/redact.response")
    assert answer.body == {"redacted": 4}
    for event_id in spam:
        event = await alice.event(rooms[spam.index(event_id) % 2], event_id)
        assert event["content"] == {}
        assert event["unsigned"]["redacted_because"]["sender"] == (bob if event_id == spam[0] else mod).user_id
    for room_id, event_id in zip(rooms, kept, strict=True):
        assert (await alice.event(room_id, event_id))["content"]["body"] == "fine"
    redactions = [
        e
        for room_id in rooms
        for e in (await alice.messages(room_id, dir="f", limit=50))["chunk"]
        if e["type"] == "m.room.redaction" and e["sender"] == mod.user_id
    ]
    assert sorted(e["redacts"] for e in redactions) == sorted(spam[1:])
    # Version-12 rooms: a redaction names its target in its content too.
    assert all(e["content"] == {"reason": "spam", "redacts": e["redacts"]} for e in redactions)
    # Their memberships stay, and a second run finds nothing left.
    for room_id in rooms:
        assert (await alice.get_state(room_id, "m.room.member", bob.user_id))["membership"] == "join"
    assert (await admin(mod, "POST", f"{user_path(bob)}/redact", {}, schema="admin/redact.response")).body == {
        "redacted": 0
    }


# -- deleting rooms ---------------------------------------------------------------------


async def deleted_for(user: User, room_id: str, alias: str) -> None:
    """Checks that the room is gone for ``user``: every way in answers 404."""
    for method, path, body in (
        ("GET", f"/rooms/{room_id}/messages", None),
        ("GET", f"/rooms/{room_id}/state", None),
        ("GET", f"/rooms/{room_id}/members", None),
        ("PUT", f"/rooms/{room_id}/send/m.room.message/{time.monotonic_ns()}", text("x")),
        ("POST", f"/join/{path_param(room_id)}", {}),
        ("POST", f"/join/{path_param(alias)}", {}),
        ("GET", f"/directory/room/{path_param(alias)}", None),
    ):
        await refused(user, method, path, body, status=404, errcode="M_NOT_FOUND")
    assert room_id not in await user.joined_rooms()
    public = await user.call("GET", "/publicRooms", schema="matrix/publicRooms.response")
    assert room_id not in [r["room_id"] for r in public["chunk"]]


@pytest.mark.parametrize("purge", [False, True])
async def test_a_deleted_room_is_gone_for_its_members(server, api, database_dsn, purge):
    mod, alice, bob = await moderator_and(server, api, "alice", "bob")
    room_id = await alice.create_room(
        preset="public_chat", visibility="public", room_alias_name="doomed", name="Doomed"
    )
    alias = f"#doomed:{SERVER}"
    other = await alice.create_room(preset="public_chat", visibility="public", name="Other")
    await bob.join(room_id)
    await bob.say(room_id, "last words")
    loop = SyncLoop(bob, server)
    await loop.sync()

    await admin(mod, "DELETE", f"/rooms/{room_id}", {"purge": purge, "reason": "abuse"}, schema="matrix/empty.response")
    for user in (alice, bob, mod):
        await deleted_for(user, room_id, alias)
    listed = await admin(mod, "GET", "/rooms", schema="admin/rooms.response")
    assert [r["room_id"] for r in listed["rooms"]] == [other]
    await expect_error(await admin(mod, "GET", f"/rooms/{room_id}", status=404), 404, "M_NOT_FOUND")
    assert room_id not in [
        r["room_id"] for r in (await admin(mod, "GET", user_path(bob), schema="admin/user.response"))["rooms"]
    ]
    await admin(mod, "DELETE", f"/rooms/{room_id}", {}, status=404)
    await alice.say(other, "the rest goes on")
    answer = await loop.sync()  # a member who was syncing learns they left (unless the events are purged)
    assert room_id not in answer["rooms"]["join"]
    if not purge:
        left = [e for e in timeline(answer, room_id, "leave") if e["type"] == "m.room.member"]
        assert {(e["state_key"], e["sender"], e["content"]["membership"]) for e in left} == {
            (alice.user_id, SYSTEM_USER, "leave"),
            (bob.user_id, SYSTEM_USER, "leave"),
        }

    stored = await sql(database_dsn, "SELECT count(*) AS n FROM events WHERE room_id = $1", room_id)
    rooms = await sql(database_dsn, "SELECT deleted FROM rooms WHERE room_id = $1", room_id)
    if purge:
        assert stored[0]["n"] == 0 and rooms == []
    else:
        assert stored[0]["n"] > 0 and [r["deleted"] for r in rooms] == [True]
    assert await sql(database_dsn, "SELECT * FROM room_aliases WHERE room_id = $1", room_id) == []
    deleted = [e for e in await policy_events(mod) if e["type"] == ROOM_DELETED]
    assert [(e["sender"], e["content"]) for e in deleted] == [
        (mod.user_id, {"room_id": room_id, "purge": purge, "reason": "abuse"})
    ]


# -- the policy room: the audit log -------------------------------------------------------


async def test_each_action_leaves_its_policy_event(server, api):
    mod, bob, carol = await moderator_and(server, api, "bob", "carol")
    room_id = await carol.create_room(name="Spam")
    await block(mod, bob, "lock", reason="spam")
    await block(mod, bob, "lock", on=False, reason="appeal granted")
    await block(mod, carol, "suspend", reason="cool down")
    await block(mod, carol, "suspend", on=False)
    await admin(mod, "DELETE", f"/rooms/{room_id}", {"reason": "spam room"}, schema="matrix/empty.response")

    events = await policy_events(mod)
    assert [e["type"] for e in events] == [POLICY_RULE] * 4 + [ROOM_DELETED]
    assert {e["sender"] for e in events} == {mod.user_id}
    assert rules_of(events) == [
        (mod.user_id, f"user:{bob.user_id}", rule(bob, "m.ban", "spam")),
        (mod.user_id, f"user:{bob.user_id}", {}),
        (mod.user_id, f"user:{carol.user_id}", rule(carol, "org.atomchat.suspend", "cool down")),
        (mod.user_id, f"user:{carol.user_id}", {}),
    ]
    assert events[-1]["content"] == {"room_id": room_id, "purge": False, "reason": "spam room"}
    # Each lifted rule replaced the block it lifted.
    assert events[1]["unsigned"]["prev_content"] == events[0]["content"]
    # The current state holds the latest rule per user.
    policy = await policy_room(mod)
    assert (await mod.get_state(policy, POLICY_RULE, f"user:{bob.user_id}")).body == {}
    # The policy room is nobody else's business: not listed, not readable.
    listed = await admin(mod, "GET", "/rooms", schema="admin/rooms.response")
    assert policy not in [r["room_id"] for r in listed["rooms"]]
    await refused(bob, "GET", f"/rooms/{policy}/messages", status=403, errcode="M_FORBIDDEN")
    await refused(bob, "POST", f"/join/{path_param(policy)}", {}, status=403, errcode="M_FORBIDDEN")


async def test_a_rule_written_through_the_room_api_is_enforced_and_a_malformed_one_harms_nothing(server, api):
    """The server enforces the policy room's current rules, whoever wrote
    them and however: a moderator may edit the room like any room."""
    mod, alice, bob = await moderator_and(server, api, "alice", "bob")
    policy = await policy_room(mod)
    room_id = await room_of(alice, bob)
    loop = SyncLoop(alice, server)
    await loop.sync()

    await mod.put_state(
        policy, POLICY_RULE, {"entity": bob.user_id, "recommendation": ["m.ban"]}, f"user:{bob.user_id}"
    )
    await mod.put_state(
        policy, POLICY_RULE, {"entity": alice.user_id, "recommendation": "m.ban"}, f"user:{bob.user_id}"
    )
    said = await bob.say(room_id, "nothing blocks me")  # neither rule names bob as its key's user
    assert [e["event_id"] for e in timeline(await loop.sync(timeout=5000), room_id)] == [said]
    await mod.put_state(policy, POLICY_RULE, rule(bob, "org.atomchat.suspend", "by hand"), f"user:{bob.user_id}")
    await refused(
        bob, "PUT", f"/rooms/{room_id}/send/m.room.message/t2", text("x"), status=403, errcode="M_USER_SUSPENDED"
    )
    listed = await admin(mod, "GET", "/users?filter=suspended", schema="admin/users.response")
    assert [u["user_id"] for u in listed["users"]] == [bob.user_id]


# -- the moderator role -------------------------------------------------------------------


async def test_granting_and_taking_the_moderator_role(server, api):
    mod, alice, bob = await moderator_and(server, api, "alice", "bob")
    room_id = await room_of(alice, name="Private")
    policy = await policy_room(mod)
    await admin(bob, "GET", "/users", status=403)  # the session is now cached with the role it had

    await set_role(mod, bob, True)
    # The same token, at once: the server dropped its cached sessions.
    await admin(bob, "GET", "/users", schema="admin/users.response")
    assert policy in await bob.joined_rooms()
    await bob.messages(room_id)
    moderators = await admin(mod, "GET", "/users?filter=moderators", schema="admin/users.response")
    assert {(u["user_id"], u["is_moderator"]) for u in moderators["users"]} == {
        (mod.user_id, True),
        (bob.user_id, True),
    }

    await set_role(mod, bob, False)
    await expect_error(await admin(bob, "GET", "/users", status=403), 403, "M_FORBIDDEN")
    assert policy not in await bob.joined_rooms()
    await refused(bob, "GET", f"/rooms/{room_id}/messages", status=403, errcode="M_FORBIDDEN")
    # A former moderator keeps nothing of the role.
    await refused(bob, "PUT", f"/rooms/{room_id}/send/m.room.message/t3", text("x"), status=403, errcode="M_FORBIDDEN")
    for target in ("@nobody:test.local", SYSTEM_USER):
        await expect_error(
            await admin(mod, "PUT", f"{user_path(target)}/moderator", {"moderator": True}, status=404),
            404,
            "M_NOT_FOUND",
        )


async def test_registration_never_grants_the_role(server, api):
    answer = await api.register("eve", is_moderator=True, moderator=True, admin=True)
    eve = User(api, answer["user_id"], answer["access_token"], answer["device_id"])
    await expect_error(await admin(eve, "GET", "/users", status=403), 403, "M_FORBIDDEN")


async def test_moderators_cannot_lock_themselves_nor_leave_no_moderator_able_to_act(server, api):
    mod, other = await moderator_and(server, api, "other")
    for path in (f"{ADMIN}{user_path(mod)}/lock", f"{SPEC_ADMIN}/lock/{path_param(mod.user_id)}"):
        answer = await api.request("PUT", path, {"locked": True}, token=mod.access_token, status=403)
        await expect_error(answer, 403, "M_FORBIDDEN")
    await expect_error(await set_role(mod, mod, False, status=403), 403, "M_FORBIDDEN")  # the last moderator

    await set_role(mod, other, True)
    await block(other, mod, "lock", reason="compromised")
    await expect_error(await whoami(mod, status=401), 401, "M_USER_LOCKED")
    # `other` is now the only moderator able to act: they may neither be locked nor step down.
    await expect_error(await set_role(other, other, False, status=403), 403, "M_FORBIDDEN")
    await block(other, mod, "lock", on=False)
    await set_role(other, other, False)
    await expect_error(await admin(other, "GET", "/users", status=403), 403, "M_FORBIDDEN")


# -- the operator's commands ----------------------------------------------------------------


async def atomchat_user(database_dsn: str, *args: str):
    """Runs ``atomchat user ...`` against the test database, off the loop the server runs on."""
    command = ("user", *args, "--database-url", database_dsn, "--server-name", SERVER)
    return await asyncio.get_running_loop().run_in_executor(None, lambda: run_atomchat(*command))


async def test_cli_lock_unlock_promote_demote_act_on_the_running_server(server, api, database_dsn):
    mod, bob, carol = await moderator_and(server, api, "bob", "carol")
    await whoami(bob)
    await admin(carol, "GET", "/users", status=403)

    locked = await atomchat_user(database_dsn, "lock", "bob", "--reason", "from the shell")
    assert (locked.returncode, locked.stdout) == (0, f"locked @bob:{SERVER}\n"), locked.stderr
    await expect_error(await whoami(bob, status=401), 401, "M_USER_LOCKED")
    unlocked = await atomchat_user(database_dsn, "unlock", "Bob")
    assert (unlocked.returncode, unlocked.stdout) == (0, f"unlocked @bob:{SERVER}\n"), unlocked.stderr
    await whoami(bob)

    promoted = await atomchat_user(database_dsn, "promote", "carol")
    assert (promoted.returncode, promoted.stdout) == (0, f"promoted @carol:{SERVER}\n"), promoted.stderr
    await admin(carol, "GET", "/users", schema="admin/users.response")
    assert await policy_room(carol) == await policy_room(mod)
    demoted = await atomchat_user(database_dsn, "demote", "carol")
    assert (demoted.returncode, demoted.stdout) == (0, f"demoted @carol:{SERVER}\n"), demoted.stderr
    await admin(carol, "GET", "/users", status=403)

    # The operator cannot leave the server without a moderator able to act either.
    lock_last, demote_last = await asyncio.gather(
        atomchat_user(database_dsn, "lock", "mod"), atomchat_user(database_dsn, "demote", "mod")
    )
    assert (lock_last.returncode, lock_last.stderr.splitlines()[-1]) == (
        1,
        "atomchat: The last moderator cannot be locked",
    )
    assert (demote_last.returncode, demote_last.stderr.splitlines()[-1]) == (
        1,
        "atomchat: The last moderator cannot be demoted",
    )
    await whoami(mod)

    assert rules_of(await policy_events(mod)) == [
        (SYSTEM_USER, f"user:{bob.user_id}", rule(bob, "m.ban", "from the shell")),
        (SYSTEM_USER, f"user:{bob.user_id}", {}),
    ]
