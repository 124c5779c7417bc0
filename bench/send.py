"""Benchmark of sending: message latency and messages per second with one
client and with ten sending at once into one room.

    .venv/bin/python bench/send.py [--database-url URL] [--clients 1,10] [--seconds 10] [--members N]
        [--scrape-every 1]

Starts `atomchat serve` (fresh data directory, embedded PostgreSQL unless
--database-url names a server to create a scratch database on) with the
rate limits raised, registers the senders and puts them in one room. Then,
for each client count K: K clients, each a user with its own keep-alive
connection, send m.text messages (PUT /rooms/{id}/send/m.room.message/{txn})
one after another, each as soon as the previous one is acknowledged, for a
fixed time. With --members N the room has N members in all (the senders
and idle members who only receive), so that what each message costs per
member (push rule evaluation, notification counts) shows. With --scrape-every S
/metrics is read every S seconds meanwhile, to show what being monitored
costs. A 200 means the event is committed (the server commits
concurrent sends together, one transaction for many); the rate is
acknowledged messages divided by the wall time.

The clients run in separate processes (two, or one per client if fewer), so
that the client's own HTTP work does not compete with the server on one
event loop, and each is a bare keep-alive HTTP/1.1 connection (_server.Sender)
rather than a full client library, so that the clients take little of the two
CPUs from the server being measured. The CPU time of the server, of
PostgreSQL and of the clients is printed so the reader can see what used the
two CPUs.

Exit status: 0 when every target is met, 1 when one is missed, 2 when the
run itself failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import sys
import time
from dataclasses import dataclass, field

import aiohttp
from _server import (
    RATE_LIMITS_RAISED,
    Api,
    BenchError,
    Sender,
    ServerProcess,
    Usage,
    User,
    Workers,
    benchmark_parser,
    bounded,
    counts,
    load_average,
    machine,
    ms,
    percentile,
    split,
    verdict,
)

RUN_DEADLINE = 300.0
REQUEST_TIMEOUT = 30.0
WARM_UP_SENDS = 20  # per client, before the clock starts
MAX_SENDS = 100_000  # per client count, whatever the duration

TARGET_RATE = 1000.0  # messages/s
SCRAPE_COST_READS = 200
SCRAPE_COST_TARGET = 0.01  # of the server's CPU while sending, at one read per --scrape-every
TARGET_RATE_CLIENTS = 10


@dataclass
class Phase:
    clients: int
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    usage: Usage | None = None
    scrapes: int = 0  # of /metrics, with --scrape-every

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall


async def sender_process(control, base_url: str, users: list[User], room_id: str, label: str) -> tuple:
    """Clients of one process: warm up, say ready, then on the word (start
    time, end time, most sends) send until the end. Returns the latencies
    and the last finish (time.monotonic(), one clock for all processes on
    Linux)."""
    async with contextlib.AsyncExitStack() as stack:
        senders = [await stack.enter_async_context(Sender(base_url, user, room_id)) for user in users]
        deadline = time.monotonic() + RUN_DEADLINE
        for sender in senders:
            for number in range(WARM_UP_SENDS):
                await asyncio.wait_for(
                    sender.send_text(f"warm-up {number}", f"{label}-w{control.number}-{number}"), REQUEST_TIMEOUT
                )
        control.ready()
        start_at, end_at, most = await control.message()
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        latencies: list[float] = []
        finished: list[float] = []

        async def client(sender: Sender, index: int) -> None:
            number = 0
            while time.monotonic() < min(end_at, deadline) and len(latencies) < most:
                number += 1
                started = time.perf_counter()
                txn_id = f"{label}-{control.number}-{index}-{number}"
                await asyncio.wait_for(sender.send_text(f"message {number}", txn_id), REQUEST_TIMEOUT)
                latencies.append(time.perf_counter() - started)
            finished.append(time.monotonic())

        await asyncio.gather(*(client(sender, index) for index, sender in enumerate(senders)))
        return latencies, max(finished)


async def scrape(base_url: str, every: float, phase: Phase) -> None:
    """Reads /metrics every ``every`` seconds, as Prometheus would, until cancelled."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as session:
        while True:
            async with session.get(base_url + "/metrics") as response:
                if response.status != 200:
                    raise BenchError(f"/metrics answered {response.status}")
                await response.read()
            phase.scrapes += 1
            await asyncio.sleep(every)


