"""State resolution v2 (room versions 10, 11) and v2.1 (12) on small forks.

Each scenario builds a room's auth DAG by hand, forks it, and checks the
resolved state: who wins a conflict and why (power first, then the
power levels mainline, then timestamps and ids). The building blocks
(auth difference, conflicted subgraph, orderings) have their own tables.
"""

from __future__ import annotations

from typing import Any

import pytest

from atomchat_server.events import state_res
from atomchat_server.events.room_versions import V10, V11, V12, RoomVersion

ALICE, BOB, CAROL, ZARA = "@alice:hs", "@bob:hs", "@carol:hs", "@zara:other"
PL, JR, MEMBER, TOPIC = "m.room.power_levels", "m.room.join_rules", "m.room.member", "m.room.topic"
VERSIONS = [pytest.param(v, id=f"v{v.identifier}") for v in (V10, V11, V12)]


class Room:
    """Events by short name ("PL2" is the event "$PL2"); auth events are
    named explicitly, as a server would select them (in version 12 the
    create event is left out: the room id names it)."""

    def __init__(self, version: RoomVersion) -> None:
        self.version = version
        self.events: dict[str, dict[str, Any]] = {}
        self.room_id = "!CREATE" if version.room_id_is_create_event_id else "!room:hs"
        self._clock = 0
        create: dict[str, Any] = {"room_version": version.identifier}
        if not version.implicit_room_creator:
            create["creator"] = ALICE
        self.add("CREATE", ALICE, "m.room.create", "", create, [])
        self.add("IMA", ALICE, MEMBER, ALICE, {"membership": "join"}, ["CREATE"], prev=["CREATE"])
        self.add("IPL", ALICE, PL, "", self.levels(BOB=50), ["CREATE", "IMA"])
        self.add("IJR", ALICE, JR, "", {"join_rule": "public"}, ["CREATE", "IMA", "IPL"])
        self.add("IMB", BOB, MEMBER, BOB, {"membership": "join"}, ["CREATE", "IPL", "IJR"])
        self.add("IMC", CAROL, MEMBER, CAROL, {"membership": "join"}, ["CREATE", "IPL", "IJR"])
        self.base = ["CREATE", "IMA", "IPL", "IJR", "IMB", "IMC"]

    def levels(self, **users: int) -> dict[str, Any]:
        """Power levels where Alice is the top (in v12 as creator, unlisted)."""
        listed = {f"@{name.lower()}:hs": level for name, level in users.items()}
        if not self.version.privileged_creators:
            listed[ALICE] = 100
        return {
            "users": listed,
            "users_default": 0,
            "state_default": 50,
            "events_default": 0,
            "ban": 50,
            "kick": 50,
            "redact": 50,
            "invite": 0,
            "events": {},
        }

    def add(
        self,
        name: str,
        sender: str,
        event_type: str,
        state_key: str,
        content: dict[str, Any],
        auth: list[str],
        ts: int | None = None,
        prev: list[str] | None = None,
    ) -> str:
        self._clock += 1
        event = {
            "event_id": "$" + name,
            "room_id": self.room_id,
            "sender": sender,
            "type": event_type,
            "state_key": state_key,
            "content": content,
            "origin_server_ts": self._clock if ts is None else ts,
            "auth_events": ["$" + a for a in auth if not (a == "CREATE" and self.version.room_id_is_create_event_id)],
            "prev_events": ["$" + p for p in prev or []],
        }
        if event_type == "m.room.create" and self.version.room_id_is_create_event_id:
            del event["room_id"]
        self.events["$" + name] = event
        return name

    def state(self, *names: str) -> dict[tuple[str, str], str]:
        """The state after these events, applied in order."""
        result: dict[tuple[str, str], str] = {}
        for name in names:
            event = self.events["$" + name]
            result[(event["type"], event["state_key"])] = event["event_id"]
        return result

    def resolve(self, *branches: list[str]) -> dict[tuple[str, str], str]:
        return state_res.resolve([self.state(*branch) for branch in branches], self.events, self.version)


