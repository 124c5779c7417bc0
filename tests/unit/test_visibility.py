"""History visibility (events/visibility.py), the rule that decides which
stretches of a room's timeline a user may read: a security boundary, so every
pairing of a ``history_visibility`` setting and a membership history is
pinned here as a table, with no server and no database.

A history is the user's membership events in the room as (stream position,
membership), oldest first; the answer is inclusive stream ranges, the last
one open (None) while the user is still present.
"""

from __future__ import annotations

import pytest

from atomchat_server.events.visibility import (
    EARLIEST,
    Range,
    can_see,
    ranges_in_force,
    server_ranges,
    server_sees,
    visible_ranges,
)

NEVER: list[tuple[int, str]] = []  # no membership event at all: a stranger
INVITED = [(5, "invite")]
INVITE_REJECTED = [(5, "invite"), (8, "leave")]
INVITED_THEN_JOINED = [(5, "invite"), (10, "join")]
JOINED = [(10, "join")]
JOINED_AND_RENAMED = [(10, "join"), (15, "join")]  # a profile change is another join
LEFT = [(10, "join"), (20, "leave")]
BANNED = [(10, "join"), (20, "ban")]
KICKED_TWICE = [(10, "join"), (20, "leave"), (22, "leave")]
REJOINED = [(10, "join"), (20, "leave"), (30, "join")]
REJOINED_AND_LEFT = [(10, "join"), (20, "leave"), (30, "join"), (40, "leave")]
KNOCKED = [(5, "knock")]

HISTORIES = {
    "never": NEVER,
    "invited": INVITED,
    "invite_rejected": INVITE_REJECTED,
    "invited_then_joined": INVITED_THEN_JOINED,
    "joined": JOINED,
    "joined_and_renamed": JOINED_AND_RENAMED,
    "left": LEFT,
    "banned": BANNED,
    "kicked_twice": KICKED_TWICE,
    "rejoined": REJOINED,
    "rejoined_and_left": REJOINED_AND_LEFT,
    "knocked": KNOCKED,
}

# What each setting lets each history read. world_readable: everything, to
# anyone. shared: everything up to the end of the user's last stay (before
# joining included), nothing for one never joined. invited: from the invite
# (or join) to the leave, each stay on its own. joined: only while joined.
EXPECTED: dict[str, dict[str, list[Range]]] = {
    "world_readable": {name: [(0, None)] for name in HISTORIES},
    "shared": {
        "never": [],
        "invited": [],
        "invite_rejected": [],
        "invited_then_joined": [(0, None)],
        "joined": [(0, None)],
        "joined_and_renamed": [(0, None)],
        "left": [(0, 20)],
        "banned": [(0, 20)],
        "kicked_twice": [(0, 20)],
        "rejoined": [(0, None)],
        "rejoined_and_left": [(0, 40)],
        "knocked": [],
    },
    "invited": {
        "never": [],
        "invited": [(5, None)],
        "invite_rejected": [(5, 8)],
        "invited_then_joined": [(5, None)],
        "joined": [(10, None)],
        "joined_and_renamed": [(10, None)],
        "left": [(10, 20)],
        "banned": [(10, 20)],
        "kicked_twice": [(10, 20)],
        "rejoined": [(10, 20), (30, None)],
        "rejoined_and_left": [(10, 20), (30, 40)],
        "knocked": [],
    },
    "joined": {
        "never": [],
        "invited": [],
        "invite_rejected": [],
        "invited_then_joined": [(10, None)],
        "joined": [(10, None)],
        "joined_and_renamed": [(10, None)],
        "left": [(10, 20)],
        "banned": [(10, 20)],
        "kicked_twice": [(10, 20)],
        "rejoined": [(10, 20), (30, None)],
        "rejoined_and_left": [(10, 20), (30, 40)],
        "knocked": [],
    },
}

CASES = [(setting, name, ranges) for setting, table in EXPECTED.items() for name, ranges in table.items()]


def test_the_table_covers_every_setting_and_history():
    assert all(set(table) == set(HISTORIES) for table in EXPECTED.values())


@pytest.mark.parametrize(("setting", "history", "expected"), CASES)
def test_visible_ranges(setting, history, expected):
    assert visible_ranges(HISTORIES[history], setting) == expected


@pytest.mark.parametrize("history", list(HISTORIES))
def test_an_unknown_setting_reads_as_shared(history):
    """The spec's default is "shared"; a value the server does not know must
    not open the room wider than that."""
    assert visible_ranges(HISTORIES[history], "made_up") == EXPECTED["shared"][history]
    assert visible_ranges(HISTORIES[history], "") == EXPECTED["shared"][history]


