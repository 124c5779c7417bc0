"""``atomchat serve`` run as an operator runs it, in a child process: start-up
on a fresh data directory, request logging, the data-directory lock, graceful
shutdown on SIGTERM and SIGINT (in-flight requests finish, the embedded
PostgreSQL stops), and an external database through DATABASE_URL."""

from __future__ import annotations

import asyncio
import re
import signal
import stat

import asyncpg

from ..support.client import MATRIX
from ..support.harness import child_env, free_port, postmaster_pid, process_alive
from ..support.processes import Serve, run_atomchat


def request_lines(output: str) -> list[tuple[str, str, int]]:
    """(method, path, status) of each request log line; each must give the
    client's address first and its milliseconds last."""
    lines = re.findall(r"INFO atomchat\.http: 127\.0\.0\.1 (\S+) (\S+) (\d{3}) (\d+\.\d)ms$", output, re.M)
    return [(method, path, int(status)) for method, path, status, _ in lines]


async def test_serve_on_a_fresh_data_dir_until_sigterm(data_dir):
    # Costly hashing keeps one registration in flight long enough to send
    # SIGTERM while it runs (over a second here; the grace period is far longer).
    with Serve(
        data_dir, "--argon2-time-cost", "24", "--argon2-memory-kib", "65536", "--shutdown-grace-seconds", "30"
    ) as serve:
        await serve.ready()
        postgres = postmaster_pid(data_dir)
        assert process_alive(postgres)
        assert "database embedded" in serve.output
        assert f"web client: open {serve.api.base_url}/ in a browser" in serve.output
        assert stat.S_IMODE((data_dir / "signing.key").stat().st_mode) == 0o600

        await serve.api.request("GET", "/nowhere", status=404)

        second = run_atomchat("serve", "--data-dir", str(data_dir), "--port", str(free_port()))
        assert second.returncode == 1
        assert (
            f"atomchat: the data directory {data_dir} is in use by another `atomchat serve` (pid {serve.process.pid})"
        ) in second.stderr
        assert process_alive(postgres)

        registering = asyncio.ensure_future(serve.api.register("slowpoke"))
        # Kept: a request in flight inside another process shows nowhere to
        # poll; its password hash (the real cost) outlasts this.
        await asyncio.sleep(0.5)
        assert not registering.done()
        serve.signal(signal.SIGTERM)
        assert await serve.exited() == 0
        assert (await registering)["user_id"] == "@slowpoke:localhost"

    output = serve.output
    assert "shutting down: no new connections; waiting up to 30s for 1 request(s) in flight" in output
    assert output.rstrip().endswith("INFO atomchat: AtomChat stopped")
    assert not process_alive(postgres)
    assert request_lines(output) == [
        ("GET", "/_matrix/client/versions", 200),
        ("GET", "/nowhere", 404),
        ("POST", f"{MATRIX}/register", 200),
    ]


async def test_a_crashed_server_leaves_postgres_to_the_next_which_stops_it_on_sigint(data_dir):
    with Serve(data_dir) as crashed:
        await crashed.ready()
        postgres = postmaster_pid(data_dir)
        crashed.process.kill()
        crashed.process.wait()
        assert process_alive(postgres)

        with Serve(data_dir) as serve:
            await serve.ready()
            assert postmaster_pid(data_dir) == postgres
            serve.signal(signal.SIGINT)
            assert await serve.exited() == 0
        assert serve.output.rstrip().endswith("INFO atomchat: AtomChat stopped")
        assert not process_alive(postgres)


async def test_no_migrate_refuses_an_unmigrated_database(data_dir, scratch_dsn):
    env = child_env(DATABASE_URL=scratch_dsn)
    data = str(data_dir)
    refused = run_atomchat("serve", "--data-dir", data, "--port", str(free_port()), "--no-migrate", env=env)
    assert refused.returncode == 1
    assert "atomchat: the database lacks migrations [1" in refused.stderr
    assert "run `atomchat migrate` or start without --no-migrate" in refused.stderr

    assert run_atomchat("migrate", "--data-dir", data, env=env).returncode == 0
    listed = run_atomchat("user", "list", "--no-migrate", "--data-dir", data, env=env)
    assert (listed.returncode, listed.stdout) == (0, "")


async def test_serve_uses_the_database_url_instead_of_an_embedded_postgres(data_dir, scratch_dsn):
    with Serve(data_dir, "--server-name", "external.test", env=child_env(DATABASE_URL=scratch_dsn)) as serve:
        await serve.ready()
        assert "database external" in serve.output
        assert not (data_dir / "postgres").exists()
        await serve.api.register("remote")
        serve.signal(signal.SIGTERM)
        assert await serve.exited() == 0

    conn = await asyncpg.connect(scratch_dsn)
    try:
        assert await conn.fetchval("SELECT user_id FROM users WHERE localpart = 'remote'") == "@remote:external.test"
    finally:
        await conn.close()
