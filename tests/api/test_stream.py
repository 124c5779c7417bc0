"""The WebSocket event stream, /_atomchat/client/v1/stream, over real sockets.

Clients authenticate by header, query parameter or a first auth frame; the
server pushes sync-shaped frames as things happen and answers requests on
the same socket; close codes tell a client what went wrong and whether to
resume from its last next_batch. Every frame received is checked against
schemas/stream/sync.frame or schemas/stream/reply.frame.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import aiohttp
import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from atomchat_server.api import stream as stream_module

from ..support.client import MATRIX, check_schema, path_param
from ..support.room_steps import another_device, bodies, register, room_of, text
from ..support.stream_steps import STREAM, WAIT, Stream, check_frame, room_events, stream_url


async def error_reply(stream: Stream, method: str, params: Any, errcode: str) -> dict[str, Any]:
    reply = await stream.request(method, params, request_id=f"bad-{method}")
    assert reply["id"] == f"bad-{method}"
    assert "result" not in reply
    assert reply["error"]["errcode"] == errcode, reply
    return reply["error"]


@pytest.fixture
def users(api):
    """alice and bob in one room, as a coroutine that returns (alice, bob, room_id)."""

    async def make():
        alice, bob = await register(api, "alice", "bob")
        return alice, bob, await room_of(alice, bob, name="Stream room")

    return make


# -- authentication ------------------------------------------------------------


@pytest.mark.parametrize("how", ["header", "query", "frame"])
async def test_each_way_to_authenticate_opens_with_a_full_sync(server, users, how):
    alice, bob, room_id = await users()
    await bob.say(room_id, "before")
    if how == "frame":
        stream = await Stream.open(server.base_url)
        await stream.authenticate(alice.access_token)
    else:
        stream = await Stream.open(server.base_url, token=alice.access_token, header=how == "header")
    first = await stream.frame()
    assert first["type"] == "sync"
    assert first["next_batch"]
    room = first["rooms"]["join"][room_id]
    state_types = {e["type"] for e in room["state"]["events"] + room["timeline"]["events"]}
    assert {"m.room.create", "m.room.name", "m.room.member"} <= state_types
    assert bodies(room["timeline"]["events"]) == ["before"]
    await stream.close()


async def test_a_bad_token_is_refused_before_the_upgrade_in_json(server, users):
    alice, _, _ = await users()
    for headers, query in (({"Authorization": "Bearer not-a-token"}, {}), ({}, {"access_token": "not-a-token"})):
        with pytest.raises(HTTPClientError) as refused:
            await websocket_connect(
                HTTPRequest(stream_url(server.base_url, **query), headers=headers, request_timeout=WAIT)
            )
        response = refused.value.response
        assert refused.value.code == 401
        assert response.headers["Content-Type"].startswith("application/json")
        body = json.loads(response.body)
        check_schema("common/error", body)
        assert body["errcode"] == "M_UNKNOWN_TOKEN"
    with pytest.raises(HTTPClientError) as refused:  # a bad since is refused before the upgrade too
        await websocket_connect(stream_url(server.base_url, access_token=alice.access_token, since="nonsense"))
    assert refused.value.code == 400
    assert json.loads(refused.value.response.body)["errcode"] == "M_INVALID_PARAM"


async def test_no_auth_frame_within_the_deadline_closes_with_4001(server, api, clock):
    (alice,) = await register(api, "alice")
    silent = await Stream.open(server.base_url)
    late = await Stream.open(server.base_url)
    clock.advance(stream_module.AUTH_TIMEOUT_SECONDS - 0.5)
    await late.authenticate(alice.access_token)  # just within the deadline: served
    assert (await late.frame())["type"] == "sync"
    clock.advance(0.5)
    code, _ = await silent.closed()
    assert code == 4001
    await late.close()


@pytest.mark.parametrize(
    "first",
    [
        {"type": "hello"},
        {"type": "auth"},
        {"type": "auth", "access_token": "not-a-token"},
        {"id": 1, "method": "ping"},
        ["auth"],
    ],
)
async def test_a_wrong_first_frame_closes_with_4401(server, first):
    stream = await Stream.open(server.base_url)
    await stream.conn.write_message(json.dumps(first))
    code, reason = await stream.closed()
    assert code == 4401
    assert reason


# -- pushing -------------------------------------------------------------------


async def test_frames_arrive_as_soon_as_another_user_sends(server, users):
    alice, bob, room_id = await users()
    stream = await Stream.open(server.base_url, token=alice.access_token)
    await stream.frame()
    for n in range(5):
        sent = time.monotonic()
        event_id = await bob.say(room_id, f"hello {n}")
        [event] = await stream.messages(room_id, 1, timeout=1.0)
        assert time.monotonic() - sent < 1.0
        assert event["event_id"] == event_id
        assert event["sender"] == bob.user_id
        assert event["content"]["body"] == f"hello {n}"
        assert "transaction_id" not in event.get("unsigned", {})  # bob's, not alice's
    await stream.close()


async def test_since_resumes_with_exactly_the_missed_events(server, users):
    alice, bob, room_id = await users()
    stream = await Stream.open(server.base_url, token=alice.access_token)
    await stream.frame()
    await bob.say(room_id, "seen live")
    await stream.messages(room_id, 1)
    since = stream.next_batch
    assert since is not None
    await stream.close()

    missed = [await bob.say(room_id, f"missed {n}") for n in range(6)]
    again = await Stream.open(server.base_url, token=alice.access_token, since=since)
    events = await again.messages(room_id, len(missed))
    assert [e["event_id"] for e in events] == missed
    # Nothing else comes: a new message is the very next event.
    later = await bob.say(room_id, "later")
    assert [e["event_id"] for e in await again.messages(room_id, 1)] == [later]
    await again.close()

    # Resuming from a token with nothing new after it sends nothing until something happens.
    assert again.next_batch is not None
    quiet = await Stream.open(server.base_url, token=alice.access_token, since=again.next_batch)
    with pytest.raises(asyncio.TimeoutError):
        await quiet.frame(timeout=0.3)
    last = await bob.say(room_id, "last")
    assert [e["event_id"] for e in await quiet.messages(room_id, 1)] == [last]
    await quiet.close()


async def test_an_inline_filter_shapes_every_frame(server, users):
    alice, bob, room_id = await users()
    for n in range(4):
        await bob.say(room_id, f"m{n}")
    await alice.put_state(room_id, "m.room.topic", {"topic": "filtered out"})
    inline = {"room": {"timeline": {"limit": 2, "types": ["m.room.message"]}, "state": {"types": ["m.room.name"]}}}
    stream = await Stream.open(server.base_url, token=alice.access_token, filter=json.dumps(inline))
    room = (await stream.frame())["rooms"]["join"][room_id]
    assert bodies(room["timeline"]["events"]) == ["m2", "m3"]
    assert {e["type"] for e in room["timeline"]["events"]} == {"m.room.message"}
    assert room["timeline"]["limited"] is True
    assert [e["type"] for e in room["state"]["events"]] == ["m.room.name"]
    await alice.put_state(room_id, "m.room.topic", {"topic": "still filtered out"})
    await bob.say(room_id, "m4")
    [frame] = await stream.sync_until(lambda frames: bool(frames))
    assert [e["type"] for e in room_events(frame, room_id)] == ["m.room.message"]
    await stream.close()

    other_rooms = {"room": {"not_rooms": [room_id]}}
    excluded = await Stream.open(server.base_url, token=alice.access_token, filter=json.dumps(other_rooms))
    assert room_id not in (await excluded.frame())["rooms"]["join"]
    await excluded.close()

    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(stream_url(server.base_url, access_token=alice.access_token, filter="{not json"))
    assert refused.value.code == 400


# -- requests on the socket ----------------------------------------------------


async def test_send_is_idempotent_per_transaction_and_echoes_it_to_this_device(server, users):
    alice, bob, room_id = await users()
    phone = await another_device(alice)
    stream = await Stream.open(server.base_url, token=alice.access_token)
    watcher = await Stream.open(server.base_url, token=bob.access_token)
    await stream.frame()
    await watcher.frame()

    params = {"room_id": room_id, "type": "m.room.message", "content": text("once"), "txn_id": "txn-1"}
    first = await stream.request("send", params, request_id=1)
    assert first["id"] == 1
    event_id = first["result"]["event_id"]
    assert (await stream.request("send", params, request_id=2)) == {"id": 2, "result": {"event_id": event_id}}
    # The HTTP send shares the transaction ids of the device.
    again = await alice.send(room_id, text("once"), txn_id="txn-1")
    assert again["event_id"] == event_id
    # Another device with the same transaction id sends a new event.
    other = await phone.send(room_id, text("other device"), txn_id="txn-1")
    assert other["event_id"] != event_id

    events = await stream.messages(room_id, 2)
    assert [e["event_id"] for e in events] == [event_id, other["event_id"]]
    assert events[0]["unsigned"]["transaction_id"] == "txn-1"
    assert "transaction_id" not in events[1].get("unsigned", {})
    seen_by_bob = await watcher.messages(room_id, 2)
    assert [e["event_id"] for e in seen_by_bob] == [event_id, other["event_id"]]
    assert all("transaction_id" not in e.get("unsigned", {}) for e in seen_by_bob)
    await stream.close()
    await watcher.close()


async def test_typing_receipt_and_ping(server, users):
    alice, bob, room_id = await users()
    stream = await Stream.open(server.base_url, token=alice.access_token)
    watcher = await Stream.open(server.base_url, token=bob.access_token)
    await stream.frame()
    await watcher.frame()

    def ephemeral(frames, event_type):
        return [e["content"] for f in frames for e in room_events(f, room_id, "ephemeral") if e["type"] == event_type]

    assert await stream.request("typing", {"room_id": room_id, "typing": True, "timeout": 10_000}, request_id="t") == {
        "id": "t",
        "result": {},
    }
    frames = await watcher.sync_until(lambda fs: bool(ephemeral(fs, "m.typing")))
    assert ephemeral(frames, "m.typing") == [{"user_ids": [alice.user_id]}]
    assert (await stream.request("typing", {"room_id": room_id, "typing": False}))["result"] == {}
    frames = await watcher.sync_until(lambda fs: bool(ephemeral(fs, "m.typing")))
    assert ephemeral(frames, "m.typing") == [{"user_ids": []}]

    event_id = await bob.say(room_id, "read me")
    assert (await stream.request("receipt", {"room_id": room_id, "event_id": event_id}))["result"] == {}
    frames = await watcher.sync_until(lambda fs: bool(ephemeral(fs, "m.receipt")))
    [receipt] = ephemeral(frames, "m.receipt")
    assert isinstance(receipt[event_id]["m.read"][alice.user_id]["ts"], int)

    assert await stream.request("ping", request_id=7) == {"id": 7, "result": {}}
    assert await stream.request("ping", {}, request_id="p") == {"id": "p", "result": {}}
    await stream.close()
    await watcher.close()


async def test_bad_requests_get_error_replies_and_the_socket_stays_open(server, users):
    alice, bob, room_id = await users()
    (stranger,) = await register(alice.api, "stranger")
    elsewhere = await stranger.create_room()
    stream = await Stream.open(server.base_url, token=alice.access_token)
    await stream.frame()

    unknown = await error_reply(stream, "subscribe", {}, "M_UNRECOGNIZED")
    assert "subscribe" in unknown["error"]
    missing = await error_reply(
        stream, "send", {"room_id": room_id, "type": "m.room.message", "content": {}}, "M_MISSING_PARAM"
    )
    assert "txn_id" in missing["error"]
    await error_reply(stream, "typing", {"room_id": room_id, "typing": "yes"}, "M_BAD_JSON")
    await error_reply(stream, "receipt", [room_id], "M_BAD_JSON")
    await error_reply(
        stream,
        "send",
        {
            "room_id": room_id,
            "type": "m.room.message",
            "content": {"msgtype": "m.text", "body": 1},
            "txn_id": "bad-content",
        },
        "M_BAD_JSON",
    )
    await error_reply(
        stream,
        "send",
        {"room_id": elsewhere, "type": "m.room.message", "content": text("x"), "txn_id": "not-a-member"},
        "M_FORBIDDEN",
    )
    await error_reply(stream, "receipt", {"room_id": room_id, "event_id": "$nosuchevent"}, "M_NOT_FOUND")

    assert (await stream.request("ping"))["result"] == {}
    sent = await stream.request(
        "send", {"room_id": room_id, "type": "m.room.message", "content": text("fine"), "txn_id": "good"}
    )
    assert [e["event_id"] for e in await stream.messages(room_id, 1)] == [sent["result"]["event_id"]]

    await stream.conn.write_message(json.dumps({"method": "ping"}))  # a request without an id
    assert (await stream.closed())[0] == 4400


async def opened(server, token: str, authenticated: bool) -> Stream:
    """A stream authenticated with the upgrade, its first frame read; or one waiting for its auth frame."""
    stream = await Stream.open(server.base_url, token=token if authenticated else None)
    if authenticated:
        await stream.frame()
    return stream


@pytest.mark.parametrize("authenticated", [True, False])
async def test_a_frame_that_is_not_json_closes_with_4400(server, users, authenticated):
    alice, _, _ = await users()
    stream = await opened(server, alice.access_token, authenticated)
    await stream.conn.write_message("{this is not json")
    code, reason = await stream.closed()
    assert code == 4400
    assert "JSON" in reason


@pytest.mark.parametrize("request_id", [1.5, None, True, [1], {}])
async def test_a_request_whose_id_is_neither_a_string_nor_an_integer_closes_with_4400(server, users, request_id):
    """A reply could not echo such an id (schemas/stream/reply.frame): the frame is fatal."""
    alice, _, _ = await users()
    stream = await opened(server, alice.access_token, True)
    await stream.conn.write_message(json.dumps({"id": request_id, "method": "ping"}))
    assert await stream.closed() == (4400, "requests need an id, a string or an integer")


@pytest.mark.parametrize("authenticated", [True, False])
async def test_a_nul_character_in_a_frame_closes_cleanly_with_4400(server, users, authenticated):
    alice, _, _ = await users()
    stream = await opened(server, alice.access_token, authenticated)
    await stream.conn.write_message(json.dumps({"id": 1, "method": "ping", "params": {"note": "a\u0000b"}}))
    assert await stream.closed() == (4400, "A frame cannot contain NUL characters")


async def test_send_of_a_redaction_is_refused_over_the_stream_as_over_http(server, users):
    alice, _, room_id = await users()
    said = await alice.say(room_id, "to redact")
    stream = await Stream.open(server.base_url, token=alice.access_token)
    await stream.frame()
    content = {"reason": "no", "redacts": said}
    refused = await error_reply(
        stream,
        "send",
        {"room_id": room_id, "type": "m.room.redaction", "content": content, "txn_id": "r1"},
        "M_BAD_JSON",
    )
    over_http = await alice.api.request(
        "PUT", f"{MATRIX}/rooms/{room_id}/send/m.room.redaction/r2", content, token=alice.access_token, status=400
    )
    assert (
        refused
        == over_http.body
        == {"errcode": "M_BAD_JSON", "error": "Redact with PUT /rooms/{roomId}/redact/{eventId}/{txnId}"}
    )
    assert (await alice.event(room_id, said))["content"] == text("to redact")
    await stream.close()


async def test_an_unknown_receipt_type_is_the_same_error_over_the_stream_and_http(server, users):
    alice, bob, room_id = await users()
    said = await bob.say(room_id, "read me")
    stream = await Stream.open(server.base_url, token=alice.access_token)
    await stream.frame()
    refused = await error_reply(
        stream, "receipt", {"room_id": room_id, "event_id": said, "receipt_type": "m.seen"}, "M_INVALID_PARAM"
    )
    over_http = await alice.api.request(
        "POST", f"{MATRIX}/rooms/{room_id}/receipt/m.seen/{path_param(said)}", {}, token=alice.access_token, status=400
    )
    assert refused == over_http.body == {"errcode": "M_INVALID_PARAM", "error": "Unknown receipt type 'm.seen'"}
    mistyped = await error_reply(
        stream, "receipt", {"room_id": room_id, "event_id": said, "receipt_type": 1}, "M_BAD_JSON"
    )
    assert "receipt_type" in mistyped["error"]
    await stream.close()


async def test_a_plain_http_get_of_the_stream_path_is_a_json_400(server, api):
    refused = await api.request("GET", STREAM, status=400)
    assert refused.headers["Content-Type"].startswith("application/json")
    assert refused.body == {
        "errcode": "M_UNRECOGNIZED",
        "error": "This endpoint is a WebSocket: connect with an Upgrade request",
    }


@pytest.mark.parametrize("scheme", ["Basic", "Digest"])
async def test_an_authorization_header_of_another_scheme_is_refused_naming_both(server, users, scheme):
    alice, _, _ = await users()
    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(
            HTTPRequest(
                stream_url(server.base_url),
                headers={"Authorization": f"{scheme} {alice.access_token}"},
                request_timeout=WAIT,
            )
        )
    assert refused.value.code == 401
    body = json.loads(refused.value.response.body)
    check_schema("common/error", body)
    assert body == {
        "errcode": "M_MISSING_TOKEN",
        "error": "The Authorization header must be 'Bearer <token>' or 'Token <token>'",
    }
    # The Token scheme, which the message names, is accepted.
    token_stream = Stream(
        await websocket_connect(
            HTTPRequest(
                stream_url(server.base_url),
                headers={"Authorization": f"Token {alice.access_token}"},
                request_timeout=WAIT,
            )
        )
    )
    assert (await token_stream.frame())["type"] == "sync"
    await token_stream.close()


async def test_logout_closes_the_socket_of_that_token_only(server, users):
    alice, bob, room_id = await users()
    phone = await another_device(alice)
    stream = await Stream.open(server.base_url, token=alice.access_token)
    other = await Stream.open(server.base_url, token=phone.access_token)
    await stream.frame()
    await other.frame()
    await alice.call("POST", "/logout", schema="matrix/empty.response")
    started = time.monotonic()
    code, _ = await stream.closed(timeout=1.0)
    assert code == 4401
    assert time.monotonic() - started < 1.0
    event_id = await bob.say(room_id, "still here")
    assert [e["event_id"] for e in await other.messages(room_id, 1)] == [event_id]
    await other.close()


@pytest.mark.settings(access_token_lifetime_seconds=1)
async def test_a_stream_whose_token_expired_closes_with_4401_when_its_sessions_change(server, api, clock):
    """An open stream keeps its token's claims, not the token, and checks
    them again when its user's sessions change: an expired token ends the
    stream as a soft logout would, while a lasting token's stream stays."""
    (alice,) = await register(api, "alice")
    expiring = await api.login(alice.user_id, refresh_token=True)
    phone = await another_device(alice)
    stream = await Stream.open(server.base_url, token=expiring["access_token"])
    lasting = await Stream.open(server.base_url, token=alice.access_token)
    await stream.frame()
    await lasting.frame()
    clock.advance(2.1)
    await phone.call("POST", "/logout", schema="matrix/empty.response")
    code, _ = await stream.closed(timeout=WAIT)
    assert code == 4401
    room_id = await alice.create_room(name="still streaming")
    await lasting.sync_until(lambda frames: any(room_id in f["rooms"]["join"] for f in frames))
    await lasting.close()