@pytest.mark.parametrize("setting", ["shared", "invited", "joined", "made_up"])
@pytest.mark.parametrize("history", list(HISTORIES))
def test_a_forgotten_room_shows_nothing_unless_world_readable(setting, history):
    assert visible_ranges(HISTORIES[history], setting, forgotten=True) == []
    assert visible_ranges(HISTORIES[history], "world_readable", forgotten=True) == [(0, None)]


# Each stream position of a room's timeline from 0 to 45 that the user may
# read, per setting, for one who joined at 10, left at 20, came back at 30 and
# left for good at 40: the membership events that open and close a stay are
# read; what happened while away is read only under "shared".
TIMELINE = range(46)
STAYS = set(range(10, 21)) | set(range(30, 41))
SEEN_BY_REJOINED_AND_LEFT = {
    "world_readable": set(TIMELINE),
    "shared": set(range(0, 41)),
    "invited": STAYS,
    "joined": STAYS,
}


@pytest.mark.parametrize(("setting", "seen"), SEEN_BY_REJOINED_AND_LEFT.items())
def test_which_events_of_a_timeline_a_user_sees(setting, seen):
    ranges = visible_ranges(REJOINED_AND_LEFT, setting)
    assert {stream for stream in TIMELINE if can_see(ranges, stream)} == seen


@pytest.mark.parametrize(
    ("ranges", "stream", "seen"),
    [
        ([], 0, False),
        ([(10, 20)], 9, False),
        ([(10, 20)], 10, True),
        ([(10, 20)], 20, True),
        ([(10, 20)], 21, False),
        ([(10, 20), (30, None)], 25, False),
        ([(10, 20), (30, None)], 30, True),
        ([(10, 20), (30, None)], 10**12, True),
        ([(0, None)], 0, True),
    ],
)
def test_can_see(ranges, stream, seen):
    assert can_see(ranges, stream) is seen


# Backfilled history lies at negative positions, before the room's first
# event here. History reads open "from the start" ranges at EARLIEST, so they
# reach it; sync keeps the default floor of 0, so backfilled events are never news.
@pytest.mark.parametrize(("setting", "history", "expected"), CASES)
def test_history_reads_reach_backfilled_events_where_the_setting_opens_the_past(setting, history, expected):
    deeper = [(EARLIEST if lo == 0 else lo, hi) for lo, hi in expected]
    assert visible_ranges(HISTORIES[history], setting, floor=EARLIEST) == deeper


def test_sync_never_opens_a_range_below_zero_even_for_a_backfilled_membership():
    old_stay = [(-50, "join"), (-20, "leave"), (10, "join")]
    assert visible_ranges(old_stay, "joined") == [(10, None)]
    assert visible_ranges(old_stay, "joined", floor=EARLIEST) == [(-50, -20), (10, None)]
    assert visible_ranges([(-50, "join"), (-20, "leave")], "shared") == []
    assert visible_ranges([(-50, "join"), (-20, "leave")], "shared", floor=EARLIEST) == [(EARLIEST, -20)]


def test_a_server_sees_what_any_of_its_users_may():
    assert server_ranges([], "shared") == []
    assert server_ranges([JOINED, LEFT], "joined") == [(10, None), (10, 20)]
    assert can_see(server_ranges([INVITED, REJOINED], "joined"), 25) is False
    assert can_see(server_ranges([INVITED, REJOINED], "invited"), 7) is True
    assert server_ranges([LEFT], "shared") == [(EARLIEST, 20)]
    assert server_ranges([], "world_readable") == []


# What another server sees, event by event, as of each event: the setting in
# force then (its changes as (stream, depth, setting, outlier)) and its
# users' membership then. Positions double as depths unless a test says not.
# The first setting is made at 1: 0 and the change itself, before any
# setting, are "shared" (the default), so the tables start at 2.
AFTER_SETTING = range(2, 46)


def seen_by_server(changes, histories, streams=AFTER_SETTING):
    answers = server_sees([(s, s) for s in streams], changes, histories)
    return {s for s, seen in zip(streams, answers, strict=True) if seen}


def test_a_server_whose_user_joined_later_sees_nothing_before_under_joined():
    changes = [(1, 1, "joined", False)]
    assert seen_by_server(changes, [[(30, "join")]]) == set(range(30, 46))
    # Its own join is seen (the membership after it allows it), not what came before.
    assert 29 not in seen_by_server(changes, [[(30, "join")]])


def test_shared_lets_a_server_whose_user_joined_later_see_the_past_but_not_past_a_leave():
    assert seen_by_server([(1, 1, "shared", False)], [[(30, "join")]]) == set(AFTER_SETTING)
    assert seen_by_server([(1, 1, "shared", False)], [REJOINED_AND_LEFT]) == set(range(2, 41))
    assert seen_by_server([], [[(30, "join")]]) == set(AFTER_SETTING), "no setting reads as shared"
    assert seen_by_server([(1, 1, "joined", False)], [[(30, "join")]], range(2)) == {0, 1}


