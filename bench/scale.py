"""Benchmark of scale-out: send throughput, fan-out latency and notifier lag
with 1, 2 and 3 `atomchat serve` processes on one database behind HAProxy.

    .venv/bin/python bench/scale.py [--database-url URL] [--processes 1,2,3] [--seconds 10]
        [--receivers 50] [--rate 50] [--mode websocket|longpoll]

For each process count P: a first server (fresh data directory, embedded
PostgreSQL unless --database-url names a server to create a scratch
database on) and P - 1 more on its database, all on 127.0.0.1 with ports of
their own and one token signing key (a config file), behind HAProxy running
docs/haproxy.cfg with its server lines cut to P (round robin, no sticky
sessions). Every request below goes through the proxy.

1. Send throughput: 10 senders in one room, each sending one message after
   another on its own keep-alive connection (bench/send.py's clients) for
   --seconds; messages/s, latency, and the CPU per message of the servers,
   PostgreSQL and HAProxy.
2. Fan-out: --receivers receivers follow another room (bench/fanout.py's
   receivers: WebSocket streams or long-polls, dealt over the processes by
   the proxy) while one sender sends --rate messages/s for --seconds (after
   3 s of warm-up); delivery latency from send to receipt, loss and
   duplicates.
3. Notifier lag: each server's atomchat_notifier_lag_seconds histogram
   (/metrics, read from each server directly) over the fan-out period: from
   an event's timestamp, taken as it is written, to its dispatch to that
   process's clients; the p99 is the bucket bound it falls in.

On a 2-core machine more processes do not bring more throughput; what this
shows is what each added process costs and that latency does not grow.
Target: fan-out p99 under 100 ms at 50 receivers and 50 messages/s with 3
processes; no loss, no duplicates.

Exit status: 0 when every target is met, 1 when one is missed, 2 when the
run itself failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from _server import (
    CHEAP_HASHING,
    RATE_LIMITS_RAISED,
    Api,
    BenchError,
    ServerProcess,
    Usage,
    Workers,
    benchmark_parser,
    bounded,
    counts,
    free_port,
    load_average,
    machine,
    ms,
    percentile,
    split,
    verdict,
)
from fanout import Results, receiver_process, send_at_rate, tally, told
from send import Phase, sender_process

HAPROXY_CONFIG = Path(__file__).resolve().parents[1] / "docs" / "haproxy.cfg"
RUN_DEADLINE = 900.0
REQUEST_TIMEOUT = 30.0
SENDERS = 10
WARM_UP_SECONDS = 3.0
TARGET_PROCESSES, TARGET_RECEIVERS, TARGET_RATE, TARGET_P99 = 3, 50, 50.0, 0.100
LAG = "atomchat_notifier_lag_seconds"


class JoiningServer(ServerProcess):
    """Another `atomchat serve` on the database of the first."""

    def __init__(self, dsn: str, **settings: Any) -> None:
        super().__init__(**settings)
        self.dsn = dsn

    def command(self) -> list[str]:
        return super().command() + ["--database-url", self.dsn]


class HAProxy:
    """docs/haproxy.cfg with plain HTTP only and its servers cut to those given."""

    def __init__(self, root: Path, servers: list[str]) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        lines = []
        for line in HAPROXY_CONFIG.read_text().splitlines():
            server = re.match(r"\s+server atomchat(\d+) ", line)
            if "ATOMCHAT_HTTPS_BIND" in line or (server and int(server[1]) > len(servers)):
                continue
            lines.append(line)
        self.config = root / "haproxy.cfg"
        self.config.write_text("\n".join(lines) + "\n")
        self.env = {
            **os.environ,
            "ATOMCHAT_HTTP_BIND": f"127.0.0.1:{self.port}",
            **{f"ATOMCHAT_SERVER_{n}": address for n, address in enumerate(servers, 1)},
        }
        self.log_path = root / "haproxy.log"
        self.process: subprocess.Popen | None = None

    async def __aenter__(self) -> HAProxy:
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(haproxy).exists():
            raise BenchError("HAProxy is not installed (apt-get install -y haproxy)")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [haproxy, "-db", "-f", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while True:
                if self.process.poll() is not None:
                    raise BenchError("HAProxy exited: " + self.log_path.read_text())
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with session.get(self.base_url + "/ready") as response:
                        if response.status == 200:
                            return self
                if time.monotonic() > deadline:
                    raise BenchError("HAProxy did not answer: " + self.log_path.read_text())
                await asyncio.sleep(0.2)

    async def __aexit__(self, *exc_info: object) -> None:
        if self.process is not None:
            self.process.terminate()
            await asyncio.get_running_loop().run_in_executor(None, self.process.wait, 10)


@dataclass
class Count:
    """The figures of one process count."""

    processes: int
    send: Phase = field(default_factory=lambda: Phase(SENDERS))
    fanout: Results = field(default_factory=Results)
    lag_count: float = 0.0
    lag_sum: float = 0.0
    lag_p99: float = 0.0  # the bucket bound the 99th percentile falls in


async def lag_histogram(session: aiohttp.ClientSession, servers: list[ServerProcess]) -> dict[str, float]:
    """The notifier-lag histogram summed over the servers: bucket bound (and
    "sum", "count") -> value."""
    total: dict[str, float] = {}
    for server in servers:
        async with session.get(server.base_url + "/metrics") as response:
            text = await response.text()
        for match in re.finditer(rf'^{LAG}_(bucket\{{le="([^"]+)"\}}|sum|count) (\S+)$', text, re.MULTILINE):
            key = match[2] or match[1]
            total[key] = total.get(key, 0.0) + float(match[3])
    return total


def record_lag(count: Count, before: dict[str, float], after: dict[str, float]) -> None:
    delta = {key: after[key] - before.get(key, 0.0) for key in after}
    count.lag_count, count.lag_sum = delta.get("count", 0.0), delta.get("sum", 0.0)
    bounds = sorted((float(key), value) for key, value in delta.items() if key not in ("sum", "count"))
    count.lag_p99 = next((bound for bound, seen in bounds if seen >= 0.99 * count.lag_count), float("inf"))


async def measure(args: argparse.Namespace, processes: int, signing_config: Path) -> Count:
    count = Count(processes)
    settings = {**RATE_LIMITS_RAISED, **CHEAP_HASHING, "config": signing_config}
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(ServerProcess(database_url=args.database_url, **settings))
        servers: list[ServerProcess] = [first]
        for _ in range(processes - 1):
            servers.append(await stack.enter_async_context(JoiningServer(first.database_dsn(), **settings)))
        proxy = await stack.enter_async_context(HAProxy(first.root, [s.base_url.split("//")[1] for s in servers]))
        assert proxy.process is not None
        others = [server.pid for server in servers[1:]]
        deadline = time.monotonic() + RUN_DEADLINE
        connector = aiohttp.TCPConnector(limit=64)
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))
        )
        api = Api(session, proxy.base_url, deadline)
        print(f"{processes} process(es): registering {SENDERS} senders and {args.receivers} receivers ...", flush=True)
        senders = await api.register_many("sender", SENDERS)
        receivers = await api.register_many("receiver", args.receivers)
        send_room = await api.create_room(senders[0], preset="public_chat", name="Send")
        fanout_room = await api.create_room(senders[0], preset="public_chat", name="Fan-out")
        for user in senders[1:]:
            await api.join(user, send_room)
        for user in receivers:
            await api.join(user, fanout_room)

        print(f"{processes} process(es): {SENDERS} senders for {args.seconds:g}s ...", flush=True)
        groups = split(senders, 2)
        arguments = [(proxy.base_url, group, send_room, f"p{processes}") for group in groups]
        async with Workers(sender_process, arguments) as workers:
            await workers.wait_ready(timeout=60)
            count.send.usage = Usage(
                first, **{"other servers": others, "HAProxy": [proxy.process.pid], "clients": workers.pids}
            )
            count.send.usage.start()
            start_at = time.monotonic() + 0.2
            workers.tell((start_at, start_at + args.seconds, 50_000))
            results = await workers.results(timeout=args.seconds + REQUEST_TIMEOUT + 30)
            count.send.usage.stop()
        for latencies, _ in results:
            count.send.latencies.extend(latencies)
        count.send.wall = max(last for _, last in results) - start_at

        print(
            f"{processes} process(es): fan-out to {args.receivers} receivers ({args.mode}) at {args.rate:g}/s ...",
            flush=True,
        )
        fanout = count.fanout
        following = [
            (args.mode, proxy.base_url, [(user, None) for user in group], fanout_room, False)
            for group in split(receivers, 2)
        ]  # no filter, messages (not typing)
        async with Workers(receiver_process, following) as workers:
            await workers.wait_ready(timeout=120)
            fanout.measured_from = await send_at_rate(
                api, senders[0], fanout_room, args.rate, WARM_UP_SECONDS, 0, fanout, False
            )
            before = await lag_histogram(session, servers)
            fanout.usage = Usage(
                first, **{"other servers": others, "HAProxy": [proxy.process.pid], "clients": workers.pids}
            )
            fanout.usage.start()
            await send_at_rate(
                api, senders[0], fanout_room, args.rate, args.seconds, fanout.measured_from, fanout, False
            )
            fanout.usage.stop()
            record_lag(count, before, await lag_histogram(session, servers))
            workers.tell(told(fanout))
            received = await workers.results(timeout=120)
    tally(fanout, received, typing=False)
    return count


async def run(args: argparse.Namespace, counts: list[Count]) -> None:
    with tempfile.TemporaryDirectory(prefix="atomchat-scale-") as root:
        signing_config = Path(root) / "signing.toml"
        signing_config.write_text(f'signing_key = "{secrets.token_hex(32)}"\n')
        for processes in args.processes:
            counts.append(await measure(args, processes, signing_config))


def report(args: argparse.Namespace, counts: list[Count], load_at_start: str) -> bool:
    print()
    print(f"AtomChat scale-out benchmark, {datetime.date.today().isoformat()}")
    print(f"  machine:   {machine()}, load average {load_at_start} at start, {load_average()} at end")
    print(
        f"  servers:   atomchat serve x P on one {'external' if args.database_url else 'embedded'} PostgreSQL,"
        " behind HAProxy (docs/haproxy.cfg, round robin), rate limits raised, password hashing cheapened"
    )
    print(
        f"  load:      send: {SENDERS} senders for {args.seconds:g}s; fan-out: {args.receivers} receivers"
        f" ({args.mode}), 1 sender at {args.rate:g}/s for {args.seconds:g}s after {WARM_UP_SECONDS:g}s warm-up"
    )
    print()
    ok = True
    for count in counts:
        fanout = count.fanout
        usage = count.send.usage
        assert usage is not None
        server_cpu = usage.seconds.get("server", 0.0) + usage.seconds.get("other servers", 0.0)
        messages = len(count.send.latencies)
        print(
            f"  P={count.processes}: send {count.send.rate:6.0f} messages/s, latency p50"
            f" {ms(percentile(count.send.latencies, 50))}, p99 {ms(percentile(count.send.latencies, 99))};"
            f" CPU per message: servers {ms(server_cpu / messages)},"
            f" PostgreSQL {ms(usage.seconds.get('PostgreSQL', 0.0) / messages)},"
            f" HAProxy {ms(usage.seconds.get('HAProxy', 0.0) / messages)}"
        )
        p99 = percentile(fanout.deliveries, 99)
        lag_mean = count.lag_sum / count.lag_count if count.lag_count else 0.0
        print(
            f"       fan-out {len(fanout.deliveries)} deliveries: p50 {ms(percentile(fanout.deliveries, 50))},"
            f" p99 {ms(p99)}, max {ms(max(fanout.deliveries))}; lost {fanout.lost} ({fanout.lost_in_gaps} at"
            f" receivers sent limited timelines, {fanout.gaps} of them), duplicates {fanout.duplicates},"
            f" failed sends {fanout.send_errors}, receiver errors {fanout.receiver_errors},"
            f" reconnects {fanout.reconnects}"
        )
        print(
            f"       notifier lag over {count.lag_count:.0f} dispatches: mean {ms(lag_mean)},"
            f" p99 <= {ms(count.lag_p99)}"
        )
        if fanout.usage is not None:
            print(f"       fan-out {fanout.usage.summary()}")
        clean = fanout.lost == 0 and fanout.duplicates == 0 and fanout.send_errors == 0
        ok = ok and clean
        if (count.processes, args.receivers, args.rate) >= (TARGET_PROCESSES, TARGET_RECEIVERS, TARGET_RATE):
            met = p99 < TARGET_P99
            ok = ok and met
            print(
                f"       target: p99 < {TARGET_P99 * 1000:.0f} ms at {TARGET_RECEIVERS} receivers and"
                f" {TARGET_RATE:g}/s with {TARGET_PROCESSES} processes: {ms(p99)}  {verdict(met)}"
            )
        print(f"       target: no loss, no duplicates, no failed send: {verdict(clean)}")
    return ok


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument(
        "--processes",
        type=counts(1, 3),
        default=[1, 2, 3],
        help="comma-separated process counts, one run each (default 1,2,3; at most 3)",
    )
    parser.add_argument(
        "--seconds", type=bounded(1, 60, float), default=10.0, help="length of each measured period (default 10)"
    )
    parser.add_argument(
        "--receivers",
        type=bounded(1, 500),
        default=TARGET_RECEIVERS,
        help=f"fan-out receivers (default {TARGET_RECEIVERS})",
    )
    parser.add_argument(
        "--rate",
        type=bounded(0.1, 500, float),
        default=TARGET_RATE,
        help=f"fan-out messages per second (default {TARGET_RATE:g})",
    )
    parser.add_argument(
        "--mode",
        choices=("websocket", "longpoll"),
        default="websocket",
        help="how receivers follow the room (default websocket)",
    )
    args = parser.parse_args()
    figures: list[Count] = []
    load_at_start = load_average()
    try:
        asyncio.run(run(args, figures))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    return 0 if report(args, figures, load_at_start) else 1


if __name__ == "__main__":
    sys.exit(main())
