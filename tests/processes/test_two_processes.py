"""Several server processes on one database, as behind a load balancer:
each LISTENs on PostgreSQL and wakes its own waiting clients, so whatever is
written through one server reaches long-polls held on another at once, in
the one global order, each event exactly once.

Most tests run a second AtomChat instance in this process (``more_servers``:
its own pool, notifier and LISTEN connection); the last one runs two real
``atomchat serve`` processes."""

import asyncio
import secrets

import pytest

from ..support.client import ApiClient
from ..support.harness import child_env
from ..support.processes import Serve
from ..support.room_steps import User, register, room_of
from ..support.servers import truncate_all
from ..support.sync_steps import (
    SyncLoop,
    assert_each_once_in_one_order,
    ephemeral,
    held_then_woken,
    long_polls_waiting_at,
    on,
    sync_until,
    timed,
    timeline,
)

SENDERS = 4
RECEIVERS = 4
MESSAGES_PER_SENDER = 25


@pytest.fixture
def second(io_loop, more_servers):
    """A client of a second server on the same database."""
    return ApiClient(io_loop.run_sync(more_servers).base_url)


async def test_a_message_through_one_server_ends_a_long_poll_on_the_other(api, second):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    for writer, reader in ((alice, on(bob, second)), (on(alice, second), bob)):
        loop = SyncLoop(reader)
        await loop.sync()
        sent: list[str] = []

        async def send(writer=writer, sent=sent):
            sent.append(await writer.say(room_id, "across"))

        answer, elapsed = await held_then_woken(loop, send)
        assert elapsed < 2, elapsed
        assert [e["event_id"] for e in timeline(answer, room_id)] == sent


async def test_an_invite_through_one_server_wakes_the_invitee_on_the_other(api, second):
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room(name="Across")
    loop = SyncLoop(on(bob, second))
    await loop.sync()
    answer, elapsed = await held_then_woken(loop, lambda: alice.invite(room_id, bob))
    assert elapsed < 2, elapsed
    assert room_id in answer["rooms"]["invite"]


async def test_a_logout_through_one_server_ends_a_long_poll_on_the_other(api, second):
    alice, bob = await register(api, "alice", "bob")
    await room_of(alice, bob)
    loop = SyncLoop(on(bob, second))
    await loop.sync()
    answer, elapsed = await held_then_woken(
        loop, lambda: bob.call("POST", "/logout", schema="matrix/empty.response"), status=401
    )
    assert elapsed < 2, elapsed
    assert answer["errcode"] == "M_UNKNOWN_TOKEN"


async def test_senders_and_receivers_on_both_servers_see_each_message_once_in_one_order(api, second):
    servers = (api, second)
    owner, *users = await register(
        api, "owner", *(f"sender{i}" for i in range(SENDERS)), *(f"receiver{i}" for i in range(RECEIVERS))
    )
    senders = [on(user, servers[i % 2]) for i, user in enumerate(users[:SENDERS])]
    receivers = [on(user, servers[i % 2]) for i, user in enumerate(users[SENDERS:])]
    room_id = await owner.create_room(preset="public_chat")
    for user in senders + receivers:
        await user.join(room_id)

    total = SENDERS * MESSAGES_PER_SENDER
    receiving = [asyncio.ensure_future(sync_until(r.api, r.access_token, room_id, total)) for r in receivers]
    await long_polls_waiting_at([server.base_url for server in servers], RECEIVERS)

    async def send_all(index: int, user: User) -> list[str]:
        return [await user.say(room_id, f"{index}-{n}") for n in range(MESSAGES_PER_SENDER)]

    sent = await asyncio.gather(*(send_all(i, u) for i, u in enumerate(senders)))
    received = await asyncio.gather(*receiving)

    reference = assert_each_once_in_one_order(sent, received, total)
    for client in servers:  # both servers' history agrees with what sync delivered
        history, _ = await on(receivers[0], client).all_messages(room_id, limit=100, dir="f")
        assert [e["event_id"] for e in history if e["type"] == "m.room.message"] == reference


