"""The room protocol as other servers use it (services/federation_rooms.py),
called directly against a real server and database with a pretend remote
server whose key is handed in as the KeyRing would."""

import pytest

from atomchat_server.errors import MatrixError
from atomchat_server.events import signing
from atomchat_server.events.pdu import build_pdu, finish_pdu
from atomchat_server.events.room_versions import room_version
from atomchat_server.services.federation_events import FederationEvents
from atomchat_server.services.federation_rooms import FederationRooms
from atomchat_server.services.persister import Signer

from ..support.pdu_steps import Keys, RemoteServer, sign_template
from ..support.room_steps import SERVER, register
from ..support.sync_steps import sync

REMOTE = RemoteServer("remote.example")


def services(server) -> tuple[FederationRooms, Keys]:
    keys = Keys()
    REMOTE.trusted_by(keys)
    ctx, persister = server.atomchat.ctx, server.atomchat._persister
    events = FederationEvents(pool=ctx.pool, persister=persister, keyring=keys)
    return FederationRooms(
        pool=ctx.pool, persister=persister, signer=Signer(SERVER, ctx.server_key), events=events
    ), keys


async def refused(call, status, errcode):
    with pytest.raises(MatrixError) as caught:
        await call
    assert (caught.value.status, caught.value.errcode) == (status, errcode)
    return caught.value


async def test_a_remote_user_joins_reads_and_leaves_a_local_room(api, server):
    rooms, _ = services(server)
    (alice,) = await register(api, "alice")
    room_id = await alice.create_room(preset="public_chat", name="Hall")
    await alice.say(room_id, "before Rob")
    rob = REMOTE.user("rob")
    # Only the versions the remote server names; only its own users.
    error = await refused(rooms.make_join(REMOTE.name, room_id, rob, ["10", "11"]), 400, "M_INCOMPATIBLE_ROOM_VERSION")
    assert error.extra == {"room_version": "12"}
    await refused(rooms.make_join("other.example", room_id, rob, ["12"]), 403, "M_FORBIDDEN")
    await refused(rooms.make_join(REMOTE.name, "!nope:test.local", rob, ["12"]), 404, "M_NOT_FOUND")
    # Reads before joining: refused.
    await refused(rooms.state_ids(REMOTE.name, room_id, "$x"), 403, "M_FORBIDDEN")

    made = await rooms.make_join(REMOTE.name, room_id, rob, [str(v) for v in range(1, 13)])
    assert made["room_version"] == "12"
    template = made["event"]
    assert (template["type"], template["state_key"], template["content"]) == (
        "m.room.member",
        rob,
        {"membership": "join"},
    )
    join_id, join = sign_template(REMOTE, template, "12")
    answer = await rooms.send_join(REMOTE.name, room_id, join_id, join)
    state_types = sorted((p["type"], p["state_key"]) for p in answer["state"])
    assert state_types == sorted(
        [
            ("m.room.create", ""),
            ("m.room.member", alice.user_id),
            ("m.room.power_levels", ""),
            ("m.room.join_rules", ""),
            ("m.room.history_visibility", ""),
            ("m.room.guest_access", ""),
            ("m.room.name", ""),
        ]
    )
    # The auth chain of that state: the create event, Alice's join, the power levels.
    chain_types = sorted(p["type"] for p in answer["auth_chain"])
    assert chain_types == ["m.room.create", "m.room.member", "m.room.power_levels"]
    assert signing.event_id(answer["event"], room_version("12")) == join_id
    members = await alice.call("GET", f"/rooms/{room_id}/joined_members", schema="matrix/joined_members.response")
    assert set(members.body["joined"]) == {alice.user_id, rob}

    # Now a member server: it may read.
    after = await alice.say(room_id, "after Rob")
    ids = await rooms.state_ids(REMOTE.name, room_id, after)
    assert join_id in ids["pdu_ids"] and len(ids["pdu_ids"]) == 8
    state = await rooms.state(REMOTE.name, room_id, after)
    assert sorted(signing.event_id(p, room_version("12")) for p in state["pdus"]) == sorted(ids["pdu_ids"])
    fetched = await rooms.event(REMOTE.name, after)
    assert fetched["pdus"][0]["content"]["body"] == "after Rob"
    chain = await rooms.event_auth(REMOTE.name, room_id, after)
    # Alice's message cites her join and the power levels; with the create event they make its chain.
    assert sorted(p["type"] for p in chain["auth_chain"]) == ["m.room.create", "m.room.member", "m.room.power_levels"]
    back = await rooms.backfill(REMOTE.name, room_id, [after], 3)
    assert [p["type"] for p in back["pdus"]] == ["m.room.message", "m.room.member", "m.room.message"]
    missing = await rooms.get_missing_events(
        REMOTE.name, room_id, {"earliest_events": [join_id], "latest_events": [after], "limit": 10}
    )
    assert missing["events"] == []  # "after Rob" follows Rob's join directly
    later = await alice.say(room_id, "later")
    missing = await rooms.get_missing_events(
        REMOTE.name, room_id, {"earliest_events": [join_id], "latest_events": [later], "limit": 10}
    )
    assert [p["content"]["body"] for p in missing["events"]] == ["after Rob"]

    leave_id, leave = sign_template(REMOTE, (await rooms.make_leave(REMOTE.name, room_id, rob))["event"], "12")
    assert await rooms.send_leave(REMOTE.name, room_id, leave_id, leave) == {}
    members = await alice.call("GET", f"/rooms/{room_id}/joined_members", schema="matrix/joined_members.response")
    assert set(members.body["joined"]) == {alice.user_id}
    await refused(rooms.event(REMOTE.name, later), 403, "M_FORBIDDEN")


