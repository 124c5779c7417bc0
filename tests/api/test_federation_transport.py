"""Federation transport between two real AtomChat servers over HTTPS on
127.0.0.1: the listener, X-Matrix authentication both ways, remote keys,
the blocklist, profile and alias queries through the client API, and the
durable outbox across outages and restarts."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import quote

import pytest
import signedjson.key
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from atomchat_server import config
from atomchat_server.events.moderation import banned_server, server_matches, server_rule_content
from atomchat_server.events.signing import key_id, sign_json
from atomchat_server.federation.client import FederationClient, RemoteError, Unreachable
from atomchat_server.federation.keyring import BadSignature, KeyNotFound, KeyRing, keys_of_document
from atomchat_server.federation.outbox import MAX_PDUS
from atomchat_server.federation.remote import Endpoint, delegated_endpoint, direct_endpoint, parse_server_name
from atomchat_server.federation.x_matrix import authorization_header
from atomchat_server.services.federation import Transactions
from atomchat_server.services.federation_events import FederationEvents
from atomchat_server.storage.federation import put_keys

from ..support.client import MATRIX, check_schema
from ..support.federation_steps import FederatedServer
from ..support.waiting import eventually

SEND = "/_matrix/federation/v1/send"


async def fetch(url: str, method: str = "GET", body=None, headers=None):
    """A request to a server's HTTPS port (self-signed: not verified); (status, JSON)."""
    payload = None if body is None else json.dumps(body)
    if payload is None and method in ("PUT", "POST"):
        payload = ""
    response = await AsyncHTTPClient().fetch(
        HTTPRequest(
            url,
            method=method,
            body=payload,
            headers=headers or {},
            validate_cert=False,
            request_timeout=30,
            allow_nonstandard_methods=True,
        ),
        raise_error=False,
    )
    return response.code, json.loads(response.body) if response.body else None


def signed_headers(origin, destination, key, method, uri, content=None):
    return {
        "Authorization": authorization_header(origin, destination, key, method, uri, content),
        "Content-Type": "application/json",
    }


# -- discovery rules (pure) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "endpoint"),
    [
        ("127.0.0.1:8449", Endpoint("127.0.0.1", 8449, "127.0.0.1:8449")),
        ("127.0.0.1", Endpoint("127.0.0.1", 8448, "127.0.0.1")),
        ("[::1]:8000", Endpoint("::1", 8000, "[::1]:8000")),
        ("[::1]", Endpoint("::1", 8448, "[::1]")),
        ("matrix.example.org:443", Endpoint("matrix.example.org", 443, "matrix.example.org:443")),
        ("example.org", None),  # the well-known document is asked first
    ],
)
def test_names_that_need_no_delegation_lookup(name, endpoint):
    assert direct_endpoint(name) == endpoint


@pytest.mark.parametrize(
    ("well_known", "endpoint"),
    [
        ({"m.server": "matrix.example.net"}, Endpoint("matrix.example.net", 8448, "matrix.example.net")),
        ({"m.server": "matrix.example.net:443"}, Endpoint("matrix.example.net", 443, "matrix.example.net:443")),
        ({"m.server": "10.1.2.3"}, Endpoint("10.1.2.3", 8448, "10.1.2.3")),
        ({"m.server": "bad name!"}, Endpoint("example.org", 8448, "example.org")),
        ({"other": 1}, Endpoint("example.org", 8448, "example.org")),
        (None, Endpoint("example.org", 8448, "example.org")),
        ([1, 2], Endpoint("example.org", 8448, "example.org")),
    ],
)
def test_well_known_delegation(well_known, endpoint):
    assert delegated_endpoint("example.org", well_known) == endpoint


@pytest.mark.parametrize(
    "name",
    ["", "a b", "host:", "host:0", "host:70000", "host:8a", "[::1", "[nope]:1", "[::1]x", "-bad.example", "x" * 256],
)
def test_what_is_not_a_server_name(name):
    with pytest.raises(ValueError):
        parse_server_name(name)


@pytest.mark.parametrize(
    ("server", "patterns", "banned"),
    [
        ("evil.example", ["evil.example"], True),
        ("evil.example:8448", ["evil.example"], False),  # the name is matched whole, port included
        ("a.evil.example", ["*.evil.example"], True),
        ("evil.example", ["*.evil.example"], False),
        ("127.0.0.1:8448", ["127.0.0.?:*"], True),
        ("good.example", [], False),
    ],
)
def test_server_ban_patterns(server, patterns, banned):
    assert server_matches(server, patterns) is banned


