"""Benchmark of search: POST /search latency for one-word queries over a
million messages in rooms the caller is in.

    .venv/bin/python bench/search.py [--database-url URL] [--events 1000000] [--rooms 10]

Starts `atomchat serve` (fresh data directory, embedded PostgreSQL unless
--database-url names a server to create a scratch database on), registers
one user and creates --rooms rooms through the API, so that the rooms, their
state and their member are made the ordinary way. It then writes the
messages straight into the server's database, spread evenly over the rooms:
one INSERT ... SELECT over generate_series per room under the stream lock
the server's writers take, as bench/messages.py does. The search index is
filled by the server's own triggers as the rows go in (nothing is bypassed),
then VACUUM ANALYZE.

Each message is eight words drawn from a vocabulary of 200 everyday English
words (so each of those is in about 4% of messages), and every 1,000th
message also holds the word "xylophone". Measured, each request one after
another on one keep-alive connection, the count checked against the seeding:

1. "xylophone" by rank (1 in 1,000 messages match): the target;
2. "xylophone" by recency;
3. "coffee", a vocabulary word (about 1 in 25 messages match), by rank:
   reported beside it, to show how the cost grows with the number of matches.

Exit status: 0 when the target is met, 1 when it is missed, 2 when the run
itself failed.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from dataclasses import dataclass, field

import asyncpg
from _server import (
    BenchError,
    ServerProcess,
    Usage,
    benchmark_parser,
    bounded,
    exit_status,
    load_average,
    machine,
    percentile,
    server_and_api,
    spread,
    verdict,
)

RUN_DEADLINE = 600.0  # seconds for the whole run
REQUEST_TIMEOUT = 60.0
TARGET_MEDIAN = 0.020  # seconds, for the rare word by rank
RARE_WORD = "xylophone"
RARE_EVERY = 1000
COMMON_WORD = "coffee"
WORDS_PER_MESSAGE = 8

VOCABULARY = [
    "time",
    "year",
    "people",
    "way",
    "day",
    "man",
    "thing",
    "woman",
    "life",
    "child",
    "world",
    "school",
    "state",
    "family",
    "student",
    "group",
    "country",
    "problem",
    "hand",
    "part",
    "place",
    "case",
    "week",
    "company",
    "system",
    "program",
    "question",
    "work",
    "government",
    "number",
    "night",
    "point",
    "home",
    "water",
    "room",
    "mother",
    "area",
    "money",
    "story",
    "fact",
    "month",
    "lot",
    "right",
    "study",
    "book",
    "eye",
    "job",
    "word",
    "business",
    "issue",
    "side",
    "kind",
    "head",
    "house",
    "service",
    "friend",
    "father",
    "power",
    "hour",
    "game",
    "line",
    "end",
    "member",
    "law",
    "car",
    "city",
    "community",
    "name",
    "president",
    "team",
    "minute",
    "idea",
    "kid",
    "body",
    "information",
    "back",
    "parent",
    "face",
    "others",
    "level",
    "office",
    "door",
    "health",
    "person",
    "art",
    "war",
    "history",
    "party",
    "result",
    "change",
    "morning",
    "reason",
    "research",
    "girl",
    "guy",
    "moment",
    "air",
    "teacher",
    "force",
    "education",
    "foot",
    "boy",
    "age",
    "policy",
    "music",
    "market",
    "sense",
    "nation",
    "plan",
    "college",
    "interest",
    "death",
    "experience",
    "effect",
    "class",
    "control",
    "care",
    "field",
    "development",
    "role",
    "effort",
    "rate",
    "heart",
    "drug",
    "show",
    "leader",
    "light",
    "voice",
    "wife",
    "police",
    "mind",
    "price",
    "report",
    "decision",
    "son",
    "view",
    "relationship",
    "town",
    "road",
    "arm",
    "difference",
    "value",
    "building",
    "action",
    "model",
    "season",
    "society",
    "tax",
    "director",
    "position",
    "player",
    "record",
    "paper",
    "space",
    "ground",
    "form",
    "event",
    "official",
    "matter",
    "center",
    "couple",
    "site",
    "project",
    "activity",
    "star",
    "table",
    "need",
    "court",
    "oil",
    "situation",
    "cost",
    "industry",
    "figure",
    "street",
    "image",
    "phone",
    "data",
    "picture",
    "practice",
    "piece",
    "land",
    "product",
    "doctor",
    "wall",
    "patient",
    "worker",
    "news",
    "test",
    "movie",
    "north",
    "love",
    "support",
    "technology",
    "step",
    "baby",
    "computer",
    "type",
    "attention",
    "film",
    "tree",
    "source",
    "organization",
    "hair",
    "window",
    "evidence",
    "population",
    "site",
    "coffee",
    "garden",
    "kitchen",
]

_STREAM_LOCK = 0x5374726D  # the stream lock of storage/events.py: positions are handed out as the server's

# Messages numbered from $7 + 1: each word is picked by a different
# multiplicative hash of the number, so the vocabulary is spread evenly.
_WORDS = " || ' ' || ".join(
    f"($6::text[])[1 + ((g * {prime}) % {len(VOCABULARY)})]"
    for prime in (2654435761, 40503, 2246822519, 3266489917, 668265263, 374761393, 1597334677, 3812015801)[
        :WORDS_PER_MESSAGE
    ]
)
_SEED = f"""
INSERT INTO events (stream, event_id, room_id, type, state_key, sender, content, origin_server_ts, depth,
                    prev_events)