@pytest.mark.parametrize("version", VERSIONS)
def test_no_conflict_is_the_common_state(version):
    room = Room(version)
    assert room.resolve(room.base, room.base) == room.state(*room.base)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "alice_ts, bob_ts, winner",
    [(10, 20, "TB"), (20, 10, "TA"), (15, 15, "TB")],
    ids=["bob-later", "alice-later", "same-time-larger-id"],
)
def test_concurrent_topics_latest_wins(version, alice_ts, bob_ts, winner):
    """Topics are not power events: with the same power levels behind
    them, the later one is applied last (the event id breaks a tie)."""
    room = Room(version)
    room.add("TA", ALICE, TOPIC, "", {"topic": "a"}, ["CREATE", "IPL", "IMA"], ts=alice_ts)
    room.add("TB", BOB, TOPIC, "", {"topic": "b"}, ["CREATE", "IPL", "IMB"], ts=bob_ts)
    resolved = room.resolve(room.base + ["TA"], room.base + ["TB"])
    assert resolved[(TOPIC, "")] == "$" + winner
    assert resolved[(PL, "")] == "$IPL"


@pytest.mark.parametrize("version", VERSIONS)
def test_ban_beats_the_banned_users_concurrent_change(version):
    """Alice bans Bob while Bob sets a topic: the ban is a power event and
    is resolved first, so Bob's topic no longer passes authorization and the
    earlier topic stays, whatever the timestamps say."""
    room = Room(version)
    room.add("T0", ALICE, TOPIC, "", {"topic": "old"}, ["CREATE", "IPL", "IMA"])
    room.add("BAN", ALICE, MEMBER, BOB, {"membership": "ban"}, ["CREATE", "IPL", "IMA", "IMB"], ts=100)
    room.add("TB", BOB, TOPIC, "", {"topic": "bob's"}, ["CREATE", "IPL", "IMB"], ts=200)
    resolved = room.resolve(room.base + ["T0", "BAN"], room.base + ["T0", "TB"])
    assert resolved[(MEMBER, BOB)] == "$BAN"
    assert resolved[(TOPIC, "")] == "$T0"


@pytest.mark.parametrize("version", VERSIONS)
def test_demotion_beats_the_demoted_users_power_event(version):
    """Bob (50) closes the room while Alice (100) demotes him: the reverse
    topological power ordering takes Alice's change first (more power), so
    Bob's join rules fail against it even though they are older."""
    room = Room(version)
    room.add("PL2", ALICE, PL, "", room.levels(BOB=0), ["CREATE", "IPL", "IMA"], ts=200)
    room.add("JRB", BOB, JR, "", {"join_rule": "invite"}, ["CREATE", "IPL", "IMB"], ts=100)
    resolved = room.resolve(room.base + ["PL2"], room.base + ["JRB"])
    assert resolved[(PL, "")] == "$PL2"
    assert resolved[(JR, "")] == "$IJR"


@pytest.mark.parametrize("version", VERSIONS)
def test_join_rules_change_beats_concurrent_join(version):
    """Zara joins the public room while Alice makes it invite-only: the join
    is checked after the join rules, and fails."""
    room = Room(version)
    room.add("JR2", ALICE, JR, "", {"join_rule": "invite"}, ["CREATE", "IPL", "IMA"], ts=200)
    room.add("IMZ", ZARA, MEMBER, ZARA, {"membership": "join"}, ["CREATE", "IPL", "IJR"], ts=100)
    resolved = room.resolve(room.base + ["JR2"], room.base + ["IMZ"])
    assert resolved[(JR, "")] == "$JR2"
    assert (MEMBER, ZARA) not in resolved


@pytest.mark.parametrize("version", VERSIONS)
def test_kick_of_a_peer_fails_when_demoted_first(version):
    """Bob (50) kicks Carol while Alice demotes Bob to 0: both are power
    events; Alice's comes first, so Bob's kick is refused and Carol stays."""
    room = Room(version)
    room.add("PL2", ALICE, PL, "", room.levels(BOB=0), ["CREATE", "IPL", "IMA"], ts=300)
    room.add("KICK", BOB, MEMBER, CAROL, {"membership": "leave"}, ["CREATE", "IPL", "IMB", "IMC"], ts=100)
    resolved = room.resolve(room.base + ["PL2"], room.base + ["KICK"])
    assert resolved[(MEMBER, CAROL)] == "$IMC"
    assert resolved[(PL, "")] == "$PL2"


