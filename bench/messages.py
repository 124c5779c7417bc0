"""Benchmark of history: /messages page latency in a room of a million
events, at the newest end and deep in the past.

    .venv/bin/python bench/messages.py [--database-url URL] [--events 1000000]

Starts `atomchat serve` (fresh data directory, embedded PostgreSQL unless
--database-url names a server to create a scratch database on), registers
one user and creates a room through the API, so that the room, its state and
its member are made the ordinary way. Sending a million messages over HTTP
would take far longer than the measurement, so the benchmark then writes
them straight into the server's database: one INSERT ... SELECT over
generate_series under the stream lock the server's writers take, stream
positions from the same sequence, each event's prev_events naming the one
before it, then the room's head, then VACUUM ANALYZE (a table that size has
long been vacuumed on a running server). Nothing is sent after that: the
server's notifier never saw the seeded events, so the server is only read.

Then, each request sequentially on one keep-alive connection
(GET /rooms/{id}/messages?dir=b&limit=100):

1. the newest page, as a client opening the room asks for it, repeatedly;
2. scrolling back from the middle of the room: a token just before the
   middle event (from /context, not measured), then page after page,
   each from the previous page's `end`;
3. single pages at random points of the whole room, each from a token
   fetched from /context of a random seeded event beforehand.

Exit status: 0 when every target is met, 1 when one is missed, 2 when the
run itself failed.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import random
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import quote

import asyncpg
from _server import (
    Api,
    BenchError,
    ServerProcess,
    Usage,
    User,
    benchmark_parser,
    bounded,
    exit_status,
    load_average,
    machine,
    percentile,
    room_path,
    server_and_api,
    spread,
    verdict,
)

RUN_DEADLINE = 900.0  # seconds for the whole run: seeding a million events takes a minute or two
REQUEST_TIMEOUT = 60.0
PAGE = 100

TARGET_MEDIAN = 0.005  # seconds, for every kind of page

# Seeded events: m.text messages from the room's creator. Event ids are
# derived from the room and the event's number, in the room-version-4 form
# ("$" and 43 url-safe base64 characters), so the benchmark can name any of
# them without reading them back.
_EVENT_ID_SQL = (
    "'$' || translate(rtrim(encode(sha256(convert_to($1 || ':' || {n}, 'UTF8')), 'base64'), '='), '+/', '-_')"
)
_SEED = f"""
INSERT INTO events (stream, event_id, room_id, type, state_key, sender, content, origin_server_ts, depth,
                    prev_events)
SELECT nextval('event_stream'), {_EVENT_ID_SQL.format(n="g")}, $1, 'm.room.message', NULL, $2,
       jsonb_build_object('msgtype', 'm.text',
                          'body', 'Seeded message ' || g || ': the quick brown fox jumps over the lazy dog.'),
       $3::bigint + g, $4::bigint + g,
       ARRAY[CASE WHEN g = 1 THEN $5 ELSE {_EVENT_ID_SQL.format(n="(g - 1)")} END]
FROM generate_series(1, $6::bigint) AS g
"""
# The same advisory lock the server's writers hold (storage/events.py), so
# the seeded positions are handed out like any others.
_STREAM_LOCK = 0x5374726D


def seeded_event_id(room_id: str, number: int) -> str:
    digest = hashlib.sha256(f"{room_id}:{number}".encode()).digest()
    return "$" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Results:
    insert_seconds: float = 0.0
    vacuum_seconds: float = 0.0
    table_bytes: int = 0
    newest: list[float] = field(default_factory=list)
    scroll: list[float] = field(default_factory=list)
    scroll_from: int = 0  # the seeded event number scrolling started at
    random: list[float] = field(default_factory=list)
    usage: dict[str, Usage] = field(default_factory=dict)  # by kind of page
    load_at_start: str = ""


async def seed(dsn: str, room_id: str, sender: str, count: int, results: Results) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _STREAM_LOCK)
            head = await conn.fetchrow("SELECT head_event_id, head_depth FROM rooms WHERE room_id = $1", room_id)
            if head is None:
                raise BenchError(f"the room {room_id} is not there to seed")
            now_ms = int(time.time() * 1000)
            await conn.execute(_SEED, room_id, sender, now_ms - count, head["head_depth"], head["head_event_id"], count)
            last_id = seeded_event_id(room_id, count)
            last_stream = await conn.fetchval("SELECT stream FROM events WHERE event_id = $1", last_id)
            if last_stream is None:
                raise BenchError("the seeded events' ids are not the ones the benchmark computes")
            await conn.execute(
                "UPDATE rooms SET head_event_id = $2, head_depth = $3, head_stream = $4 WHERE room_id = $1",
                room_id,
                last_id,
                head["head_depth"] + count,
                last_stream,
            )
        results.insert_seconds = time.perf_counter() - started
        started = time.perf_counter()
        await conn.execute("VACUUM ANALYZE events")
        results.vacuum_seconds = time.perf_counter() - started
        results.table_bytes = await conn.fetchval("SELECT pg_total_relation_size('events')")
    finally:
        await conn.close()


class Reader:
    """One user reading one room's history."""

    def __init__(self, api: Api, user: User, room_id: str) -> None:
        self.api = api
        self.user = user
        self.room_id = room_id

    async def page(self, token: str | None) -> tuple[float, dict]:
        params = {"dir": "b", "limit": str(PAGE)}
        if token is not None:
            params["from"] = token
        started = time.perf_counter()
        answer = await self.api.call("GET", room_path(self.room_id) + "/messages", user=self.user, params=params)
        latency = time.perf_counter() - started
        if len(answer["chunk"]) != PAGE:
            raise BenchError(f"a page from {token} held {len(answer['chunk'])} events, not {PAGE}")
        return latency, answer

    async def token_before(self, event_id: str) -> str:
        answer = await self.api.call(
            "GET",
            room_path(self.room_id) + "/context/" + quote(event_id, safe=""),
            user=self.user,
            params={"limit": "0"},
        )
        return answer["start"]


