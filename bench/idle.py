"""Benchmark of idle connections: the server's memory per open WebSocket
and per waiting long-poll.

    .venv/bin/python bench/idle.py [--database-url URL] [--connections 2000]

Starts `atomchat serve` (fresh data directory, embedded PostgreSQL unless
--database-url names a server to create a scratch database on) with the rate
limits raised and password hashing cheapened (registration is not what is
measured), with the open-file limit raised for it and for the clients, and
registers 2C users, each with its own access token (C = --connections).
The users are in no room, so their initial syncs are small; what is
measured is the cost of a connection, not of the data behind it.

Client processes (two by default) then open, for C of the users, one
WebSocket stream each (/_atomchat/client/v1/stream, reading the first
frame, the initial sync), and then, for the other C, one long-poll each
(an initial sync, then GET /sync?since=...&timeout=30000 in a loop, as
real clients do). The server's resident memory (VmRSS of the `atomchat
serve` process; the embedded PostgreSQL runs in processes of its own and
is not counted) is sampled before, with the WebSockets open, and with both
open; per connection = (RSS with all 2C open - RSS before) / 2C. The
number of the server's open file descriptors is sampled alongside, to show
the connections are really held.

Exit status: 0 when every target is met, 1 when one is missed, 2 when the
run itself failed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import signal
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from _server import (
    CHEAP_HASHING,
    MATRIX,
    RATE_LIMITS_RAISED,
    Api,
    BenchError,
    ServerProcess,
    User,
    Workers,
    benchmark_parser,
    bounded,
    exit_status,
    load_average,
    machine,
    raise_fd_limit,
    split,
    verdict,
)

RUN_DEADLINE = 600.0
DEADLINE_PER_CONNECTION = 0.1  # seconds more per connection beyond the first thousand (registering, opening)
REQUEST_TIMEOUT = 60.0
POLL_TIMEOUT_MS = 30_000
STREAM_PATH = "/_atomchat/client/v1/stream"
OPEN_CONCURRENCY = 32  # connections being opened at once per client process
SETTLE_SECONDS = 3.0  # after the connections are open, before sampling
SAMPLE_INTERVAL = 0.5

TARGET_KIB_PER_CONNECTION = 15.0
PROBE = Path(__file__).parent / "_probe"  # its sitecustomize.py takes the snapshots of --trace
TRACE_LINES = 15
TRACE_FRAMES = 10  # deep enough to reach the AtomChat code under Tornado's and asyncio's frames
PACKAGE = "atomchat_server"
ENTRY = f"{PACKAGE}{os.sep}cli.py"  # runs the event loop: under every allocation, so no one's in particular


async def connection_process(control, base_url: str, stream_users: list[User], poll_users: list[User]) -> dict:
    """Opens the WebSockets and says ready; on the word, opens the
    long-polls and says ready; on the next word, closes everything. Returns
    counts of what went wrong."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=REQUEST_TIMEOUT, sock_read=POLL_TIMEOUT_MS / 1000 + REQUEST_TIMEOUT
    )
    counts = {"stream_closed": 0, "poll_errors": 0}
    closing = False
    tracing = aiohttp.TraceConfig()
    tracing.on_request_headers_sent.append(_headers_sent)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, trace_configs=[tracing]) as session:
        slots = asyncio.Semaphore(OPEN_CONCURRENCY)

        async def open_stream(user: User) -> aiohttp.ClientWebSocketResponse[bool]:
            async with slots:
                socket = await session.ws_connect(
                    base_url + STREAM_PATH, params={"access_token": user.access_token}, heartbeat=None, max_msg_size=0
                )
                first = await socket.receive(timeout=REQUEST_TIMEOUT)
                if first.type != aiohttp.WSMsgType.TEXT:
                    raise BenchError(f"the stream of {user.user_id} closed before its initial sync: {first}")
                # Read from now on: a socket left unread while thousands more
                # open answers no heartbeat ping, and the server drops it.
                readers.append(asyncio.ensure_future(drain(socket)))
                return socket

        async def sync(user: User, since: str | None, sent: asyncio.Event | None = None) -> str:
            params = {"timeout": str(POLL_TIMEOUT_MS if since else 0)}
            if since:
                params["since"] = since
            async with session.get(
                base_url + MATRIX + "/sync",
                params=params,
                trace_request_ctx=sent,
                headers={"Authorization": f"Bearer {user.access_token}"},
            ) as response:
                body = await response.json(content_type=None)
                if response.status != 200:
                    raise BenchError(f"GET /sync answered {response.status}: {body}")
                return body["next_batch"]

        async def drain(socket: aiohttp.ClientWebSocketResponse[bool]) -> None:
            async for _ in socket:  # nothing should come; a close ends the loop
                pass
            if not closing:
                counts["stream_closed"] += 1

        async def poll(user: User, since: str, sent: asyncio.Event) -> None:
            while True:
                try:
                    since = await sync(user, since, sent)
                except (aiohttp.ClientError, asyncio.TimeoutError, BenchError):
                    counts["poll_errors"] += 1
                    await asyncio.sleep(1.0)

        async def initial(user: User) -> str:
            async with slots:
                return await sync(user, None)

        readers: list[asyncio.Future[None]] = []
        sockets = await asyncio.gather(*(open_stream(user) for user in stream_users))
        control.ready(len(sockets))
        await control.message()
        tokens = await asyncio.gather(*(initial(user) for user in poll_users))
        pollers = []
        for first in range(0, len(poll_users), OPEN_CONCURRENCY):
            # A few at a time, each batch on the server before the next, so
            # that connecting does not overflow the server's listen backlog.
            batch = [asyncio.Event() for _ in poll_users[first : first + OPEN_CONCURRENCY]]
            pollers += [
                asyncio.ensure_future(poll(user, since, sent))
                for user, since, sent in zip(poll_users[first:], tokens[first:], batch, strict=False)
            ]
            await asyncio.wait_for(asyncio.gather(*(sent.wait() for sent in batch)), REQUEST_TIMEOUT)
        control.ready(len(pollers))
        await control.message()
        closing = True
        for task in pollers:
            task.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)
        for socket in sockets:
            await socket.close()
        await asyncio.gather(*readers, return_exceptions=True)
        return counts


