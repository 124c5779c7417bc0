"""The fast path of /sync against the slow one, on randomised event sequences.

A long-poll that resumes its parked session answers from the events the
notifier dispatched, filtered in memory (sync/session.py); a request that
starts a new session builds its answer from the database (sync/builder.py).
For each kind of filter clients send (none, inline, stored by id, lazy
loading of members, one narrowing rooms, types and senders), a reader's
first device follows a seeded random sequence of sends with a long-poll,
and after every step its second device asks the database for the same
stretch (from the same token, with a filter that is equal but written
differently, so it never resumes a session): the two answers must be the
same, and the first must have been made without the database builder
whenever it could be (no limited timeline in it).
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any
from urllib.parse import quote

import pytest

from ..support.room_steps import User, another_device, register, room_of, text
from ..support.sync_steps import SyncLoop, caught_up, sync

STEPS = 12
CUSTOM_TYPES = ("org.example.note", "com.example.card")


def _spy_on_builds(server) -> list[str]:
    """The device ids for which the server built an answer from the database, in order."""
    builder = server.atomchat.ctx.sync
    original = builder.sync
    built: list[str] = []

    async def counted(requester, **kwargs: Any):
        built.append(requester.device_id)
        return await original(requester, **kwargs)

    builder.sync = counted
    return built


def _comparable(body: dict[str, Any]) -> dict[str, Any]:
    """An answer without what may differ between two correct answers: the
    age of each event (the time it was encoded) and the key counts, which
    the fast path leaves out as unchanged."""
    body = copy.deepcopy(dict(body))
    body.pop("device_one_time_keys_count", None)
    body.pop("device_unused_fallback_key_types", None)
    for section in body["rooms"].values():
        for room in section.values():
            for part in ("timeline", "state"):
                for event in room.get(part, {}).get("events", []):
                    event.get("unsigned", {}).pop("age", None)
    return body


async def _upload(user: User, definition: dict[str, Any]) -> str:
    created = await user.call(
        "POST", f"/user/{quote(user.user_id)}/filter", definition, schema="matrix/filter.response"
    )
    return created["filter_id"]


async def _act(rng: random.Random, rooms: dict[str, list[User]], step: int) -> None:
    """One to six writes, each by a random member of a random room: messages,
    notices, events of other types, state, typing notices."""
    for n in range(rng.randint(1, 6)):
        room_id = rng.choice(sorted(rooms))
        sender = rng.choice(rooms[room_id])
        kind = rng.random()
        if kind < 0.5:
            await sender.send(room_id, text(f"step {step}.{n}"))
        elif kind < 0.6:
            await sender.send(room_id, {"msgtype": "m.notice", "body": f"notice {step}.{n}"})
        elif kind < 0.75:
            await sender.send(room_id, {"body": f"custom {step}.{n}"}, event_type=rng.choice(CUSTOM_TYPES))
        elif kind < 0.85:
            await sender.put_state(room_id, "m.room.topic", {"topic": f"topic {step}.{n}"})
        else:
            await sender.call(
                "PUT",
                f"/rooms/{room_id}/typing/{quote(sender.user_id)}",
                {"typing": rng.random() < 0.6, "timeout": 30_000},
                schema="matrix/empty.response",
            )


FILTER_KINDS = ("none", "inline", "stored", "lazy", "narrow")


@pytest.mark.parametrize("kind", FILTER_KINDS)
@pytest.mark.parametrize("seed", [1, 2])
async def test_the_fast_path_answers_as_the_database_does(api, server, kind, seed):
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    phone, checker = await another_device(alice), await another_device(alice)
    # Trusted: every member may set the topic.
    first = await room_of(alice, bob, carol, preset="trusted_private_chat")
    second = await room_of(bob, alice, preset="trusted_private_chat")
    # Alice writes from her phone: neither reading device's answers carry transaction ids.
    rooms = {first: [phone, bob, carol], second: [phone, bob]}

    definitions: dict[str, Any] = {
        "none": {},
        "inline": {"room": {"timeline": {"limit": 1000}}, "presence": {"not_types": ["*"]}},
        "stored": {"room": {"timeline": {"limit": 4, "not_types": ["org.example.*"]}}},
        "lazy": {"room": {"timeline": {"limit": 5}, "state": {"lazy_load_members": True}}},
        "narrow": {
            "room": {
                "rooms": [first],
                "timeline": {
                    "limit": 6,
                    "types": ["m.room.*", "org.*"],
                    "not_senders": [carol.user_id],
                    "lazy_load_members": True,
                },
            }
        },
    }
    definition = definitions[kind]
    text_of = json.dumps(definition)
    if kind == "stored":
        # Equal filters by three ids: the reader's, and two for the checker to alternate.
        fast_filter = await _upload(alice, definition)
        slow_filters = [await _upload(alice, definition), await _upload(alice, definition)]
    else:
        # The same filter written three ways (keys compared as text: a session resumes only on the same).
        fast_filter = text_of
        slow_filters = [" " + text_of, "  " + text_of]
    reader = SyncLoop(alice, server) if kind == "none" else SyncLoop(alice, server, filter=fast_filter)
    await reader.sync()
    built = _spy_on_builds(server)
    rng = random.Random(f"{kind}-{seed}")
    fast_answers = 0
    for step in range(STEPS):
        since = reader.since
        await _act(rng, rooms, step)
        await caught_up(server)
        before = len(built)
        fast = await reader.sync(timeout=200)
        fast_built = built[before:].count(alice.device_id)
        slow = await sync(checker, since, filter=slow_filters[step % 2])
        assert built[-1] == checker.device_id  # the checker's answer came from the database
        assert fast["next_batch"] == slow["next_batch"]
        assert _comparable(fast.body) == _comparable(slow.body), f"step {step}"
        limited = any(room["timeline"]["limited"] for room in fast["rooms"]["join"].values())
        if not limited:
            assert fast_built == 0, f"step {step}: answered from the database"
            fast_answers += 1
    assert fast_answers >= STEPS // 2
