"""The inbound PDU service against a real server and database: PDUs signed
by a pretend remote server (its key given to the service as the KeyRing
would) are checked, and the ones that pass reach clients like local events."""

import json
from urllib.parse import quote

import asyncpg

from atomchat_server.services.federation_events import FederationEvents
from atomchat_server.services.federation_send import PduSender

from ..support.pdu_steps import Keys, RemoteServer
from ..support.room_steps import SERVER, bodies, register
from ..support.sync_steps import sync

REMOTE = RemoteServer("remote.example")


def service(server, keys: Keys) -> FederationEvents:
    atomchat = server.atomchat
    return FederationEvents(pool=atomchat.ctx.pool, persister=atomchat._persister, keyring=keys)


async def stored(dsn: str, event_id: str):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchrow("SELECT event_id, content FROM events WHERE event_id = $1", event_id)
    finally:
        await conn.close()


async def joined_room(api, server, keys):
    """Alice's public room, which Rob of the remote server has joined."""
    (alice,) = await register(api, "alice")
    return await joined_room_of(alice, server, keys)


async def joined_room_of(alice, server, keys):
    room_id = await alice.create_room(preset="public_chat")
    rob = REMOTE.user("rob")
    join_id, join = await REMOTE.pdu(server.atomchat.dsn, room_id, rob, "m.room.member", {"membership": "join"}, rob)
    assert await service(server, keys).receive_pdus(REMOTE.name, [join]) == {join_id: {}}
    return alice, room_id, rob


async def test_a_remote_join_and_message_reach_local_clients(api, server):
    keys = Keys()
    REMOTE.trusted_by(keys)
    alice, room_id, rob = await joined_room(api, server, keys)
    said_id, said = await REMOTE.pdu(
        server.atomchat.dsn, room_id, rob, "m.room.message", {"msgtype": "m.text", "body": "hello from afar"}
    )
    events = service(server, keys)
    assert await events.receive_pdus(REMOTE.name, [said]) == {said_id: {}}
    # Sent again (a retried transaction): accepted, stored once.
    assert await events.receive_pdus(REMOTE.name, [said]) == {said_id: {}}
    page = await alice.messages(room_id, dir="b", limit=3)
    assert [e["event_id"] for e in page["chunk"][:2]] == [said_id, page["chunk"][1]["event_id"]]
    assert bodies(page["chunk"]) == ["hello from afar"]
    members = await alice.call("GET", f"/rooms/{room_id}/joined_members", schema="matrix/joined_members.response")
    assert set(members.body["joined"]) == {alice.user_id, rob}
    timeline = (await sync(alice)).body["rooms"]["join"][room_id]["timeline"]["events"]
    assert timeline[-1]["event_id"] == said_id and timeline[-1]["sender"] == rob
    # Alice's answer cites Rob's message as its prev event.
    reply = await alice.say(room_id, "welcome")
    conn = await asyncpg.connect(server.atomchat.dsn)
    try:
        prev = await conn.fetchval("SELECT prev_events FROM events WHERE event_id = $1", reply)
    finally:
        await conn.close()
    assert prev == [said_id]


