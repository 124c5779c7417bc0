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

from atomchat_server.events.visibility import EARLIEST, Range, can_see, server_ranges, visible_ranges

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
