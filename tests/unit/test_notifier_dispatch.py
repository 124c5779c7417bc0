"""The notifier's dispatch (notifier.py), in memory with fake listeners: who
is handed which committed event, who must rebuild from the database
instead, how membership moves a listener between rooms, and that one
listener or observer that fails harms nobody else.

The notifier is built without a database: the dispatch reads none, the
events are handed to it as the rows the notifier would have read. It is
driven through its dispatch step (``_dispatch``), the part between reading
new events and waking the clients; reading them needs PostgreSQL and is
covered by the end-to-end tests.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from atomchat_server.notifier import Listener, Notifier
from atomchat_server.storage.ephemeral import Wake
from atomchat_server.storage.events import Event

ROOM, OTHER = "!room:test.local", "!other:test.local"
ALICE, BOB, CAROL = "@alice:test.local", "@bob:test.local", "@carol:test.local"


class Recording(Listener):
    """A listener that keeps every hand-over, as (event ids, needs_full)."""

    def __init__(self, user_id: str, rooms=()) -> None:
        super().__init__(user_id, rooms)
        self.handed: list[tuple[list[str], bool]] = []

    def deliver(self, rows: list[Event], *, needs_full: bool) -> None:
        self.handed.append(([row.event_id for row in rows], needs_full))
        super().deliver(rows, needs_full=needs_full)


class Broken(Recording):
    """A client whose socket breaks as it is written to."""

    def deliver(self, rows: list[Event], *, needs_full: bool) -> None:
        super().deliver(rows, needs_full=needs_full)
        raise ConnectionResetError("the client went away")


def event(
    stream: int, room_id: str = ROOM, type: str = "m.room.message", *, state_key: str | None = None, **content: Any
) -> Event:
    return Event(
        stream=stream,
        event_id=f"$e{stream}",
        room_id=room_id,
        type=type,
        state_key=state_key,
        sender=ALICE,
        content=content or {"body": f"message {stream}"},
        origin_server_ts=0,
        depth=stream,
        prev_events=[],
        unsigned={},
        redacts=None,
        redacted_by=None,
        txn_device=None,
        txn_id=None,
    )


def member(stream: int, user_id: str, membership: str, room_id: str = ROOM) -> Event:
    return event(stream, room_id, "m.room.member", state_key=user_id, membership=membership)


@pytest.fixture
def notifier() -> Notifier:
    # No pool, session cache or supervisor: the dispatch uses none of them.
    return Notifier("postgresql://unused", cast(Any, None), cast(Any, None), cast(Any, None))


def listening(notifier: Notifier, *listeners: Listener) -> None:
    for listener in listeners:
        notifier.add_listener(listener)


def test_messages_reach_the_listeners_of_their_room_in_order_and_no_one_else(notifier):
    alice, bob, carol = Recording(ALICE, [ROOM]), Recording(BOB, [ROOM, OTHER]), Recording(CAROL, [OTHER])
    listening(notifier, alice, bob, carol)
    notifier._dispatch([event(1), event(2, OTHER), event(3)], [])
    assert alice.handed == [(["$e1", "$e3"], False)]
    assert bob.handed == [(["$e1", "$e2", "$e3"], False)]
    assert carol.handed == [(["$e2"], False)]
    assert [row.event_id for row in bob.pending] == ["$e1", "$e2", "$e3"] and not bob.needs_full


def test_two_listeners_of_one_user_are_each_handed_the_events(notifier):
    phone, laptop = Recording(ALICE, [ROOM]), Recording(ALICE, [ROOM])
    listening(notifier, phone, laptop)
    notifier._dispatch([event(1)], [])
    assert phone.handed == laptop.handed == [(["$e1"], False)]


def test_nothing_is_handed_to_a_listener_removed(notifier):
    alice, bob = Recording(ALICE, [ROOM]), Recording(BOB, [ROOM])
    listening(notifier, alice, bob)
    notifier.remove_listener(alice)
    notifier._dispatch([event(1), member(2, ALICE, "leave")], [])
    assert alice.handed == []
    assert bob.handed == [([], True)]


@pytest.mark.parametrize(
    "row", [member(2, CAROL, "join"), event(2, type="m.room.redaction")], ids=["member event", "redaction"]
)
def test_membership_and_redactions_make_the_rooms_listeners_rebuild(notifier, row):
    """Member counts, unread counts and what is visible change: the events
    alone would not tell the client, so it rebuilds from the database."""
    alice, elsewhere = Recording(ALICE, [ROOM]), Recording(BOB, [OTHER])
    listening(notifier, alice, elsewhere)
    notifier._dispatch([event(1), row, event(3)], [])
    assert alice.handed == [([], True)]
    assert alice.needs_full and alice.pending == []
    assert elsewhere.handed == []


def test_a_join_makes_the_users_listener_follow_the_room_and_a_leave_or_ban_ends_it(notifier):
    carol = Recording(CAROL)
    listening(notifier, carol)
    notifier._dispatch([event(1)], [])
    assert carol.handed == []
    notifier._dispatch([member(2, CAROL, "join"), event(3)], [])
    assert ROOM in carol.rooms
    assert carol.handed == [([], True)]  # its rooms changed: rebuilt, the message with it
    notifier._dispatch([event(4)], [])
    assert carol.handed[-1] == (["$e4"], False)
    for stream, membership in ((5, "leave"), (7, "ban")):
        notifier._dispatch([member(stream, CAROL, "join")], [])
        notifier._dispatch([member(stream + 1, CAROL, membership)], [])
        assert ROOM not in carol.rooms
        handed = len(carol.handed)
        notifier._dispatch([event(stream + 100)], [])
        assert len(carol.handed) == handed, f"handed a message after a {membership}"


def test_an_invite_tells_the_invitee_without_following_the_room(notifier):
    carol = Recording(CAROL)
    listening(notifier, carol)
    notifier._dispatch([member(1, CAROL, "invite"), event(2)], [])
    assert carol.handed == [([], True)]
    assert carol.rooms == set()


def test_receipts_go_to_the_rooms_listeners_and_account_data_to_the_users(notifier):
    alice, bob, carol = Recording(ALICE, [ROOM]), Recording(BOB, [ROOM]), Recording(CAROL, [OTHER])
    listening(notifier, alice, bob, carol)
    notifier._dispatch([], [Wake(room_id=ROOM, user_id=None)])  # a receipt in the room
    assert alice.handed == bob.handed == [([], True)] and carol.handed == []
    notifier._dispatch([], [Wake(room_id=None, user_id=CAROL)])  # carol's account data
    assert carol.handed == [([], True)] and len(alice.handed) == len(bob.handed) == 1


def test_too_many_events_for_one_listener_make_it_rebuild(notifier):
    alice = Recording(ALICE, [ROOM])
    listening(notifier, alice)
    notifier._dispatch([event(n) for n in range(1, Listener.MAX_PENDING + 1)], [])
    assert len(alice.pending) == Listener.MAX_PENDING and not alice.needs_full
    notifier._dispatch([event(Listener.MAX_PENDING + 1)], [])
    assert alice.needs_full and alice.pending == []


def test_a_listener_whose_delivery_fails_stops_delivery_to_nobody(notifier):
    broken, bob = Broken(ALICE, [ROOM]), Recording(BOB, [ROOM])
    listening(notifier, broken, bob)
    notifier._dispatch([event(1), event(2)], [])
    assert bob.handed == [(["$e1", "$e2"], False)]
    # The broken one rebuilds its next answer from the database instead.
    assert broken.needs_full and broken.pending == []
    notifier._dispatch([event(3)], [])
    assert bob.handed[-1] == (["$e3"], False)


def test_an_observer_that_fails_stops_delivery_to_nobody_and_one_that_names_a_user_wakes_them(notifier):
    alice, bob = Recording(ALICE, [ROOM]), Recording(BOB, [OTHER])
    listening(notifier, alice, bob)
    seen: list[str] = []

    def failing(row: Event) -> str | None:
        raise ValueError("a bad rule")

    def naming_bob(row: Event) -> str | None:
        seen.append(row.event_id)
        return BOB if row.event_id == "$e2" else None

    notifier.observers += [failing, naming_bob]
    notifier._dispatch([event(1), event(2)], [])
    assert seen == ["$e1", "$e2"]
    assert alice.handed == [(["$e1", "$e2"], False)]
    assert bob.recheck and not alice.recheck  # bob's token is checked again at once
    assert bob.handed == []


def test_set_rooms_replaces_what_a_listener_follows(notifier):
    alice = Recording(ALICE, [ROOM])
    listening(notifier, alice)
    notifier.set_rooms(alice, [OTHER])
    notifier._dispatch([event(1), event(2, OTHER)], [])
    assert alice.handed == [(["$e2"], False)]


def test_shutdown_releases_every_listener(notifier):
    alice, bob = Recording(ALICE, [ROOM]), Recording(BOB)
    listening(notifier, alice, bob)
    notifier.release_all()
    assert alice.revoked and bob.revoked


async def test_a_change_of_typers_wakes_the_rooms_listeners_only(notifier):
    alice, elsewhere = Recording(ALICE, [ROOM]), Recording(BOB, [OTHER])
    listening(notifier, alice, elsewhere)
    notifier.typing.set(ROOM, ALICE, expires_ms=2**53)
    try:
        assert alice.typing and not elsewhere.typing
        assert notifier.typing.users(ROOM) == [ALICE]
    finally:
        notifier.typing.stop()
