"""Sync's event cache (sync/event_cache.py), in memory: each event's JSON made
once and renewed once it is too old, the bounds of what it keeps, and the
member events it answers lazy-loading clients with, as the notifier's
dispatch and the database reads leave them.

The notifier is built without a database, as in test_notifier_dispatch.py:
its dispatch step is driven directly with the rows it would have read. The
cache reads the ``clock`` fixture's time, which a test moves on.
"""

from __future__ import annotations

import json
from typing import Any, cast

from atomchat_server.clock import REAL
from atomchat_server.notifier import Notifier
from atomchat_server.storage.events import Event
from atomchat_server.supervisor import Supervisor
from atomchat_server.sync import event_cache
from atomchat_server.sync.event_cache import EventCache

ROOM, OTHER = "!room:test.local", "!other:test.local"
ALICE, BOB = "@alice:test.local", "@bob:test.local"


def event(stream: int, room_id: str = ROOM, type: str = "m.room.message", **fields: Any) -> Event:
    return Event(
        stream=stream,
        event_id=f"$e{stream}",
        room_id=room_id,
        type=type,
        state_key=fields.pop("state_key", None),
        sender=fields.pop("sender", ALICE),
        content=fields.pop("content", {"body": f"message {stream}"}),
        origin_server_ts=fields.pop("origin_server_ts", 1_000),
        depth=stream,
        prev_events=[],
        unsigned={},
        redacts=None,
        redacted_by=None,
        txn_device=fields.pop("txn_device", None),
        txn_id=fields.pop("txn_id", None),
    )


def member(stream: int, user_id: str, membership: str = "join", room_id: str = ROOM) -> Event:
    return event(
        stream, room_id, "m.room.member", state_key=user_id, sender=user_id, content={"membership": membership}
    )


def made(clock=None) -> tuple[Notifier, EventCache]:
    """A notifier (no pool or session cache: the dispatch uses neither) and
    the cache watching its dispatch."""
    notifier = Notifier("postgresql://unused", cast(Any, None), cast(Any, None), Supervisor())
    return notifier, EventCache(notifier, clock or REAL)


def dispatch(notifier: Notifier, *rows: Event) -> None:
    """What the notifier does with new events: its position moves to the
    last, then the dispatch hands them out."""
    notifier.position = max([notifier.position, *(row.stream for row in rows)])
    notifier._dispatch(list(rows), [])


# -- encodings -------------------------------------------------------------------


def test_an_event_is_encoded_as_every_reader_sees_it_without_its_transaction_id():
    _, cache = made()
    row = event(1, txn_device="PHONE", txn_id="t1")
    encoded = json.loads(cache.encoded(row))
    assert {k: v for k, v in encoded.items() if k != "unsigned"} == {
        "event_id": "$e1",
        "room_id": ROOM,
        "sender": ALICE,
        "type": "m.room.message",
        "content": {"body": "message 1"},
        "origin_server_ts": 1_000,
    }
    assert set(encoded["unsigned"]) == {"age"}


def test_an_encoding_is_made_once_and_renewed_once_it_is_too_old(clock):
    _, cache = made(clock)
    first = cache.encoded(event(1))
    # The same event again: the text made the first time, whatever the row.
    assert cache.encoded(event(1, content={"body": "other"})) is first
    clock.advance(event_cache.ENCODED_SECONDS)
    renewed = cache.encoded(event(1, content={"body": "other"}))
    assert json.loads(renewed)["content"] == {"body": "other"}


def test_at_most_encoded_events_are_kept_the_oldest_dropped_first(monkeypatch):
    _, cache = made()
    monkeypatch.setattr(event_cache, "ENCODED_EVENTS", 3)
    texts = {stream: cache.encoded(event(stream)) for stream in range(1, 5)}
    assert cache.encoded(event(4, content={"body": "other"})) is texts[4]
    assert cache.encoded(event(2, content={"body": "other"})) is texts[2]
    # The first was dropped for the fourth: made anew.
    assert json.loads(cache.encoded(event(1, content={"body": "other"})))["content"] == {"body": "other"}


# -- member events ---------------------------------------------------------------


def test_dispatched_member_events_are_known_the_newest_of_each_member():
    notifier, cache = made()
    assert cache.member_event(ROOM, BOB) is None
    dispatch(notifier, member(1, BOB), event(2), member(3, BOB, "leave"), member(4, ALICE, room_id=OTHER))
    assert cache.member_event(ROOM, BOB) == member(3, BOB, "leave")
    assert cache.member_event(OTHER, ALICE) == member(4, ALICE, room_id=OTHER)
    assert cache.member_event(ROOM, ALICE) is None  # in another room only


def test_member_events_read_from_the_database_are_kept_unless_events_were_dispatched_since():
    notifier, cache = made()
    dispatch(notifier, event(5))
    cache.remember_members([member(2, BOB)], position=4)  # read before the dispatch: may be stale
    assert cache.member_event(ROOM, BOB) is None
    cache.remember_members([member(2, BOB)], position=5)
    assert cache.member_event(ROOM, BOB) == member(2, BOB)


def test_a_member_event_read_back_never_replaces_a_newer_one_dispatched():
    notifier, cache = made()
    dispatch(notifier, member(3, BOB, "leave"))
    cache.remember_members([member(1, BOB)], position=3)
    assert cache.member_event(ROOM, BOB) == member(3, BOB, "leave")


def test_at_most_member_events_pairs_are_kept_the_least_recently_used_dropped(monkeypatch):
    notifier, cache = made()
    monkeypatch.setattr(event_cache, "MEMBER_EVENTS", 2)
    dispatch(notifier, member(1, ALICE), member(2, BOB))
    assert cache.member_event(ROOM, ALICE) is not None  # used: now the most recent
    dispatch(notifier, member(3, ALICE, room_id=OTHER))
    assert cache.member_event(ROOM, BOB) is None
    assert cache.member_event(ROOM, ALICE) == member(1, ALICE)
    assert cache.member_event(OTHER, ALICE) == member(3, ALICE, room_id=OTHER)


def test_a_failed_dispatch_forgets_every_member_event():
    notifier, cache = made()
    dispatch(notifier, member(1, BOB))
    notifier._dispatch_failed()
    assert cache.member_event(ROOM, BOB) is None


# -- answers shared within a dispatch ---------------------------------------------


def test_shared_answers_last_one_dispatch():
    notifier, cache = made()
    cache.shared_answers["key"] = "answer"
    dispatch(notifier, event(1))
    assert cache.shared_answers == {}
