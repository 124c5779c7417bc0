"""matrix-js-sdk, what Element is built on, against a real ``atomchat serve``.

The scenarios are node tests in tests/js (run by node's own test runner,
the files in parallel, with the Node 22 and matrix-js-sdk 43 pinned in
tests/js/package.json, which ``npm ci`` in that folder installs; .ci/run
does it). Here the server is
started as the README says, on the test database, and the node tests are
run against it; their report is shown when one fails.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

from ..support.harness import child_env
from ..support.processes import Serve
from ..support.servers import truncate_all

JS_DIR = Path(__file__).resolve().parents[1] / "js"
NODE = JS_DIR / "node_modules" / ".bin" / "node"
NODE_TESTS = ("conversation.test.mjs", "push.test.mjs", "crypto.test.mjs")
TEST_TIMEOUT_MS = 60_000  # each node test
RUN_TIMEOUT = 240.0  # the whole node run
# Element registers and logs in several times from one address: rate limits
# that would refuse it are raised; hashing is cheap as in every test.
SERVER_FLAGS = (
    "--server-name",
    "js.test",
    "--argon2-time-cost",
    "1",
    "--argon2-memory-kib",
    "1024",
    "--rc-register-per-second",
    "1000",
    "--rc-register-burst",
    "1000",
    "--rc-login-per-second",
    "1000",
    "--rc-login-burst",
    "1000",
)


async def run_node_tests(base_url: str, *files: str) -> tuple[int, str]:
    assert NODE.exists(), f"{NODE} is missing: run `npm ci` in {JS_DIR} (as .ci/run does)"
    env = {**os.environ, "ATOMCHAT_URL": base_url}
    process = await asyncio.create_subprocess_exec(
        str(NODE),
        "--test",
        f"--test-timeout={TEST_TIMEOUT_MS}",
        "--test-force-exit",
        "--test-reporter=spec",
        *files,
        cwd=JS_DIR,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    except asyncio.TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        return -1, output.decode(errors="replace") + f"\n(node stopped after {RUN_TIMEOUT:.0f}s)"
    assert process.returncode is not None, "communicate() waited for it"
    return process.returncode, output.decode(errors="replace")


async def test_matrix_js_sdk(data_dir, database_dsn):
    await truncate_all(database_dsn)
    env = child_env(ATOMCHAT_SIGNING_KEY=secrets.token_hex(32))
    with Serve(data_dir, "--database-url", database_dsn, *SERVER_FLAGS, env=env) as serve:
        await serve.ready()
        status, report = await run_node_tests(serve.base_url, *NODE_TESTS)
        assert status == 0, f"node tests failed:\n{report}\n--- server log ---\n{serve.output[-20000:]}"