async def test_bad_pdus_are_refused_and_nothing_is_stored(api, server):
    keys = Keys()
    REMOTE.trusted_by(keys)
    alice, room_id, rob = await joined_room(api, server, keys)
    dsn = server.atomchat.dsn
    events = service(server, keys)

    # A signature by a key the remote server does not have.
    forger = RemoteServer(REMOTE.name)
    forged_id, forged = await forger.pdu(dsn, room_id, rob, "m.room.message", {"msgtype": "m.text", "body": "x"})
    assert "signature" in (await events.receive_pdus(REMOTE.name, [forged]))[forged_id]["error"]
    # A signed event changed afterwards: its signature no longer matches.
    changed_id, changed = await REMOTE.pdu(dsn, room_id, rob, "m.room.message", {"msgtype": "m.text", "body": "y"})
    changed = {**changed, "depth": changed["depth"] + 5}
    answer = await events.receive_pdus(REMOTE.name, [changed])
    assert list(answer.values()) == [{"error": f"the signature of {REMOTE.name} does not match the PDU"}]
    # An event its auth events do not allow: Rob may not change power levels.
    levels = (await alice.get_state(room_id, "m.room.power_levels")).body
    power_id, power = await REMOTE.pdu(dsn, room_id, rob, "m.room.power_levels", {**levels, "users": {rob: 100}}, "")
    assert "power" in (await events.receive_pdus(REMOTE.name, [power]))[power_id]["error"]
    # A user of another server, sent by this origin without that server's signature.
    other = RemoteServer("other.example")
    eve = other.user("eve")
    eve_id, eve_join = await other.pdu(dsn, room_id, eve, "m.room.member", {"membership": "join"}, eve)
    assert "signature" in (await events.receive_pdus(REMOTE.name, [eve_join]))[eve_id]["error"]
    # A room this server does not have.
    unknown = {**forged, "room_id": "!nowhere:remote.example"}
    assert list((await events.receive_pdus(REMOTE.name, [unknown])).values()) == [
        {"error": "room '!nowhere:remote.example' is unknown here"}
    ]
    # A malformed one.
    assert list((await events.receive_pdus(REMOTE.name, [{"type": 5}])).values()) == [
        {"error": "room None is unknown here"}
    ]
    for event_id in (forged_id, changed_id, power_id, eve_id):
        assert await stored(dsn, event_id) is None


async def test_a_wrong_content_hash_keeps_the_event_redacted(api, server):
    keys = Keys()
    REMOTE.trusted_by(keys)
    alice, room_id, rob = await joined_room(api, server, keys)
    said_id, said = await REMOTE.pdu(
        server.atomchat.dsn, room_id, rob, "m.room.message", {"msgtype": "m.text", "body": "original"}
    )
    # The content changed after signing: the signature (of the redacted
    # form) still holds, the hash does not.
    tampered = {**said, "content": {"msgtype": "m.text", "body": "tampered"}}
    assert await service(server, keys).receive_pdus(REMOTE.name, [tampered]) == {said_id: {}}
    seen = await alice.event(room_id, said_id)
    assert seen["content"] == {}


async def test_a_remote_event_on_an_older_branch_forks_the_room_and_the_next_local_event_merges_it(api, server):
    keys = Keys()
    REMOTE.trusted_by(keys)
    alice, room_id, rob = await joined_room(api, server, keys)
    dsn = server.atomchat.dsn
    conn = await asyncpg.connect(dsn)
    try:
        (join_id,) = await conn.fetchval("SELECT extremities FROM rooms WHERE room_id = $1", room_id)
        mine = await alice.say(room_id, "meanwhile here")
        # Rob had not seen Alice's message: his cites his join.
        theirs_id, theirs = await REMOTE.pdu(
            dsn, room_id, rob, "m.room.message", {"msgtype": "m.text", "body": "meanwhile there"}, prev_events=[join_id]
        )
        assert await service(server, keys).receive_pdus(REMOTE.name, [theirs]) == {theirs_id: {}}
        assert await conn.fetchval("SELECT extremities FROM rooms WHERE room_id = $1", room_id) == [mine, theirs_id]
        merge = await alice.say(room_id, "both seen")
        assert await conn.fetchval("SELECT prev_events FROM events WHERE event_id = $1", merge) == [mine, theirs_id]
        assert await conn.fetchval("SELECT extremities FROM rooms WHERE room_id = $1", room_id) == [merge]
    finally:
        await conn.close()
    page = await alice.messages(room_id, dir="b", limit=3)
    assert bodies(page["chunk"]) == ["both seen", "meanwhile there", "meanwhile here"]


class RecordingOutbox:
    """What the outbox was handed (its delivery is the transport's, tested there)."""

    def __init__(self):
        self.queued = []

    async def queue_pdus(self, db, destinations, pdus):
        self.queued.append((list(destinations), [dict(p) for p in pdus]))

    def wake(self, destinations):
        pass


