"""Three ``atomchat serve`` processes on three loopback addresses, one
database, behind Debian's HAProxy with round-robin balancing and no sticky
sessions, configured by docs/haproxy.cfg itself: a conversation driven
through the proxy (sends, long-polls, WebSocket streams, history) loses,
duplicates and reorders nothing, whichever process serves each request."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from ..support.client import ApiClient
from ..support.harness import child_env, free_port
from ..support.processes import Serve
from ..support.room_steps import User, register
from ..support.servers import truncate_all
from ..support.stream_steps import Stream
from ..support.sync_steps import (
    SyncLoop,
    assert_each_once_in_one_order,
    held_then_woken,
    long_polls_waiting_at,
    sync_until,
    timeline,
)

CONFIG = Path(__file__).resolve().parents[2] / "docs" / "haproxy.cfg"
ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
SENDERS = 3
MESSAGES_PER_SENDER = 20
FLAGS = (
    "--argon2-time-cost",
    "1",
    "--argon2-memory-kib",
    "1024",
    "--no-track-presence",
    "--trusted-proxies",
    "127.0.0.0/8",
)


def tls_pem(directory: Path) -> Path:
    """A self-signed certificate and its key, in the one file HAProxy reads."""
    key, cert, pem = directory / "key.pem", directory / "cert.pem", directory / "tls.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    return pem


class HAProxy:
    """HAProxy in the foreground on docs/haproxy.cfg, its output kept in a file."""

    def __init__(self, directory: Path, servers: list[str]) -> None:
        self.http_port, self.https_port = free_port(), free_port()
        self.base_url = f"http://127.0.0.1:{self.http_port}"
        self.env = child_env(
            ATOMCHAT_HTTP_BIND=f"127.0.0.1:{self.http_port}",
            ATOMCHAT_HTTPS_BIND=f"127.0.0.1:{self.https_port}",
            ATOMCHAT_TLS_PEM=str(tls_pem(directory)),
            **{f"ATOMCHAT_SERVER_{n}": address for n, address in enumerate(servers, 1)},
        )
        self.output_path = directory / "haproxy.log"
        self.process: subprocess.Popen | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[HAProxy]:
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(haproxy).exists():
            pytest.fail("HAProxy is not installed: apt-get install -y haproxy (.ci/run does)")
        with open(self.output_path, "wb") as output:
            self.process = subprocess.Popen(
                [haproxy, "-db", "-f", str(CONFIG)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        try:
            yield self
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    async def ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, self.output_path.read_text()
            try:
                response = await AsyncHTTPClient().fetch(self.base_url + "/ready", raise_error=False)
                if response.code == 200:
                    return
            except ConnectionRefusedError:
                pass  # not listening yet
            assert time.monotonic() < deadline, self.output_path.read_text()
            await asyncio.sleep(0.2)


async def test_three_processes_behind_haproxy_are_one_server(data_dir, database_dsn):
    await truncate_all(database_dsn)
    env = child_env(ATOMCHAT_SIGNING_KEY=secrets.token_hex(32))
    port = free_port()
    root = data_dir.parent
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(
                Serve(root / f"data{n}", "--database-url", database_dsn, *FLAGS, host=address, port=port, env=env)
            )
            for n, address in enumerate(ADDRESSES)
        ]
        await asyncio.gather(*(server.ready() for server in servers))
        proxy = stack.enter_context(HAProxy(root, [server.address for server in servers]).running())
        await proxy.ready()
        api = ApiClient(proxy.base_url)

        # A room of senders, long-polling receivers and streaming receivers.
        owner, *users = await register(
            api, "owner", *(f"sender{i}" for i in range(SENDERS)), "poller0", "poller1", "streamer0", "streamer1"
        )
        senders, pollers, streamers = users[:SENDERS], users[SENDERS : SENDERS + 2], users[SENDERS + 2 :]
        room_id = await owner.create_room(preset="public_chat")
        for user in users:
            await user.join(room_id)
        streams = [await Stream.open(proxy.base_url, token=user.access_token) for user in streamers]
        for stream in streams:
            await stream.frame()  # the initial sync

        total = SENDERS * MESSAGES_PER_SENDER
        polling = [asyncio.ensure_future(sync_until(api, user.access_token, room_id, total)) for user in pollers]
        streaming = [asyncio.ensure_future(stream.messages(room_id, total, timeout=60)) for stream in streams]
        await long_polls_waiting_at([server.base_url for server in servers], len(pollers))

        async def send_all(index: int, user: User) -> list[str]:
            return [await user.say(room_id, f"{index}-{n}") for n in range(MESSAGES_PER_SENDER)]

        sent = await asyncio.gather(*(send_all(i, user) for i, user in enumerate(senders)))
        received = list(await asyncio.gather(*polling))
        received += [[event["event_id"] for event in events] for events in await asyncio.gather(*streaming)]
        reference = assert_each_once_in_one_order(sent, received, total)
        history, _ = await owner.all_messages(room_id, limit=100, dir="f")
        assert [e["event_id"] for e in history if e["type"] == "m.room.message"] == reference
        for stream in streams:
            await stream.close()

        # A long-poll held by one process is woken by a send through another.
        loop = SyncLoop(pollers[0])
        await loop.sync()
        for n in range(len(servers)):
            woken: list[str] = []

            async def send(n: int = n, woken: list[str] = woken) -> None:
                woken.append(await senders[0].say(room_id, f"wake {n}"))

            answer, elapsed = await held_then_woken(loop, send)
            assert elapsed < 2, elapsed
            assert [e["event_id"] for e in timeline(answer, room_id)] == woken

        # Round robin: every process served sends and syncs.
        for server in servers:
            assert re.search(r" PUT /_matrix/client/v3/rooms/\S+/send/", server.output), server.output
            assert " GET /_matrix/client/v3/sync " in server.output, server.output

        # TLS is terminated by the proxy; the proxy names each request; metrics stay private.
        secure = await AsyncHTTPClient().fetch(
            HTTPRequest(f"https://127.0.0.1:{proxy.https_port}/health", validate_cert=False)
        )
        assert secure.code == 200
        assert re.fullmatch(r"[0-9A-F]{20,}", secure.headers["X-Request-ID"]), secure.headers["X-Request-ID"]
        hidden = await AsyncHTTPClient().fetch(proxy.base_url + "/metrics", raise_error=False)
        assert hidden.code == 404
