"""Benchmark of accounts: registration and login latency, registrations per
second with many at once, and whether the server stays responsive meanwhile.

    .venv/bin/python bench/accounts.py [--database-url URL]

Starts `atomchat serve` (fresh temporary data directory, embedded PostgreSQL
unless --database-url names a server to create a scratch database on) with
default password hashing and the rate limits raised out of the way, then:

1. sequential registrations and then sequential logins, one at a time
   (median and p95 latency);
2. rounds of concurrent registrations (50 at once by default), reporting
   registrations per second;
3. during those rounds, a probe in another process sends GET
   /_matrix/client/versions on its own connection and reports p50/p99/max.
   Hashing runs in threads; if it ever blocked the event loop, this is
   where it would show.

Exit status: 0 when every target is met, 1 when one is missed, 2 when the
run itself failed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import secrets
import sys
import time
from dataclasses import dataclass, field

import aiohttp
from _server import (
    MATRIX,
    RATE_LIMITS_RAISED,
    BenchError,
    LatencyProbe,
    ServerProcess,
    argon2_defaults,
    benchmark_parser,
    bounded,
    exit_status,
    load_average,
    machine,
    ms,
    percentile,
    verdict,
)

RUN_DEADLINE = 120.0  # seconds for the whole run, server start included
REQUEST_TIMEOUT = 60.0  # seconds for any one request

TARGET_REGISTRATIONS_PER_SECOND = 10.0
TARGET_PROBE_P99 = 0.020  # seconds


@dataclass
class Results:
    register: list[float] = field(default_factory=list)
    login: list[float] = field(default_factory=list)
    rounds: list[tuple[int, float]] = field(default_factory=list)  # (registrations, wall seconds)
    concurrent_register: list[float] = field(default_factory=list)
    idle_probe: list[float] = field(default_factory=list)
    idle_probe_errors: int = 0
    probe: list[float] = field(default_factory=list)
    probe_errors: int = 0
    load_at_start: str = ""


class Client:
    """Registers and logs in accounts with unique names and strong passwords."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, deadline: float) -> None:
        self.session = session
        self.base_url = base_url
        self.deadline = deadline
        self.run_id = secrets.token_hex(3)
        self.count = 0
        self.accounts: list[tuple[str, str]] = []  # (user id, password)

    def _check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise BenchError(f"the run took longer than {RUN_DEADLINE:.0f}s; stopping")

    async def _post(self, path: str, body: dict) -> dict:
        self._check_time()
        async with self.session.post(self.base_url + MATRIX + path, json=body) as response:
            answer = await response.json(content_type=None)
            if response.status != 200:
                raise BenchError(f"POST {path} answered {response.status}: {answer}")
            return answer

    async def register(self) -> float:
        """Registers a new account in one request (dummy auth, as matrix-nio
        does); returns the latency in seconds."""
        self.count += 1
        username = f"bench{self.run_id}n{self.count}"
        password = secrets.token_urlsafe(12)
        started = time.perf_counter()
        answer = await self._post(
            "/register", {"username": username, "password": password, "auth": {"type": "m.login.dummy"}}
        )
        latency = time.perf_counter() - started
        self.accounts.append((answer["user_id"], password))
        return latency

    async def login(self, user_id: str, password: str) -> float:
        """Logs in by full user id, as Matrix client libraries do."""
        started = time.perf_counter()
        await self._post(
            "/login",
            {"type": "m.login.password", "password": password, "identifier": {"type": "m.id.user", "user": user_id}},
        )
        return time.perf_counter() - started


async def run(args: argparse.Namespace, results: Results) -> ServerProcess:
    deadline = time.monotonic() + RUN_DEADLINE
    results.load_at_start = load_average()
    server = ServerProcess(database_url=args.database_url, **RATE_LIMITS_RAISED)
    async with server:
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            client = Client(session, server.base_url, deadline)

            # Warm-up (not measured): the first registration loads the
            # common-password list, the first requests open connections.
            for _ in range(3):
                await client.register()
            await client.login(*client.accounts[0])

            print(f"{args.sequential} sequential registrations ...", flush=True)
            for _ in range(args.sequential):
                results.register.append(await client.register())

            print(f"{args.sequential} sequential logins ...", flush=True)
            for user_id, password in client.accounts[-args.sequential :]:
                results.login.append(await client.login(user_id, password))

            print(f"probe on an idle server for {args.idle_probe_seconds:.0f}s ...", flush=True)
            async with LatencyProbe(server.base_url, interval=args.probe_interval_ms / 1000) as probe:
                await asyncio.sleep(args.idle_probe_seconds)
            results.idle_probe = probe.latencies
            results.idle_probe_errors = probe.errors

            for number in range(1, args.rounds + 1):
                print(
                    f"round {number}/{args.rounds}: {args.concurrency} registrations at once, probe running ...",
                    flush=True,
                )
                async with LatencyProbe(server.base_url, interval=args.probe_interval_ms / 1000) as probe:
                    started = time.perf_counter()
                    latencies = await asyncio.gather(*(client.register() for _ in range(args.concurrency)))
                    wall = time.perf_counter() - started
                results.rounds.append((args.concurrency, wall))
                results.concurrent_register.extend(latencies)
                results.probe.extend(probe.latencies)
                results.probe_errors += probe.errors
    return server


