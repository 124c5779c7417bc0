"""The ``atomchat`` management commands, run as child processes: ``user
create`` / ``user list`` beside a running server (sharing its embedded
PostgreSQL) and on their own, ``migrate``, and their refusals."""

from __future__ import annotations

import re
import signal

from ..support.client import DEFAULT_PASSWORD, MATRIX
from ..support.harness import postmaster_pid, process_alive
from ..support.processes import Serve, run_atomchat


def complaint(result) -> str:
    """The message a failed command ends with (log lines may come before it)."""
    return result.stderr.splitlines()[-1]


def listed_users(output: str) -> list[tuple[str, str, str]]:
    """(number, user id, role) of each line of ``atomchat user list``; each ends with its creation time."""
    rows = [line.split("\t") for line in output.splitlines()]
    for row in rows:
        assert len(row) == 4 and re.match(r"\d{4}-\d\d-\d\dT", row[3]), row
    return [(row[0], row[1], row[2]) for row in rows]


async def test_user_commands_beside_a_running_server(data_dir):
    common = ("--data-dir", str(data_dir), "--server-name", "cli.test")
    with Serve(data_dir, "--server-name", "cli.test") as serve:
        await serve.ready()
        postgres = postmaster_pid(data_dir)

        created = run_atomchat(
            "user", "create", "Alice", "--moderator", "--password-stdin", *common, stdin=DEFAULT_PASSWORD + "\n"
        )
        assert (created.returncode, created.stdout) == (0, "created @alice:cli.test (moderator)\n"), created.stderr
        created = run_atomchat("user", "create", "bob", "--password-stdin", *common, stdin=DEFAULT_PASSWORD)
        assert (created.returncode, created.stdout) == (0, "created @bob:cli.test\n"), created.stderr

        taken = run_atomchat("user", "create", "ALICE", "--password-stdin", *common, stdin=DEFAULT_PASSWORD)
        assert (taken.returncode, complaint(taken)) == (1, "atomchat: That username is taken")
        weak = run_atomchat("user", "create", "carol", "--password-stdin", *common, stdin="password\n")
        assert weak.returncode == 1 and complaint(weak).startswith("atomchat: ") and "password" in complaint(weak)
        invalid = run_atomchat("user", "create", "no spaces", "--password-stdin", *common, stdin=DEFAULT_PASSWORD)
        assert invalid.returncode == 1 and complaint(invalid).startswith("atomchat: ")

        listing = run_atomchat("user", "list", *common)
        assert listing.returncode == 0, listing.stderr
        assert listed_users(listing.stdout) == [("1", "@alice:cli.test", "moderator"), ("2", "@bob:cli.test", "user")]

        # The commands joined the server's PostgreSQL and left it running.
        assert postmaster_pid(data_dir) == postgres and process_alive(postgres)

        login = await serve.api.login("alice")
        me = await serve.api.request(
            "GET", f"{MATRIX}/account/whoami", token=login["access_token"], schema="matrix/whoami.response"
        )
        assert me["user_id"] == "@alice:cli.test"

        serve.signal(signal.SIGTERM)
        assert await serve.exited() == 0
    assert not process_alive(postgres)


async def test_commands_without_a_server_start_and_stop_postgres(data_dir):
    pid_file = data_dir / "postgres" / "postmaster.pid"

    migrated = run_atomchat("migrate", "--data-dir", str(data_dir))
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.startswith("applied migrations: 0001")
    assert not pid_file.exists()  # PostgreSQL removes it when it shuts down cleanly

    created = run_atomchat(
        "user", "create", "dave", "--password-stdin", "--data-dir", str(data_dir), stdin=DEFAULT_PASSWORD
    )
    assert (created.returncode, created.stdout) == (0, "created @dave:localhost\n"), created.stderr
    listing = run_atomchat("user", "list", "--data-dir", str(data_dir))
    assert listed_users(listing.stdout) == [("1", "@dave:localhost", "user")]
    assert not pid_file.exists()


async def test_user_create_wants_the_password_on_stdin(data_dir):
    no_flag = run_atomchat("user", "create", "erin", "--data-dir", str(data_dir), stdin=DEFAULT_PASSWORD)
    assert (no_flag.returncode, no_flag.stderr) == (
        1,
        "atomchat: give the password on standard input with --password-stdin\n",
    )
    empty = run_atomchat("user", "create", "erin", "--password-stdin", "--data-dir", str(data_dir), stdin="\n")
    assert (empty.returncode, empty.stderr) == (1, "atomchat: the password is empty\n")
    assert not data_dir.exists()  # refused before any database was started