# -- flow control ----------------------------------------------------------------

SLOW_MESSAGES = 120
SLOW_BODY = "x" * 60_000  # each event just under the 64 KiB limit
WIDE_TIMELINE = json.dumps({"room": {"timeline": {"limit": 1000}}})


def small_receive_buffer(addr_info) -> socket.socket:
    """A client socket whose kernel receive buffer holds only a few KiB, so
    that a client that stops reading soon stops the server's writes too."""
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


async def test_a_client_that_stops_reading_is_closed_with_4408_and_resumes(server, users, monkeypatch):
    monkeypatch.setattr(stream_module, "MAX_PENDING_BYTES", 64 * 1024)
    alice, bob, room_id = await users()
    (carol,) = await register(alice.api, "carol")
    await alice.invite(room_id, carol)
    await carol.join(room_id)

    connector = aiohttp.TCPConnector(socket_factory=small_receive_buffer)
    async with aiohttp.ClientSession(connector=connector) as session:
        slow = await session.ws_connect(
            stream_url(server.base_url, filter=WIDE_TIMELINE),
            max_msg_size=0,
            headers={"Authorization": f"Bearer {alice.access_token}"},
        )
        first = await slow.receive_json()
        check_frame(first)
        fast = await Stream.open(server.base_url, token=carol.access_token, filter=WIDE_TIMELINE)
        await fast.frame()

        # alice reads nothing while bob sends several megabytes; carol reads as they come.
        receiving = asyncio.ensure_future(fast.messages(room_id, SLOW_MESSAGES, timeout=60))

        async def send(part: int) -> None:
            for n in range(part, SLOW_MESSAGES, 4):
                await bob.send(room_id, text(f"{n} {SLOW_BODY}"))

        await asyncio.wait_for(asyncio.gather(*(send(part) for part in range(4))), 60)
        delivered = [e["event_id"] for e in await receiving]
        assert len(delivered) == len(set(delivered)) == SLOW_MESSAGES
        assert (await fast.request("ping"))["result"] == {}  # alice still stalls; others are served

        # alice reads again: what was on its way, then the close telling it to resume.
        received: list[str] = []
        next_batch = first["next_batch"]
        while True:
            message = await asyncio.wait_for(slow.receive(), WAIT)
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            frame = json.loads(message.data)
            check_frame(frame)
            received += [e["event_id"] for e in room_events(frame, room_id)]
            next_batch = frame["next_batch"]
        assert slow.close_code == 4408
        assert message.extra is not None and "since" in message.extra
        assert len(received) < SLOW_MESSAGES

    resumed = await Stream.open(server.base_url, token=alice.access_token, filter=WIDE_TIMELINE, since=next_batch)
    rest = await resumed.messages(room_id, SLOW_MESSAGES - len(received), timeout=30)
    assert received + [e["event_id"] for e in rest] == delivered
    await resumed.close()
    await fast.close()


