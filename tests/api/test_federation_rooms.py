"""Two AtomChat servers with different names and databases sharing rooms:
invites, joins, messages, state and redactions cross both ways.

The servers' room services talk through a loopback that calls the other
server's federation services in process (what the HTTPS listener and the
outbox do between real servers), so these tests cover the room protocol
and the PDU checks end to end while the transport is tested on its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pytest

from atomchat_server.events import signing
from atomchat_server.services.federation_events import FederationEvents
from atomchat_server.services.federation_join import RemoteMembership
from atomchat_server.services.federation_rooms import FederationRooms
from atomchat_server.services.federation_send import PduSender
from atomchat_server.services.persister import Signer

from ..support.client import ApiClient, path_param
from ..support.pdu_steps import Keys
from ..support.room_steps import bodies, register
from ..support.servers import start_server
from ..support.sync_steps import sync


@dataclass
class Node:
    name: str
    rooms: FederationRooms
    events: FederationEvents
    outbox: LoopbackOutbox


class Loopback:
    """The network between the servers of a test."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.keys = Keys()

    def join(self, running) -> None:
        atomchat = running.atomchat
        ctx, persister = atomchat.ctx, atomchat._persister
        name = ctx.settings.server_name
        key = ctx.server_key
        self.keys.known[(name, signing.key_id(key))] = signing.verify_key_of(key)
        client = LoopbackClient(self, name)
        events = FederationEvents(pool=ctx.pool, persister=persister, keyring=self.keys, client=client)
        signer = Signer(name, key)
        outbox = LoopbackOutbox(self, name)
        sender = PduSender(outbox=outbox, server_name=name, position=lambda: ctx.notifier.position)
        ctx.notifier.observers.append(sender.observe)
        persister.commit_hooks.append(sender.queue)
        ctx.rooms.remote = RemoteMembership(
            pool=ctx.pool, persister=persister, signer=signer, events=events, client=client
        )
        self.nodes[name] = Node(
            name, FederationRooms(pool=ctx.pool, persister=persister, signer=signer, events=events), events, outbox
        )

    async def settled(self) -> None:
        """Until every server has handed its queued events over (and those handed them theirs)."""
        for _ in range(10):
            for node in self.nodes.values():
                await node.outbox.settled()
            if not any(node.outbox.tasks for node in self.nodes.values()):
                return


class LoopbackClient:
    def __init__(self, network: Loopback, origin: str) -> None:
        self.network, self.origin = network, origin

    async def request(
        self, destination: str, method: str, path: str, *, query: Any = None, body: Any = None, timeout: float = 30.0
    ) -> Any:
        rooms = self.network.nodes[destination].rooms
        parts = [unquote(p) for p in path.split("/")]
        endpoint = parts[4]
        if (method, endpoint) == ("GET", "make_join"):
            return await rooms.make_join(self.origin, parts[5], parts[6], list((query or {}).get("ver", [])))
        if (method, endpoint) == ("PUT", "send_join"):
            return await rooms.send_join(self.origin, parts[5], parts[6], body)
        if (method, endpoint) == ("GET", "make_leave"):
            return await rooms.make_leave(self.origin, parts[5], parts[6])
        if (method, endpoint) == ("PUT", "send_leave"):
            return await rooms.send_leave(self.origin, parts[5], parts[6], body)
        if (method, endpoint) == ("PUT", "invite"):
            return await rooms.invite(self.origin, parts[5], parts[6], body)
        if (method, endpoint) == ("POST", "get_missing_events"):
            return await rooms.get_missing_events(self.origin, parts[5], body)
        raise AssertionError(f"no loopback for {method} {path}")


class LoopbackOutbox:
    """Hands what was queued in a commit to the other servers once the
    commit is done (wake), as the outbox's senders would."""

    def __init__(self, network: Loopback, origin: str) -> None:
        self.network, self.origin = network, origin
        self.queued: list[tuple[list[str], list[dict]]] = []
        self.tasks: set[asyncio.Task] = set()

    async def queue_pdus(self, db, destinations, pdus) -> None:
        self.queued.append((list(destinations), [dict(p) for p in pdus]))

    def wake(self, destinations) -> None:
        queued, self.queued = self.queued, []
        task = asyncio.get_running_loop().create_task(self._deliver(queued))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, queued) -> None:
        for destinations, pdus in queued:
            for destination in destinations:
                node = self.network.nodes.get(destination)
                if node is not None:
                    await node.events.receive_pdus(self.origin, pdus)

    async def settled(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)


@pytest.fixture
def second_server(io_loop, scratch_dsn, settings, test_passwords, tmp_path):
    """Another AtomChat server, b.test, on a database of its own."""
    running = io_loop.run_sync(
        lambda: start_server(
            settings.replace(server_name="b.test", data_dir=str(tmp_path / "b")), scratch_dsn, test_passwords
        )
    )
    yield running
    io_loop.run_sync(running.stop)


async def two_servers(api, server, second_server):
    """The network of the two servers, Alice of test.local and Bob of b.test."""
    network = Loopback()
    network.join(server)
    network.join(second_server)
    (alice,) = await register(api, "alice")
    (bob,) = await register(ApiClient(second_server.base_url), "bob")
    return network, alice, bob


async def timeline_bodies(user, room_id):
    events, _ = await user.all_messages(room_id, limit=100, dir="f")
    return bodies(events)