@pytest.mark.parametrize(
    ("content", "banned"),
    [
        (server_rule_content("evil.example", True, "spam"), "evil.example"),
        (server_rule_content("evil.example", False, ""), None),
        ({"entity": "evil.example", "recommendation": "org.example.other"}, None),
        ({"entity": "", "recommendation": "m.ban"}, None),
        ({"entity": 5, "recommendation": "m.ban"}, None),
    ],
)
def test_what_a_server_rule_bans(content, banned):
    assert banned_server(content) == banned


# -- listener and keys -------------------------------------------------------------------------


async def test_the_listener_serves_federation_and_keys_over_https_only(federation_pair):
    a, _ = federation_pair
    status, answer = await fetch(f"{a.federation_url}/_matrix/federation/v1/version")
    assert status == 200
    check_schema("federation/version.response", answer)
    assert answer["server"]["name"] == "AtomChat"
    status, document = await fetch(f"{a.federation_url}/_matrix/key/v2/server")
    assert status == 200 and document["server_name"] == a.name
    # The key document stays on the client port too; the client API is not on the federation port.
    assert (await a.api.request("GET", "/_matrix/key/v2/server", schema="federation/server_key.response")).body[
        "server_name"
    ] == a.name
    status, answer = await fetch(f"{a.federation_url}/_matrix/client/versions")
    assert (status, answer["errcode"]) == (404, "M_UNRECOGNIZED")
    with pytest.raises((HTTPClientError, OSError)):  # no plain HTTP on the TLS port
        await AsyncHTTPClient().fetch(f"http://{a.name}/_matrix/federation/v1/version", request_timeout=10)


async def test_keys_are_fetched_checked_and_cached_with_their_validity(federation_pair):
    a, b = federation_pair
    b_key = key_id(b.ctx.server_key)
    verify = await a.ctx.keyring.verify_key(b.name, b_key)
    assert verify.encode() == signedjson.key.get_verify_key(b.ctx.server_key).encode()
    row = await a.ctx.pool.fetchrow("SELECT * FROM federation_server_keys WHERE server_name = $1", b.name)
    assert row["key_id"] == b_key
    assert row["valid_until_ts"] > row["fetched_ts"] > (time.time() - 60) * 1000
    with pytest.raises(KeyNotFound):
        await a.ctx.keyring.verify_key(b.name, "ed25519:nonesuch")
    # With b down, a new key ring (as after a restart) finds the key in PostgreSQL ...
    await b.stop()
    fresh = KeyRing(a.ctx.pool, a.ctx.federation_client, a.name, a.ctx.server_key)
    assert (await fresh.verify_key(b.name, b_key)).encode() == verify.encode()
    # ... but not for a signature made after the key's validity.
    with pytest.raises(KeyNotFound):
        await fresh.verify_key(b.name, b_key, at_ms=row["valid_until_ts"] + 1)


async def test_old_verify_keys_check_what_was_signed_before_they_expired(federation_pair):
    a, b = federation_pair
    old = signedjson.key.generate_signing_key("old1")
    expired = 1_700_000_000_000
    document = {
        "server_name": b.name,
        "valid_until_ts": expired * 2,
        "verify_keys": {
            key_id(b.ctx.server_key): {
                "key": signedjson.key.encode_verify_key_base64(signedjson.key.get_verify_key(b.ctx.server_key))
            }
        },
        "old_verify_keys": {
            "ed25519:old1": {
                "key": signedjson.key.encode_verify_key_base64(signedjson.key.get_verify_key(old)),
                "expired_ts": expired,
            }
        },
    }
    keys = keys_of_document(b.name, sign_json(document, b.name, b.ctx.server_key), expired)
    week = 7 * 24 * 3600 * 1000  # a published validity is believed for a week at most
    assert {(k.key_id, k.valid_until_ts) for k in keys} == {
        (key_id(b.ctx.server_key), expired + week),
        ("ed25519:old1", expired),
    }
    await put_keys(a.ctx.pool, keys, expired)
    ring = KeyRing(a.ctx.pool, a.ctx.federation_client, a.name, a.ctx.server_key)
    signed_before = sign_json({"n": 1}, b.name, old)
    await ring.verify_signed_json(signed_before, b.name, at_ms=expired - 1)
    with pytest.raises(BadSignature, match="not valid at the time"):
        await ring.verify_signed_json(signed_before, b.name, at_ms=expired + 1)
    with pytest.raises(BadSignature, match="does not match"):
        await ring.verify_signed_json({**signed_before, "n": 2}, b.name, at_ms=expired - 1)
    with pytest.raises(ValueError, match="not signed"):
        keys_of_document(b.name, sign_json(document, b.name, old), expired)
    with pytest.raises(ValueError, match="not of this server"):
        keys_of_document(a.name, sign_json(document, b.name, b.ctx.server_key), expired)


