"""What every benchmark shares: a real `atomchat serve` in a subprocess, a
latency probe in a process of its own, and the statistics they report.

A benchmark measures the server as people run it, so the server is the
installed `atomchat` command, started with default settings except the ones
the benchmark names (typically rate limits raised so that the limiter does
not hide the cost being measured). Settings inherited from the caller's
environment (``ATOMCHAT_*``, ``DATABASE_URL``) are removed so that two runs
on two machines measure the same configuration.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

from atomchat_server import config

VERSIONS_PATH = "/_matrix/client/versions"
START_TIMEOUT = 90.0  # seconds; the first start of the embedded PostgreSQL runs initdb
STOP_TIMEOUT = 30.0  # seconds; graceful shutdown plus stopping the embedded PostgreSQL


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


def default_setting(name: str) -> Any:
    """The server's default for a setting, from the same table `serve --help` uses."""
    return next(option.default for option in config.OPTIONS if option.name == name)


def argon2_defaults() -> str:
    """The password-hashing parameters a server started with defaults uses."""
    workers = default_setting("hash_workers") or os.cpu_count() or 1
    return (f"argon2id t={default_setting('argon2_time_cost')} m={default_setting('argon2_memory_kib')}KiB "
            f"p={default_setting('argon2_parallelism')}, {workers} hashing thread(s)")


def machine() -> str:
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}"


def load_average() -> str:
    """The 1-minute load average: above zero, something else shared the CPUs."""
    return f"{os.getloadavg()[0]:.2f}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clean_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items()
            if not key.startswith("ATOMCHAT_") and key != "DATABASE_URL"}


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


class ServerProcess:
    """`atomchat serve` on a free 127.0.0.1 port with a fresh temporary data
    directory, and so with a fresh embedded PostgreSQL.

    With ``database_url`` (any database on a PostgreSQL server the caller may
    create databases on) it creates a fresh database on that server for the
    run instead, and drops it afterwards. ``settings`` are server options by
    name (``rc_login_burst=1000``), passed as flags. Use as an async context
    manager; the server log is kept in ``log_path`` while it runs, and its
    last lines are shown if it fails to start."""

    def __init__(self, *, database_url: str | None = None, **settings: Any) -> None:
        self.settings = settings
        self.admin_url = database_url
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.root = Path(tempfile.mkdtemp(prefix="atomchat-bench-"))
        self.log_path = self.root / "server.log"
        self.database: str | None = None
        self.exit_status: int | None = None
        self._process: subprocess.Popen | None = None
        self._log = None

    @property
    def database_kind(self) -> str:
        return "external PostgreSQL" if self.admin_url else "embedded PostgreSQL"

    def command(self) -> list[str]:
        executable = Path(sys.executable).parent / "atomchat"
        if not executable.exists():
            raise BenchError(f"{executable} not found: install the project in this interpreter's environment "
                             "(pip install -e .)")
        args = [str(executable), "serve", "--data-dir", str(self.root / "data"),
                "--host", "127.0.0.1", "--port", str(self.port)]
        if self.database:
            args += ["--database-url", _with_database(self.admin_url, self.database)]
        for name, value in self.settings.items():
            args += ["--" + name.replace("_", "-"), str(value)]
        return args

    async def __aenter__(self) -> "ServerProcess":
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.stop()

    async def start(self) -> None:
        if self.admin_url:
            self.database = f"atomchat_bench_{secrets.token_hex(4)}"
            await self._admin(f"CREATE DATABASE {self.database}")  # generated name of [a-z0-9_] only
        self._log = open(self.log_path, "wb")
        self._process = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=_clean_environment())
        deadline = time.monotonic() + START_TIMEOUT
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while True:
                if self._process.poll() is not None:
                    raise BenchError(f"the server exited with status {self._process.returncode} at start:\n"
                                     + self.log_tail())
                try:
                    async with session.get(self.base_url + VERSIONS_PATH) as response:
                        if response.status == 200:
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise BenchError(f"the server did not answer within {START_TIMEOUT:.0f}s:\n" + self.log_tail())
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        """SIGTERM, as an operator would stop it; SIGKILL only if it hangs."""
        try:
            if self._process is not None and self._process.poll() is None:
                self._process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.get_running_loop().run_in_executor(None, self._process.wait, STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
                    raise BenchError(f"the server did not stop within {STOP_TIMEOUT:.0f}s of SIGTERM") from None
            if self._process is not None:
                self.exit_status = self._process.returncode
        finally:
            if self._log is not None:
                self._log.close()
            if self.database:
                await self._admin(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
            shutil.rmtree(self.root, ignore_errors=True)

    async def _admin(self, statement: str) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])


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
        self._process = context.Process(target=_probe_main, daemon=True,
                                        args=(base_url + path, interval, self._ready, self._stop, self._results))
        self.latencies: list[float] = []
        self.errors = 0

    async def __aenter__(self) -> "LatencyProbe":
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


# -- statistics ----------------------------------------------------------------

def percentile(values: Iterable[float], p: float) -> float:
    """The p-th percentile (0 < p < 100), interpolated between samples."""
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    return statistics.quantiles(data, n=1000, method="inclusive")[round(p * 10) - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"
