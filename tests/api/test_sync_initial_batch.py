"""Initial sync builds every joined room at once (RoomReader.whole:
a fixed number of queries, state from the rooms' current state), and an
incremental one every room the user stayed in (RoomReader.steady); this checks
both against the room-by-room build (RoomReader.joined), room for room, on rooms whose timelines
hold state changes, rejoins, relations and limited stretches, under the
history visibility settings and with the filters clients send."""

from __future__ import annotations

import random
from typing import Any

import pytest

from atomchat_server.events.filters import SyncFilter
from atomchat_server.sync.providers.rooms import RoomReader

from ..support.room_steps import register, room_of, text

FILTERS: list[dict[str, Any]] = [
    {},
    {"room": {"timeline": {"limit": 3}}},
    {"room": {"timeline": {"limit": 4}, "state": {"lazy_load_members": True}}},
    {
        "room": {
            "timeline": {"limit": 5, "types": ["m.room.message", "m.room.topic"], "not_senders": []},
            "state": {"types": ["m.room.*"], "not_types": ["m.room.power_levels"]},
        }
    },
]


def _comparable(room: dict) -> dict:
    for part in ("timeline", "state"):
        for event in room[part]["events"]:
            event.get("unsigned", {}).pop("age", None)
    return room


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_rooms_built_together_are_built_as_one_by_one(api, server, seed):
    rng = random.Random(seed)
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    rooms = []
    for visibility in ("shared", "joined", "invited", "world_readable"):
        room_id = await room_of(alice, bob, preset="trusted_private_chat")
        await alice.put_state(room_id, "m.room.history_visibility", {"history_visibility": visibility})
        rooms.append(room_id)
    carol_in: set[str] = set()
    middle = 0
    left_since_middle: set[str] = set()
    for n in range(40):
        if n == 20:
            middle = server.atomchat.ctx.notifier.committed_position
        room_id = rng.choice(rooms)
        action = rng.random()
        sender = rng.choice([alice, bob])
        if action < 0.55:
            await sender.say(room_id, f"line {n}")
        elif action < 0.7:
            await sender.put_state(room_id, "m.room.topic", {"topic": f"topic {n}"})
        elif action < 0.8:
            parent = await alice.say(room_id, f"parent {n}")
            await bob.send(
                room_id,
                {"m.relates_to": {"rel_type": "m.annotation", "event_id": parent, "key": "+"}},
                event_type="m.reaction",
            )
        elif action < 0.9:
            if room_id not in carol_in:
                await alice.invite(room_id, carol)
                await carol.join(room_id)
                carol_in.add(room_id)
            await carol.say(room_id, f"carol {n}")
        else:
            if n >= 20:
                left_since_middle.add(room_id)
            await bob.leave(room_id)
            await alice.say(room_id, f"without bob {n}")
            await alice.invite(room_id, bob)
            await bob.join(room_id)
    await bob.send(rooms[0], text("last"))

    ctx = server.atomchat.ctx
    reader_of_rooms = RoomReader(ctx.pool, ctx.sync.services)
    upto = ctx.notifier.committed_position
    for reader in (alice, bob):
        requester = await ctx.accounts.authenticate(ctx.accounts.token_claims(reader.access_token))
        for definition in FILTERS:
            sync_filter = SyncFilter.from_json(definition)
            together = await reader_of_rooms.whole(requester, rooms, upto, sync_filter)
            for room_id in rooms:
                alone = await reader_of_rooms.joined(requester, room_id, None, upto, sync_filter)
                assert _comparable(together[room_id]) == _comparable(alone), (reader.user_id, definition, room_id)
            # Rooms the reader stayed in since the middle of it all, also built together.
            stayed = [room_id for room_id in rooms if room_id not in left_since_middle or reader is alice]
            together = await reader_of_rooms.steady(requester, stayed, middle, upto, sync_filter)
            for room_id in stayed:
                alone = await reader_of_rooms.joined(requester, room_id, middle, upto, sync_filter)
                assert _comparable(together[room_id]) == _comparable(alone), (reader.user_id, definition, room_id)


class _CountingPool:
    """The server's pool, counting the queries made through it."""

    def __init__(self, pool) -> None:
        self._pool = pool
        self.queries = 0

    def __getattr__(self, name):
        found = getattr(self._pool, name)
        if name in ("fetch", "fetchrow", "fetchval", "execute", "executemany"):

            async def counted(*args, **kwargs):
                self.queries += 1
                return await found(*args, **kwargs)

            return counted
        return found