# -- inbound authentication ----------------------------------------------------------------------


async def test_signed_requests_are_accepted_and_others_refused_with_401(federation_pair):
    a, b = federation_pair
    bob = (await b.api.register("bob")).body
    await b.api.request(
        "PUT",
        f"{MATRIX}/profile/{quote(bob['user_id'])}/displayname",
        {"displayname": "bob"},
        token=bob["access_token"],
        schema="matrix/empty.response",
    )
    uri = "/_matrix/federation/v1/query/profile?" + f"user_id={quote(b.user('bob'))}"
    url = b.federation_url + uri
    key = a.ctx.server_key

    status, answer = await fetch(url, headers=signed_headers(a.name, b.name, key, "GET", uri))
    assert (status, answer) == (200, {"displayname": "bob"})
    # Through the client, which signs the same way.
    assert (
        await a.ctx.federation_client.request(
            b.name, "GET", "/_matrix/federation/v1/query/profile", query={"user_id": b.user("bob")}
        )
        == answer
    )

    forger = signedjson.key.generate_signing_key(key.version)  # a's key id, another secret
    refusals = {
        "unsigned": {},
        "a client token": {"Authorization": "Bearer abc"},
        "forged": signed_headers(a.name, b.name, forger, "GET", uri),
        "for another server": signed_headers(a.name, "elsewhere.example", key, "GET", uri),
        "another uri signed": signed_headers(a.name, b.name, key, "GET", uri + "x"),
        "unknown key": signed_headers(a.name, b.name, signedjson.key.generate_signing_key("zz9"), "GET", uri),
        "malformed": {"Authorization": "X-Matrix origin"},
    }
    for what, headers in refusals.items():
        status, answer = await fetch(url, headers=headers)
        assert (status, answer["errcode"]) == (401, "M_UNAUTHORIZED"), what
        check_schema("common/error", answer)
    body = {"origin": a.name, "origin_server_ts": 1, "pdus": [], "edus": []}
    tampered = signed_headers(a.name, b.name, key, "PUT", f"{SEND}/t1", body)
    status, answer = await fetch(f"{b.federation_url}{SEND}/t1", "PUT", {**body, "origin_server_ts": 2}, tampered)
    assert (status, answer["errcode"]) == (401, "M_UNAUTHORIZED")


async def test_the_blocklist_keeps_requests_off_loopback(federation_pair):
    a, b = federation_pair
    await b.api.register("bob")
    blocked = FederationClient(
        a.name, a.ctx.server_key, verify_certificates=False, blocklist=config.FEDERATION_BLOCKLIST
    )
    try:
        with pytest.raises(Unreachable, match="does not contact"):
            await blocked.request(b.name, "GET", "/_matrix/federation/v1/version")
    finally:
        await blocked.close()
    # A server with the default blocklist refuses to ask b, and says so.
    a.settings = a.settings.replace(federation_ip_range_blocklist=config.FEDERATION_BLOCKLIST)
    await a.stop()
    await a.start()
    answer = await a.api.request("GET", f"{MATRIX}/profile/{quote(b.user('bob'))}", status=502)
    assert answer.body["errcode"] == "M_UNKNOWN"


async def test_an_unverified_self_signed_certificate_is_refused_when_verifying(federation_pair):
    a, b = federation_pair
    verifying = FederationClient(a.name, a.ctx.server_key, verify_certificates=True)
    try:
        with pytest.raises(Unreachable):
            await verifying.request(b.name, "GET", "/_matrix/federation/v1/version")
    finally:
        await verifying.close()


