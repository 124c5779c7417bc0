"""What every benchmark shares: a real `atomchat serve` in a subprocess, a
latency probe in a process of its own, a small Matrix client to set up and
load the server, client processes to spread many connections over the
CPUs, the CPU and memory the parties use, and the statistics they report.

A benchmark measures the server as people run it, so the server is the
installed `atomchat` command, started with default settings except the ones
the benchmark names (typically rate limits raised so that the limiter does
not hide the cost being measured). Settings inherited from the caller's
environment (``ATOMCHAT_*``, ``DATABASE_URL``) are removed so that two runs
on two machines measure the same configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing
import os
import platform
import queue
import resource
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import asyncpg
import psutil
import uvloop

from atomchat_server import config

# Starting and stopping `atomchat serve` is the tests' harness, one module for
# both; `python bench/x.py` puts bench/ on the path, so the checkout goes on too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.harness import (  # noqa: E402 (importable once the checkout is on the path)
    ATOMCHAT,
    VERSIONS_PATH,
    ServeProcess,
    ServerFailed,
    free_port,
    with_database,
)

MATRIX = "/_matrix/client/v3"
START_TIMEOUT = 90.0  # seconds; the first start of the embedded PostgreSQL runs initdb
STOP_TIMEOUT = 30.0  # seconds; graceful shutdown plus stopping the embedded PostgreSQL


# Rate limits far above anything a benchmark sends: what is measured is the
# server's work, not the limiter.
RATE_LIMITS_RAISED = {
    "rc_register_per_second": 1_000_000,
    "rc_register_burst": 1_000_000,
    "rc_login_per_second": 1_000_000,
    "rc_login_burst": 1_000_000,
    "rc_failed_login_per_second": 1_000_000,
    "rc_failed_login_burst": 1_000_000,
}
# The cheapest password hashing the server accepts, for benchmarks that
# register hundreds or thousands of users to measure something else: with the
# default parameters each registration costs about 37 ms of CPU.
CHEAP_HASHING = {"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1}


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


def default_setting(name: str) -> Any:
    """The server's default for a setting, from the same table `serve --help` uses."""
    return next(option.default for option in config.OPTIONS if option.name == name)


def argon2_defaults() -> str:
    """The password-hashing parameters a server started with defaults uses."""
    workers = default_setting("hash_workers") or os.cpu_count() or 1
    return (
        f"argon2id t={default_setting('argon2_time_cost')} m={default_setting('argon2_memory_kib')}KiB "
        f"p={default_setting('argon2_parallelism')}, {workers} hashing thread(s)"
    )