async def test_an_initial_sync_costs_as_many_queries_for_twelve_rooms_as_for_three(api, server):
    alice, bob = await register(api, "alice", "bob")
    ctx = server.atomchat.ctx
    builder = ctx.sync
    lazy = SyncFilter.from_json({"room": {"timeline": {"limit": 10}, "state": {"lazy_load_members": True}}})
    counts = []
    for rooms in (3, 12):
        while len(await alice.joined_rooms()) < rooms:
            room_id = await room_of(bob, alice)
            for n in range(12):
                await bob.say(room_id, f"message {n}")
        requester = await ctx.accounts.authenticate(ctx.accounts.token_claims(alice.access_token))
        counting = _CountingPool(builder._pool)
        original, builder._pool = builder._pool, counting
        try:
            result = await builder.sync(
                requester, since=None, upto=ctx.notifier.committed_position, sync_filter=lazy, full_state=False
            )
        finally:
            builder._pool = original
        assert result.body is not None and len(result.body["rooms"]["join"]) == rooms
        counts.append(counting.queries)
    assert counts[0] == counts[1], counts


async def test_invited_rooms_cost_as_many_queries_for_six_as_for_two(api, server):
    """The rooms a user is invited to are built together too (_invited_rooms),
    each with the stripped state an invitee is shown."""
    alice, bob = await register(api, "alice", "bob")
    ctx = server.atomchat.ctx
    builder = ctx.sync
    counts = []
    names: dict[str, str] = {}
    for rooms in (2, 6):
        while len(names) < rooms:
            room_id = await bob.create_room(name=f"room {len(names)}")
            await bob.invite(room_id, alice)
            names[room_id] = f"room {len(names)}"
        requester = await ctx.accounts.authenticate(ctx.accounts.token_claims(alice.access_token))
        counting = _CountingPool(builder._pool)
        original, builder._pool = builder._pool, counting
        try:
            result = await builder.sync(
                requester, since=None, upto=ctx.notifier.committed_position, sync_filter=SyncFilter(), full_state=False
            )
        finally:
            builder._pool = original
        assert result.body is not None
        invited = result.body["rooms"]["invite"]
        assert set(invited) == set(names)
        for room_id, room in invited.items():
            events = room["invite_state"]["events"]
            invite = events[-1]
            assert (invite["type"], invite["state_key"], invite["sender"], invite["content"]["membership"]) == (
                "m.room.member",
                alice.user_id,
                bob.user_id,
                "invite",
            )
            assert {
                "type": "m.room.name",
                "state_key": "",
                "sender": bob.user_id,
                "content": {"name": names[room_id]},
            } in events
            inviter = [e for e in events[:-1] if e["type"] == "m.room.member"]
            assert [(e["state_key"], e["content"]["membership"]) for e in inviter] == [(bob.user_id, "join")]
        counts.append(counting.queries)
    assert counts[0] == counts[1], counts


async def test_left_rooms_cost_as_many_queries_for_five_as_for_two(api, server):
    """The rooms a user left are built together too (_left_rooms): each
    timeline ends with the leave, whatever was said in the room after it."""
    alice, bob = await register(api, "alice", "bob")
    ctx = server.atomchat.ctx
    builder = ctx.sync
    with_leave = SyncFilter.from_json({"room": {"include_leave": True, "timeline": {"limit": 3}}})
    counts = []
    left: list[str] = []
    for rooms in (2, 5):
        while len(left) < rooms:
            room_id = await room_of(bob, alice)
            await alice.say(room_id, "hello")
            await alice.leave(room_id)
            await bob.say(room_id, "after alice left")
            left.append(room_id)
        requester = await ctx.accounts.authenticate(ctx.accounts.token_claims(alice.access_token))
        counting = _CountingPool(builder._pool)
        original, builder._pool = builder._pool, counting
        try:
            result = await builder.sync(
                requester, since=None, upto=ctx.notifier.committed_position, sync_filter=with_leave, full_state=False
            )
        finally:
            builder._pool = original
        assert result.body is not None
        sections = result.body["rooms"]["leave"]
        assert list(sections) == left
        for room in sections.values():
            events = room["timeline"]["events"]
            assert [(e["type"], e.get("state_key")) for e in events[-2:]] == [
                ("m.room.message", None),
                ("m.room.member", alice.user_id),
            ]
            assert events[-1]["content"]["membership"] == "leave"
            assert room["timeline"]["limited"] is True
        counts.append(counting.queries)
    assert counts[0] == counts[1], counts