async def test_remote_errors_come_back_as_remote_error(federation_pair):
    a, b = federation_pair
    with pytest.raises(RemoteError) as refused:
        await a.ctx.federation_client.request(
            b.name, "GET", "/_matrix/federation/v1/query/profile", query={"user_id": b.user("nobody")}
        )
    assert (refused.value.status, refused.value.errcode) == (404, "M_NOT_FOUND")


# -- queries both ways ----------------------------------------------------------------------------


async def test_remote_profiles_and_aliases_through_the_client_api(federation_pair):
    a, b = federation_pair
    bob = (await b.api.register("bob")).body
    await b.api.request(
        "PUT",
        f"{MATRIX}/profile/{quote(bob['user_id'])}/displayname",
        {"displayname": "Bob of B"},
        token=bob["access_token"],
        schema="matrix/empty.response",
    )
    room = (
        await b.api.request(
            "POST",
            f"{MATRIX}/createRoom",
            {"room_alias_name": "lobby"},
            token=bob["access_token"],
            schema="matrix/createRoom.response",
        )
    ).body["room_id"]
    profile = await a.api.request("GET", f"{MATRIX}/profile/{quote(bob['user_id'])}", schema="matrix/profile.response")
    assert profile.body == {"displayname": "Bob of B"}
    name = await a.api.request(
        "GET", f"{MATRIX}/profile/{quote(bob['user_id'])}/avatar_url", schema="matrix/profile_avatar_url.response"
    )
    assert name.body == {"avatar_url": None}
    alias = await a.api.request(
        "GET", f"{MATRIX}/directory/room/{quote('#lobby:' + b.name)}", schema="matrix/alias.response"
    )
    assert alias.body == {"room_id": room, "servers": [b.name]}
    # Unknown on their server: 404; a server that does not answer: 502.
    await a.api.request("GET", f"{MATRIX}/profile/{quote(b.user('nobody'))}", status=404)
    await a.api.request("GET", f"{MATRIX}/directory/room/{quote('#none:' + b.name)}", status=404)
    await b.stop()
    await a.api.request("GET", f"{MATRIX}/directory/room/{quote('#lobby:' + b.name)}", status=502)
    # The profile is remembered for a while.
    assert (
        await a.api.request("GET", f"{MATRIX}/profile/{quote(bob['user_id'])}", schema="matrix/profile.response")
    ).body == {"displayname": "Bob of B"}


async def test_queries_answer_only_for_this_servers_users_and_aliases(federation_pair):
    a, b = federation_pair
    client = a.ctx.federation_client
    with pytest.raises(RemoteError) as refused:
        await client.request(b.name, "GET", "/_matrix/federation/v1/query/profile", query={"user_id": a.user("x")})
    assert refused.value.status == 404
    with pytest.raises(RemoteError) as refused:
        await client.request(
            b.name, "GET", "/_matrix/federation/v1/query/profile", query={"user_id": b.user("x"), "field": "bogus"}
        )
    assert (refused.value.status, refused.value.errcode) == (400, "M_INVALID_PARAM")
    with pytest.raises(RemoteError) as refused:
        await client.request(b.name, "GET", "/_matrix/federation/v1/query/directory")
    assert (refused.value.status, refused.value.errcode) == (400, "M_MISSING_PARAM")
    bob = (await b.api.register("bob")).body
    await b.api.request(
        "PUT",
        f"{MATRIX}/profile/{quote(bob['user_id'])}/avatar_url",
        {"avatar_url": "mxc://b/pic"},
        token=bob["access_token"],
        schema="matrix/empty.response",
    )
    answer = await client.request(
        b.name, "GET", "/_matrix/federation/v1/query/profile", query={"user_id": bob["user_id"], "field": "avatar_url"}
    )
    assert answer == {"avatar_url": "mxc://b/pic"}
    check_schema("federation/query_profile.response", answer)


# -- transactions ---------------------------------------------------------------------------------


def pdu(n: int, origin: str) -> dict:
    """A PDU-shaped object numbered ``n`` (for order checks; no room knows it)."""
    return {
        "type": "m.room.message",
        "room_id": "!nowhere:" + origin,
        "sender": f"@a:{origin}",
        "origin_server_ts": n,
        "content": {"n": n},
        "depth": n,
        "prev_events": [],
        "auth_events": [],
        "hashes": {"sha256": "x"},
        "signatures": {},
    }