def benchmark_parser(doc: str) -> argparse.ArgumentParser:
    """A benchmark's argument parser: described by the first paragraph of its
    module docstring, with the --database-url every benchmark takes."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server to use instead of the embedded one; a scratch database "
        "is created on it for the run and dropped afterwards",
    )
    return parser


def machine() -> str:
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}"


def load_average() -> str:
    """The 1-minute load average: above zero, something else shared the CPUs."""
    return f"{os.getloadavg()[0]:.2f}"


def raise_fd_limit(needed: int) -> int:
    """Raises this process's soft limit of open files to at least ``needed``
    (up to the hard limit) and returns it; a server started afterwards
    inherits it. BenchError if the hard limit is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise BenchError(f"{needed} open files are needed and the hard limit is {hard}: raise it (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed


def cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """User plus system CPU time used so far by each of these processes
    (those that are gone are left out)."""
    used = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        used[pid] = times.user + times.system
    return used


def cpu_wait_seconds(pid: int) -> float:
    """How long the process's main thread (the server's event loop) was ready
    to run but waited for a CPU, from /proc/<pid>/schedstat: the measure of
    how much other processes on the machine got in its way."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


class Usage:
    """The CPU each party used over a stretch of time, and how long the
    server's event loop waited for a CPU meanwhile; call start() and stop()
    around the stretch. The parties are the server, the embedded PostgreSQL
    (its backends as they come and go; not counted for an external one) and
    any given by name (name -> pids)."""

    def __init__(self, server: ServerProcess, **parties: list[int]) -> None:
        self._server = server
        self._parties = parties
        self._before: dict[str, dict[int, float]] = {}
        self._waited_before = 0.0
        self._started = 0.0
        self.wall = 0.0  # seconds
        self.seconds: dict[str, float] = {}  # CPU seconds per party
        self.waited = 0.0  # fraction of the stretch the event loop waited for a CPU

    def _pids(self) -> dict[str, list[int]]:
        pids = {"server": [self._server.pid]}
        if not self._server.database:
            pids["PostgreSQL"] = self._server.database_pids()
        return {**pids, **self._parties}

    def start(self) -> None:
        self._before = {name: cpu_seconds(pids) for name, pids in self._pids().items()}
        self._waited_before = cpu_wait_seconds(self._server.pid)
        self._started = time.monotonic()

    def stop(self, *, extra: dict[str, float] | None = None) -> None:
        """``extra``: CPU seconds to add per party (say, the main process's own)."""
        self.wall = time.monotonic() - self._started
        self.waited = (cpu_wait_seconds(self._server.pid) - self._waited_before) / self.wall
        self.seconds = {}
        for name, pids in self._pids().items():
            before = self._before.get(name, {})
            # A process that started during the stretch counts from zero.
            self.seconds[name] = sum(used - before.get(pid, 0.0) for pid, used in cpu_seconds(pids).items())
            self.seconds[name] += (extra or {}).get(name, 0.0)

    def per_request(self, count: int, unit: str) -> str:
        """The CPU each party used per request over ``count`` requests, and
        the share of the stretch the event loop waited for a CPU."""
        cpu = ", ".join(f"{name} {ms(seconds / count)}" for name, seconds in self.seconds.items())
        return f"CPU per {unit}: {cpu}; the server's event loop waited for a CPU {self.waited * 100:.0f}% of the time"

    def summary(self) -> str:
        cores = ", ".join(f"{name} {value / self.wall:.2f}" for name, value in self.seconds.items())
        return (
            f"CPU used (cores): {cores}; the server's event loop waited for a CPU {self.waited * 100:.0f}% of the time"
        )


class ServerProcess(ServeProcess):
    """`atomchat serve` on a free 127.0.0.1 port with a fresh temporary data
    directory, and so with a fresh embedded PostgreSQL (started, waited for
    and stopped by the harness the tests use: tests/support/harness.py).

    With ``database_url`` (any database on a PostgreSQL server the caller may
    create databases on) it creates a fresh database on that server for the
    run instead, and drops it afterwards. ``settings`` are server options by
    name (``rc_login_burst=1000``), passed as flags; ``env`` (the harness's
    cleaned environment) may be added to before starting (bench/idle.py
    --trace). Use as an async context manager; the server log is kept in ``log_path`` while it runs, and its
    last lines are shown if it fails to start."""

    def __init__(self, *, database_url: str | None = None, **settings: Any) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="atomchat-bench-"))
        super().__init__(self.root / "data", log_path=self.root / "server.log")
        self.settings = settings
        self.admin_url = database_url
        self.database: str | None = None
        self.exit_status: int | None = None

    @property
    def database_kind(self) -> str:
        return "external PostgreSQL" if self.admin_url else "embedded PostgreSQL"

    def rss_bytes(self) -> int:
        """The server process's resident memory (VmRSS). The embedded
        PostgreSQL runs in processes of its own and is not included."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise BenchError("no VmRSS in /proc/<pid>/status")

    def database_dsn(self) -> str:
        """A DSN for the database the server uses, for a benchmark that
        prepares data directly (the server must have started)."""
        if self.database and self.admin_url:
            return with_database(self.admin_url, self.database)
        info = self._postmaster()
        if info is None or info.socket_dir is None:
            raise BenchError("the embedded PostgreSQL is not running")
        port = f"&port={info.port}" if info.port else ""
        return f"postgresql://postgres@/atomchat?host={quote(str(info.socket_dir))}{port}"

    def database_pids(self) -> list[int]:
        """The embedded PostgreSQL's processes (postmaster and backends), to
        account for their CPU; empty for an external server."""
        if self.database:
            return []
        info = self._postmaster()
        if info is None:
            return []
        try:
            postmaster = psutil.Process(info.pid)
            return [postmaster.pid] + [child.pid for child in postmaster.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def _postmaster(self):
        """The embedded PostgreSQL's postmaster.pid, read without holding the
        server (pgserver counts the processes that start it)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            from pgserver.utils import PostmasterInfo
        return PostmasterInfo.read_from_pgdata(self.data_dir / "postgres")

    def command(self) -> list[str]:
        args = super().command()
        if self.database and self.admin_url:
            args += ["--database-url", with_database(self.admin_url, self.database)]
        for name, value in self.settings.items():
            args += ["--" + name.replace("_", "-"), str(value)]
        return args

    async def __aenter__(self) -> ServerProcess:
        """Starts the server, saying so on standard output with its command line."""
        print("starting the server ...", flush=True)
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        print(
            f"server ready at {self.base_url} ({self.database_kind}): atomchat "
            + " ".join(self.command()[len(ATOMCHAT) :]),
            flush=True,
        )
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.stop()

    async def start(self) -> None:
        if self.admin_url:
            self.database = f"atomchat_bench_{secrets.token_hex(4)}"
            await self._admin(f"CREATE DATABASE {self.database}")  # generated name of [a-z0-9_] only
        self.launch()
        try:
            await self.wait_ready(START_TIMEOUT)
        except ServerFailed as exc:
            raise BenchError(str(exc)) from None

    async def _terminate(self) -> None:
        """SIGTERM, as an operator would stop it; SIGKILL only if it hangs."""
        if not await asyncio.get_running_loop().run_in_executor(None, self.terminate, STOP_TIMEOUT):
            raise BenchError(f"the server did not stop within {STOP_TIMEOUT:.0f}s of SIGTERM")

    async def stop(self) -> None:
        try:
            if self.process is not None:
                await self._terminate()
                self.exit_status = self.process.returncode
        finally:
            if self.database:
                await self._admin(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
            shutil.rmtree(self.root, ignore_errors=True)

    async def _admin(self, statement: str) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()


class FederatingServer(ServerProcess):
    """`atomchat serve` with its federation listener on a free port, named by
    it (``127.0.0.1:PORT``), with a self-signed certificate that other test
    servers accept (certificate checks off, no address blocklist), as
    loopback federation set-ups run. ``halt()`` stops it keeping its data, so
    that ``start()`` brings the same server back."""

    def __init__(self, cert: Path, key: Path, **settings: Any) -> None:
        self.federation_port = free_port()
        self.name = f"127.0.0.1:{self.federation_port}"
        super().__init__(
            server_name=self.name,
            federation_port=self.federation_port,
            federation_tls_certificate=cert,
            federation_tls_private_key=key,
            federation_ip_range_blocklist="none",
            **settings,
        )

    def command(self) -> list[str]:
        return [*super().command(), "--no-federation-verify-certificates"]

    async def halt(self) -> None:
        """Stops the server as an outage would, keeping its data directory."""
        assert self.process is not None, "start() first"
        await self._terminate()


# -- latency probe -------------------------------------------------------------


def _probe_main(url: str, interval: float, ready, stop, results) -> None:
    asyncio.run(_probe(url, interval, ready, stop, results))


async def _probe(url: str, interval: float, ready, stop, results) -> None:
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=1)  # one keep-alive connection, requests one after another
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.get(url) as response:  # open the connection before measuring
            await response.read()
        ready.set()
        next_start = time.perf_counter()
        while not stop.is_set():
            started = time.perf_counter()
            try:
                async with session.get(url) as response:
                    await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, asyncio.TimeoutError):
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1
            next_start += interval
            await asyncio.sleep(max(0.0, next_start - time.perf_counter()))
    results.put((latencies, errors))


