"""The pure rules of events/e2ee.py, table-tested without a server."""

from __future__ import annotations

import pytest

from atomchat_server.events.e2ee import (
    backup_replaces,
    cross_signing_problem,
    device_list_delta,
    key_algorithm,
    public_key,
)

ME, BOB, CAROL, DAN = "@me:hs", "@bob:hs", "@carol:hs", "@dan:hs"


@pytest.mark.parametrize(
    "sharing, key_changes, member_changes, my_room_members, expected",
    [
        # Keys changed: reported for room mates (and me), not for strangers.
        ({ME, BOB}, [BOB, CAROL, ME], [], [], ([BOB, ME], [])),
        # Someone joins a room of mine: changed; someone leaves and shares nothing more: left.
        ({ME, BOB}, [], [("!r", BOB, "join"), ("!r", CAROL, "leave")], [], ([BOB], [CAROL])),
        # Left one room but still shares another: nothing to say.
        ({ME, BOB}, [], [("!r", BOB, "leave")], [], ([], [])),
        # I join a room: its members are new to me; I leave one: those I share nothing with are left.
        ({ME, BOB, CAROL}, [], [("!r", ME, "join")], [BOB, CAROL, ME], ([BOB, CAROL], [])),
        ({ME, BOB}, [], [("!r", ME, "leave")], [BOB, DAN], ([BOB], [DAN])),
        # Left and came back within the range: shares again, so changed, not left.
        ({ME, BOB}, [], [("!r", BOB, "leave"), ("!r", BOB, "join")], [], ([BOB], [])),
        # An invite is no change: the invitee shares nothing yet, and never left.
        ({ME, BOB}, [], [("!r", CAROL, "invite")], [], ([], [])),
        # Banned, and kept out: left.
        ({ME}, [BOB], [("!r", BOB, "ban")], [], ([], [BOB])),
    ],
)
def test_device_list_delta(sharing, key_changes, member_changes, my_room_members, expected):
    assert device_list_delta(ME, sharing, key_changes, member_changes, my_room_members) == expected


def backup(index: int, forwarded: int = 0, verified: bool = False) -> dict:
    return {"first_message_index": index, "forwarded_count": forwarded, "is_verified": verified}


@pytest.mark.parametrize(
    "existing, new, replaces",
    [
        (None, backup(9, 9), True),
        (backup(5), backup(9, verified=True), True),  # verified beats everything
        (backup(0, verified=True), backup(0), False),
        (backup(5), backup(4), True),  # earlier first index
        (backup(4), backup(5), False),
        (backup(4, 2), backup(4, 1), True),  # fewer forwards
        (backup(4, 1), backup(4, 1), False),  # a tie keeps what is stored
    ],
)
def test_backup_replaces(existing, new, replaces):
    assert backup_replaces(existing, new) is replaces


def key(usage: str, public: str, signed_by: str | None = None, user: str = ME) -> dict:
    body = {"user_id": user, "usage": [usage], "keys": {f"ed25519:{public}": public}}
    if signed_by:
        body["signatures"] = {user: {f"ed25519:{signed_by}": "sig"}}
    return body


MASTER = key("master", "M")


@pytest.mark.parametrize(
    "key_type, uploaded, master, problem",
    [
        ("master", MASTER, None, None),
        ("self_signing", key("self_signing", "S", "M"), MASTER, None),
        ("user_signing", key("user_signing", "U", "M"), MASTER, None),
        ("master", key("master", "M", user=BOB), None, "belongs to another user"),
        ("master", key("self_signing", "M"), None, "usage"),
        ("master", {**MASTER, "keys": {}}, None, "exactly one ed25519 key"),
        ("master", {**MASTER, "keys": {"curve25519:M": "M"}}, None, "exactly one ed25519 key"),
        ("self_signing", key("self_signing", "S", "M"), None, "needs a master key"),
        ("self_signing", key("self_signing", "S"), MASTER, "signed by the master key"),
        ("user_signing", key("user_signing", "U", "X"), MASTER, "signed by the master key"),
    ],
)
def test_cross_signing_problem(key_type, uploaded, master, problem):
    found = cross_signing_problem(ME, key_type, uploaded, master)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_key_names():
    assert key_algorithm("signed_curve25519:AAAAHg") == "signed_curve25519"
    assert key_algorithm("weird") == "weird"
    assert public_key(MASTER) == "M"
