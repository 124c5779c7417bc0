"""What a server serves another of a room's history, over real HTTPS
federation: each event judged as of that event, by the history visibility
in force then and the asking server's users' membership then. /backfill and
/get_missing_events serve an event the asker may not see redacted (its place
in the room's graph, not its content); /event, /state and /state_ids refuse
it with 403 M_FORBIDDEN, but /event serves a state event redacted."""

from urllib.parse import quote

import pytest

from atomchat_server.events.room_versions import room_version
from atomchat_server.events.signing import event_id
from atomchat_server.federation.remote import RemoteError

from ..support.room_steps import register
from ..support.waiting import eventually
from .test_federation_backfill import join, rows

V1 = "/_matrix/federation/v1"
JOINED_ONLY = {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}


async def as_b(a, b, method: str, path: str, **kwargs):
    """A request of ``b`` to ``a``, signed by ``b``."""
    return await b.ctx.federation_client.request(a.name, method, V1 + path, **kwargs)


async def refused(a, b, path: str, **kwargs) -> RemoteError:
    with pytest.raises(RemoteError) as error:
        await as_b(a, b, "GET", path, **kwargs)
    return error.value


async def history_then_bob(a, b, phases):
    """A room on A where Alice says each phase's messages under its setting
    (``phases``: [(setting, [body, ...])]), then Bob of B joins and Alice
    says "after"; the last thing before Bob joins is a topic (its id is
    ``said["topic"]``). Returns (room id, body -> event id)."""
    (alice,) = await register(a.api, "alice")
    room_id = await alice.create_room(preset="public_chat")
    said = {}
    for value, bodies in phases:
        await alice.put_state(room_id, "m.room.history_visibility", {"history_visibility": value})
        for body in bodies:
            said[body] = await alice.say(room_id, body)
    said["topic"] = (await alice.put_state(room_id, "m.room.topic", {"topic": "before bob"}))["event_id"]
    (bob,) = await register(b.api, "bob")
    await join(bob, a, room_id)
    said["after"] = await alice.say(room_id, "after")
    return room_id, said


async def message_bodies(a, room_id: str, pdus) -> dict[str, str | None]:
    """event id -> body of each message among ``pdus`` (None: served redacted)."""
    stored = await rows(a.dsn, "SELECT room_version FROM rooms WHERE room_id = $1", room_id)
    version = room_version(stored[0]["room_version"])
    return {event_id(p, version): p["content"].get("body") for p in pdus if p["type"] == "m.room.message"}


async def backfilled(a, b, room_id: str, said: dict[str, str]) -> dict[str, str | None]:
    """body said -> the body /backfill serves B of it (None: redacted)."""
    answer = await as_b(a, b, "GET", f"/backfill/{quote(room_id)}", query={"v": [said["after"]], "limit": "100"})
    served = await message_bodies(a, room_id, answer["pdus"])
    return {body: served[i] for body, i in said.items() if body != "topic"}


async def missing(a, b, room_id: str, said: dict[str, str]) -> dict[str, str | None]:
    """As ``backfilled``, through /get_missing_events from the newest event back."""
    answer = await as_b(
        a,
        b,
        "POST",
        f"/get_missing_events/{quote(room_id)}",
        body={"earliest_events": [], "latest_events": [said["after"]], "limit": 100},
    )
    served = await message_bodies(a, room_id, answer["events"])
    return {body: served[i] for body, i in said.items() if body not in ("after", "topic")}


async def test_joined_hides_what_came_before_the_asking_servers_user_joined(federation_pair):
    a, b = federation_pair
    room_id, said = await history_then_bob(a, b, [("joined", ["before 1", "before 2"])])
    assert await backfilled(a, b, room_id, said) == {"before 1": None, "before 2": None, "after": "after"}
    assert await missing(a, b, room_id, said) == {"before 1": None, "before 2": None}
    hidden = await refused(a, b, f"/event/{quote(said['before 1'])}")
    assert (hidden.status, hidden.errcode) == (403, "M_FORBIDDEN")
    for path in ("/state", "/state_ids"):
        hidden = await refused(a, b, f"{path}/{quote(room_id)}", query={"event_id": said["before 2"]})
        assert (hidden.status, hidden.errcode) == (403, "M_FORBIDDEN")
    shown = await as_b(a, b, "GET", f"/event/{quote(said['after'])}")
    assert [p["content"]["body"] for p in shown["pdus"]] == ["after"]
    state = await as_b(a, b, "GET", f"/state_ids/{quote(room_id)}", query={"event_id": said["after"]})
    assert state["pdu_ids"]


async def test_shared_serves_what_came_before_the_join(federation_pair):
    a, b = federation_pair
    room_id, said = await history_then_bob(a, b, [("shared", ["before 1", "before 2"])])
    assert await backfilled(a, b, room_id, said) == {"before 1": "before 1", "before 2": "before 2", "after": "after"}
    assert await missing(a, b, room_id, said) == {"before 1": "before 1", "before 2": "before 2"}
    shown = await as_b(a, b, "GET", f"/event/{quote(said['before 1'])}")
    assert [p["content"]["body"] for p in shown["pdus"]] == ["before 1"]
    await as_b(a, b, "GET", f"/state_ids/{quote(room_id)}", query={"event_id": said["before 1"]})
    served = await as_b(a, b, "GET", f"/event/{quote(said['topic'])}")
    assert [p["content"] for p in served["pdus"]] == [{"topic": "before bob"}]


async def test_each_event_is_judged_by_the_setting_in_force_when_it_was_sent(federation_pair):
    """shared, then joined, then shared again before Bob joins: the room is
    shared now, yet what was said while it was joined-only stays hidden."""
    a, b = federation_pair
    room_id, said = await history_then_bob(
        a, b, [("shared", ["open 1"]), ("joined", ["closed 1", "closed 2"]), ("shared", ["open 2"])]
    )
    expected = {"open 1": "open 1", "closed 1": None, "closed 2": None, "open 2": "open 2"}
    assert await backfilled(a, b, room_id, said) == {**expected, "after": "after"}
    assert await missing(a, b, room_id, said) == expected
    assert (await refused(a, b, f"/event/{quote(said['closed 2'])}")).status == 403
    shown = await as_b(a, b, "GET", f"/event/{quote(said['open 1'])}")
    assert [p["content"]["body"] for p in shown["pdus"]] == ["open 1"]


async def membership_on(server, room_id: str, user, membership: str) -> bool:
    """Whether ``server`` holds ``user``'s membership of the room as ``membership``."""
    held = "SELECT 1 FROM memberships WHERE room_id = $1 AND user_id = $2 AND membership = $3"
    return bool(await rows(server.dsn, held, room_id, user.user_id, membership))


async def test_what_is_said_while_no_user_of_the_server_is_in_the_room_stays_hidden(federation_pair):
    a, b = federation_pair
    (alice,) = await register(a.api, "alice")
    room_id = await alice.create_room(preset="public_chat", initial_state=[JOINED_ONLY])
    bob, carol = await register(b.api, "bob", "carol")
    await join(bob, a, room_id)
    said = {"with bob": await alice.say(room_id, "with bob")}
    await bob.leave(room_id)
    await eventually(lambda: membership_on(a, room_id, bob, "leave"))
    said["while away"] = await alice.say(room_id, "while away")
    await join(carol, a, room_id)
    await eventually(lambda: membership_on(a, room_id, carol, "join"))
    said["after"] = await alice.say(room_id, "after")
    assert await backfilled(a, b, room_id, said) == {"with bob": "with bob", "while away": None, "after": "after"}