# -- heartbeats -------------------------------------------------------------------


async def read_server_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One WebSocket frame as the server sends it (never masked): (opcode, payload)."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    return first & 0x0F, await reader.readexactly(length)


async def pong_read(stream: Stream, room_id: str) -> None:
    """Returns once the server has read the pong the client answered its
    last ping with: the client answers a ping as it reads it, so a reply
    read after the ping follows the pong on the socket's way out, and the
    server reads the next request after the pong."""
    for _ in range(2):
        assert "result" in await stream.request("typing", {"room_id": room_id, "typing": False})


async def test_a_peer_that_never_answers_pings_is_dropped_and_a_live_one_is_kept(server, users, clock):
    beat = server.atomchat.settings.websocket_ping_seconds
    alice, bob, room_id = await users()
    live = await Stream.open(server.base_url, token=bob.access_token)  # Tornado's client answers pings
    await live.frame()

    # A peer that completes the upgrade, then reads but never answers.
    host, port = server.base_url.split("//")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        (
            f"GET {STREAM}?access_token={alice.access_token} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    assert head.startswith(b"HTTP/1.1 101")
    assert (await asyncio.wait_for(read_server_frame(reader), WAIT))[0] == 0x1  # the initial sync
    # The first beat pings both; the second closes the one that did not answer,
    # as protocol/stream.md says.
    clock.advance(beat)
    assert (await asyncio.wait_for(read_server_frame(reader), WAIT))[0] == 0x9
    await pong_read(live, room_id)
    clock.advance(beat)
    opcode, payload = await asyncio.wait_for(read_server_frame(reader), WAIT)
    assert opcode == 0x8
    assert int.from_bytes(payload[:2], "big") == 1000
    assert payload[2:] == b"ping timed out"
    writer.close()

    # The peer that answers is still served, beats later.
    await pong_read(live, room_id)
    clock.advance(beat)
    await pong_read(live, room_id)
    sent = await alice.send(room_id, text("still there?"))
    assert [e["event_id"] for e in await live.messages(room_id, 1)] == [sent["event_id"]]
    await live.close()


async def test_one_push_gives_each_receiver_its_own_counts_and_own_sends(server, api):
    """The same new event reaches many sockets at once; what differs between
    them (unread counts, the sender's transaction id) must stay each one's."""
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room_id = await room_of(alice, bob, carol, name="Counts")
    await alice.say(room_id, "one")
    last = await alice.say(room_id, "two")
    await bob.call("POST", f"/rooms/{room_id}/receipt/m.read/{last}", {}, schema="matrix/empty.response")  # read all
    streams = {
        name: await Stream.open(server.base_url, token=user.access_token)
        for name, user in (("alice", alice), ("bob", bob), ("carol", carol))
    }
    carol_phone = await another_device(carol)
    streams["carol's phone"] = await Stream.open(server.base_url, token=carol_phone.access_token)
    for stream in streams.values():
        await stream.frame()

    sent = await alice.send(room_id, text("three"), txn_id="t-three")
    seen = {}
    for name, stream in streams.items():
        frames = await stream.sync_until(lambda fs: any(room_events(f, room_id) for f in fs))
        room = next(f for f in frames if room_events(f, room_id))["rooms"]["join"][room_id]
        assert [e["event_id"] for e in room["timeline"]["events"]] == [sent["event_id"]]
        seen[name] = (
            room["unread_notifications"]["notification_count"],
            room["timeline"]["events"][0].get("unsigned", {}).get("transaction_id"),
        )
    assert seen == {"alice": (0, "t-three"), "bob": (1, None), "carol": (3, None), "carol's phone": (3, None)}
    for stream in streams.values():
        await stream.close()


async def test_pushed_events_are_the_stored_events(server, users):
    """What a stream pushes as events are committed is what the room's
    history holds: state with its prev_content, messages, member changes."""
    alice, bob, room_id = await users()
    watcher = await Stream.open(server.base_url, token=bob.access_token)
    await watcher.frame()
    sent = [
        (await alice.put_state(room_id, "m.room.name", {"name": "First"}))["event_id"],
        (await alice.put_state(room_id, "m.room.name", {"name": "Second"}))["event_id"],
        (await alice.send(room_id, text("hello")))["event_id"],
        (await alice.put_state(room_id, "m.room.topic", {"topic": "Things"}))["event_id"],
    ]

    pushed: list[dict[str, Any]] = []

    def all_in(frames):
        pushed[:] = [e for f in frames for e in room_events(f, room_id)]
        return len(pushed) >= len(sent)

    await watcher.sync_until(all_in)
    assert [e["event_id"] for e in pushed] == sent
    assert pushed[1]["unsigned"]["prev_content"] == {"name": "First"}

    def without_age(event):
        return {**event, "unsigned": {k: v for k, v in event.get("unsigned", {}).items() if k != "age"}}

    for event in pushed:
        assert without_age(event) == without_age((await bob.event(room_id, event["event_id"])).body)
    await watcher.close()
