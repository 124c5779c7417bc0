"""Benchmark of sync answers built from the database: an initial sync of a
user in many rooms, and an incremental sync after many events spread over
them (a client that reconnects after a while).

    .venv/bin/python bench/initial_sync.py [--rooms 100] [--messages 20] [--repeats 10]

Starts `atomchat serve` (fresh data directory, embedded PostgreSQL unless
--database-url names a server), registers a reader and a writer, and makes
ROOMS rooms of the two (the writer creates each, invites the reader, who
joins), each with MESSAGES messages from the writer. Every sync carries the
filter of a client that loads members lazily,
{"room":{"timeline":{"limit":10},"state":{"lazy_load_members":true}}}.

1. **Initial sync**: the reader's first (cold: nothing of it cached by the
   server or PostgreSQL's plans) and then REPEATS more (warm); the median
   of the warm ones.
2. **Incremental sync**: the writer sends 10 messages in each of up to 100
   rooms (1,000 events over 100 rooms at the default), then the reader
   syncs from the token of its last initial sync, REPEATS times (each from
   the same token, so each answer is built from the database); the median.

Targets (100 rooms of 20 messages): initial median under 40 ms warm and
80 ms cold; incremental median under 50 ms. With 1,000 rooms: initial
median under 400 ms.

Exit status: 0 when every target of the run's size is met, 1 when one is
missed, 2 when the run failed.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import sys
import time

import aiohttp
from _server import (
    CHEAP_HASHING,
    RATE_LIMITS_RAISED,
    Api,
    ServerProcess,
    User,
    benchmark_parser,
    bounded,
    exit_status,
    load_average,
    machine,
    ms,
    percentile,
)

RUN_DEADLINE = 900.0
REQUEST_TIMEOUT = 120.0
SETUP_CONCURRENCY = 8
LAZY_FILTER = json.dumps(
    {"room": {"timeline": {"limit": 10}, "state": {"lazy_load_members": True}}}, separators=(",", ":")
)
INCREMENTAL_ROOMS = 100
INCREMENTAL_PER_ROOM = 10


async def timed_sync(api: Api, user: User, since: str | None = None) -> tuple[float, dict]:
    params = {"filter": LAZY_FILTER}
    if since is not None:
        params["since"] = since
    started = time.monotonic()
    body = await api.call("GET", "/sync", user=user, params=params)
    return time.monotonic() - started, body


async def run(args, results: dict) -> ServerProcess:
    deadline = time.monotonic() + RUN_DEADLINE
    results["load_at_start"] = load_average()
    server = ServerProcess(database_url=args.database_url, **RATE_LIMITS_RAISED, **CHEAP_HASHING)
    async with server:
        connector = aiohttp.TCPConnector(limit=SETUP_CONCURRENCY * 2)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        ) as session:
            api = Api(session, server.base_url, deadline)
            reader, writer = await api.register("reader"), await api.register("writer")
            print(f"making {args.rooms} rooms of {args.messages} messages ...", flush=True)
            slots = asyncio.Semaphore(SETUP_CONCURRENCY)
            # One creation at a time: a version-12 room's id is the hash of
            # its create event, so two rooms one user creates alike in the
            # same millisecond would get the same id (the second a 500).
            creating = asyncio.Lock()

            async def room(number: int) -> str:
                async with slots:
                    async with creating:
                        room_id = await api.create_room(
                            writer, preset="private_chat", invite=[reader.user_id], name=f"room {number}"
                        )
                    await api.join(reader, room_id)
                    for message in range(args.messages):
                        await api.send_text(writer, room_id, f"message {message}", f"r{number}m{message}")
                    return room_id

            room_ids = list(await asyncio.gather(*(room(number) for number in range(args.rooms))))
            cold, body = await timed_sync(api, reader)
            if len(body["rooms"]["join"]) != args.rooms:
                raise RuntimeError(f"the initial sync shows {len(body['rooms']['join'])} rooms, not {args.rooms}")
            warm = []
            for _ in range(args.repeats):
                elapsed, body = await timed_sync(api, reader)
                warm.append(elapsed)
            since = body["next_batch"]
            touched = room_ids[:INCREMENTAL_ROOMS]
            print(f"sending {INCREMENTAL_PER_ROOM} messages in each of {len(touched)} rooms ...", flush=True)

            async def more(number: int, room_id: str) -> None:
                async with slots:
                    for message in range(INCREMENTAL_PER_ROOM):
                        await api.send_text(writer, room_id, f"later {message}", f"later{number}m{message}")

            await asyncio.gather(*(more(number, room_id) for number, room_id in enumerate(touched)))
            incremental = []
            for _ in range(args.repeats):
                elapsed, body = await timed_sync(api, reader, since)
                incremental.append(elapsed)
            new_events = sum(len(room["timeline"]["events"]) for room in body["rooms"]["join"].values())
            if new_events != len(touched) * INCREMENTAL_PER_ROOM:
                raise RuntimeError(f"the incremental sync carries {new_events} events")
    results.update(cold=cold, warm=warm, incremental=incremental, incremental_rooms=len(touched))
    return server


def report(args, results: dict, server: ServerProcess) -> bool:
    warm, incremental = percentile(results["warm"], 50), percentile(results["incremental"], 50)
    print()
    print(f"AtomChat sync-from-the-database benchmark, {datetime.date.today().isoformat()}")
    print(f"  machine:   {machine()}, load average {results['load_at_start']} at start, {load_average()} at end")
    print(f"  server:    atomchat serve, {server.database_kind}, default settings, rate limits raised")
    print(f"  load:      a reader in {args.rooms} rooms of {args.messages} messages, filter {LAZY_FILTER}")
    print(
        f"  initial sync: cold {ms(results['cold'])}; warm median {ms(warm)},"
        f" p95 {ms(percentile(results['warm'], 95))} ({args.repeats} syncs)"
    )
    print(
        f"  incremental sync after {results['incremental_rooms'] * INCREMENTAL_PER_ROOM} events over"
        f" {results['incremental_rooms']} rooms: median {ms(incremental)} ({args.repeats} syncs)"
    )
    ok = True
    if args.rooms == 100 and args.messages == 20:
        checks = [
            ("initial warm median < 40 ms", warm < 0.040),
            ("initial cold < 80 ms", results["cold"] < 0.080),
            ("incremental median < 50 ms", incremental < 0.050),
        ]
    elif args.rooms == 1000:
        checks = [("initial warm median < 400 ms", warm < 0.400)]
    else:
        checks = []
    for name, met in checks:
        print(f"  target: {name}: {'met' if met else 'MISSED'}")
        ok = ok and met
    return ok


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--rooms", type=bounded(1, 2000), default=100, help="rooms the reader is in (default 100)")
    parser.add_argument("--messages", type=bounded(0, 100), default=20, help="messages per room (default 20)")
    parser.add_argument("--repeats", type=bounded(1, 50), default=10, help="syncs measured (default 10)")
    args = parser.parse_args()
    return exit_status(run, report, args, {})


if __name__ == "__main__":
    sys.exit(main())