@pytest.fixture
def received(monkeypatch):
    """What every server in the process applies of transactions, in order:
    ("pdu", n) for each PDU handed to the PDU service, ("edu", n) for each EDU."""
    seen: list[tuple[str, int]] = []
    receive_pdus, apply_edu = FederationEvents.receive_pdus, Transactions._apply_edu

    async def recording_pdus(self, origin, pdus):
        seen.extend(("pdu", p["content"]["n"]) for p in pdus)
        return await receive_pdus(self, origin, pdus)

    async def recording_edu(self, origin, edu):
        seen.append(("edu", edu["content"]["n"]))
        await apply_edu(self, origin, edu)

    monkeypatch.setattr(FederationEvents, "receive_pdus", recording_pdus)
    monkeypatch.setattr(Transactions, "_apply_edu", recording_edu)
    return seen


async def test_a_transaction_is_applied_once_per_txn_id(federation_pair, received):
    a, b = federation_pair
    body = {
        "origin": a.name,
        "origin_server_ts": 1,
        "pdus": [pdu(1, a.name)],
        "edus": [{"edu_type": "org.example.test", "content": {"n": 2}}],
    }
    first = await a.ctx.federation_client.request(b.name, "PUT", f"{SEND}/same", body=body)
    again = await a.ctx.federation_client.request(b.name, "PUT", f"{SEND}/same", body=body)
    check_schema("federation/transaction.response", first)
    # b is not in the PDU's room: it answers so for that PDU, and the rest of the transaction applies.
    assert first == again and list(first["pdus"].values()) == [
        {"error": f"room {body['pdus'][0]['room_id']!r} is unknown here"}
    ]
    assert received == [("pdu", 1), ("edu", 2)]
    # Another origin's transaction of the same id is its own.
    await b.ctx.federation_client.request(a.name, "PUT", f"{SEND}/same", body={**body, "origin": b.name})
    assert received == [("pdu", 1), ("edu", 2), ("pdu", 1), ("edu", 2)]


async def test_oversized_or_foreign_transactions_are_refused(federation_pair, received):
    a, b = federation_pair
    client = a.ctx.federation_client
    for body in (
        {"origin": a.name, "origin_server_ts": 1, "pdus": [pdu(n, a.name) for n in range(51)]},
        {
            "origin": a.name,
            "origin_server_ts": 1,
            "pdus": [],
            "edus": [{"edu_type": "x", "content": {"n": n}} for n in range(101)],
        },
    ):
        with pytest.raises(RemoteError) as refused:
            await client.request(b.name, "PUT", f"{SEND}/big", body=body)
        assert (refused.value.status, refused.value.errcode) == (400, "M_BAD_JSON")
    with pytest.raises(RemoteError) as refused:
        await client.request(
            b.name, "PUT", f"{SEND}/foreign", body={"origin": "elsewhere.example", "origin_server_ts": 1, "pdus": []}
        )
    assert (refused.value.status, refused.value.errcode) == (400, "M_INVALID_PARAM")
    assert received == []


async def test_typing_and_receipts_of_users_not_in_a_shared_room_are_ignored(federation_pair):
    a, b = federation_pair
    bob = (await b.api.register("bob")).body
    room = (
        await b.api.request(
            "POST", f"{MATRIX}/createRoom", {}, token=bob["access_token"], schema="matrix/createRoom.response"
        )
    ).body["room_id"]
    event = (
        await b.api.request(
            "PUT",
            f"{MATRIX}/rooms/{quote(room)}/send/m.room.message/t1",
            {"msgtype": "m.text", "body": "hi"},
            token=bob["access_token"],
            schema="matrix/event_id.response",
        )
    ).body["event_id"]
    edus = [
        {"edu_type": "m.typing", "content": {"room_id": room, "user_id": a.user("alice"), "typing": True}},
        {"edu_type": "m.typing", "content": {"room_id": room, "user_id": bob["user_id"], "typing": True}},
        {
            "edu_type": "m.receipt",
            "content": {
                room: {
                    "m.read": {
                        a.user("alice"): {"event_ids": [event], "data": {"ts": 1}},
                        bob["user_id"]: {"event_ids": [event], "data": {"ts": 1}},
                    }
                }
            },
        },
        {"edu_type": "m.typing", "content": {"room_id": 5, "typing": "yes"}},
    ]
    answer = await a.ctx.federation_client.request(
        b.name, "PUT", f"{SEND}/edus", body={"origin": a.name, "origin_server_ts": 1, "pdus": [], "edus": edus}
    )
    assert answer == {"pdus": {}}
    # Alice is in no room of b's; bob is b's own user, whom a cannot speak for.
    assert b.ctx.notifier.typing.users(room) == []
    assert await b.ctx.pool.fetchval("SELECT count(*) FROM receipts WHERE user_id <> $1", bob["user_id"]) == 0