async def _headers_sent(_session, context, _params) -> None:
    """Marks a long-poll as made: its request is on the server's socket."""
    if context.trace_request_ctx is not None:
        context.trace_request_ctx.set()


@dataclass
class Sample:
    rss: int  # bytes
    descriptors: int


@dataclass
class Results:
    before: list[Sample] = field(default_factory=list)
    streams: list[Sample] = field(default_factory=list)
    both: list[Sample] = field(default_factory=list)
    after: list[Sample] = field(default_factory=list)
    register_seconds: float = 0.0
    open_stream_seconds: float = 0.0
    open_poll_seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    # tracemalloc snapshots (--trace): before, with the WebSockets, with both
    snapshots: list[tracemalloc.Snapshot] = field(default_factory=list)
    fd_limit: int = 0
    load_at_start: str = ""


async def snapshot(args: argparse.Namespace, server: ServerProcess, results: Results) -> None:
    """With --trace, the server's tracemalloc snapshot now (it writes it on SIGUSR2)."""
    if not args.trace:
        return
    path = Path(args.trace) / f"idle.{len(results.snapshots) + 1}"
    os.kill(server.pid, signal.SIGUSR2)
    end = time.monotonic() + REQUEST_TIMEOUT
    while not Path(str(path) + ".done").exists():
        if time.monotonic() > end:
            raise BenchError("the server wrote no tracemalloc snapshot")
        await asyncio.sleep(0.2)
    results.snapshots.append(tracemalloc.Snapshot.load(str(path)))


