"""The real ``atomchat serve`` in a child process, as an operator runs it:
the one way both the tests (tests/support/processes.py) and the benchmarks
(bench/_server.py) start, wait for and stop a server process.

It needs nothing but the standard library and the installed ``atomchat``
command (no pytest, no HTTP client library), so that a benchmark imports it
as it is. The command is the console script installed beside the running
interpreter (the venv's ``bin/atomchat``). Children get a clean AtomChat
environment: nothing from the caller's ``ATOMCHAT_*`` or ``DATABASE_URL``
leaks in, so each caller states every setting it relies on.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

_SCRIPT = Path(sys.executable).with_name("atomchat")
ATOMCHAT = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "atomchat_server.cli"]
VERSIONS_PATH = "/_matrix/client/versions"


class ServerFailed(Exception):
    """The server process exited, or did not answer or stop in time; the
    message says which, with the end of its log."""


def child_env(**extra: str) -> dict[str, str]:
    """The caller's environment without AtomChat's settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATOMCHAT_") and k != "DATABASE_URL"}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_database(url: str, database: str) -> str:
    """``url`` naming another database on the same PostgreSQL server."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, PEM files in ``folder``, for
    servers that federate over loopback."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def postmaster_pid(data_dir: Path) -> int:
    """The pid of the embedded PostgreSQL running in ``data_dir``."""
    return int((data_dir / "postgres" / "postmaster.pid").read_text().split("\n", 1)[0])


async def answers(base_url: str, path: str = VERSIONS_PATH, timeout: float = 2.0) -> bool:
    """True when a GET of ``path`` is answered 200 (a connection refused or
    cut, or another status, is False)."""
    address = urlsplit(base_url)
    assert address.hostname is not None and address.port is not None, base_url
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address.hostname, address.port), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {address.netloc}\r\nConnection: close\r\n\r\n".encode())
        status_line = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        writer.close()
    return status_line.split(b" ")[1:2] == [b"200"]


class ServeProcess:
    """``atomchat serve --data-dir DATA_DIR --host HOST --port PORT ARGS``
    in a child process, its output kept in ``log_path``.

    ``launch()`` starts it, ``wait_ready()`` waits until it answers,
    ``terminate()`` stops it as an operator would (SIGTERM, SIGKILL only if
    it hangs) and ``stop_leftover_postgres()`` stops an embedded PostgreSQL
    that a killed server left behind. Subclasses may extend ``command()``."""

    def __init__(
        self,
        data_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.host = host
        self.port = port or free_port()
        self.address = f"{host}:{self.port}"
        self.base_url = f"http://{self.address}"
        self.args = list(args)
        self.env = env or child_env()
        self.log_path = log_path or data_dir.parent / f"serve-{host}-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [
            *ATOMCHAT,
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--host",
            self.host,
            "--port",
            str(self.port),
            *self.args,
        ]

    def launch(self) -> None:
        """Starts the process (without waiting for it to answer)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as output:
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, env=self.env
            )

    @property
    def pid(self) -> int:
        assert self.process is not None, "launch() first"
        return self.process.pid

    @property
    def output(self) -> str:
        """All the server has written so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.output.splitlines()[-lines:])

    async def wait_ready(self, timeout: float, probe: Callable[[], Awaitable[bool]] | None = None) -> None:
        """Waits until ``probe()`` is true (by default: the server answers
        /versions with a 200); ServerFailed if it exits first or ``timeout``
        seconds pass."""
        assert self.process is not None, "launch() first"
        probe = probe or (lambda: answers(self.base_url))
        deadline = time.monotonic() + timeout
        while not await probe():
            if self.process.poll() is not None:
                raise ServerFailed(
                    f"atomchat serve exited with status {self.process.returncode} at start:\n" + self.log_tail()
                )
            if time.monotonic() > deadline:
                raise ServerFailed(f"atomchat serve did not answer within {timeout:.0f}s:\n" + self.log_tail())
            await asyncio.sleep(0.1)

    async def wait_exit(self, timeout: float) -> int:
        """Waits for the process to end without blocking the caller's loop;
        returns its exit status, or ServerFailed after ``timeout`` seconds."""
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise ServerFailed(f"atomchat serve still runs after {timeout:.0f}s:\n" + self.log_tail())
            await asyncio.sleep(0.05)
        return self.process.returncode

    def terminate(self, timeout: float) -> bool:
        """Stops the server with SIGTERM and waits up to ``timeout`` seconds,
        then kills it. True if it stopped by itself (or had already)."""
        process = self.process
        if process is None or process.poll() is not None:
            return True
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return False

    def stop_leftover_postgres(self) -> None:
        """Stops the embedded PostgreSQL of ``data_dir`` if it still runs
        (a server killed without its shutdown leaves it running)."""
        try:
            pid = postmaster_pid(self.data_dir)
        except (FileNotFoundError, ValueError):
            return
        if process_alive(pid):
            os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
