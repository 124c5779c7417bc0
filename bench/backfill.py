"""Benchmark of backfill: how long a reader on B takes to page back through
a room's history from before B joined it, which B asks of A.

    .venv/bin/python bench/backfill.py [--events 100] [--page 20]

Starts two `atomchat serve` processes (each with a fresh data directory and
its own embedded PostgreSQL), federating over HTTPS on 127.0.0.1 with a
self-signed certificate (`FederatingServer`). Alice on A makes a public room
and sends --events messages; then Bob on B joins it through A.

Timed: Bob's whole backwards walk of /messages on B (pages of --page
events, from the newest until a page has no `end`), which makes B ask A for
the history (GET /backfill, each answer's PDUs checked: format, signature,
hash, auth rules on their own auth events and on the state before them,
which B asks of A with GET /state_ids for an answer's oldest events) and
insert it before everything it held. Then the same
walk by Carol on B, once B holds the history: the cost of reading alone.
Checked: both walks return every message, once, in order. Target: the
walk that backfills --events messages under 2,000 ms.

Exit status: 0 when the target is met, 1 when it is missed, 2 when the run
itself failed.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import aiohttp
from _server import RATE_LIMITS_RAISED, BenchError, FederatingServer, load_average, machine
from federation import Client, register

from tests.support.harness import self_signed_certificate  # on the path once _server is imported

WALK_TARGET_MS = 2000.0


async def walk(reader: Client, room_id: str, page: int) -> tuple[list[str], int, float]:
    """The bodies of the messages of a backwards walk, its pages, and its milliseconds."""
    said: list[str] = []
    pages = 0
    params = {"dir": "b", "limit": str(page)}
    started = time.perf_counter()
    while True:
        answer = await reader.call("GET", f"/rooms/{quote(room_id)}/messages", params=params)
        pages += 1
        said += [e["content"]["body"] for e in answer["chunk"] if e["type"] == "m.room.message"]
        if "end" not in answer:
            return said, pages, (time.perf_counter() - started) * 1000
        params["from"] = answer["end"]


async def run(events: int, page: int) -> bool:
    root = Path(tempfile.mkdtemp(prefix="atomchat-bench-backfill-"))
    try:
        cert, key = self_signed_certificate(root)
        a = FederatingServer(cert, key, **RATE_LIMITS_RAISED)
        b = FederatingServer(cert, key, **RATE_LIMITS_RAISED)
        async with a, b, aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            alice = await register(session, a, "alice")
            bob, carol = await register(session, b, "bob"), await register(session, b, "carol")
            room_id = (await alice.call("POST", "/createRoom", {"preset": "public_chat"}))["room_id"]
            for n in range(events):
                await alice.call(
                    "PUT", f"/rooms/{quote(room_id)}/send/m.room.message/m{n}", {"msgtype": "m.text", "body": f"m{n}"}
                )
            for reader in (bob, carol):
                await reader.call("POST", f"/join/{quote(room_id)}", {}, params={"server_name": a.name})
            print(f"A {a.name}, B {b.name}; {machine()}; load {load_average()}", flush=True)
            expected = [f"m{n}" for n in reversed(range(events))]
            said, pages, took = await walk(bob, room_id, page)
            if said != expected:
                raise BenchError(f"the backfilling walk read {len(said)} messages, not the {events} in order")
            print(
                f"backwards walk on B through {events} messages backfilled from A, pages of {page}: "
                f"{took:.0f} ms in {pages} pages (target < {WALK_TARGET_MS:.0f} ms)",
                flush=True,
            )
            again, pages_again, took_again = await walk(carol, room_id, page)
            if again != expected:
                raise BenchError("the second walk did not read the same messages")
            print(
                f"the same walk once B holds them: {took_again:.0f} ms in {pages_again} pages; load {load_average()}",
                flush=True,
            )
            return took < WALK_TARGET_MS
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100, help="messages before B joins (default 100)")
    parser.add_argument("--page", type=int, default=20, help="events per /messages page (default 20)")
    args = parser.parse_args()
    try:
        met = asyncio.run(run(max(1, min(args.events, 5000)), max(1, min(args.page, 1000))))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
