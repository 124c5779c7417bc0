"""What a new operator meets first, run as child processes: the server name
is the database's (stored at first start, used by every later command and
server, another one refused); a moderator made beside a running server is in
the policy room at once (and one demoted leaves it); and commands run while
``atomchat serve`` is still creating its embedded database simply work."""

from __future__ import annotations

import asyncio
import signal

from ..support.client import DEFAULT_PASSWORD
from ..support.processes import Serve, run_atomchat
from ..support.room_steps import User
from .test_cli import complaint


def refusal(name: str, given: str) -> str:
    return (
        f"atomchat: this database belongs to the server name {name!r}, not {given!r} (the server name "
        f"is part of every user id and cannot change); leave out --server-name, ATOMCHAT_SERVER_NAME and "
        f"server_name in the config file to use {name!r}, or use another database"
    )


async def logged_in(serve: Serve, name: str) -> User:
    login = await serve.api.login(name)
    return User(serve.api, login["user_id"], login["access_token"], login["device_id"])


async def test_the_server_name_is_the_databases_and_moderators_join_the_policy_room_at_once(data_dir):
    data = ("--data-dir", str(data_dir))
    with Serve(data_dir, "--server-name", "chat.example.org") as serve:
        await serve.ready()
        created = run_atomchat("user", "create", "alice", "--password-stdin", *data, stdin=DEFAULT_PASSWORD)
        assert (created.returncode, created.stdout) == (0, "created @alice:chat.example.org\n"), created.stderr
        foreign = run_atomchat(
            "user", "create", "mallory", "--password-stdin", "--server-name", "localhost", *data, stdin=DEFAULT_PASSWORD
        )
        assert (foreign.returncode, complaint(foreign)) == (1, refusal("chat.example.org", "localhost"))
        assert "Traceback" not in foreign.stderr

        created = run_atomchat(
            "user", "create", "mod", "--moderator", "--password-stdin", *data, stdin=DEFAULT_PASSWORD
        )
        assert (created.returncode, created.stdout) == (0, "created @mod:chat.example.org (moderator)\n")
        mod = await logged_in(serve, "mod")
        assert mod.user_id == "@mod:chat.example.org"
        policy_rooms = await mod.joined_rooms()  # the policy room, and nothing else
        assert len(policy_rooms) == 1

        alice = await logged_in(serve, "alice")
        assert alice.user_id == "@alice:chat.example.org"
        assert await alice.joined_rooms() == []
        promoted = run_atomchat("user", "promote", "alice", *data)
        assert (promoted.returncode, promoted.stdout) == (0, "promoted @alice:chat.example.org\n"), promoted.stderr
        assert await alice.joined_rooms() == policy_rooms
        demoted = run_atomchat("user", "demote", "alice", *data)
        assert (demoted.returncode, demoted.stdout) == (0, "demoted @alice:chat.example.org\n"), demoted.stderr
        assert await alice.joined_rooms() == []
        assert await mod.joined_rooms() == policy_rooms

        serve.signal(signal.SIGTERM)
        assert await serve.exited() == 0

    # Started again without a name: the database's.
    with Serve(data_dir) as serve:
        await serve.ready()
        assert "(server name chat.example.org, database embedded)" in serve.output
        assert (await serve.api.login("alice"))["user_id"] == "@alice:chat.example.org"
        serve.signal(signal.SIGTERM)
        assert await serve.exited() == 0

    with Serve(data_dir, "--server-name", "localhost") as refused:
        assert await refused.exited() == 1
    assert refusal("chat.example.org", "localhost") in refused.output
    assert "Traceback" not in refused.output


async def test_commands_run_while_serve_creates_its_database_simply_work(data_dir):
    data = ("--data-dir", str(data_dir), "--server-name", "race.test")

    def create(name: str):
        return run_atomchat("user", "create", name, "--password-stdin", *data, stdin=DEFAULT_PASSWORD)

    with Serve(data_dir, "--server-name", "race.test") as serve:
        # Started together on a data directory that does not exist yet.
        first, second, listed = await asyncio.gather(
            asyncio.to_thread(create, "first"),
            asyncio.to_thread(create, "second"),
            asyncio.to_thread(run_atomchat, "user", "list", *data),
        )
        await serve.ready()
        for result in (first, second, listed):
            assert result.returncode == 0, result.stderr
            assert "Traceback" not in result.stderr
        assert (first.stdout, second.stdout) == ("created @first:race.test\n", "created @second:race.test\n")
        assert (await serve.api.login("second"))["user_id"] == "@second:race.test"