async def scrape_cost(server: ServerProcess, reads: int = SCRAPE_COST_READS) -> float:
    """The server's CPU seconds per read of /metrics, after the sending (all
    its metrics have values): ``reads`` reads one after another."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as session:
        usage = Usage(server)
        usage.start()
        for _ in range(reads):
            async with session.get(server.base_url + "/metrics") as response:
                await response.read()
        usage.stop()
    return usage.seconds["server"] / reads


async def measure(server: ServerProcess, users: list[User], room_id: str, clients: int, args) -> Phase:
    phase = Phase(clients)
    processes = min(clients, args.processes)
    groups = split(users[:clients], processes)
    label = f"k{clients}"
    async with Workers(sender_process, [(server.base_url, group, room_id, label) for group in groups]) as workers:
        await workers.wait_ready(timeout=60)
        phase.usage = Usage(server, clients=workers.pids)
        phase.usage.start()
        start_at = time.monotonic() + 0.2
        workers.tell((start_at, start_at + args.seconds, MAX_SENDS // processes))
        scraping = (
            asyncio.ensure_future(scrape(server.base_url, args.scrape_every, phase)) if args.scrape_every else None
        )
        try:
            results = await workers.results(timeout=args.seconds + REQUEST_TIMEOUT + 30)
        finally:
            if scraping is not None:
                scraping.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await scraping
        phase.usage.stop()
    for latencies, _ in results:
        phase.latencies.extend(latencies)
    phase.wall = max(last for _, last in results) - start_at
    return phase


async def run(args: argparse.Namespace, phases: list[Phase], notes: dict) -> ServerProcess:
    deadline = time.monotonic() + RUN_DEADLINE
    notes["load_at_start"] = load_average()
    server = ServerProcess(database_url=args.database_url, **RATE_LIMITS_RAISED)
    async with server:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as session:
            api = Api(session, server.base_url, deadline)
            users = await api.register_many("sender", max(args.clients))
            idle = await api.register_many("member", max(0, args.members - len(users)))
            room_id = await api.create_room(users[0], preset="public_chat", name="Send benchmark")
            for user in users[1:] + idle:
                await api.join(user, room_id)
        for clients in args.clients:
            print(f"{clients} client(s) sending for {args.seconds:.0f}s ...", flush=True)
            phases.append(await measure(server, users, room_id, clients, args))
            if time.monotonic() > deadline:
                raise BenchError(f"the run took longer than {RUN_DEADLINE:.0f}s; stopping")
        if args.scrape_every:
            notes["scrape_cpu"] = await scrape_cost(server)
    return server


def report(args: argparse.Namespace, phases: list[Phase], notes: dict, server: ServerProcess) -> bool:
    print()
    print(f"AtomChat send benchmark, {datetime.date.today().isoformat()}")
    print(f"  machine:   {machine()}, load average {notes['load_at_start']} at start, {load_average()} at end")
    print(f"  server:    atomchat serve, {server.database_kind}, default settings, rate limits raised")
    print(
        f"  load:      K clients in one room, each sending one message after another on its own connection,"
        f" {args.seconds:.0f}s per K, clients in {args.processes} process(es) at most;"
        f" {max(args.members, max(args.clients))} members in the room"
    )
    if args.scrape_every:
        print(
            f"  metrics:   /metrics read every {args.scrape_every:g}s while sending"
            f" ({sum(phase.scrapes for phase in phases)} reads)"
        )
    print()
    ok = True
    for phase in phases:
        print(
            f"  {phase.clients:>3} client(s): {phase.rate:7.0f} messages/s ({len(phase.latencies)} in"
            f" {phase.wall:.1f}s); latency median {ms(percentile(phase.latencies, 50))},"
            f" p95 {ms(percentile(phase.latencies, 95))}, p99 {ms(percentile(phase.latencies, 99))},"
            f" max {ms(max(phase.latencies))}"
        )
        print(f"               {phase.usage.summary() if phase.usage else 'not measured'}")
        if phase.usage is not None:
            per_message = ", ".join(
                f"{name} {1000 * seconds / len(phase.latencies):.3f} ms"
                for name, seconds in phase.usage.seconds.items()
            )
            print(f"               CPU per message: {per_message}")
        if phase.clients == TARGET_RATE_CLIENTS:
            met = phase.rate >= TARGET_RATE
            ok = ok and met
            print(
                f"               target: >= {TARGET_RATE:.0f} messages/s with {TARGET_RATE_CLIENTS} clients:"
                f" {phase.rate:.0f}  {verdict(met)}"
            )
    if "scrape_cpu" in notes and phases and phases[-1].usage is not None:
        busy = phases[-1].usage.seconds["server"] / phases[-1].usage.wall  # server CPU seconds per second
        share = notes["scrape_cpu"] / args.scrape_every / busy
        met = share < SCRAPE_COST_TARGET
        ok = ok and met
        print(
            f"  metrics:   one read of /metrics costs the server {ms(notes['scrape_cpu'])} of CPU"
            f" ({SCRAPE_COST_READS} reads in a row); one every {args.scrape_every:g}s is {share * 100:.2f}% of"
            f" the server's CPU while {phases[-1].clients} clients send"
        )
        print(f"             target: < {SCRAPE_COST_TARGET * 100:g}%  {verdict(met)}")
    print(f"  server stopped by SIGTERM, exit status {server.exit_status}")
    return ok


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument(
        "--clients",
        type=counts(1, 100),
        default=[1, TARGET_RATE_CLIENTS],
        help="comma-separated numbers of clients sending at once, one run each (default 1,10)",
    )
    parser.add_argument(
        "--seconds", type=bounded(1, 60, float), default=10.0, help="how long each client count sends (default 10)"
    )
    parser.add_argument(
        "--members",
        type=bounded(0, 1000),
        default=0,
        help="members of the room in all, senders included (default: the senders alone)",
    )
    parser.add_argument(
        "--processes", type=bounded(1, 8), default=2, help="client processes the senders are divided among (default 2)"
    )
    parser.add_argument(
        "--scrape-every",
        type=bounded(0, 60, float),
        default=0.0,
        help="read /metrics this often (seconds) while sending, as Prometheus would (default 0: not at all)",
    )
    args = parser.parse_args()
    phases: list[Phase] = []
    notes: dict = {}
    try:
        server = asyncio.run(run(args, phases, notes))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    return 0 if report(args, phases, notes, server) else 1


if __name__ == "__main__":
    sys.exit(main())
