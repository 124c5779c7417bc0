"""Received events the rules refuse are kept apart from the timeline
(refused_events): rejected events (failing the rules on their auth events
or on the state before them) and soft-failed ones (allowed by the state
before them, not by the room's current state), each with what the
specification says other events may do with them."""

import asyncpg

from atomchat_server.events.pdu import finish_pdu
from atomchat_server.events.room_versions import room_version
from atomchat_server.services.federation_rooms import FederationRooms
from atomchat_server.services.persister import Signer

from ..support.pdu_steps import Keys, RemoteServer
from ..support.room_steps import bodies
from ..support.sync_steps import sync
from .test_federation_events import REMOTE, joined_room, service

OTHER = RemoteServer("other.example")


async def refused_row(dsn: str, event_id: str):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchrow(
            "SELECT status, reason, (SELECT count(*) FROM events WHERE event_id = $1)"
            " AS in_timeline FROM refused_events WHERE event_id = $1",
            event_id,
        )
    finally:
        await conn.close()


async def extremities(dsn: str, room_id: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetchval("SELECT extremities FROM rooms WHERE room_id = $1", room_id))
    finally:
        await conn.close()


async def child(server: RemoteServer, dsn: str, room_id: str, parent: dict, **changes) -> tuple[str, dict]:
    """A PDU like ``parent`` (same auth events) with ``changes``, signed by ``server``."""
    conn = await asyncpg.connect(dsn)
    try:
        version = room_version(await conn.fetchval("SELECT room_version FROM rooms WHERE room_id = $1", room_id))
    finally:
        await conn.close()
    event = {k: v for k, v in parent.items() if k not in ("hashes", "signatures", "unsigned")}
    event.update(changes)
    return finish_pdu(event, server.name, server.key, version)


def timeline_ids(answer, room_id) -> list[str]:
    return [e["event_id"] for e in answer["rooms"]["join"].get(room_id, {}).get("timeline", {}).get("events", [])]


async def test_a_rejected_event_is_kept_apart_never_shown_nor_cited_and_poisons_what_it_authorizes(api, server):
    keys = Keys()
    REMOTE.trusted_by(keys)
    alice, room_id, rob = await joined_room(api, server, keys)
    dsn = server.atomchat.dsn
    events = service(server, keys)
    since = (await sync(alice)).body["next_batch"]
    # Rob may not change the power levels (his auth events say so): rejected.
    levels = (await alice.get_state(room_id, "m.room.power_levels")).body
    power_id, power = await REMOTE.pdu(dsn, room_id, rob, "m.room.power_levels", {**levels, "users": {rob: 100}}, "")
    error = (await events.receive_pdus(REMOTE.name, [power]))[power_id]["error"]
    row = await refused_row(dsn, power_id)
    assert (row["status"], row["reason"], row["in_timeline"]) == ("rejected", error, 0)
    # Sent again: answered from what was kept.
    assert await events.receive_pdus(REMOTE.name, [power]) == {power_id: {"error": f"rejected earlier: {error}"}}
    # An event citing it as an auth event is rejected too.
    topic_id, topic = await child(
        REMOTE,
        dsn,
        room_id,
        power,
        type="m.room.topic",
        content={"topic": "mine"},
        auth_events=[*power["auth_events"], power_id],
        prev_events=[power_id],
        depth=power["depth"] + 1,
    )
    assert (await events.receive_pdus(REMOTE.name, [topic]))[topic_id][
        "error"
    ] == f"its auth event {power_id} was rejected"
    assert (await refused_row(dsn, topic_id))["status"] == "rejected"
    # An event citing it only as a prev event passes, judged on the state
    # before it (the rejected event changed nothing): Rob is still at 0.
    said_id, said = await REMOTE.pdu(
        dsn, room_id, rob, "m.room.message", {"msgtype": "m.text", "body": "after"}, prev_events=[power_id]
    )
    assert await events.receive_pdus(REMOTE.name, [said]) == {said_id: {}}
    assert (await alice.get_state(room_id, "m.room.power_levels")).body == levels
    # Clients never see the rejected events; this server never cites them.
    shown = timeline_ids((await sync(alice, since=since)).body, room_id)
    assert said_id in shown and power_id not in shown and topic_id not in shown
    page = await alice.messages(room_id, dir="b", limit=10)
    assert power_id not in [e["event_id"] for e in page["chunk"]]
    await alice.event(room_id, power_id, status=404)
    assert power_id not in await extremities(dsn, room_id)
    reply = await alice.say(room_id, "noted")
    conn = await asyncpg.connect(dsn)
    try:
        assert power_id not in await conn.fetchval("SELECT prev_events FROM events WHERE event_id = $1", reply)
    finally:
        await conn.close()


