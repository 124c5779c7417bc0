"""Runs the real ``atomchat`` command in child processes, as an operator
would, for the tests: one command to its end, or ``atomchat serve`` as a
context manager. Starting and stopping the server is tests/support/harness.py's,
which the benchmarks share."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tornado.iostream import StreamClosedError

from .client import ApiClient
from .harness import ATOMCHAT, VERSIONS_PATH, ServeProcess, child_env


def run_atomchat(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Runs one ``atomchat`` command to its end and returns what it printed."""
    return subprocess.run(
        [*ATOMCHAT, *args],
        input=stdin if stdin is not None else "",
        text=True,
        capture_output=True,
        env=env or child_env(),
        timeout=timeout,
    )


class Serve(ServeProcess):
    """An ``atomchat serve`` child process with an ``api`` client to it.

    Used as a context manager: on the way out a server still running gets
    SIGTERM, then SIGKILL, and an embedded PostgreSQL it left behind is
    stopped, so that no test leaves processes running whatever it asserts."""

    def __init__(
        self,
        data_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        super().__init__(data_dir, *args, env=env, host=host, port=port)
        self.api = ApiClient(self.base_url)

    def __enter__(self) -> Serve:
        self.launch()
        return self

    def __exit__(self, *exc_info) -> None:
        self.terminate(timeout=15)
        self.stop_leftover_postgres()

    async def ready(self, timeout: float = 60) -> None:
        """Waits until the server answers /versions (schema-checked)."""

        async def versions() -> bool:
            try:
                await self.api.request("GET", VERSIONS_PATH, schema="matrix/versions.response")
            except (OSError, StreamClosedError):
                return False
            return True

        await self.wait_ready(timeout, versions)

    def signal(self, signum: int) -> None:
        assert self.process is not None, "launch() first"
        self.process.send_signal(signum)

    async def exited(self, timeout: float = 30) -> int:
        """Waits for the process to end without blocking the test's loop."""
        return await self.wait_exit(timeout)