async def test_typing_receipts_and_account_data_set_on_one_server_reach_the_other(api, second):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    event_id = await alice.say(room_id, "read me")
    loop = SyncLoop(on(bob, second))
    await loop.sync()

    async def start_typing():
        await alice.call(
            "PUT",
            f"/rooms/{room_id}/typing/{alice.user_id}",
            {"typing": True, "timeout": 1000},
            schema="matrix/empty.response",
        )

    answer, elapsed = await held_then_woken(loop, start_typing)
    assert elapsed < 2, elapsed
    assert [c["user_ids"] for c in ephemeral(answer, room_id, "m.typing")] == [[alice.user_id]]
    # The lapse is written by the server the notice was set on, and reaches the other too.
    answer, elapsed = await timed(loop.sync(timeout=10_000))
    assert [c["user_ids"] for c in ephemeral(answer, room_id, "m.typing")] == [[]]
    assert elapsed < 3, elapsed

    async def read():
        await alice.call("POST", f"/rooms/{room_id}/receipt/m.read/{event_id}", {}, schema="matrix/empty.response")

    answer, elapsed = await held_then_woken(loop, read)
    assert elapsed < 2, elapsed
    assert set(ephemeral(answer, room_id, "m.receipt")[0][event_id]["m.read"]) == {alice.user_id}

    async def put_settings():
        await bob.call(
            "PUT", f"/user/{bob.user_id}/account_data/org.example.settings", {"n": 1}, schema="matrix/empty.response"
        )

    answer, elapsed = await held_then_woken(loop, put_settings)
    assert elapsed < 2, elapsed
    assert answer["account_data"]["events"] == [{"type": "org.example.settings", "content": {"n": 1}}]


async def test_unread_counts_of_messages_written_by_the_other_server_are_kept_without_counting_again(api, more_servers):
    """Events another process wrote reach a long-poll with what push rules
    decided for them, so the answer's unread counts come from memory, as for
    the process's own events, and agree with a count in the database."""
    other = await more_servers()
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    loop = SyncLoop(on(bob, ApiClient(other.base_url)))
    await loop.sync()
    sync_service = other.atomchat.ctx.sync
    counted_in_database = 0
    add_counts = sync_service.add_counts

    async def counting(*args, **kwargs):
        nonlocal counted_in_database
        counted_in_database += 1
        return await add_counts(*args, **kwargs)

    sync_service.add_counts = counting
    mention = {"msgtype": "m.text", "body": "bob, look", "m.mentions": {"user_ids": [bob.user_id]}}
    seen = []
    for content in ({"msgtype": "m.text", "body": "plain"}, mention, {"msgtype": "m.text", "body": "plain again"}):
        answer, _ = await held_then_woken(loop, lambda content=content: alice.send(room_id, content))
        seen.append(answer["rooms"]["join"][room_id]["unread_notifications"])
    assert seen == [
        {"notification_count": 1, "highlight_count": 0},
        {"notification_count": 2, "highlight_count": 1},
        {"notification_count": 3, "highlight_count": 1},
    ]
    assert counted_in_database == 0
    fresh = await SyncLoop(bob).sync()  # built from the database, on the server the events were sent through
    assert fresh["rooms"]["join"][room_id]["unread_notifications"] == seen[-1]


async def test_two_atomchat_serve_processes_on_one_database(data_dir, database_dsn):
    await truncate_all(database_dsn)
    env = child_env(ATOMCHAT_SIGNING_KEY=secrets.token_hex(32))
    flags = (
        "--database-url",
        database_dsn,
        "--argon2-time-cost",
        "1",
        "--argon2-memory-kib",
        "1024",
        "--no-track-presence",
    )  # as TEST_SETTINGS: a first sync would wake the long-polls
    other_dir = data_dir.parent / "other"
    with Serve(data_dir, *flags, env=env) as first, Serve(other_dir, *flags, env=env) as second_process:
        await asyncio.gather(first.ready(), second_process.ready())
        alice, bob = await register(first.api, "alice", "bob")
        room_id = await room_of(alice, bob)
        loop = SyncLoop(on(bob, second_process.api))  # the token is good on either server
        await loop.sync()
        sent = []

        async def send():
            sent.append(await alice.say(room_id, "from the other process"))

        answer, elapsed = await held_then_woken(loop, send)
        assert elapsed < 2, elapsed
        assert [e["event_id"] for e in timeline(answer, room_id)] == sent