async def test_local_events_of_a_room_with_remote_members_go_to_their_servers(api, server):
    keys = Keys()
    REMOTE.trusted_by(keys)
    outbox = RecordingOutbox()
    notifier = server.atomchat.ctx.notifier
    sender = PduSender(outbox=outbox, server_name="test.local", position=lambda: notifier.position)
    notifier.observers.append(sender.observe)
    await sender.load(server.atomchat.ctx.pool)
    # Queued in the transaction that commits the events: there as the send returns.
    server.atomchat._persister.commit_hooks.append(sender.queue)
    (alice,) = await register(api, "alice")
    lonely = await alice.create_room()
    await alice.say(lonely, "nobody else here")
    assert outbox.queued == []
    alice, room_id, rob = await joined_room_of(alice, server, keys)
    assert outbox.queued == []  # Rob's own join is his server's to send
    said = await alice.say(room_id, "hello Rob")
    assert [(d, [p["content"] for p in pdus]) for d, pdus in outbox.queued] == [
        (["remote.example"], [{"msgtype": "m.text", "body": "hello Rob"}])
    ]
    conn = await asyncpg.connect(server.atomchat.dsn)
    try:
        stored_pdu = await conn.fetchval("SELECT pdu FROM events WHERE event_id = $1", said)
    finally:
        await conn.close()
    assert outbox.queued[0][1][0] == json.loads(stored_pdu)


async def test_events_of_a_blocked_remote_user_or_a_banned_server_are_refused(api, server):
    """m.policy.rule.user for a remote user id and m.policy.rule.server, set
    through the admin API: the inbound PDU service refuses their events
    (also when another server relays them) and stores nothing; lifted, they
    are accepted again."""
    keys = Keys()
    REMOTE.trusted_by(keys)
    alice, room_id, rob = await joined_room(api, server, keys)
    await server.atomchat.ctx.moderation.set_moderator(None, alice.user_id, True)
    events = FederationEvents(
        pool=server.atomchat.ctx.pool,
        persister=server.atomchat._persister,
        keyring=keys,
        policy=server.atomchat.ctx.moderation.blocks,
    )
    admin = "/_atomchat/admin/v1"
    lock = f"{admin}/users/{quote(rob, safe='')}/lock"
    for block, lift, error in (
        (
            (lock, {"locked": True}, "admin/lock.response"),
            (lock, {"locked": False}, "admin/lock.response"),
            f"the user {rob} is blocked on this server",
        ),
        (
            (f"{admin}/servers/{REMOTE.name}/ban", {"banned": True, "reason": "spam"}, "admin/server_ban.response"),
            (f"{admin}/servers/{REMOTE.name}/ban", {"banned": False}, "admin/server_ban.response"),
            f"the server {REMOTE.name} is banned on this server",
        ),
        (
            (f"{admin}/servers/*.example/ban", {"banned": True}, "admin/server_ban.response"),
            (f"{admin}/servers/*.example/ban", {"banned": False}, "admin/server_ban.response"),
            f"the server {REMOTE.name} is banned on this server",
        ),
    ):
        await api.request("PUT", block[0], block[1], token=alice.access_token, schema=block[2])
        said_id, said = await REMOTE.pdu(
            server.atomchat.dsn, room_id, rob, "m.room.message", {"msgtype": "m.text", "body": f"refused {error}"}
        )
        # Relayed by another server (the origin is not the sender's server): refused all the same.
        for origin in (REMOTE.name, "relay.example"):
            assert await events.receive_pdus(origin, [said]) == {said_id: {"error": error}}
        assert await stored(server.atomchat.dsn, said_id) is None
        await api.request("PUT", lift[0], lift[1], token=alice.access_token, schema=lift[2])
        assert await events.receive_pdus(REMOTE.name, [said]) == {said_id: {}}
    banned = await api.request(
        "GET", f"{admin}/servers/{REMOTE.name}/ban", token=alice.access_token, schema="admin/server_ban.response"
    )
    assert banned.body == {"banned": False}
    await api.request(
        "PUT",
        f"{admin}/servers/*.example/ban",
        {"banned": True},
        token=alice.access_token,
        schema="admin/server_ban.response",
    )
    for name, expected in ((REMOTE.name, True), ("other.org", False)):
        answer = await api.request(
            "GET", f"{admin}/servers/{name}/ban", token=alice.access_token, schema="admin/server_ban.response"
        )
        assert answer.body == {"banned": expected}
    for bad in (SERVER, "a b"):
        answer = await api.request(
            "PUT", f"{admin}/servers/{quote(bad)}/ban", {"banned": True}, token=alice.access_token, status=400
        )
        assert answer["errcode"] == "M_INVALID_PARAM"