class LatencyProbe:
    """Sends cheap GET requests, one every ``interval`` seconds on one
    keep-alive connection, from a process of its own, so that what it
    measures is the server's responsiveness and not the benchmark's own
    event loop. Use as an async context manager around the load; then
    ``latencies`` holds the latencies in seconds and ``errors`` the count of
    failed requests. The process is spawned, so the benchmark's main module
    must guard its entry point with ``if __name__ == "__main__"``."""

    def __init__(self, base_url: str, *, path: str = VERSIONS_PATH, interval: float = 0.01) -> None:
        context = multiprocessing.get_context("spawn")
        self._ready = context.Event()
        self._stop = context.Event()
        self._results = context.Queue()
        self._process = context.Process(
            target=_probe_main, daemon=True, args=(base_url + path, interval, self._ready, self._stop, self._results)
        )
        self.latencies: list[float] = []
        self.errors = 0

    async def __aenter__(self) -> LatencyProbe:
        self._process.start()
        deadline = time.monotonic() + 30.0
        while not self._ready.is_set():
            if not self._process.is_alive():
                raise BenchError(f"the latency probe exited with status {self._process.exitcode} at start")
            if time.monotonic() > deadline:
                self._process.kill()
                raise BenchError("the latency probe did not start within 30s")
            await asyncio.sleep(0.05)
        return self

    async def __aexit__(self, *exc_info) -> None:
        self._stop.set()
        loop = asyncio.get_running_loop()
        try:
            self.latencies, self.errors = await loop.run_in_executor(None, self._results.get, True, 30.0)
        finally:
            await loop.run_in_executor(None, self._process.join, 5.0)
            if self._process.is_alive():
                self._process.kill()