def print_growth(label: str, old: tracemalloc.Snapshot, new: tracemalloc.Snapshot, count: int) -> None:
    """What each connection added between two snapshots, split by who asked
    for the memory: AtomChat's share is every block allocated with AtomChat
    code on the stack below the event loop (named by the innermost such
    line; the traceback holds TRACE_FRAMES frames), the rest is
    Tornado's, asyncio's and the interpreter's own."""
    ours: dict[str, list[int]] = {}
    theirs: dict[str, list[int]] = {}
    for stat in new.compare_to(old, "traceback"):
        if not stat.size_diff:
            continue
        frames = list(reversed(stat.traceback))  # innermost first (a Traceback is oldest first)
        own = next(
            (
                frame
                for frame in frames
                if f"{os.sep}{PACKAGE}{os.sep}" in frame.filename and not frame.filename.endswith(ENTRY)
            ),
            None,
        )
        frame, sites = (own, ours) if own is not None else (frames[0], theirs)
        where = "/".join(Path(frame.filename).parts[-2:]) + f":{frame.lineno}"
        site = sites.setdefault(where, [0, 0])
        site[0] += stat.size_diff
        site[1] += stat.count_diff
    for name, sites in (("AtomChat's", ours), ("Tornado's, asyncio's and others'", theirs)):
        total = sum(size for size, _ in sites.values())
        print(f"  traced Python allocations {label}, {name}: {total / count:.0f} bytes; the largest sites:")
        for where, (size, blocks) in sorted(sites.items(), key=lambda item: -item[1][0])[:TRACE_LINES]:
            print(f"    {size / count:8.0f} B  {blocks / count:5.1f} blocks  {where}")


def server_descriptors(server: ServerProcess) -> int:
    return len(os.listdir(f"/proc/{server.pid}/fd"))


async def samples(server: ServerProcess, seconds: float) -> list[Sample]:
    taken = []
    end = time.monotonic() + seconds
    while True:
        taken.append(Sample(server.rss_bytes(), server_descriptors(server)))
        if time.monotonic() >= end:
            return taken
        await asyncio.sleep(SAMPLE_INTERVAL)


def rss(taken: list[Sample]) -> float:
    return statistics.median(sample.rss for sample in taken)


def descriptors(taken: list[Sample]) -> int:
    return min(sample.descriptors for sample in taken)


async def run(args: argparse.Namespace, results: Results) -> ServerProcess:
    deadline = time.monotonic() + RUN_DEADLINE + DEADLINE_PER_CONNECTION * max(0, 2 * args.connections - 1000)
    results.load_at_start = load_average()
    # The server holds 2C sockets, and the client processes (which inherit
    # this limit, each for itself) 2C among them.
    results.fd_limit = raise_fd_limit(2 * args.connections + 1024)
    server = ServerProcess(database_url=args.database_url, **RATE_LIMITS_RAISED, **CHEAP_HASHING)
    if args.trace:  # bench/_probe/sitecustomize.py: tracemalloc, and a snapshot on SIGUSR2
        Path(args.trace).mkdir(parents=True, exist_ok=True)
        server.env.update(
            {
                "PYTHONPATH": str(PROBE),
                "BENCH_SNAPSHOT": str(Path(args.trace) / "idle"),
                "BENCH_TRACE_FRAMES": str(TRACE_FRAMES),
            }
        )
    async with server:
        print(f"registering {2 * args.connections} users ...", flush=True)
        started = time.monotonic()
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        ) as session:
            api = Api(session, server.base_url, deadline)
            users = await api.register_many("idle", 2 * args.connections, concurrency=32)
        results.register_seconds = time.monotonic() - started
        streams, polls = users[: args.connections], users[args.connections :]
        groups = list(zip(split(streams, args.processes), split(polls, args.processes), strict=True))

        await asyncio.sleep(SETTLE_SECONDS)
        results.before = await samples(server, args.hold)
        await snapshot(args, server, results)
        async with Workers(connection_process, [(server.base_url, s, p) for s, p in groups]) as workers:
            print(f"opening {args.connections} WebSockets from {args.processes} client process(es) ...", flush=True)
            started = time.monotonic()
            await workers.wait_ready(timeout=deadline - time.monotonic())
            results.open_stream_seconds = time.monotonic() - started
            await asyncio.sleep(SETTLE_SECONDS)
            results.streams = await samples(server, args.hold)
            await snapshot(args, server, results)

            print(f"opening {args.connections} long-polls ...", flush=True)
            started = time.monotonic()
            workers.tell("long-polls")
            await workers.wait_ready(timeout=deadline - time.monotonic())
            results.open_poll_seconds = time.monotonic() - started
            await asyncio.sleep(SETTLE_SECONDS)
            results.both = await samples(server, args.hold)
            await snapshot(args, server, results)

            print("closing them ...", flush=True)
            workers.tell("close")
            for counts in await workers.results(timeout=120):
                for name, value in counts.items():
                    results.counts[name] = results.counts.get(name, 0) + value
        await asyncio.sleep(SETTLE_SECONDS)
        results.after = await samples(server, 1.0)
    return server


