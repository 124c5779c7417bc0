"""Server discovery over real HTTPS: a server name without a port is looked
up at ``https://<name>/.well-known/matrix/server`` (port 443, as the
server-server API fixes it), whose ``m.server`` delegates to where the
server really listens.

The well-known document is served by a small HTTPS server of the test's own
on 127.0.0.1:443 for the name ``localhost``; binding that port needs root or
CAP_NET_BIND_SERVICE (CI runs as root)."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator

import pytest
import tornado.httpserver
import tornado.web

from atomchat_server.federation.remote import Endpoint

WELL_KNOWN = "/.well-known/matrix/server"
NAME = "localhost"


class Delegation:
    """What the well-known server answers, and what it was asked."""

    def __init__(self) -> None:
        self.document: object = None  # None: 404
        self.redirect: str | None = None
        self.asked: list[str] = []


class WellKnownHandler(tornado.web.RequestHandler):
    def initialize(self, delegation: Delegation) -> None:
        self.delegation = delegation

    def get(self, path: str) -> None:
        self.delegation.asked.append(self.request.path)
        if self.delegation.redirect and self.request.path == WELL_KNOWN:
            self.redirect(self.delegation.redirect, status=302)
        elif self.delegation.document is None:
            self.set_status(404)
            self.finish("{}")
        elif isinstance(self.delegation.document, str):
            self.finish(self.delegation.document)
        else:
            self.finish(json.dumps(self.delegation.document))


@pytest.fixture
def delegation(io_loop, tls_files) -> Iterator[Delegation]:
    found = Delegation()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    app = tornado.web.Application([(r"(/.*)", WellKnownHandler, {"delegation": found})])
    server = tornado.httpserver.HTTPServer(app, ssl_options=context)
    try:
        server.listen(443, "127.0.0.1")
    except PermissionError:
        pytest.fail("binding 127.0.0.1:443 for the well-known server needs root or CAP_NET_BIND_SERVICE")
    yield found
    server.stop()


async def test_a_name_is_found_through_its_well_known_document(federation_pair, delegation):
    a, b = federation_pair
    client = a.ctx.federation_client
    delegation.document = {"m.server": b.name}
    found = await client.endpoint(NAME)
    assert found == Endpoint("127.0.0.1", b.port, b.name)
    # A real request to the name reaches the server it delegates to.
    answer = await client.request(NAME, "GET", "/_matrix/federation/v1/version")
    assert answer["server"]["name"] == "AtomChat"
    # The delegation is remembered: the document was asked for once.
    assert delegation.asked == [WELL_KNOWN]


async def test_a_redirected_well_known_document_is_followed(federation_pair, delegation):
    a, b = federation_pair
    delegation.redirect = "/elsewhere/server.json"
    delegation.document = {"m.server": b.name}
    assert await a.ctx.federation_client.endpoint(NAME) == Endpoint("127.0.0.1", b.port, b.name)
    assert delegation.asked == [WELL_KNOWN, "/elsewhere/server.json"]


@pytest.mark.parametrize("document", [None, "not json", {"m.server": 42}, {"m.server": "bad name:port:x"}])
async def test_without_a_usable_document_the_name_is_served_on_8448(federation_pair, delegation, document):
    a, _ = federation_pair
    delegation.document = document
    assert await a.ctx.federation_client.endpoint(NAME) == Endpoint(NAME, 8448, NAME)
    assert delegation.asked == [WELL_KNOWN]