def seeded_number(event: dict) -> int:
    """The number of a seeded event, from its body."""
    return int(event["content"]["body"].split()[2].rstrip(":"))


async def run(args: argparse.Namespace, results: Results) -> ServerProcess:
    results.load_at_start = load_average()
    async with server_and_api(args, RUN_DEADLINE, REQUEST_TIMEOUT) as (server, api):
        user = await api.register("reader")
        room_id = await api.create_room(user, preset="private_chat", name="A million messages")
        print(f"seeding {args.events:,} events into {room_id} ...", flush=True)
        await seed(server.database_dsn(), room_id, user.user_id, args.events, results)
        print(f"  inserted in {results.insert_seconds:.1f}s, VACUUM ANALYZE {results.vacuum_seconds:.1f}s", flush=True)
        reader = Reader(api, user, room_id)

        _, newest = await reader.page(None)  # warm-up, and a check that the newest page is the seeded end
        if seeded_number(newest["chunk"][0]) != args.events:
            raise BenchError("the newest page does not start with the last seeded event")

        print(f"{args.requests} newest pages ...", flush=True)
        usage = results.usage["newest"] = Usage(server)
        usage.start()
        for _ in range(args.requests):
            results.newest.append((await reader.page(None))[0])
        usage.stop()

        results.scroll_from = args.events // 2
        print(f"{args.requests} pages scrolling back from event {results.scroll_from:,} ...", flush=True)
        token = await reader.token_before(seeded_event_id(room_id, results.scroll_from))
        expected = results.scroll_from - 1
        usage = results.usage["scroll"] = Usage(server)
        usage.start()
        for _ in range(args.requests):
            latency, answer = await reader.page(token)
            if seeded_number(answer["chunk"][0]) != expected:
                raise BenchError(
                    f"scrolling back: expected event {expected} first, got {seeded_number(answer['chunk'][0])}"
                )
            expected -= PAGE
            token = answer["end"]
            results.scroll.append(latency)
        usage.stop()

        print(f"{args.requests} pages at random points ...", flush=True)
        chooser = random.Random(args.seed)
        numbers = [chooser.randint(PAGE + 1, args.events) for _ in range(args.requests)]
        tokens = [await reader.token_before(seeded_event_id(room_id, number)) for number in numbers]
        usage = results.usage["random"] = Usage(server)
        usage.start()
        for number, token in zip(numbers, tokens, strict=False):
            latency, answer = await reader.page(token)
            if seeded_number(answer["chunk"][0]) != number - 1:
                raise BenchError(f"a page before event {number} started at {seeded_number(answer['chunk'][0])}")
            results.random.append(latency)
        usage.stop()
    return server


def report(args: argparse.Namespace, results: Results, server: ServerProcess) -> bool:
    """Prints the summary; True when every target is met."""
    figures = [
        ("newest page", "newest", results.newest),
        (f"scrolling back from the middle ({args.requests * PAGE:,} events)", "scroll", results.scroll),
        ("random points of the room", "random", results.random),
    ]
    print()
    print(f"AtomChat /messages benchmark, {datetime.date.today().isoformat()}")
    print(f"  machine:   {machine()}, load average {results.load_at_start} at start, {load_average()} at end")
    print(f"  server:    atomchat serve, {server.database_kind}, default settings, rate limits raised")
    print(
        f"  room:      {args.events:,} seeded m.text events (events table {results.table_bytes / 2**20:.0f} MiB"
        " with indexes)"
    )
    print(
        f"  seeding:   INSERT ... SELECT {results.insert_seconds:.1f}s"
        f" ({args.events / results.insert_seconds:,.0f} events/s), VACUUM ANALYZE {results.vacuum_seconds:.1f}s"
        " (not part of the figures below)"
    )
    print(
        f"  requests:  GET /messages dir=b limit={PAGE}, one at a time on one keep-alive connection,"
        f" {args.requests} of each kind"
    )
    print()
    ok = True
    for name, kind, latencies in figures:
        median = percentile(latencies, 50)
        met = median < TARGET_MEDIAN
        ok = ok and met
        usage = results.usage[kind]
        print(f"  {name}:")
        print(f"    {spread(latencies)}   target median < {TARGET_MEDIAN * 1000:.0f} ms: {verdict(met)}")
        print(f"    {usage.per_request(len(latencies), 'page')}")
    print(f"  server stopped by SIGTERM, exit status {server.exit_status}")
    return ok


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument(
        "--events",
        type=bounded(10_000, 5_000_000),
        default=1_000_000,
        help="messages seeded into the room (default 1,000,000)",
    )
    parser.add_argument(
        "--requests", type=bounded(10, 2000), default=200, help="pages measured of each kind (default 200)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the random points (default 1)")
    args = parser.parse_args()
    if args.requests * PAGE > args.events // 2:
        parser.error("--requests pages of 100 must fit in the older half of --events")
    return exit_status(run, report, args, Results())


if __name__ == "__main__":
    sys.exit(main())