def report(args: argparse.Namespace, results: Results, server: ServerProcess) -> bool:
    """Prints the summary; True when every target is met."""
    registered = sum(count for count, _ in results.rounds)
    wall = sum(seconds for _, seconds in results.rounds)
    rate = registered / wall
    probe_p99 = percentile(results.probe, 99)
    rate_ok = rate >= TARGET_REGISTRATIONS_PER_SECOND
    probe_ok = probe_p99 < TARGET_PROBE_P99 and results.probe_errors == 0

    print()
    print(f"AtomChat accounts benchmark, {datetime.date.today().isoformat()}")
    print(f"  machine:   {machine()}, load average {results.load_at_start} at start, {load_average()} at end")
    print(f"  server:    atomchat serve, {server.database_kind}, default settings, rate limits raised")
    print(f"  hashing:   {argon2_defaults()} (server defaults)")
    print()
    print(
        f"  registration latency, {len(results.register)} one at a time:"
        f"  median {ms(percentile(results.register, 50))}, p95 {ms(percentile(results.register, 95))}"
    )
    print(
        f"  login latency, {len(results.login)} one at a time:"
        f"         median {ms(percentile(results.login, 50))}, p95 {ms(percentile(results.login, 95))}"
    )
    print(
        f"  {args.concurrency} registrations at once, {len(results.rounds)} rounds: "
        + ", ".join(f"{count / seconds:.1f}/s" for count, seconds in results.rounds)
    )
    print(
        f"    overall {rate:.1f} registrations/s ({registered} in {wall:.2f}s);"
        f" each took median {ms(percentile(results.concurrent_register, 50))},"
        f" max {ms(max(results.concurrent_register))}"
    )
    print(
        f"  GET /versions, idle server ({len(results.idle_probe)} requests, {results.idle_probe_errors} failed):"
        f" p50 {ms(percentile(results.idle_probe, 50))}, p99 {ms(percentile(results.idle_probe, 99))},"
        f" max {ms(max(results.idle_probe))}"
    )
    print(
        f"  GET /versions during the rounds ({len(results.probe)} requests, {results.probe_errors} failed):"
        f" p50 {ms(percentile(results.probe, 50))}, p99 {ms(probe_p99)}, max {ms(max(results.probe))}"
    )
    print()
    print(
        f"  target: registrations/s with {args.concurrency} at once >= {TARGET_REGISTRATIONS_PER_SECOND:.0f}:"
        f" {rate:.1f}  {verdict(rate_ok)}"
    )
    print(
        f"  target: /versions p99 during registrations < {TARGET_PROBE_P99 * 1000:.0f} ms:"
        f" {probe_p99 * 1000:.1f} ms  {verdict(probe_ok)}"
    )
    print(f"  server stopped by SIGTERM, exit status {server.exit_status}")
    return rate_ok and probe_ok


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument(
        "--sequential",
        type=bounded(5, 200),
        default=30,
        help="registrations, then logins, measured one at a time (default 30)",
    )
    parser.add_argument(
        "--concurrency", type=bounded(1, 200), default=50, help="registrations sent at once in each round (default 50)"
    )
    parser.add_argument("--rounds", type=bounded(1, 10), default=3, help="concurrent rounds (default 3)")
    parser.add_argument(
        "--probe-interval-ms",
        type=bounded(1, 1000),
        default=10,
        help="time between /versions probe requests (default 10)",
    )
    parser.add_argument(
        "--idle-probe-seconds",
        type=bounded(1, 10),
        default=2,
        help="how long to probe the idle server for comparison (default 2)",
    )
    args = parser.parse_args()
    return exit_status(run, report, args, Results())


if __name__ == "__main__":
    sys.exit(main())
