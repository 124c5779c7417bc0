"""POST /search over real rooms: matching, ranking, keys, filters, paging,
context, state and groups; above all that a search finds exactly what the
caller could read with /messages (history visibility and membership
periods). And POST /user_directory/search."""

from __future__ import annotations

import pytest

from atomchat_server.services.search import FIRST_WINDOW

from ..support.client import MATRIX
from ..support.room_steps import SERVER, bodies, register, room_of
from .test_session_revocation import sql


async def search(user, term: str, *, status: int = 200, next_batch: str | None = None, **criteria):
    path = "/search" + (f"?next_batch={next_batch}" if next_batch is not None else "")
    answer = await user.call(
        "POST",
        path,
        {"search_categories": {"room_events": {"search_term": term, **criteria}}},
        status=status,
        schema="matrix/search.response",
    )
    return answer.body["search_categories"]["room_events"] if status == 200 else answer.body


def found(answer) -> list[str]:
    return [r["result"]["content"]["body"] for r in answer["results"]]


async def readable_bodies(user, room_id: str, word: str) -> set[str]:
    """The bodies of the messages holding ``word`` that /messages shows the user."""
    events, _ = await user.all_messages(room_id, limit=50, dir="b")
    return {b for b in bodies(events) if word in b.lower().split()}


async def all_found(user, term: str, **criteria) -> list[str]:
    """Every result of a search, following next_batch to the end."""
    results, token = [], None
    for _ in range(100):
        answer = await search(user, term, next_batch=token, **criteria)
        results += found(answer)
        token = answer.get("next_batch")
        if token is None:
            return results
    raise AssertionError("paging does not end")


async def test_matches_are_stemmed_ranked_and_counted(api):
    (alice,) = await register(api, "alice")
    room = await room_of(alice)
    for text in ("the quick brown fox", "lazy dogs sleep all day", "foxes are quick, fox fox fox", "nothing here"):
        await alice.say(room, text)
    answer = await search(alice, "fox")
    assert answer["count"] == 2
    assert answer["highlights"] == ["fox"]
    # The message that says it most ranks first.
    assert found(answer) == ["foxes are quick, fox fox fox", "the quick brown fox"]
    assert answer["results"][0]["rank"] > answer["results"][1]["rank"] > 0
    assert answer["results"][0]["result"]["room_id"] == room
    assert "next_batch" not in answer
    assert found(await search(alice, "fox", order_by="recent")) == [
        "foxes are quick, fox fox fox",
        "the quick brown fox",
    ]
    assert found(await search(alice, "dog")) == ["lazy dogs sleep all day"]
    # Web search syntax: phrases, OR and exclusion.
    assert found(await search(alice, '"brown fox"')) == ["the quick brown fox"]
    assert sorted(found(await search(alice, "dog or brown"))) == ["lazy dogs sleep all day", "the quick brown fox"]
    assert found(await search(alice, "quick -brown")) == ["foxes are quick, fox fox fox"]
    # Nothing to find: a word nobody used, or only stop words.
    assert (await search(alice, "giraffe")) == {"count": 0, "highlights": ["giraffe"], "results": []}
    assert (await search(alice, "the"))["results"] == []


async def test_keys_name_and_topic(api):
    (alice,) = await register(api, "alice")
    room = await room_of(alice, name="Martian colony", topic="Life on Mars")
    await alice.say(room, "greetings from the colony")
    by_type = lambda answer: sorted(r["result"]["type"] for r in answer["results"])  # noqa: E731
    assert by_type(await search(alice, "colony")) == ["m.room.message", "m.room.name"]
    assert by_type(await search(alice, "colony", keys=["content.body"])) == ["m.room.message"]
    assert by_type(await search(alice, "colony", keys=["content.name"])) == ["m.room.name"]
    assert by_type(await search(alice, "mars", keys=["content.topic", "content.name"])) == ["m.room.topic"]
    assert by_type(await search(alice, "colony", filter={"not_types": ["m.room.name"]})) == ["m.room.message"]