# -- a Matrix client for setting up and loading the server ------------------------


def room_path(room_id: str) -> str:
    """The path of a room's endpoints, its id percent-encoded as clients do."""
    return f"/rooms/{quote(room_id, safe='')}"


@dataclass(frozen=True)
class User:
    user_id: str
    access_token: str


class Api:
    """The Matrix client-server requests benchmarks make, on one aiohttp
    session. Any answer but a 200 stops the run (BenchError), and so does
    passing ``deadline`` (a time.monotonic() value)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, deadline: float) -> None:
        self.session = session
        self.base_url = base_url
        self.deadline = deadline
        self.run_id = secrets.token_hex(3)  # user names stay unique if a benchmark runs twice on one database

    async def call(
        self,
        method: str,
        path: str,
        *,
        user: User | None = None,
        body: Any = None,
        params: dict[str, str] | None = None,
    ) -> dict:
        if time.monotonic() > self.deadline:
            raise BenchError("the run took longer than its deadline; stopping")
        headers = {"Authorization": f"Bearer {user.access_token}"} if user else None
        async with self.session.request(
            method, self.base_url + MATRIX + path, json=body, params=params, headers=headers
        ) as response:
            answer = await response.json(content_type=None)
            if response.status != 200:
                raise BenchError(f"{method} {path} answered {response.status}: {answer}")
            return answer

    async def register(self, name: str) -> User:
        """A new account, logged in, in one request (dummy auth, as matrix-nio does)."""
        answer = await self.call(
            "POST",
            "/register",
            body={
                "username": f"{name}{self.run_id}",
                "password": secrets.token_urlsafe(12),
                "auth": {"type": "m.login.dummy"},
            },
        )
        return User(answer["user_id"], answer["access_token"])

    async def register_many(self, prefix: str, count: int, *, concurrency: int = 16) -> list[User]:
        """``count`` accounts named prefix0, prefix1, ..., ``concurrency`` at a time."""
        slots = asyncio.Semaphore(concurrency)

        async def one(number: int) -> User:
            async with slots:
                return await self.register(f"{prefix}{number}")

        return list(await asyncio.gather(*(one(number) for number in range(count))))

    async def create_room(self, user: User, **body: Any) -> str:
        return (await self.call("POST", "/createRoom", user=user, body=body))["room_id"]

    async def join(self, user: User, room_id: str) -> None:
        await self.call("POST", room_path(room_id) + "/join", user=user, body={})

    async def send_text(self, user: User, room_id: str, text: str, txn_id: str) -> str:
        """Sends an m.text message; returns its event id."""
        path = room_path(room_id) + f"/send/m.room.message/{quote(txn_id, safe='')}"
        answer = await self.call("PUT", path, user=user, body={"msgtype": "m.text", "body": text})
        return answer["event_id"]


@contextlib.asynccontextmanager
async def one_connection(base_url: str, deadline: float, timeout: float) -> AsyncIterator[Api]:
    """An Api on one keep-alive connection, so that requests go one after
    another, as the latency benchmarks measure them; ``timeout`` bounds each."""
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        yield Api(session, base_url, deadline)


@contextlib.asynccontextmanager
async def server_and_api(
    args: argparse.Namespace, run_seconds: float, request_timeout: float
) -> AsyncIterator[tuple[ServerProcess, Api]]:
    """A latency benchmark's set-up: the server with default settings but
    the rate limits raised, on ``args.database_url`` when given, and an Api
    on one keep-alive connection to it that stops the run after
    ``run_seconds``."""
    server = ServerProcess(database_url=args.database_url, **RATE_LIMITS_RAISED)
    async with server, one_connection(server.base_url, time.monotonic() + run_seconds, request_timeout) as api:
        yield server, api


class Sender:
    """One client's keep-alive HTTP/1.1 connection that sends m.text
    messages, for the timed loops: each request is written as prepared bytes
    and its answer read by Content-Length, so the client's own work per
    message (about 30 us) stays small beside the server's. aiohttp spends
    several times that, which on two CPUs is taken from the server being
    measured. Anything but a 200 with an event id stops the run."""

    def __init__(self, base_url: str, user: User, room_id: str) -> None:
        address = urlsplit(base_url)
        self.host, self.port = address.hostname, address.port
        self.path = MATRIX + room_path(room_id) + "/send/m.room.message/"
        self.head = (
            f"Host: {address.netloc}\r\nAuthorization: Bearer {user.access_token}\r\nContent-Type: application/json\r\n"
        )
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Sender:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc_info) -> None:
        if self.writer is not None:
            self.writer.close()

    async def send_text(self, text: str, txn_id: str) -> str:
        assert self.reader is not None and self.writer is not None, "send inside `async with`"
        body = json.dumps({"msgtype": "m.text", "body": text}).encode()
        self.writer.write(
            f"PUT {self.path}{quote(txn_id, safe='')} HTTP/1.1\r\n{self.head}"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = next(
            (int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), None
        )
        if length is None:
            raise BenchError(f"a send was answered without Content-Length: {head!r}")
        answer = json.loads(await self.reader.readexactly(length))
        if status != 200 or "event_id" not in answer:
            raise BenchError(f"a send answered {status}: {answer}")
        return answer["event_id"]


# -- client processes ------------------------------------------------------------


class WorkerControl:
    """What a client process is given: ``ready()`` to say it is set up, and
    ``message()`` to wait for the main process's next word (Workers.tell)."""

    def __init__(self, number: int, events, inbox) -> None:
        self.number = number
        self._events = events
        self._inbox = inbox

    def ready(self, info: Any = None) -> None:
        self._events.put(("ready", self.number, info))

    async def message(self) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, self._inbox.get)