@pytest.mark.parametrize(
    "version, expected", [(V10, "$TNEW"), (V11, "$TNEW"), (V12, "$TOLD")], ids=["v10", "v11", "v12"]
)
def test_mainline_orders_by_power_levels_before_timestamps(version, expected):
    """A topic sent under the newer power levels is applied after one sent
    under the older ones, although its timestamp is earlier. In version 12
    the partial state starts empty and, with no conflicted power event,
    has no power levels: no mainline, so the timestamps decide."""
    room = Room(version)
    room.add("PL2", ALICE, PL, "", room.levels(BOB=50, CAROL=50), ["CREATE", "IPL", "IMA"])
    room.add("TNEW", CAROL, TOPIC, "", {"topic": "new"}, ["CREATE", "PL2", "IMC"], ts=1)
    room.add("TOLD", BOB, TOPIC, "", {"topic": "old"}, ["CREATE", "IPL", "IMB"], ts=1000)
    resolved = room.resolve(room.base + ["PL2", "TNEW"], room.base + ["PL2", "TOLD"])
    assert resolved[(TOPIC, "")] == expected


@pytest.mark.parametrize("version, expected", [(V10, "$IJR"), (V11, "$IJR"), (V12, "$JRB")], ids=["v10", "v11", "v12"])
def test_v2_1_does_not_check_conflicts_against_unconflicted_state(version, expected):
    """Both sides hold Alice's demotion of Bob, one also Bob's older change
    of the join rules (made before he knew of the demotion). Version 2
    checks Bob's change against the unconflicted state, which already
    demotes him; version 2.1 starts from an empty state, and his change
    passes on its own auth events."""
    room = Room(version)
    room.add("PL2", ALICE, PL, "", room.levels(BOB=0), ["CREATE", "IPL", "IMA"], ts=200)
    room.add("JRB", BOB, JR, "", {"join_rule": "invite"}, ["CREATE", "IPL", "IMB"], ts=100)
    resolved = room.resolve(room.base + ["PL2"], room.base + ["PL2", "JRB"])
    assert resolved[(JR, "")] == expected
    assert resolved[(PL, "")] == "$PL2"


@pytest.mark.parametrize("version", VERSIONS)
def test_unconflicted_state_is_kept_even_if_it_would_fail_now(version):
    room = Room(version)
    room.add("TA", ALICE, TOPIC, "", {"topic": "a"}, ["CREATE", "IPL", "IMA"])
    room.add("TB", BOB, TOPIC, "", {"topic": "b"}, ["CREATE", "IPL", "IMB"])
    room.add("NAME", BOB, "m.room.name", "", {"name": "n"}, ["CREATE", "IPL", "IMB"])
    resolved = room.resolve(room.base + ["NAME", "TA"], room.base + ["NAME", "TB"])
    assert resolved[("m.room.name", "")] == "$NAME"


