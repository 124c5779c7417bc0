"""Outbound federation: the client's kept-alive connections, and the
outbox's queueing in the transaction that commits the events."""

from __future__ import annotations

import dataclasses
import json
import ssl

import asyncpg
import pytest
import signedjson.key
import tornado.httpserver
import tornado.iostream
import tornado.web

from atomchat_server.federation.client import FederationClient
from atomchat_server.federation.outbox import LOCK_CONNECTION_NAME

from ..support.federation_steps import FederatedServer
from ..support.harness import free_port
from ..support.room_steps import bodies, register
from ..support.waiting import eventually


class CountingServer(tornado.httpserver.HTTPServer):
    """An HTTPS server that counts the connections it accepts."""

    accepted = 0

    def handle_stream(self, stream: tornado.iostream.IOStream, address: tuple) -> None:
        self.accepted += 1
        super().handle_stream(stream, address)


class VersionHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"server": {"name": "counting"}})

    def post(self) -> None:
        drops = self.settings["drops"]
        if drops:  # the connection breaks under the request, as a server's idle timeout can
            drops.pop()
            self.request.connection.stream.close()
            return
        self.write({"echo": self.request.body.decode()})


@pytest.fixture
def counting_server(io_loop, tls_files):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    drops: list[int] = []
    app = tornado.web.Application([(r"/_matrix/federation/v1/version", VersionHandler)], drops=drops)
    server = CountingServer(app, ssl_options=context)
    port = free_port()
    server.listen(port, "127.0.0.1")
    yield server, f"127.0.0.1:{port}", drops
    server.stop()
    io_loop.run_sync(server.close_all_connections)


@pytest.fixture
def client(io_loop):
    made = FederationClient(
        "origin.test", signedjson.key.generate_signing_key("a1"), verify_certificates=False, blocklist=()
    )
    yield made
    io_loop.run_sync(made.close)


VERSION = "/_matrix/federation/v1/version"


async def test_requests_to_one_destination_share_a_kept_alive_connection(counting_server, client):
    server, name, _ = counting_server
    for _ in range(20):
        assert await client.request(name, "GET", VERSION, signed=False) == {"server": {"name": "counting"}}
    assert await client.request(name, "POST", VERSION, body={"n": 1}, signed=False) == {"echo": '{"n":1}'}
    assert server.accepted == 1


async def test_a_connection_closed_by_the_other_side_is_replaced_unnoticed(counting_server, client):
    server, name, drops = counting_server
    await client.request(name, "GET", VERSION, signed=False)
    # Closed while idle (the server's keep-alive timeout, a restart):
    await server.close_all_connections()
    assert await client.request(name, "GET", VERSION, signed=False) == {"server": {"name": "counting"}}
    assert server.accepted == 2
    # Closed under a request sent on it: sent once more, on a new connection.
    drops.append(1)
    assert await client.request(name, "POST", VERSION, body={"n": 2}, signed=False) == {"echo": '{"n":2}'}
    assert drops == [] and server.accepted == 3
    assert await client.request(name, "GET", VERSION, signed=False) == {"server": {"name": "counting"}}
    assert server.accepted == 3


# -- the outbox ------------------------------------------------------------------------------------


async def shared_room(a, b):
    """Alice of a and Bob of b, joined to a room of a's."""
    (alice,) = await register(a.api, "alice")
    (bob,) = await register(b.api, "bob")
    room_id = await alice.create_room(preset="private_chat")
    await alice.call("POST", f"/rooms/{room_id}/invite", {"user_id": bob.user_id}, schema="matrix/empty.response")
    assert (await bob.join(room_id)).body == {"room_id": room_id}
    return alice, bob, room_id


async def queued_bodies(dsn: str, destination: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT body FROM federation_outbox WHERE destination = $1 AND kind = 'pdu' ORDER BY id", destination
        )
    finally:
        await conn.close()
    return [json.loads(row["body"])["content"].get("body") for row in rows]