def _worker_main(target, number: int, args: tuple, events, inbox) -> None:
    # The clients run as lean as they can, so that they take little CPU from
    # the server and their own pauses do not pass for its latency: on uvloop,
    # as the server, and collecting garbage rarely.
    gc.set_threshold(10_000, 10, 10)
    try:
        result = uvloop.run(target(WorkerControl(number, events, inbox), *args))
    except BaseException:
        events.put(("error", number, traceback.format_exc()))
    else:
        events.put(("result", number, result))


class Workers:
    """Client processes running ``target(control, *args)`` (an async function
    of the benchmark's main module, one ``args`` tuple per process), so that
    many connections are driven by more than one CPU and the measurement is of
    the server rather than of one client event loop. Spawned, so the main
    module must guard its entry point. Use as an async context manager; a
    process that fails stops the run with its traceback."""

    def __init__(self, target: Callable[..., Awaitable[Any]], args_per_worker: list[tuple]) -> None:
        context = multiprocessing.get_context("spawn")
        self._events = context.Queue()
        self._inboxes = [context.Queue() for _ in args_per_worker]
        self._processes = [
            context.Process(target=_worker_main, daemon=True, args=(target, number, args, self._events, inbox))
            for number, (args, inbox) in enumerate(zip(args_per_worker, self._inboxes, strict=True))
        ]

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._processes if process.pid is not None]  # the started ones

    async def __aenter__(self) -> Workers:
        for process in self._processes:
            process.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        for process in self._processes:
            process.join(0.1 if exc_info[0] is None else 0)
            if process.is_alive():
                process.kill()
                process.join()

    async def _next_event(self, kind: str, timeout: float) -> tuple[int, Any]:
        deadline = time.monotonic() + timeout
        loop = asyncio.get_running_loop()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"client processes: no '{kind}' within {timeout:.0f}s")
            try:
                event, number, info = await loop.run_in_executor(None, self._events.get, True, min(remaining, 1.0))
            except queue.Empty:
                if any(not process.is_alive() and process.exitcode not in (0, None) for process in self._processes):
                    raise BenchError(
                        "a client process died: exit status "
                        + ", ".join(str(process.exitcode) for process in self._processes)
                    ) from None
                continue
            if event == "error":
                raise BenchError(f"client process {number} failed:\n{info}")
            if event != kind:
                raise BenchError(f"client process {number}: {event!r} while waiting for {kind!r}")
            return number, info

    async def wait_ready(self, timeout: float) -> list[Any]:
        """Waits until every process called ready(); returns what each said, in order."""
        infos: dict[int, Any] = {}
        while len(infos) < len(self._processes):
            number, info = await self._next_event("ready", timeout)
            infos[number] = info
        return [infos[number] for number in range(len(self._processes))]

    def tell(self, message: Any) -> None:
        """Sends ``message`` to every process (their control.message() returns it)."""
        for inbox in self._inboxes:
            inbox.put(message)

    async def results(self, *, timeout: float) -> list[Any]:
        """Waits for every process's result (what its target returned), in order."""
        results: dict[int, Any] = {}
        while len(results) < len(self._processes):
            number, result = await self._next_event("result", timeout)
            results[number] = result
        return [results[number] for number in range(len(self._processes))]