async def test_paging_in_both_orders(api):
    (alice,) = await register(api, "alice")
    room = await room_of(alice)
    sent = [f"apple number {n}" + " apple" * (n % 3) for n in range(23)]
    for text in sent:
        await alice.say(room, text)
    for order in ("rank", "recent"):
        first = await search(alice, "apple", order_by=order, filter={"limit": 10})
        assert first["count"] == 23 and len(first["results"]) == 10 and first["next_batch"]
        results = await all_found(alice, "apple", order_by=order, filter={"limit": 10})
        assert sorted(results) == sorted(sent)
    assert await all_found(alice, "apple", order_by="recent", filter={"limit": 7}) == sent[::-1]
    ranked = await all_found(alice, "apple", filter={"limit": 4})
    # Most apples first; within a rank, newest first.
    most = [t for t in sent[::-1] if t.count("apple") == 3]
    assert len(most) == 7 and ranked[:7] == most
    bad = await search(alice, "apple", next_batch="recent:12", status=400)
    assert bad["errcode"] == "M_INVALID_PARAM"
    await search(alice, "apple", next_batch="nonsense", status=400)


async def test_count_is_exact_for_few_matches_in_a_long_stream(api, database_dsn):
    """Stream positions are shared by every room and every kind of position
    (and aborted transactions leave gaps), so a small room's matches can sit
    in the newest window of a long stream; their count must not be
    extrapolated to the whole of it."""
    (alice,) = await register(api, "alice")
    room = await room_of(alice)
    # Positions taken elsewhere: more than the first window searched.
    await sql(database_dsn, "SELECT setval('event_stream', nextval('event_stream') + 3 * $1)", FIRST_WINDOW)
    sent = [f"pear number {n}" for n in range(23)]
    for text in sent:
        await alice.say(room, text)
    for order in ("rank", "recent"):
        token, results = None, []
        while True:
            page = await search(alice, "pear", order_by=order, next_batch=token, filter={"limit": 10})
            assert page["count"] == 23
            results += found(page)
            token = page.get("next_batch")
            if token is None:
                break
        assert sorted(results) == sorted(sent)


async def test_context_state_profiles_and_groups(api):
    alice, bob = await register(api, "alice", "bob")
    await alice.call(
        "PUT", f"/profile/{alice.user_id}/displayname", {"displayname": "Alice"}, schema="matrix/empty.response"
    )
    room = await room_of(alice, bob, name="Kitchen")
    other = await room_of(alice, name="Garden")
    for text in ("one", "two", "three", "pancake recipe", "four", "five"):
        await alice.say(room, text)
    await alice.say(other, "pancake in the garden")
    answer = await search(
        alice,
        "pancake",
        order_by="recent",
        event_context={"before_limit": 2, "after_limit": 1, "include_profile": True},
        include_state=True,
        groupings={"group_by": [{"key": "room_id"}, {"key": "sender"}]},
    )
    garden, kitchen = answer["results"]
    assert bodies(kitchen["context"]["events_before"]) == ["three", "two"]
    assert bodies(kitchen["context"]["events_after"]) == ["four"]
    assert kitchen["context"]["profile_info"] == {alice.user_id: {"displayname": "Alice"}}
    assert set(answer["state"]) == {room, other}
    names = {e["content"]["name"] for e in answer["state"][room] if e["type"] == "m.room.name"}
    assert names == {"Kitchen"}
    assert answer["groups"]["room_id"] == {
        other: {"order": 1, "results": [garden["result"]["event_id"]]},
        room: {"order": 2, "results": [kitchen["result"]["event_id"]]},
    }
    assert answer["groups"]["sender"] == {
        alice.user_id: {"order": 1, "results": [garden["result"]["event_id"], kitchen["result"]["event_id"]]}
    }
    # Context tokens paginate on from the window's edges.
    before = await alice.messages(room, dir="b", limit=1, **{"from": kitchen["context"]["start"]})
    assert bodies(before["chunk"]) == ["one"]
    # Filters on rooms and senders.
    assert found(await search(alice, "pancake", filter={"rooms": [room]})) == ["pancake recipe"]
    assert found(await search(alice, "pancake", filter={"not_rooms": [room]})) == ["pancake in the garden"]
    assert found(await search(alice, "pancake", filter={"senders": [bob.user_id]})) == []
    assert len(found(await search(alice, "pancake", filter={"not_senders": [bob.user_id]}))) == 2