# -- the outbox -----------------------------------------------------------------------------------


def fast_retries(server) -> None:
    server.ctx.outbox.base_backoff = 0.05
    server.ctx.outbox.max_backoff = 0.2
    server.ctx.outbox.idle_seconds = 0.05  # a sender with nothing to send lets go of its lock soon


async def outbox_empty(server) -> bool:
    """Whether every queued PDU and EDU has been acknowledged by its receiver."""
    return await server.ctx.pool.fetchval("SELECT count(*) FROM federation_outbox") == 0


async def test_the_outbox_delivers_in_order_after_the_receiver_comes_back(federation_pair, received):
    a, b = federation_pair
    fast_retries(a)
    await b.stop()
    # More than one transaction's worth, PDUs and EDUs interleaved.
    expected = []
    for n in range(MAX_PDUS + 10):
        await a.ctx.outbox.enqueue_pdus([b.name, a.name], [pdu(n, a.name)])
        expected.append(("pdu", n))
        if n % 20 == 0:
            await a.ctx.outbox.enqueue_edu(b.name, "org.example.test", {"n": 1000 + n})
            expected.append(("edu", 1000 + n))
    await eventually(lambda: a.ctx.outbox.backing_off(b.name))
    assert received == []
    await b.start()
    await eventually(lambda: len(received) >= len(expected))
    await eventually(lambda: outbox_empty(a))  # every transaction acknowledged: nothing further can arrive
    assert [item for item in received if item[0] == "pdu"] == [item for item in expected if item[0] == "pdu"]
    assert [item for item in received if item[0] == "edu"] == [item for item in expected if item[0] == "edu"]
    assert len(received) == len(expected)  # nothing twice
    # 61 PDUs: two transactions at least, one of them full.
    assert await b.ctx.pool.fetchval("SELECT count(*) FROM federation_received_txns WHERE origin = $1", a.name) >= 2
    assert await a.ctx.pool.fetchval("SELECT count(*) FROM federation_outbox") == 0


async def test_the_outbox_survives_a_restart_of_the_sender(federation_pair, received):
    a, b = federation_pair
    await b.stop()
    await a.ctx.outbox.enqueue_pdus([b.name], [pdu(n, a.name) for n in range(5)])
    await a.ctx.outbox.enqueue_edu(b.name, "org.example.test", {"n": 100})
    await eventually(lambda: a.ctx.outbox.backing_off(b.name))
    # The first batch was formed: it keeps its transaction id for every retry
    # (the EDU may have been queued after it was formed, for the next one).
    formed = {
        row["txn_id"] for row in await a.ctx.pool.fetch("SELECT txn_id FROM federation_outbox WHERE txn_id IS NOT NULL")
    }
    assert len(formed) == 1
    await a.stop()
    await b.start()
    await a.start()
    await eventually(lambda: len(received) >= 6)
    await eventually(lambda: outbox_empty(a))
    assert received == [("pdu", 0), ("pdu", 1), ("pdu", 2), ("pdu", 3), ("pdu", 4), ("edu", 100)]
    assert await a.ctx.pool.fetchval("SELECT count(*) FROM federation_outbox") == 0
    received_txns = [
        row["txn_id"]
        for row in await b.ctx.pool.fetch(
            "SELECT txn_id FROM federation_received_txns WHERE origin = $1 ORDER BY received_at", a.name
        )
    ]
    assert received_txns[0] == formed.pop() and len(received_txns) <= 2


async def test_a_down_destination_does_not_delay_others_or_local_sends(federation_pair, received, tmp_path):
    a, b = federation_pair
    down = "127.0.0.1:9"  # nothing listens on the discard port
    fast_retries(a)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await a.ctx.outbox.enqueue_pdus([down], [pdu(1, a.name)])
    await a.ctx.outbox.enqueue_pdus([down, b.name], [pdu(2, a.name)])
    assert loop.time() - started < 1.0  # enqueueing never waits on a remote
    await eventually(lambda: received == [("pdu", 2)], timeout=10)
    assert a.ctx.outbox.backing_off(down)
    assert await a.ctx.pool.fetchval("SELECT count(*) FROM federation_outbox WHERE destination = $1", down) == 2