def split(items: list, parts: int) -> list[list]:
    """``items`` dealt into ``parts`` lists of nearly equal length."""
    return [items[number::parts] for number in range(parts)]


# -- statistics ----------------------------------------------------------------


def percentile(values: Iterable[float], p: float) -> float:
    """The p-th percentile (0 < p < 100), interpolated between samples."""
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    return statistics.quantiles(data, n=1000, method="inclusive")[round(p * 10) - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def spread(latencies: list[float]) -> str:
    """Median, p95 and max of some latencies, as the reports print them."""
    return f"median {ms(percentile(latencies, 50))}, p95 {ms(percentile(latencies, 95))}, max {ms(max(latencies))}"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def bounded(low: float, high: float, kind: type = int):
    """An argparse type: a number of ``kind`` between ``low`` and ``high``."""

    def parse(text: str):
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def counts(low: int, high: int):
    """An argparse type: comma-separated whole numbers from low to high."""

    def parse(text: str) -> list[int]:
        return [bounded(low, high)(part) for part in text.split(",")]

    return parse


def exit_status(run, report, args, results) -> int:
    """Runs a benchmark and gives its exit status: 0 when every target is
    met, 1 when one is missed, 2 when the run failed (the message says why)."""
    try:
        server = asyncio.run(run(args, results))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    return 0 if report(args, results, server) else 1