async def test_a_send_is_queued_with_its_commit_and_outlives_a_restart(federation_pair):
    a, b = federation_pair
    alice, bob, room_id = await shared_room(a, b)
    await b.stop()
    await alice.say(room_id, "while b is down")
    # In the outbox as the send returns: committed with the event.
    assert await queued_bodies(a.dsn, b.name) == ["while b is down"]
    await a.stop()
    assert await queued_bodies(a.dsn, b.name) == ["while b is down"]
    await b.start()
    await a.start()
    bob = dataclasses.replace(bob, api=b.api)  # b listens on a new client port

    async def bob_sees():
        events, _ = await bob.all_messages(room_id, limit=100, dir="f")
        return "while b is down" in bodies(events)

    await eventually(bob_sees)

    async def sent():
        return await queued_bodies(a.dsn, b.name) == []

    await eventually(sent)


async def test_a_room_federated_by_another_process_is_sent_from_this_one(federation_pair):
    """Two processes of server a: a room made and talked in through the
    second, joined by b's Bob through the first; the second's next send
    goes to b."""
    a, b = federation_pair
    a2 = FederatedServer(a.name, a.settings.replace(federation_port=None, federation_enabled=True), a.dsn, a.passwords)
    await a2.start()
    try:
        (alice,) = await register(a.api, "alice")
        (bob,) = await register(b.api, "bob")
        alice_there = dataclasses.replace(alice, api=a2.api)  # the same token, at the other process
        room_id = await alice_there.create_room(preset="private_chat")
        await alice_there.say(room_id, "only us")  # a2 learns the room has only a's users
        assert await queued_bodies(a.dsn, b.name) == []
        await alice.call("POST", f"/rooms/{room_id}/invite", {"user_id": bob.user_id}, schema="matrix/empty.response")
        assert (await bob.join(room_id)).body == {"room_id": room_id}  # through a's listener
        await b.stop()  # what a2 queues stays in the outbox
        await alice_there.say(room_id, "from the other process")
        assert await queued_bodies(a.dsn, b.name) == ["from the other process"]
    finally:
        await a2.stop()


async def test_without_federation_the_outbox_holds_no_connection(federation_pair):
    """A process of a without federation_port (and federation_enabled unset)
    opens no outbox connection: only a's own is there."""
    a, _ = federation_pair

    async def outbox_connections() -> int:
        conn = await asyncpg.connect(a.dsn)
        try:
            return await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
                LOCK_CONNECTION_NAME,
            )
        finally:
            await conn.close()

    assert a.settings.federating
    assert await outbox_connections() == 1
    local = FederatedServer(a.name, a.settings.replace(federation_port=None), a.dsn, a.passwords)
    assert not local.settings.federating
    await local.start()
    try:
        assert await outbox_connections() == 1
    finally:
        await local.stop()


class CountingDb:
    """A connection that notes the first word of each statement run on it."""

    def __init__(self, conn, statements: list[str]) -> None:
        self._conn, self._statements = conn, statements

    def __getattr__(self, name):
        method = getattr(self._conn, name)
        if name not in ("fetch", "fetchrow", "fetchval", "execute", "executemany"):
            return method

        async def counted(query, *args, **kwargs):
            self._statements.append(query.split()[0].upper())
            return await method(query, *args, **kwargs)

        return counted


async def test_sending_reads_a_rooms_servers_only_when_its_remote_members_changed(federation_pair):
    a, b = federation_pair
    persister = a.running.atomchat._persister
    (queue,) = persister.commit_hooks
    statements: list[str] = []

    async def counting(conn, rows, floor, last):
        return await queue(CountingDb(conn, statements), rows, floor, last)

    persister.commit_hooks[:] = [counting]
    alice, bob, room_id = await shared_room(a, b)
    lonely = await alice.create_room()

    async def say(room, text) -> list[str]:
        await a.ctx.notifier.caught_up()  # this process has seen every event before the send
        statements.clear()
        await alice.say(room, text)
        return list(statements)

    for n in range(3):
        assert await say(lonely, f"alone {n}") == []  # only a's users: nothing read, nothing queued
    assert await say(room_id, "first") in (["SELECT", "INSERT"], ["INSERT"])
    for n in range(3):
        assert await say(room_id, f"again {n}") == ["INSERT"]  # the servers are known: only queued
    await bob.call("POST", f"/rooms/{room_id}/leave", {}, schema="matrix/empty.response")

    async def bob_left():
        members = await alice.call("GET", f"/rooms/{room_id}/joined_members", schema="matrix/joined_members.response")
        return bob.user_id not in members.body["joined"]

    await eventually(bob_left)
    assert await say(room_id, "after Bob") == ["SELECT"]  # read again: b is gone, nothing queued
    assert await say(room_id, "still alone") == []