def test_the_setting_in_force_at_each_event_decides_not_the_current_one():
    # shared until 10, joined from 10 to 25, shared again from 25; the user joined at 30.
    changes = [(1, 1, "shared", False), (10, 10, "joined", False), (25, 25, "shared", False)]
    seen = seen_by_server(changes, [[(30, "join")]])
    assert seen == set(range(2, 11)) | set(range(25, 46))
    # Each change is seen when the setting before or after it allows it.
    assert {10, 25} <= seen
    # The reverse: joined, then shared from 20; the current setting (shared) opens nothing earlier.
    changes = [(1, 1, "joined", False), (20, 20, "shared", False)]
    assert seen_by_server(changes, [[(30, "join")]]) == set(range(20, 46))


def test_invited_counts_from_the_invite_and_world_readable_opens_all():
    assert seen_by_server([(1, 1, "invited", False)], [[(20, "invite"), (30, "join")]]) == set(range(20, 46))
    assert seen_by_server([(1, 1, "world_readable", False)], [[(30, "join")]]) == set(AFTER_SETTING)
    assert seen_by_server([(1, 1, "joined", False), (5, 5, "world_readable", False)], [[(30, "join")]]) == set(
        range(5, 46)
    )


def test_any_user_of_the_server_suffices():
    changes = [(1, 1, "joined", False)]
    assert seen_by_server(changes, [[(10, "join"), (20, "leave")], [(30, "join")]]) == set(range(10, 21)) | set(
        range(30, 46)
    )
    assert seen_by_server(changes, []) == set()
    # Stays that overlap read as one.
    overlapping = [[(10, "join"), (30, "leave")], [(20, "join"), (25, "leave")], [(28, "join")]]
    assert seen_by_server(changes, overlapping) == set(range(10, 46))


def test_an_outlier_setting_counts_by_its_depth():
    """The state taken in on joining sits at the join's position until
    backfill places it; events held before that position but deeper than it
    were sent under it."""
    joined_at_join = [(40, 3, "joined", True)]
    events = [(-20, 10), (-10, 20), (41, 41)]  # backfilled (depths 10, 20), then new
    assert server_sees(events, joined_at_join, [[(40, "join")]]) == [False, False, True]
    assert server_sees([(-30, 2)], joined_at_join, [[(40, "join")]]) == [True], "older than the setting: shared"
    # A placed change deeper than the outlier's stands later in the room.
    changes = [(-15, 15, "shared", False), (40, 3, "joined", True)]
    assert server_sees(events, changes, [[(40, "join")]]) == [False, True, True]


# -- the setting in force at each event (ranges_in_force) ----------------------


@pytest.mark.parametrize("setting", ["shared", "joined", "invited", "world_readable"])
def test_one_setting_governs_the_whole_history_as_before(setting):
    for history in (NEVER, INVITED_THEN_JOINED, [(10, "join"), (20, "leave")]):
        assert ranges_in_force(history, [(3, setting)]) == visible_ranges(history, setting)
        assert ranges_in_force(history, [(3, setting)], floor=EARLIEST) == visible_ranges(
            history, setting, floor=EARLIEST
        )


def test_no_setting_at_all_is_shared():
    assert ranges_in_force([(10, "join")], []) == visible_ranges([(10, "join")], "shared") == [(0, None)]


def test_joined_then_shared_hides_what_was_said_under_joined_from_a_later_member():
    # joined from 3, shared from 8 (the change at 8 seen), bob joins at 12.
    assert ranges_in_force([(12, "join")], [(3, "joined"), (8, "shared")]) == [(8, None)]
    # Someone there from 5 reads it all since.
    assert ranges_in_force([(5, "join")], [(3, "joined"), (8, "shared")]) == [(5, None)]


def test_shared_then_joined_keeps_the_shared_past_and_hides_the_rest_until_the_join():
    # The change to "joined" at 8 is seen (the setting before it allowed it).
    assert ranges_in_force([(12, "join")], [(3, "shared"), (8, "joined")]) == [(0, 8), (12, None)]


def test_a_change_is_seen_under_the_setting_after_it():
    # bob joined at 5 and left at 6; the change to world_readable at 9 opens everything from 9.
    assert ranges_in_force([(5, "join"), (6, "leave")], [(3, "joined"), (9, "world_readable")]) == [
        (5, 6),
        (9, None),
    ]


def test_a_forgotten_room_shows_only_its_world_readable_stretches():
    history = [(5, "join"), (6, "leave")]
    assert ranges_in_force(history, [(3, "shared"), (9, "world_readable")], forgotten=True) == [(9, None)]
    assert ranges_in_force(history, [(3, "shared"), (9, "joined")], forgotten=True) == []