async def test_alice_invites_bob_of_another_server_and_they_talk(api, server, second_server):
    network, alice, bob = await two_servers(api, server, second_server)
    assert bob.user_id == "@bob:b.test"
    room_id = await alice.create_room(preset="private_chat", name="Across")
    await alice.say(room_id, "before Bob")
    await alice.call("POST", f"/rooms/{room_id}/invite", {"user_id": bob.user_id}, schema="matrix/empty.response")
    invited = (await sync(bob)).body["rooms"]["invite"][room_id]["invite_state"]["events"]
    assert invited[-1]["state_key"] == bob.user_id and invited[-1]["sender"] == alice.user_id

    assert (await bob.join(room_id)).body == {"room_id": room_id}
    await network.settled()
    for user in (alice, bob):
        members = await user.call("GET", f"/rooms/{room_id}/joined_members", schema="matrix/joined_members.response")
        assert set(members.body["joined"]) == {alice.user_id, bob.user_id}
    assert (await bob.get_state(room_id, "m.room.name")).body == {"name": "Across"}

    await alice.say(room_id, "hello Bob")
    await network.settled()
    await bob.say(room_id, "hello Alice")
    await network.settled()
    assert await timeline_bodies(alice, room_id) == ["before Bob", "hello Bob", "hello Alice"]
    assert (await timeline_bodies(bob, room_id))[-2:] == ["hello Bob", "hello Alice"]
    bob_sync = (await sync(bob)).body["rooms"]["join"][room_id]["timeline"]["events"]
    assert bodies(bob_sync)[-2:] == ["hello Bob", "hello Alice"]

    # State crosses: the topic, and power levels that let Bob set the name.
    await alice.put_state(room_id, "m.room.topic", {"topic": "two servers"})
    levels = (await alice.get_state(room_id, "m.room.power_levels")).body
    await alice.put_state(room_id, "m.room.power_levels", {**levels, "users": {bob.user_id: 50}})
    await network.settled()
    assert (await bob.get_state(room_id, "m.room.topic")).body == {"topic": "two servers"}
    await bob.put_state(room_id, "m.room.name", {"name": "Renamed by Bob"})
    await network.settled()
    assert (await alice.get_state(room_id, "m.room.name")).body == {"name": "Renamed by Bob"}

    # A redaction crosses.
    oops = await bob.say(room_id, "oops")
    await network.settled()
    await bob.redact(room_id, oops, reason="typo")
    await network.settled()
    assert (await alice.event(room_id, oops))["content"] == {}


async def test_both_servers_sending_at_once_end_with_the_same_room(api, server, second_server):
    network, alice, bob = await two_servers(api, server, second_server)
    room_id = await alice.create_room(preset="public_chat")
    await bob.call("POST", f"/join/{path_param(room_id)}?server_name=test.local", {}, schema="matrix/join.response")
    await network.settled()
    levels = (await alice.get_state(room_id, "m.room.power_levels")).body
    await alice.put_state(room_id, "m.room.power_levels", {**levels, "users": {bob.user_id: 50}})
    await network.settled()
    # Each server commits its own message before it hears of the other's.
    for i in range(3):
        await asyncio.gather(alice.say(room_id, f"a{i}"), bob.say(room_id, f"b{i}"))
    # Both set the topic at once: one wins, the same on both servers.
    await asyncio.gather(
        alice.put_state(room_id, "m.room.topic", {"topic": "Alice's"}),
        bob.put_state(room_id, "m.room.topic", {"topic": "Bob's"}),
    )
    await network.settled()
    await alice.say(room_id, "merge")
    await network.settled()
    a_events, _ = await alice.all_messages(room_id, limit=100, dir="f")
    b_events, _ = await bob.all_messages(room_id, limit=100, dir="f")
    assert sorted(bodies(a_events)) == sorted(bodies(b_events)) == sorted(["a0", "a1", "a2", "b0", "b1", "b2", "merge"])
    a_state = {(e["type"], e["state_key"]): e["event_id"] for e in (await alice.state(room_id)).body}
    b_state = {(e["type"], e["state_key"]): e["event_id"] for e in (await bob.state(room_id)).body}
    assert a_state == b_state
    assert (await alice.get_state(room_id, "m.room.topic")).body == (await bob.get_state(room_id, "m.room.topic")).body


async def test_events_missed_in_an_outage_are_fetched_with_the_next_one(api, server, second_server):
    network, alice, bob = await two_servers(api, server, second_server)
    room_id = await alice.create_room(preset="public_chat")
    await bob.call("POST", f"/join/{path_param(room_id)}?via=test.local", {}, schema="matrix/join.response")
    await network.settled()
    b_node = network.nodes.pop("b.test")  # b.test is unreachable: what is sent to it is lost
    for body in ("one", "two", "three"):
        await alice.say(room_id, body)
    await network.settled()
    network.nodes["b.test"] = b_node
    await alice.say(room_id, "four")  # the only one b.test is sent
    await network.settled()
    assert (await timeline_bodies(bob, room_id))[-4:] == ["one", "two", "three", "four"]


async def test_bob_rejects_an_invite_from_another_server(api, server, second_server):
    network, alice, bob = await two_servers(api, server, second_server)
    room_id = await alice.create_room(preset="private_chat")
    await alice.call("POST", f"/rooms/{room_id}/invite", {"user_id": bob.user_id}, schema="matrix/empty.response")
    assert room_id in (await sync(bob)).body["rooms"]["invite"]
    await bob.leave(room_id)
    assert room_id not in (await sync(bob)).body["rooms"].get("invite", {})
    # Alice's server was told: Bob is no longer invited there.
    member = await alice.get_state(room_id, "m.room.member", bob.user_id)
    assert member.body["membership"] == "leave"
