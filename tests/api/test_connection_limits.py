"""What one account, or one slow client, may hold of the server.

Per account: at most max_streams_per_account WebSocket streams and
max_long_polls_per_account waiting /sync long-polls per process; beyond,
429 M_LIMIT_EXCEEDED (or close code 4429 for a stream authenticated by its
first frame), and a place comes free when one ends.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from tornado.httpclient import HTTPClientError

from ..support.room_steps import another_device, register, room_of
from ..support.stream_steps import Stream
from ..support.sync_steps import long_polls_waiting, sync


@pytest.mark.settings(max_streams_per_account=2)
async def test_streams_per_account_are_capped(server, api):
    alice, bob = await register(api, "alice", "bob")
    phone = await another_device(alice)
    first = await Stream.open(server.base_url, token=alice.access_token)
    second = await Stream.open(server.base_url, token=phone.access_token, header=False)
    for stream in (first, second):
        await stream.frame()
    # A third, whichever the device or the way of authenticating, is refused.
    with pytest.raises(HTTPClientError) as refused:
        await Stream.open(server.base_url, token=alice.access_token)
    assert refused.value.code == 429
    assert b'"errcode": "M_LIMIT_EXCEEDED"' in refused.value.response.body
    by_frame = await Stream.open(server.base_url)
    await by_frame.conn.write_message(f'{{"type": "auth", "access_token": "{phone.access_token}"}}')
    code, reason = await by_frame.closed()
    assert code == 4429 and "at most 2" in reason
    # Another account is not affected.
    other = await Stream.open(server.base_url, token=bob.access_token)
    await other.frame()
    # Closing one frees its place.
    await first.close()
    third = await Stream.open(server.base_url, token=alice.access_token)
    await third.frame()


@pytest.mark.settings(max_long_polls_per_account=2)
async def test_waiting_long_polls_per_account_are_capped(server, api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    since = (await sync(alice))["next_batch"]
    polls = [asyncio.ensure_future(sync(alice, since, timeout=20_000)) for _ in range(2)]
    await long_polls_waiting(server, 2)
    assert not any(poll.done() for poll in polls)
    refused = await sync(alice, since, timeout=20_000, status=429)
    assert refused["errcode"] == "M_LIMIT_EXCEEDED"
    # A sync that does not wait is not a long-poll; another account's are its own.
    await sync(alice, since, timeout=0)
    bobs = asyncio.ensure_future(sync(bob, (await sync(bob))["next_batch"], timeout=20_000))
    await bob.say(room_id, "wake up")
    for answer in await asyncio.gather(*polls, bobs):
        assert answer.status == 200
    # The places are free again.
    await asyncio.gather(*(sync(alice, since, timeout=1_000) for _ in range(2)))


# -- slow and oversized clients ------------------------------------------------------------


async def raw_request(server, data: bytes) -> tuple[int, bytes]:
    """Sends ``data`` on a new connection; the answer's status and body."""
    host, port = server.base_url[len("http://") :].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = int(
            next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
        )
        return int(head.split(b" ")[1]), await asyncio.wait_for(reader.readexactly(length), 10)
    finally:
        writer.close()


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server closes the connection within ``seconds`` (reading
    whatever it sends meanwhile)."""
    try:
        while await asyncio.wait_for(reader.read(65536), seconds):
            pass
    except asyncio.TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


@pytest.mark.settings(header_timeout_seconds=1.0)
async def test_slowloris_connections_are_closed_after_the_header_timeout(server, api):
    """150 connections each sending a header line every 0.3 s (the issue's
    every 3 s, scaled to a 1 s timeout) are all closed, and the server
    answers others meanwhile."""
    host, port = server.base_url[len("http://") :].split(":")
    connections = [await asyncio.open_connection(host, int(port)) for _ in range(150)]
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def dribble(writer: asyncio.StreamWriter) -> None:
        writer.write(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n")
        try:
            for n in range(20):
                await asyncio.sleep(0.3)  # kept: a real client's pace against the real header timeout
                writer.write(b"X-Slow-%d: 1\r\n" % n)
                await writer.drain()
        except ConnectionError:
            return

    dribbling = [asyncio.ensure_future(dribble(writer)) for _, writer in connections]
    await api.request("GET", "/_matrix/client/versions", schema="matrix/versions.response")
    closed = await asyncio.gather(*(closed_within(reader, 5) for reader, _ in connections))
    assert all(closed) and loop.time() - started < 4
    for task in dribbling:
        task.cancel()
    for _, writer in connections:
        writer.close()


@pytest.mark.settings(body_timeout_seconds=1.0)
async def test_a_body_sent_too_slowly_is_cut_off(server):
    host, port = server.base_url[len("http://") :].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b'POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"type"')
    await writer.drain()
    assert await closed_within(reader, 4)
    writer.close()


async def test_a_long_path_is_414_and_long_headers_are_431_in_json(server):
    status, body = await raw_request(
        server, b"GET /_matrix/client/v3/" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert status == 414
    assert json.loads(body) == {"errcode": "M_TOO_LARGE", "error": "The request line is larger than 16384 bytes"}
    status, body = await raw_request(
        server, b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * 20_000 + b"\r\n\r\n"
    )
    assert status == 431
    assert json.loads(body)["errcode"] == "M_TOO_LARGE"
    # On the original API, in its own shape.
    status, body = await raw_request(server, b"GET /api/rooms/" + b"1" * 20_000 + b"/ HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, json.loads(body)) == (414, {"detail": "The request line is larger than 16384 bytes"})
    # Just under the limit is served.
    status, _ = await raw_request(
        server, b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * 15_000 + b"\r\n\r\n"
    )
    assert status == 200


@pytest.mark.settings(websocket_max_message_bytes=4096)
async def test_a_websocket_message_over_the_limit_closes_with_1009(server, api):
    (alice,) = await register(api, "alice")
    stream = await Stream.open(server.base_url, token=alice.access_token)
    await stream.frame()
    assert (await stream.request("ping"))["result"] == {}
    await stream.conn.write_message(json.dumps({"id": 1, "method": "ping", "params": {"pad": "x" * 5000}}))
    code, _ = await stream.closed()
    assert code == 1009