async def test_a_join_the_room_does_not_allow_is_refused(api, server):
    rooms, _ = services(server)
    (alice,) = await register(api, "alice")
    room_id = await alice.create_room(preset="private_chat")
    await refused(rooms.make_join(REMOTE.name, room_id, REMOTE.user("rob"), ["12"]), 403, "M_FORBIDDEN")


async def test_a_remote_invite_is_signed_kept_and_seen_in_sync(api, server):
    rooms, _ = services(server)
    (bob,) = await register(api, "bob")
    rob = REMOTE.user("rob")
    version = room_version("12")
    create_id, _ = finish_pdu(
        build_pdu(
            room_id="",
            sender=rob,
            event_type="m.room.create",
            content={"room_version": "12"},
            state_key="",
            redacts=None,
            origin_server_ts=1,
            depth=1,
            prev_events=[],
            auth_events=[],
            version=version,
        ),
        REMOTE.name,
        REMOTE.key,
        version,
    )
    room_id = "!" + create_id[1:]
    invite_id, invite = finish_pdu(
        build_pdu(
            room_id=room_id,
            sender=rob,
            event_type="m.room.member",
            content={"membership": "invite"},
            state_key=bob.user_id,
            redacts=None,
            origin_server_ts=2,
            depth=5,
            prev_events=["$p"],
            auth_events=["$a", "$b"],
            version=version,
        ),
        REMOTE.name,
        REMOTE.key,
        version,
    )
    body = {"room_version": "12", "event": invite, "invite_room_state": []}
    await refused(
        rooms.invite(REMOTE.name, room_id, invite_id, {**body, "room_version": "9"}), 400, "M_INCOMPATIBLE_ROOM_VERSION"
    )
    await refused(rooms.invite("other.example", room_id, invite_id, body), 403, "M_FORBIDDEN")
    forged = {**invite, "signatures": {REMOTE.name: {"ed25519:t1": "AAAA"}}}
    await refused(rooms.invite(REMOTE.name, room_id, invite_id, {**body, "event": forged}), 403, "M_FORBIDDEN")
    answer = await rooms.invite(REMOTE.name, room_id, invite_id, body)
    signed = answer["event"]
    signing.verify_event(signed, SERVER, signing.verify_key_of(server.atomchat.ctx.server_key), version)
    signing.verify_event(signed, REMOTE.name, signing.verify_key_of(REMOTE.key), version)
    invited = (await sync(bob)).body["rooms"]["invite"][room_id]["invite_state"]["events"]
    assert invited == [
        {"type": "m.room.member", "state_key": bob.user_id, "sender": rob, "content": {"membership": "invite"}}
    ]
    # Sent again: the same answer, kept once.
    assert (await rooms.invite(REMOTE.name, room_id, invite_id, body))["event"]["signatures"] == signed["signatures"]
    # The room stays unknown to federation reads until Bob joins it.
    await refused(rooms.state_ids(REMOTE.name, room_id, invite_id), 404, "M_NOT_FOUND")