def _graph(edges: dict[str, list[str]], **fields: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Events that only have auth edges (plus any fields given per event)."""
    return {
        name: {
            "event_id": name,
            "auth_events": parents,
            "type": "x",
            "state_key": name,
            "sender": ALICE,
            "origin_server_ts": 0,
            **fields.get(name.strip("$"), {}),
        }
        for name, parents in edges.items()
    }


GRAPH = _graph({"$A": [], "$B": ["$A"], "$C": ["$B"], "$D": ["$C"], "$E": ["$A"], "$F": ["$E"], "$G": ["$B"]})


@pytest.mark.parametrize(
    "states, difference",
    [
        ([{("x", "1"): "$D"}, {("x", "1"): "$D"}], set()),
        ([{("x", "1"): "$D"}, {("x", "1"): "$C"}], {"$D"}),
        ([{("x", "1"): "$D"}, {("x", "1"): "$F"}], {"$B", "$C", "$D", "$E", "$F"}),
        ([{("x", "1"): "$C"}, {("x", "1"): "$G"}, {("x", "1"): "$B"}], {"$C", "$G"}),
    ],
    ids=["same", "descendant", "branches", "three-states"],
)
def test_auth_difference(states, difference):
    assert state_res.auth_difference(states, GRAPH) == difference


@pytest.mark.parametrize(
    "conflicted, subgraph",
    [
        ({"$D", "$B"}, {"$B", "$C", "$D"}),
        ({"$D", "$A"}, {"$A", "$B", "$C", "$D"}),
        ({"$D", "$F"}, {"$D", "$F"}),
        ({"$D", "$G", "$A"}, {"$A", "$B", "$C", "$D", "$G"}),
        ({"$C"}, {"$C"}),
    ],
    ids=["path", "long-path", "no-path", "paths-meet", "alone"],
)
def test_conflicted_subgraph(conflicted, subgraph):
    assert state_res.conflicted_subgraph(conflicted, GRAPH) == subgraph


def test_split_states():
    one = {("a", ""): "$1", ("b", ""): "$2", ("c", ""): "$3"}
    two = {("a", ""): "$1", ("b", ""): "$4"}
    assert state_res.split_states([one, two]) == ({("a", ""): "$1"}, {"$2", "$3", "$4"})


@pytest.mark.parametrize(
    "event, power",
    [
        ({"type": PL, "state_key": ""}, True),
        ({"type": JR, "state_key": ""}, True),
        ({"type": "m.room.create", "state_key": ""}, True),
        ({"type": MEMBER, "state_key": BOB, "sender": ALICE, "content": {"membership": "ban"}}, True),
        ({"type": MEMBER, "state_key": BOB, "sender": ALICE, "content": {"membership": "leave"}}, True),
        ({"type": MEMBER, "state_key": BOB, "sender": BOB, "content": {"membership": "leave"}}, False),
        ({"type": MEMBER, "state_key": BOB, "sender": ALICE, "content": {"membership": "invite"}}, False),
        ({"type": TOPIC, "state_key": ""}, False),
        ({"type": PL}, False),
    ],
    ids=["power-levels", "join-rules", "create", "ban", "kick", "own-leave", "invite", "topic", "not-state"],
)
def test_is_power_event(event, power):
    assert state_res.is_power_event(event) is power


def test_reverse_topological_power_order_ties():
    """Parents before children; among the ready, more power first, then the
    earlier timestamp, then the smaller id."""
    room = Room(V10)
    room.add("X1", CAROL, TOPIC, "", {}, ["CREATE", "IPL", "IMC"], ts=5)  # power 0
    room.add("X2", BOB, TOPIC, "", {}, ["CREATE", "IPL", "IMB"], ts=9)  # power 50
    room.add("X3", BOB, TOPIC, "", {}, ["CREATE", "IPL", "IMB"], ts=7)  # power 50, earlier
    room.add("X4", BOB, TOPIC, "", {}, ["CREATE", "IPL", "IMB"], ts=7)  # same, larger id
    room.add("X5", ALICE, TOPIC, "", {}, ["CREATE", "IPL", "IMA", "X1"], ts=1)  # power 100, after X1
    order = state_res.reverse_topological_power_order({"$X1", "$X2", "$X3", "$X4", "$X5"}, room.events, V10)
    assert order == ["$X3", "$X4", "$X2", "$X1", "$X5"]


def test_mainline_and_its_order():
    room = Room(V10)
    room.add("PL2", ALICE, PL, "", room.levels(BOB=50), ["CREATE", "IPL", "IMA"])
    room.add("PL3", ALICE, PL, "", room.levels(BOB=50), ["CREATE", "PL2", "IMA"])
    room.add("OFF", ALICE, PL, "", room.levels(BOB=50), ["CREATE", "IPL", "IMA"])  # not on PL3's line
    room.add("M3", BOB, TOPIC, "", {}, ["PL3"], ts=1)
    room.add("M2", BOB, TOPIC, "", {}, ["PL2"], ts=1)
    room.add("M2b", BOB, TOPIC, "", {}, ["PL2"], ts=0)
    room.add("MOFF", BOB, TOPIC, "", {}, ["OFF"], ts=9)  # meets the mainline at IPL through OFF
    room.add("MNONE", BOB, TOPIC, "", {}, [], ts=50)  # never meets it
    assert state_res.mainline("$PL3", room.events) == ["$PL3", "$PL2", "$IPL"]
    assert state_res.mainline(None, room.events) == []
    order = state_res.mainline_order({"$M3", "$M2", "$M2b", "$MOFF", "$MNONE"}, "$PL3", room.events)
    assert order == ["$MNONE", "$MOFF", "$M2b", "$M2", "$M3"]
    assert state_res.mainline_order({"$M3", "$M2"}, None, room.events) == ["$M2", "$M3"]  # ts, then id


def test_iterative_auth_checks_state_takes_precedence_over_auth_events():
    room = Room(V10)
    room.add("PL2", ALICE, PL, "", room.levels(BOB=0), ["CREATE", "IPL", "IMA"])
    room.add("TB", BOB, "m.room.name", "", {"name": "b"}, ["CREATE", "IPL", "IMB"])
    base = room.state(*room.base)
    assert state_res.iterative_auth_checks(["$TB"], base, room.events, V10)[("m.room.name", "")] == "$TB"
    demoted = {**base, (PL, ""): "$PL2"}
    assert ("m.room.name", "") not in state_res.iterative_auth_checks(["$TB"], demoted, room.events, V10)
