"""Benchmark of federation between two AtomChat servers: delivery latency
from a send on one server to a long-poll /sync on the other, and inbound
transaction throughput into one room.

    .venv/bin/python bench/federation.py [--messages 200] [--pdus 2000]

Starts two `atomchat serve` processes (each with a fresh data directory and
its own embedded PostgreSQL), federating over HTTPS on 127.0.0.1 with a
self-signed certificate (`FederatingServer`). Alice on A makes a room and
invites Bob on B, who joins over federation.

Latency: Bob holds a long-poll /sync on B; Alice sends a message on A; the
time from the start of the send request to the long-poll's answer holding
the message, once per message (--messages), one after another. Target:
median under 25 ms, p99 under 100 ms.

Throughput: the benchmark signs, with A's own signing key (read from A's
data directory), a chain of m.room.message PDUs from Alice into the room
(each the previous one's child, the auth events of a message Alice sent),
and sends them to B in transactions of 50 (PUT /send, X-Matrix signed as A),
one transaction after another as fast as B accepts them. The rate is the
PDUs B accepted divided by the wall time; signing happens before the clock
starts. Target: at least 1,000 PDUs per second. Printed beside it: the
time B's log says it took over those requests, which leaves out what the
sender spends per request (a new TCP and TLS connection each).

Exit status: 0 when every target is met, 1 when one is missed, 2 when the
run itself failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
from _server import (
    RATE_LIMITS_RAISED,
    BenchError,
    FederatingServer,
    load_average,
    machine,
    percentile,
)

from atomchat_server.events import signing
from atomchat_server.events.room_versions import KNOWN_ROOM_VERSIONS
from atomchat_server.federation.client import FederationClient
from atomchat_server.federation.keys import load_or_create_server_key
from tests.support.harness import self_signed_certificate  # on the path once _server is imported

MATRIX = "/_matrix/client/v3"
TXN_PDUS = 50
LATENCY_MEDIAN_TARGET_MS = 25.0
LATENCY_P99_TARGET_MS = 100.0
THROUGHPUT_TARGET = 1000.0
STEP_TIMEOUT = 30.0


class Client:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, user_id: str, token: str) -> None:
        self.session = session
        self.base_url = base_url
        self.user_id = user_id
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        async with self.session.request(
            method, self.base_url + MATRIX + path, json=body, params=params, headers=self.headers
        ) as response:
            answer = await response.json(content_type=None)
            if response.status != 200:
                raise BenchError(f"{method} {path.split('?')[0]} answered {response.status}: {answer}")
            return answer


async def register(session: aiohttp.ClientSession, server: FederatingServer, name: str) -> Client:
    async with session.post(
        server.base_url + MATRIX + "/register",
        json={"username": name, "password": "bench-password-1", "auth": {"type": "m.login.dummy"}},
    ) as response:
        answer = await response.json()
        if response.status != 200:
            raise BenchError(f"register {name}: {response.status} {answer}")
    return Client(session, server.base_url, answer["user_id"], answer["access_token"])


async def until(what: str, probe: Any) -> Any:
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not within {STEP_TIMEOUT:.0f}s")
        await asyncio.sleep(0.1)


def timeline_ids(answer: dict[str, Any], room_id: str) -> list[str]:
    room = answer.get("rooms", {}).get("join", {}).get(room_id)
    return [event["event_id"] for event in room["timeline"]["events"]] if room else []


async def set_up(
    session: aiohttp.ClientSession, a: FederatingServer, b: FederatingServer
) -> tuple[Client, Client, str]:
    alice, bob = await register(session, a, "alice"), await register(session, b, "bob")
    room_id = (await alice.call("POST", "/createRoom", {"preset": "private_chat"}))["room_id"]
    await alice.call("POST", f"/rooms/{quote(room_id)}/invite", {"user_id": bob.user_id})

    async def invited() -> bool:
        answer = await bob.call("GET", "/sync", params={"timeout": "0"})
        return room_id in answer.get("rooms", {}).get("invite", {})

    await until("the invite on B", invited)
    await bob.call("POST", f"/join/{quote(room_id)}", {}, params={"server_name": a.name})

    async def joined() -> bool:
        members = await alice.call("GET", f"/rooms/{quote(room_id)}/joined_members")
        return bob.user_id in members["joined"]

    await until("Bob's join on A", joined)
    return alice, bob, room_id


async def latency(alice: Client, bob: Client, room_id: str, messages: int) -> list[float]:
    """Milliseconds from each send on A to the long-poll on B holding it."""
    since = (await bob.call("GET", "/sync", params={"timeout": "0"}))["next_batch"]
    took: list[float] = []
    for n in range(messages):
        poll = asyncio.ensure_future(bob.call("GET", "/sync", params={"timeout": "20000", "since": since}))
        await asyncio.sleep(0.02)  # the long-poll waits on B
        started = time.perf_counter()
        sent = await alice.call(
            "PUT", f"/rooms/{quote(room_id)}/send/m.room.message/lat{n}", {"msgtype": "m.text", "body": f"latency {n}"}
        )
        while True:
            answer = await asyncio.wait_for(poll, STEP_TIMEOUT)
            since = answer["next_batch"]
            if sent["event_id"] in timeline_ids(answer, room_id):
                break
            poll = asyncio.ensure_future(bob.call("GET", "/sync", params={"timeout": "20000", "since": since}))
        took.append((time.perf_counter() - started) * 1000)
    return took


async def chain_of_pdus(a: FederatingServer, alice: Client, room_id: str, count: int) -> list[dict[str, Any]]:
    """``count`` PDUs from Alice, each the child of the one before, signed as A."""
    template_id = (
        await alice.call(
            "PUT", f"/rooms/{quote(room_id)}/send/m.room.message/template", {"msgtype": "m.text", "body": "template"}
        )
    )["event_id"]
    conn = await asyncpg.connect(a.database_dsn())
    try:
        row = await conn.fetchrow(
            "SELECT e.pdu, r.room_version FROM events e JOIN rooms r USING (room_id) WHERE e.event_id = $1", template_id
        )
    finally:
        await conn.close()
    if row is None or row["pdu"] is None:
        raise BenchError("A has no PDU for the template message")
    template = row["pdu"] if isinstance(row["pdu"], dict) else json.loads(row["pdu"])
    version = KNOWN_ROOM_VERSIONS[row["room_version"]]
    key = load_or_create_server_key(a.root / "data")
    previous, depth = template_id, int(template["depth"])
    now = int(time.time() * 1000)
    pdus = []
    for n in range(count):
        depth += 1
        event = {key_: value for key_, value in template.items() if key_ not in ("hashes", "signatures", "unsigned")}
        event.update(
            prev_events=[previous],
            depth=depth,
            origin_server_ts=now + n,
            content={"msgtype": "m.text", "body": f"throughput {n}"},
        )
        pdu = signing.sign_event(event, a.name, key, version)
        previous = signing.event_id(pdu, version)
        pdus.append(pdu)
    return pdus


async def throughput(a: FederatingServer, b: FederatingServer, pdus: list[dict[str, Any]]) -> float:
    """PDUs per second B accepts, sent as A in transactions one after another."""
    key = load_or_create_server_key(a.root / "data")
    client = FederationClient(a.name, key, verify_certificates=False, blocklist=())
    started = time.perf_counter()
    try:
        for number in range(0, len(pdus), TXN_PDUS):
            batch = pdus[number : number + TXN_PDUS]
            answer = await client.request(
                b.name,
                "PUT",
                f"/_matrix/federation/v1/send/bench{number}",
                body={"origin": a.name, "origin_server_ts": int(time.time() * 1000), "pdus": batch, "edus": []},
            )
            refused = {event_id: result for event_id, result in answer.get("pdus", {}).items() if result}
            if refused:
                raise BenchError(f"B refused PDUs: {list(refused.items())[:3]}")
        elapsed = time.perf_counter() - started
    finally:
        await client.close()
    return len(pdus) / elapsed


_SEND_LOGGED = re.compile(r"PUT /_matrix/federation/v1/send/bench\d+ 200 ([0-9.]+)ms")


def handled_ms(server: FederatingServer) -> list[float]:
    """How long the server took over each benchmark transaction, as its log says."""
    text = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
    return [float(ms) for ms in _SEND_LOGGED.findall(text)]


async def run(messages: int, pdu_count: int) -> bool:
    root = Path(tempfile.mkdtemp(prefix="atomchat-bench-federation-"))
    try:
        cert, key = self_signed_certificate(root)
        a = FederatingServer(cert, key, **RATE_LIMITS_RAISED)
        b = FederatingServer(cert, key, **RATE_LIMITS_RAISED)
        async with a, b, aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            alice, bob, room_id = await set_up(session, a, b)
            print(f"A {a.name}, B {b.name}; room {room_id}; {machine()}; load {load_average()}", flush=True)
            took = await latency(alice, bob, room_id, messages)
            median, p99 = statistics.median(took), percentile(took, 99)
            print(
                f"delivery latency A send -> B long-poll /sync, {messages} messages: median {median:.1f} ms, "
                f"p99 {p99:.1f} ms, max {max(took):.1f} ms "
                f"(targets: median < {LATENCY_MEDIAN_TARGET_MS:.0f} ms, p99 < {LATENCY_P99_TARGET_MS:.0f} ms)",
                flush=True,
            )
            pdus = await chain_of_pdus(a, alice, room_id, pdu_count)
            rate = await throughput(a, b, pdus)
            print(
                f"inbound transactions into one room on B: {pdu_count} PDUs in transactions of {TXN_PDUS}: "
                f"{rate:.0f} PDUs/s accepted (target >= {THROUGHPUT_TARGET:.0f})",
                flush=True,
            )
            handling = handled_ms(b)
            if handling:
                print(
                    f"  of which B handling the requests (its log): {sum(handling):.0f} ms, "
                    f"{pdu_count / (sum(handling) / 1000):.0f} PDUs/s of handling time; the rest is the "
                    "sender's (a new TLS connection per request)",
                    flush=True,
                )
            return median < LATENCY_MEDIAN_TARGET_MS and p99 < LATENCY_P99_TARGET_MS and rate >= THROUGHPUT_TARGET
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200, help="messages timed for latency (default 200)")
    parser.add_argument("--pdus", type=int, default=2000, help="PDUs sent for throughput (default 2000)")
    args = parser.parse_args()
    try:
        met = asyncio.run(run(max(1, args.messages), max(TXN_PDUS, args.pdus)))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