SELECT nextval('event_stream'), '$search-' || g, $1, 'm.room.message', NULL, $2,
       jsonb_build_object('msgtype', 'm.text', 'body',
                          {_WORDS} || CASE WHEN g % {RARE_EVERY} = 0 THEN ' {RARE_WORD}' ELSE '' END),
       $3::bigint + g, $4::bigint + g - $7::bigint,
       ARRAY[CASE WHEN g = $7::bigint + 1 THEN $5 ELSE '$search-' || (g - 1) END]
FROM generate_series($7::bigint + 1, $7::bigint + $8::bigint) AS g
"""


@dataclass
class Results:
    insert_seconds: float = 0.0
    vacuum_seconds: float = 0.0
    index_bytes: int = 0
    latencies: dict[str, list[float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    usage: dict[str, Usage] = field(default_factory=dict)
    load_at_start: str = ""


async def seed(dsn: str, rooms: list[str], sender: str, count: int, results: Results) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        per_room = count // len(rooms)
        for number, room_id in enumerate(rooms):
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _STREAM_LOCK)
                head = await conn.fetchrow("SELECT head_event_id, head_depth FROM rooms WHERE room_id = $1", room_id)
                if head is None:
                    raise BenchError(f"the room {room_id} is not there to seed")
                first = number * per_room
                await conn.execute(
                    _SEED,
                    room_id,
                    sender,
                    int(time.time() * 1000) - count,
                    head["head_depth"],
                    head["head_event_id"],
                    VOCABULARY,
                    first,
                    per_room,
                )
                last = f"$search-{first + per_room}"
                last_stream = await conn.fetchval("SELECT stream FROM events WHERE event_id = $1", last)
                await conn.execute(
                    "UPDATE rooms SET head_event_id = $2, head_depth = $3, head_stream = $4 WHERE room_id = $1",
                    room_id,
                    last,
                    head["head_depth"] + per_room,
                    last_stream,
                )
            print(f"  room {number + 1}/{len(rooms)}: {per_room:,} messages", flush=True)
        results.insert_seconds = time.perf_counter() - started
        started = time.perf_counter()
        await conn.execute("VACUUM ANALYZE events")
        await conn.execute("VACUUM ANALYZE event_search")
        results.vacuum_seconds = time.perf_counter() - started
        results.index_bytes = await conn.fetchval("SELECT pg_total_relation_size('event_search')")
    finally:
        await conn.close()


async def run(args: argparse.Namespace, results: Results) -> ServerProcess:
    results.load_at_start = load_average()
    async with server_and_api(args, RUN_DEADLINE, REQUEST_TIMEOUT) as (server, api):
        user = await api.register("searcher")
        rooms = [await api.create_room(user, preset="private_chat", name=f"Room {n}") for n in range(args.rooms)]
        print(f"seeding {args.events:,} messages into {args.rooms} rooms ...", flush=True)
        await seed(server.database_dsn(), rooms, user.user_id, args.events, results)
        print(f"  inserted in {results.insert_seconds:.1f}s, VACUUM ANALYZE {results.vacuum_seconds:.1f}s", flush=True)
        expected_rare = (args.events // args.rooms * args.rooms) // RARE_EVERY

        async def query(word: str, order: str) -> tuple[float, dict]:
            body = {"search_categories": {"room_events": {"search_term": word, "order_by": order}}}
            started = time.perf_counter()
            answer = await api.call("POST", "/search", user=user, body=body)
            return time.perf_counter() - started, answer["search_categories"]["room_events"]

        for name, word, order in (
            (f"'{RARE_WORD}' by rank", RARE_WORD, "rank"),
            (f"'{RARE_WORD}' by recency", RARE_WORD, "recent"),
            (f"'{COMMON_WORD}' by rank", COMMON_WORD, "rank"),
        ):
            print(f"{args.requests} searches for {name} ...", flush=True)
            _, answer = await query(word, order)  # warm-up
            if word == RARE_WORD and answer["count"] != expected_rare:
                raise BenchError(f"'{word}' matched {answer['count']} messages, not {expected_rare}")
            if len(answer["results"]) != 10:
                raise BenchError(f"a search for '{word}' returned {len(answer['results'])} results, not 10")
            results.counts[name] = answer["count"]
            usage = results.usage[name] = Usage(server)
            latencies = results.latencies[name] = []
            usage.start()
            for _ in range(args.requests):
                latencies.append((await query(word, order))[0])
            usage.stop()
    return server


def report(args: argparse.Namespace, results: Results, server: ServerProcess) -> bool:
    print()
    print(f"AtomChat /search benchmark, {datetime.date.today().isoformat()}")
    print(f"  machine:   {machine()}, load average {results.load_at_start} at start, {load_average()} at end")
    print(f"  server:    atomchat serve, {server.database_kind}, default settings, rate limits raised")
    print(
        f"  data:      {args.events:,} seeded m.text messages of {WORDS_PER_MESSAGE} words in {args.rooms} rooms,"
        f" all joined by the caller; search table and index {results.index_bytes / 2**20:.0f} MiB"
    )
    print(
        f"  seeding:   {results.insert_seconds:.1f}s with the search triggers"
        f" ({args.events / results.insert_seconds:,.0f} messages/s), VACUUM ANALYZE {results.vacuum_seconds:.1f}s"
        " (not part of the figures below)"
    )
    print(f"  requests:  POST /search room_events, 10 results a page, one at a time, {args.requests} of each kind")
    print()
    ok = True
    for name, latencies in results.latencies.items():
        median = percentile(latencies, 50)
        line = f"    {spread(latencies)}"
        if RARE_WORD in name and "rank" in name:
            met = median < TARGET_MEDIAN
            ok = ok and met
            line += f"   target median < {TARGET_MEDIAN * 1000:.0f} ms: {verdict(met)}"
        print(f"  {name}, {results.counts[name]:,} matches:")
        print(line)
        usage = results.usage[name]
        print(f"    {usage.per_request(len(latencies), 'search')}")
    print(f"  server stopped by SIGTERM, exit status {server.exit_status}")
    return ok


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument(
        "--events", type=bounded(10_000, 5_000_000), default=1_000_000, help="messages seeded (default 1,000,000)"
    )
    parser.add_argument("--rooms", type=bounded(1, 100), default=10, help="rooms they are spread over (default 10)")
    parser.add_argument(
        "--requests", type=bounded(5, 1000), default=30, help="searches measured of each kind (default 30)"
    )
    args = parser.parse_args()
    return exit_status(run, report, args, Results())


if __name__ == "__main__":
    sys.exit(main())
