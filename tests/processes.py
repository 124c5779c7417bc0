"""Runs the real ``atomchat`` command in child processes, as an operator would.

The command is the console script installed beside the interpreter running
the tests (the venv's ``bin/atomchat``). Children get a clean AtomChat
environment: nothing from the caller's ``ATOMCHAT_*`` or ``DATABASE_URL``
leaks in, so each test states every setting it relies on.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from tornado.iostream import StreamClosedError

from .client import ApiClient

_SCRIPT = Path(sys.executable).with_name("atomchat")
ATOMCHAT = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "atomchat_server.cli"]
VERSIONS = "/_matrix/client/versions"


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATOMCHAT_") and k != "DATABASE_URL"}
    env.update(extra)
    return env


def run_atomchat(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess:
    """Runs one ``atomchat`` command to its end and returns what it printed."""
    return subprocess.run([*ATOMCHAT, *args], input=stdin if stdin is not None else "", text=True,
                          capture_output=True, env=env or child_env(), timeout=timeout)


@pytest.fixture
def data_dir():
    """A data directory for ``atomchat`` (not created yet), removed after the test.

    It lies outside pytest's own temporary root on purpose: every pytest run
    that starts makes that root private to its owner again, and an embedded
    PostgreSQL running as its own user (as it does when the tests run as
    root) could then no longer reach its files."""
    root = Path(tempfile.mkdtemp(prefix="atomchat-test-data-"))
    yield root / "data"
    shutil.rmtree(root, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


class Serve:
    """An ``atomchat serve`` child process, its output kept in a file.

    Used as a context manager: on the way out a server still running gets
    SIGTERM, then SIGKILL, and an embedded PostgreSQL it left behind is
    stopped, so that no test leaves processes running whatever it asserts."""

    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None, host: str = "127.0.0.1",
                 port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.address = f"{host}:{self.port}"
        self.base_url = f"http://{self.address}"
        self.api = ApiClient(self.base_url)
        self.args = ["serve", "--data-dir", str(data_dir), "--host", host, "--port", str(self.port), *args]
        self.env = env or child_env()
        self.output_path = data_dir.parent / f"serve-{host}-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Serve:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(self.output_path, "wb") as output:
            self.process = subprocess.Popen([*ATOMCHAT, *self.args], stdin=subprocess.DEVNULL, stdout=output,
                                            stderr=subprocess.STDOUT, env=self.env)
        return self

    def __exit__(self, *exc_info) -> None:
        process = self.process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        try:
            pid = postmaster_pid(self.data_dir)
        except (FileNotFoundError, ValueError):
            return
        if process_alive(pid):
            os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown

    @property
    def output(self) -> str:
        return self.output_path.read_text()

    async def ready(self, timeout: float = 60) -> None:
        """Waits until the server answers /versions (schema-checked)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"atomchat serve exited with {self.process.returncode}:\n{self.output}")
            try:
                await self.api.request("GET", VERSIONS, schema="matrix/versions.response")
                return
            except (OSError, StreamClosedError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"atomchat serve did not answer in {timeout}s:\n{self.output}") from None
                await asyncio.sleep(0.1)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    async def exited(self, timeout: float = 30) -> int:
        """Waits for the process to end without blocking the test's loop."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"atomchat serve still runs after {timeout}s:\n{self.output}")
            await asyncio.sleep(0.05)
        return self.process.returncode