# What each history visibility lets bob read of the messages below while he is back in the room.
READABLE = {
    "shared": ("before anyone", "while bob is invited", "while bob is in", "after bob left", "after bob is back"),
    "joined": ("while bob is in", "after bob is back"),
    "invited": ("while bob is invited", "while bob is in", "after bob is back"),
    "world_readable": (
        "before anyone",
        "while bob is invited",
        "while bob is in",
        "after bob left",
        "after bob is back",
    ),
}


@pytest.mark.parametrize("visibility", sorted(READABLE))
async def test_nobody_finds_what_they_could_not_read(api, visibility):
    """Bob's searches return exactly the matching messages /messages shows him,
    through an invite, a join, a leave, a rejoin and a redaction."""
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room = await room_of(alice)
    await alice.put_state(room, "m.room.history_visibility", {"history_visibility": visibility})
    await alice.say(room, "secret before anyone")
    await alice.invite(room, bob)
    await alice.say(room, "secret while bob is invited")
    await bob.join(room)
    await alice.say(room, "secret while bob is in")
    gone = await alice.say(room, "secret soon redacted")
    await alice.redact(room, gone)
    await bob.leave(room)
    await alice.say(room, "secret after bob left")
    await alice.invite(room, bob)
    await bob.join(room)
    await alice.say(room, "secret after bob is back")
    expected = await readable_bodies(bob, room, "secret")
    assert expected == {f"secret {when}" for when in READABLE[visibility]}
    assert set(await all_found(bob, "secret", filter={"limit": 2})) == expected
    assert set(await all_found(bob, "secret", order_by="recent")) == expected
    # Carol, never in the room, finds nothing, even in a world-readable one.
    assert found(await search(carol, "secret")) == []
    # Bob leaves for good: what he finds is what /messages still shows him.
    await bob.leave(room)
    await alice.say(room, "secret after bob left for good")
    expected = await readable_bodies(bob, room, "secret")
    assert set(await all_found(bob, "secret")) == expected
    assert "secret after bob left for good" not in expected or visibility == "world_readable"
    # Context never reaches beyond what he may read.
    answer = await search(bob, "secret", event_context={"before_limit": 20, "after_limit": 20})
    readable = await readable_bodies(bob, room, "secret")
    for result in answer["results"]:
        seen = bodies(result["context"]["events_before"] + result["context"]["events_after"])
        assert {b for b in seen if b.startswith("secret")} <= readable
    # Forgetting the room forgets it in search too (unless anyone may read it).
    await bob.call("POST", f"/rooms/{room}/forget", {}, schema="matrix/empty.response")
    assert (await search(bob, "secret"))["count"] == (len(expected) if visibility == "world_readable" else 0)


async def test_joined_visibility_exact_periods(api):
    alice, bob = await register(api, "alice", "bob")
    room = await room_of(alice)
    await alice.put_state(room, "m.room.history_visibility", {"history_visibility": "joined"})
    await alice.say(room, "marker one")
    await alice.invite(room, bob)
    await bob.join(room)
    await alice.say(room, "marker two")
    await bob.leave(room)
    await alice.say(room, "marker three")
    await alice.invite(room, bob)
    await bob.join(room)
    await alice.say(room, "marker four")
    assert sorted(await all_found(bob, "marker")) == ["marker four", "marker two"]


