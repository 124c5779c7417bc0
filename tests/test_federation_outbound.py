"""Outbound federation: the client's kept-alive connections, and the
outbox's queueing in the transaction that commits the events."""

from __future__ import annotations

import ssl

import pytest
import signedjson.key
import tornado.httpserver
import tornado.iostream
import tornado.web

from atomchat_server.federation.client import FederationClient

from .processes import free_port


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
    made = FederationClient("origin.test", signedjson.key.generate_signing_key("a1"), verify_certificates=False,
                            blocklist=())
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