async def test_one_process_of_several_sends_a_destination_and_another_takes_over(federation_pair, received):
    """Two server processes of ``a`` on one database: each destination is sent
    by exactly one of them at a time; when that one dies, the other sends
    what is left, in order and once."""
    a, b = federation_pair
    a2 = FederatedServer(a.name, a.settings.replace(federation_port=None, federation_enabled=True), a.dsn, a.passwords)
    await a2.start()
    try:
        for server in (a, a2):
            fast_retries(server)

        # Both processes queue for b at once: everything arrives once, each
        # process's rows in the order it queued them.
        async def queue(server, parity: int) -> None:
            for n in range(parity, 20, 2):
                await server.ctx.outbox.enqueue_pdus([b.name], [pdu(n, a.name)])

        await asyncio.gather(queue(a, 0), queue(a2, 1))
        await eventually(lambda: len(received) >= 20)
        await eventually(lambda: outbox_empty(a))  # a2 queues into the same database
        # Both idle, b's lock let go: the next to queue for b takes it.
        await eventually(lambda: not a.ctx.outbox.sending(b.name) and not a2.ctx.outbox.sending(b.name))
        assert sorted(received) == [("pdu", n) for n in range(20)]
        for parity in (0, 1):
            assert [n for _, n in received if n % 2 == parity] == list(range(parity, 20, 2))
        received.clear()
        # b is down: the first process to queue holds b's lock and retries;
        # the other only queues (and wakes the holder).
        await b.stop()
        await a.ctx.outbox.enqueue_pdus([b.name], [pdu(100, a.name)])
        await eventually(lambda: a.ctx.outbox.backing_off(b.name))
        await a2.ctx.outbox.enqueue_pdus([b.name], [pdu(101, a.name)])
        await a2.ctx.outbox.enqueue_edu(b.name, "org.example.test", {"n": 102})
        await a2.ctx.outbox.sweep()
        # Kept: a wait for something that must not happen (a2 taking b over
        # while a holds it), which no condition can be polled for.
        await asyncio.sleep(0.2)
        assert a.ctx.outbox.sending(b.name) and not a2.ctx.outbox.sending(b.name)
        assert received == []
        # The holder dies (its database session ends, and its lock with it);
        # b comes back; the other process's next sweep takes b over.
        await a.stop()
        await b.start()
        await a2.ctx.outbox.sweep()
        await eventually(lambda: len(received) >= 3)
        await eventually(lambda: outbox_empty(a2))
        assert received == [("pdu", 100), ("pdu", 101), ("edu", 102)]
        await eventually(lambda: a2.ctx.outbox.sending(b.name) is False, what="the lock's release")  # done
        assert await a2.ctx.pool.fetchval("SELECT count(*) FROM federation_outbox") == 0
    finally:
        await a2.stop()


async def test_a_server_banned_by_the_policy_room_is_refused_with_403(federation_pair):
    a, b = federation_pair
    mod = (await b.api.register("mod")).body["user_id"]
    await b.ctx.moderation.set_moderator(None, mod, True)
    client = a.ctx.federation_client
    query = {"user_id": b.user("mod")}
    await client.request(b.name, "GET", "/_matrix/federation/v1/query/profile", query=query)
    for rule in (a.name, "127.0.0.*"):
        await b.ctx.moderation.set_server_ban(mod, rule, True, "spam")
        with pytest.raises(RemoteError) as refused:
            await client.request(b.name, "GET", "/_matrix/federation/v1/query/profile", query=query)
        assert (refused.value.status, refused.value.errcode) == (403, "M_FORBIDDEN")
        await b.ctx.moderation.set_server_ban(mod, rule, False)
        await client.request(b.name, "GET", "/_matrix/federation/v1/query/profile", query=query)
    # The rule is a state event of the policy room: a restart loads it again.
    await b.ctx.moderation.set_server_ban(mod, a.name, True, "spam")
    await b.stop()
    await b.start()
    with pytest.raises(RemoteError) as refused:
        await client.request(b.name, "GET", "/_matrix/federation/v1/query/profile", query=query)
    assert refused.value.status == 403