async def test_a_soft_failed_event_is_kept_unseen_but_may_be_cited_as_a_prev_event(api, server):
    keys = Keys()
    REMOTE.trusted_by(keys)
    OTHER.trusted_by(keys)
    alice, room_id, rob = await joined_room(api, server, keys)
    dsn = server.atomchat.dsn
    events = service(server, keys)
    sue = OTHER.user("sue")
    sue_join_id, sue_join = await OTHER.pdu(dsn, room_id, sue, "m.room.member", {"membership": "join"}, sue)
    assert await events.receive_pdus(OTHER.name, [sue_join]) == {sue_join_id: {}}
    before_id, before = await REMOTE.pdu(dsn, room_id, rob, "m.room.message", {"msgtype": "m.text", "body": "hi"})
    assert await events.receive_pdus(REMOTE.name, [before]) == {before_id: {}}
    await alice.act("ban", room_id, rob)
    since = (await sync(alice)).body["next_batch"]
    # Rob's server cites the room from before the ban: allowed by the state
    # before the event, not by the room's current state. Soft-failed:
    # acknowledged, kept apart, not shown, not a forward extremity.
    evading_id, evading = await child(
        REMOTE,
        dsn,
        room_id,
        before,
        prev_events=[before_id],
        depth=before["depth"] + 1,
        content={"msgtype": "m.text", "body": "evading"},
    )
    assert await events.receive_pdus(REMOTE.name, [evading]) == {evading_id: {}}
    row = await refused_row(dsn, evading_id)
    assert (row["status"], row["in_timeline"]) == ("soft_failed", 0)
    assert evading_id not in await extremities(dsn, room_id)
    assert await events.receive_pdus(REMOTE.name, [evading]) == {evading_id: {}}  # sent again: the same
    # Other servers may still read it (they may cite it).
    ctx = server.atomchat.ctx
    rooms = FederationRooms(
        pool=ctx.pool,
        persister=server.atomchat._persister,
        signer=Signer(ctx.settings.server_name, ctx.server_key),
        events=events,
    )
    served = await rooms.event(OTHER.name, evading_id)
    assert served["pdus"][0]["content"]["body"] == "evading"
    # Sue's server had seen it: her message cites it as its prev event and is
    # accepted, judged on the state after it.
    sue_said_id, sue_said = await OTHER.pdu(
        dsn, room_id, sue, "m.room.message", {"msgtype": "m.text", "body": "from sue"}, prev_events=[evading_id]
    )
    # (made with her auth events, at the depth after the soft-failed event, which the timeline does not hold)
    sue_said_id, sue_said = await child(OTHER, dsn, room_id, sue_said, depth=evading["depth"] + 1)
    assert await events.receive_pdus(OTHER.name, [sue_said]) == {sue_said_id: {}}
    shown = timeline_ids((await sync(alice, since=since)).body, room_id)
    assert sue_said_id in shown and evading_id not in shown
    assert bodies((await alice.messages(room_id, dir="b", limit=5))["chunk"])[0] == "from sue"
    assert await refused_row(dsn, sue_said_id) is None