def report(args: argparse.Namespace, results: Results, server: ServerProcess) -> bool:
    count = args.connections
    before, streams, both, after = rss(results.before), rss(results.streams), rss(results.both), rss(results.after)
    per_stream = (streams - before) / count / 1024
    per_poll = (both - streams) / count / 1024
    per_connection = (both - before) / (2 * count) / 1024
    held = descriptors(results.both) - descriptors(results.before)
    clean = (
        held >= 2 * count and results.counts.get("stream_closed", 0) == 0 and results.counts.get("poll_errors", 0) == 0
    )
    met = per_connection < TARGET_KIB_PER_CONNECTION

    def mib(value: float) -> str:
        return f"{value / 2**20:.1f} MiB"

    print()
    print(f"AtomChat idle connections benchmark, {datetime.date.today().isoformat()}")
    print(f"  machine:   {machine()}, load average {results.load_at_start} at start, {load_average()} at end")
    print(
        f"  server:    atomchat serve, {server.database_kind}, default settings, rate limits raised,"
        f" password hashing cheapened; open-file limit {results.fd_limit}"
    )
    print(
        f"  load:      {count} WebSockets + {count} long-polls (timeout {POLL_TIMEOUT_MS} ms), one user each,"
        f" users in no room; {args.processes} client process(es)"
    )
    print(
        f"  setup:     {2 * count} registrations {results.register_seconds:.1f}s; WebSockets opened in"
        f" {results.open_stream_seconds:.1f}s, long-polls in {results.open_poll_seconds:.1f}s"
    )
    print()
    print(f"  server RSS (median of samples over {args.hold:.0f}s, embedded PostgreSQL not included):")
    rows = [
        ("before", before, results.before, ""),
        (f"{count} WebSockets open", streams, results.streams, f"{per_stream:.1f} KiB per WebSocket"),
        (f"+ {count} long-polls", both, results.both, f"{per_poll:.1f} KiB per long-poll"),
        ("after closing them all", after, results.after, ""),
    ]
    for label, value, taken, note in rows:
        print(
            f"    {label + ':':<26} {mib(value):>10}  ({descriptors(taken)} open descriptors)"
            + (f"  -> {note}" if note else "")
        )
    print(
        f"  streams closed by the server {results.counts.get('stream_closed', 0)},"
        f" long-poll errors {results.counts.get('poll_errors', 0)}"
    )
    print()
    print(
        f"  target: < {TARGET_KIB_PER_CONNECTION:.0f} KiB of server RSS per connection:"
        f" {per_connection:.1f} KiB  {verdict(met)}"
    )
    print(f"  target: all {2 * count} connections held, none dropped: {held} more descriptors held  {verdict(clean)}")
    if len(results.snapshots) == 3:
        print()
        print_growth("per WebSocket", results.snapshots[0], results.snapshots[1], count)
        print_growth("per long-poll", results.snapshots[1], results.snapshots[2], count)
    print(f"  server stopped by SIGTERM, exit status {server.exit_status}")
    return met and clean


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument(
        "--connections",
        type=bounded(10, 10_000),
        default=2000,
        help="WebSockets, and as many long-polls, held at once (default 2000)",
    )
    parser.add_argument(
        "--hold",
        type=bounded(1, 60, float),
        default=5.0,
        help="seconds over which memory is sampled at each step (default 5)",
    )
    parser.add_argument(
        "--processes",
        type=bounded(1, 8),
        default=2,
        help="client processes the connections are divided among (default 2)",
    )
    parser.add_argument(
        "--trace",
        metavar="DIR",
        help="trace the server's Python allocations (tracemalloc, slow) into snapshots in DIR,"
        " and print the allocation sites each connection adds",
    )
    args = parser.parse_args()
    return exit_status(run, report, args, Results())


if __name__ == "__main__":
    sys.exit(main())