async def test_bad_search_requests(api):
    (alice,) = await register(api, "alice")
    assert (await alice.call("POST", "/search", {"search_categories": {"room_events": {}}}, status=400)).body[
        "errcode"
    ] == "M_MISSING_PARAM"
    assert (await alice.call("POST", "/search", {}, status=400)).body["errcode"] == "M_MISSING_PARAM"
    for criteria in (
        {"search_term": "x", "keys": ["content.sender"]},
        {"search_term": "x", "order_by": "best"},
        {"search_term": 5},
        {"search_term": "x", "filter": {"rooms": "!a:b"}},
        {"search_term": "x", "event_context": {"before_limit": -1}},
    ):
        answer = await alice.call("POST", "/search", {"search_categories": {"room_events": criteria}}, status=400)
        assert answer.body["errcode"] == "M_BAD_JSON"
    await api.request("POST", f"{MATRIX}/search", {"search_categories": {}}, status=401)
    # Categories not served are left out of the answer.
    answer = await alice.call("POST", "/search", {"search_categories": {}}, schema="matrix/search.response")
    assert answer.body == {"search_categories": {}}


async def user_search(user, term: str, **body):
    return (
        await user.call(
            "POST", "/user_directory/search", {"search_term": term, **body}, schema="matrix/user_directory.response"
        )
    ).body


async def test_user_directory(api):
    alice, bob, carol, dave, erin = await register(api, "alice", "bob", "carol", "dave", "erin")
    await bob.call(
        "PUT", f"/profile/{bob.user_id}/displayname", {"displayname": "Bobby Tables"}, schema="matrix/empty.response"
    )
    await room_of(alice, bob)  # shares a room with alice
    public = await carol.create_room(preset="public_chat")  # carol is in a public room
    await room_of(dave)  # dave is alone in a private room; erin is in no room
    assert await user_search(alice, "bob") == {
        "limited": False,
        "results": [{"user_id": bob.user_id, "display_name": "Bobby Tables"}],
    }
    assert await user_search(alice, "TABLES") == {
        "limited": False,
        "results": [{"user_id": bob.user_id, "display_name": "Bobby Tables"}],
    }
    assert [r["user_id"] for r in (await user_search(alice, "carol"))["results"]] == [carol.user_id]
    assert (await user_search(alice, "dave"))["results"] == []
    assert (await user_search(alice, "erin"))["results"] == []
    # Dave finds carol (public) but not bob (they share nothing).
    assert (await user_search(dave, "bob"))["results"] == []
    everyone = await user_search(alice, SERVER)
    assert {r["user_id"] for r in everyone["results"]} == {alice.user_id, bob.user_id, carol.user_id}
    limited = await user_search(alice, SERVER, limit=2)
    assert limited["limited"] is True and len(limited["results"]) == 2
    # LIKE wildcards are plain characters.
    assert (await user_search(alice, "%"))["results"] == []
    assert (await alice.call("POST", "/user_directory/search", {}, status=400)).body["errcode"] == "M_MISSING_PARAM"
    await api.request("POST", f"{MATRIX}/user_directory/search", {"search_term": "x"}, status=401)
    await carol.leave(public)
    assert (await user_search(alice, "carol"))["results"] == []


async def test_paging_through_many_windows(api, monkeypatch):
    """On a long history a search reads windows of positions newest first;
    with tiny windows, paging in either order still returns every match
    exactly once (by recency, in order), and the count is an estimate until
    the last window is read."""
    from atomchat_server.services import search as search_service

    monkeypatch.setattr(search_service, "FIRST_WINDOW", 3)
    monkeypatch.setattr(search_service, "RANK_BLOCK", 4)
    monkeypatch.setattr(search_service, "FEW_MATCHES", 0)
    alice, bob = await register(api, "alice", "bob")
    room = await room_of(alice, bob)
    other = await room_of(alice)
    sent = []
    for n in range(30):
        sent.append(f"pear number {n}" + " pear" * (n % 4))
        await alice.say(room, sent[-1])
        await alice.say(other, f"noise {n}")
    assert await all_found(bob, "pear", order_by="recent", filter={"limit": 4}) == sent[::-1]
    ranked = await all_found(bob, "pear", filter={"limit": 4})
    assert sorted(ranked) == sorted(sent)
    first = await search(bob, "pear", order_by="recent", filter={"limit": 4})
    assert first["count"] > 0 and found(first) == sent[::-1][:4]
    # Read in one window, the count is exact.
    monkeypatch.setattr(search_service, "FIRST_WINDOW", 1_000_000)
    assert (await search(bob, "pear", filter={"limit": 4}))["count"] == 30
