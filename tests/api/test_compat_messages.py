"""Messages on the original API: a room's messages oldest first (streamed
whole, or paged with ?limit&before and a Link header), posting as the
caller, who may read and post (members and moderators), a long room paged
and streamed, and one-to-one messages in the one private room of each pair.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from ..support.compat_client import NOT_ALLOWED, TIMESTAMP, CompatClient, Person, people, promote, texts

REQUIRED = ["This field is required."]


@pytest.fixture
def compat(server):
    return CompatClient(server.base_url)


def following(answer) -> str:
    """The next page's path and query, which the answer must link to."""
    link = next_link(answer)
    assert link is not None, "no next page"
    return link


def next_link(answer) -> str | None:
    """The path and query of the Link header's rel="next", if there is one."""
    header = answer.headers.get("Link")
    if header is None:
        return None
    match = re.fullmatch(r'<([^>]+)>; rel="next"', header)
    assert match, header
    return match.group(1)


async def all_pages(someone: Person, number: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Every message, walking the pages from the newest back by the Link
    header; each page is oldest first. Also the number of pages."""
    pages: list[list[dict[str, Any]]] = []
    answer = await someone.messages(number, limit=limit)
    while True:
        assert 1 <= len(answer.body) <= limit or (not pages and not answer.body)
        pages.append(answer.body)
        link = next_link(answer)
        if link is None:
            break
        assert link.startswith(f"/api/rooms/{number}/messages/?")
        query: dict[str, Any] = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
        assert set(query) == {"limit", "before"} and query["limit"] == str(limit)
        assert len(answer.body) == limit  # only a full page has older ones before it
        answer = await someone.messages(number, **query)
        assert len(pages) < 10_000
    return [m for page in reversed(pages) for m in page], len(pages)


# -- a room's messages ---------------------------------------------------------------------


async def test_messages_are_listed_oldest_first_with_their_authors(compat):
    alice, bob = await people(compat, "alice", "bob")
    room = await alice.create_room("Tea", [bob.id])
    assert (await alice.messages(room["id"])).body == []
    posted = []
    for author, text in ((alice, "hello"), (bob, "hi alice"), (alice, "tea?"), (bob, "  yes  "), (bob, "é ☕ \n x")):
        answer = await author.post(room["id"], text)
        assert answer.body["text"] == text and answer.body["author"] == author.id
        assert TIMESTAMP.match(answer.body["created_at"])
        posted.append(answer.body)
    assert [m["created_at"] for m in posted] == sorted(m["created_at"] for m in posted)
    for reader in (alice, bob):
        assert (await reader.messages(room["id"])).body == posted
    # Without the trailing slash, too.
    answer = await alice.call("GET", f"/api/rooms/{room['id']}/messages", schema="api/messages.response")
    assert answer.body == posted


async def test_the_author_is_always_the_caller(compat):
    alice, bob = await people(compat, "alice", "bob")
    room = await alice.create_room("Tea", [bob.id])
    answer = await alice.call(
        "POST",
        f"/api/rooms/{room['id']}/messages/",
        {"text": "from bob?", "author": bob.id, "created_at": "2001-01-01T00:00:00.000000Z", "room": 999},
        status=201,
        schema="api/message.response",
    )
    assert answer["author"] == alice.id and not answer["created_at"].startswith("2001")
    assert (await bob.messages(room["id"])).body == [answer.body]


async def test_blank_or_missing_text_is_refused(compat):
    alice = (await people(compat, "alice"))[0]
    room = await alice.create_room("Tea")
    for body, errors in (
        ({}, REQUIRED),
        ({"text": ""}, ["This field may not be blank."]),
        ({"text": " \n\t"}, ["This field may not be blank."]),
        ({"text": None}, ["This field may not be null."]),
        ({"text": ["hi"]}, ["Not a valid string."]),
    ):
        answer = await alice.call("POST", f"/api/rooms/{room['id']}/messages/", body, status=400)
        assert answer.body == {"text": errors}, body
    assert (await alice.messages(room["id"])).body == []


async def test_members_and_moderators_read_and_post_others_are_refused(compat, server):
    mod, alice, bob, eve = await people(compat, "mod", "alice", "bob", "eve")
    await promote(server, mod)
    room = await alice.create_room("Tea", [bob.id])
    number = room["id"]
    await alice.post(number, "members only")
    assert (await eve.messages(number, status=403)).body == {"detail": NOT_ALLOWED}
    assert (await eve.post(number, "let me in", status=403)).body == {"detail": NOT_ALLOWED}
    # A moderator reads and posts without joining.
    assert texts((await mod.messages(number)).body) == ["members only"]
    assert (await mod.post(number, "moderator here")).body["author"] == mod.id
    assert (await alice.room(number)).body["users"] == [alice.id, bob.id]
    assert texts((await bob.messages(number)).body) == ["members only", "moderator here"]
    # Someone who left can no longer read.
    await bob.update_room(number, {"users": [alice.id]})
    await bob.messages(number, status=403)
    await bob.post(number, "back?", status=403)


async def test_pages_come_newest_first_each_oldest_first_with_a_link_to_older(compat):
    alice = (await people(compat, "alice"))[0]
    room = await alice.create_room("Tea")
    number = room["id"]
    posted = [(await alice.post(number, f"m{i}")).body for i in range(7)]
    page = await alice.messages(number, limit=3)
    assert page.body == posted[4:]
    older = await alice.call("GET", following(page), schema="api/messages.response")
    assert older.body == posted[1:4]
    oldest = await alice.call("GET", following(older), schema="api/messages.response")
    assert oldest.body == posted[:1] and next_link(oldest) is None
    # A page that ends exactly at the first message has no link either.
    assert next_link(await alice.messages(number, limit=7)) is None
    assert (await alice.messages(number, limit=1000)).body == posted
    # The whole list has no Link header; before alone is everything older.
    whole = await alice.messages(number)
    assert whole.body == posted and next_link(whole) is None
    before = parse_qs(urlsplit(following(page)).query)["before"][0]
    assert (await alice.messages(number, before=before)).body == posted[:4]
    assert (await alice.messages(number, before=before, limit=2)).body == posted[2:4]
    # A cursor does not care what came after it.
    new = (await alice.post(number, "newer")).body
    assert (await alice.messages(number, before=before, limit=2)).body == posted[2:4]
    assert (await alice.messages(number, limit=1)).body == [new]
    assert (await alice.messages(number, limit=5, before="m1")).body == []


async def test_bad_paging_parameters_are_400_per_parameter(compat):
    alice = (await people(compat, "alice"))[0]
    room = await alice.create_room("Tea")
    await alice.post(room["id"], "one")
    bad_limit = {"limit": ["Ensure this value is an integer between 1 and 1000."]}
    for limit in ("0", "1001", "-1", "abc", "", "1.5", "①", "99999999999999999999"):
        assert (await alice.messages(room["id"], limit=limit, status=400)).body == bad_limit, limit
    for before in ("abc", "", "12", "m", "m-1", "m①", "m99999999999999999999"):
        answer = await alice.messages(room["id"], limit=5, before=before, status=400)
        assert answer.body == {"before": ["Invalid cursor."]}, before


async def test_a_long_room_paged_equals_it_streamed(compat, api, server):
    """1,200 messages sent quickly by four senders on the Matrix API, with
    state changes among them: the streamed list and the pages walked back by
    the Link header hold the same messages in the same order, that of the
    room's timeline, each once."""
    people_ = await people(compat, "alice", "bob", "carol", "dave")
    alice = people_[0]
    room = await alice.create_room("Long", [p.id for p in people_[1:]])
    number = room["id"]
    senders = [p.on_matrix(api) for p in people_]
    room_id = (await senders[0].joined_rooms())[0]
    per_sender = 300

    async def send_all(index: int) -> None:
        for i in range(per_sender):
            await senders[index].say(room_id, f"{index}:{i}")
            if index == 0 and i % 100 == 50:  # not messages: never listed
                await senders[0].put_state(room_id, "m.room.topic", {"topic": f"t{i}"})

    await asyncio.gather(*(send_all(i) for i in range(len(senders))))

    whole = await alice.messages(number)
    assert "Content-Length" not in whole.headers  # streamed as it is read, not built whole
    streamed = whole.body
    assert len(streamed) == per_sender * len(senders)
    assert len({m["text"] for m in streamed}) == len(streamed)  # each once
    for index, sender in enumerate(people_):  # each sender's messages in the order sent, with its author
        mine = [m for m in streamed if m["text"].startswith(f"{index}:")]
        assert texts(mine) == [f"{index}:{i}" for i in range(per_sender)]
        assert {m["author"] for m in mine} == {sender.id}
    assert [m["created_at"] for m in streamed] == sorted(m["created_at"] for m in streamed)
    # The order is the room's timeline order, as Matrix /messages shows it.
    events, _ = await senders[1].all_messages(room_id, limit=1000, dir="f", filter={"types": ["m.room.message"]})
    assert texts(streamed) == [e["content"]["body"] for e in events]
    for limit in (1000, 97):
        paged, pages = await all_pages(alice, number, limit)
        assert paged == streamed, limit
        assert pages == -(-len(streamed) // limit)


# -- one-to-one messages -------------------------------------------------------------------------


async def direct_room(someone: Person, other: Person) -> dict[str, Any]:
    """The private room of the two, as ``someone`` lists it."""
    low, high = sorted((someone, other), key=lambda p: p.id)
    found = [
        r
        for r in await someone.rooms()
        if r["name"] == f"{low.username}&{high.username}_private" and r["users"] == sorted({someone.id, other.id})
    ]
    assert len(found) == 1, found
    return found[0]


async def test_direct_messages_go_into_one_private_room_per_pair(compat):
    alice, bob, carol = await people(compat, "alice", "bob", "carol")
    # A room they happen to share (just the two of them) is not their direct room.
    shared = await alice.create_room("Shared", [bob.id])
    sent = await bob.direct(alice.id, "hi alice")
    assert sent.body["text"] == "hi alice" and TIMESTAMP.match(sent.body["created_at"])
    assert set(sent.body) == {"text", "created_at"}
    room = await direct_room(alice, bob)
    assert room["name"] == "alice&bob_private" and room["id"] != shared["id"]
    assert (await direct_room(bob, alice)) == room
    reply = await alice.direct(bob.id, "hi bob")
    await bob.direct(alice.id, "how are you?")
    listed = (await alice.messages(room["id"])).body
    assert listed == [
        {"text": "hi alice", "created_at": sent.body["created_at"], "author": bob.id},
        {"text": "hi bob", "created_at": reply.body["created_at"], "author": alice.id},
        {"text": "how are you?", "created_at": listed[2]["created_at"], "author": bob.id},
    ]
    assert (await alice.messages(shared["id"])).body == []
    # Another pair, another room; carol is in neither of the others.
    await carol.direct(alice.id, "hello from carol")
    assert (await direct_room(carol, alice))["name"] == "alice&carol_private"
    assert (await carol.room(room["id"], status=403)).body == {"detail": NOT_ALLOWED}
    assert len(await alice.rooms()) == 3 and len(await bob.rooms()) == 2
    # A message to oneself has a room of one.
    await alice.direct(alice.id, "note to self")
    notes = [r for r in await alice.rooms() if r["name"] == "alice&alice_private"]
    assert [r["users"] for r in notes] == [[alice.id]]


async def test_a_room_already_named_like_the_direct_room_is_not_used_or_a_problem(compat):
    alice, bob, carol = await people(compat, "alice", "bob", "carol")
    taken = await carol.create_room("alice&bob_private", [alice.id, bob.id])
    await alice.direct(bob.id, "first")
    await bob.direct(alice.id, "second")
    assert (await carol.messages(taken["id"])).body == []
    mine = [r for r in await alice.rooms() if r["id"] != taken["id"]]
    assert [(r["name"], r["users"]) for r in mine] == [("alice&bob_private", [alice.id, bob.id])]
    assert texts((await bob.messages(mine[0]["id"])).body) == ["first", "second"]


async def test_direct_message_refusals_name_each_field(compat):
    alice, bob = await people(compat, "alice", "bob")
    cases = [
        ({"text": "hi"}, {"user_to": REQUIRED}),
        ({"user_to": bob.id}, {"text": REQUIRED}),
        ({}, {"text": REQUIRED, "user_to": REQUIRED}),
        ({"text": " ", "user_to": bob.id}, {"text": ["This field may not be blank."]}),
        ({"text": "hi", "user_to": 999}, {"user_to": ['Invalid pk "999" - object does not exist.']}),
        ({"text": "hi", "user_to": 0}, {"user_to": ['Invalid pk "0" - object does not exist.']}),
        ({"text": "hi", "user_to": -2}, {"user_to": ['Invalid pk "-2" - object does not exist.']}),
        ({"text": "hi", "user_to": 10**30}, {"user_to": [f'Invalid pk "{10**30}" - object does not exist.']}),
        ({"text": "hi", "user_to": "999"}, {"user_to": ['Invalid pk "999" - object does not exist.']}),
        ({"text": "hi", "user_to": "bob"}, {"user_to": ["Incorrect type. Expected pk value, received str."]}),
        ({"text": "hi", "user_to": True}, {"user_to": ["Incorrect type. Expected pk value, received bool."]}),
        ({"text": "hi", "user_to": [bob.id]}, {"user_to": ["Incorrect type. Expected pk value, received list."]}),
        ({"text": "hi", "user_to": None}, {"user_to": ["This field may not be null."]}),
        (
            {"text": "", "user_to": 999},
            {"text": ["This field may not be blank."], "user_to": ['Invalid pk "999" - object does not exist.']},
        ),
    ]
    for body, errors in cases:
        answer = await alice.call("POST", "/api/messages/", body, status=400)
        assert answer.body == errors, body
    assert await alice.rooms() == [] and await bob.rooms() == []
    # Without the trailing slash, too.
    await alice.call(
        "POST", "/api/messages", {"text": "hi", "user_to": bob.id}, status=201, schema="api/direct_message.response"
    )


@pytest.mark.settings(pool_max_size=4)
async def test_first_messages_at_once_from_both_sides_end_in_one_room(compat, more_servers):
    """Each pair writes its first messages to each other at the same moment,
    one side through another server process: one room per pair all the same.
    More pairs than the servers have connections: waiting for a pair's turn
    must not take the connections that the pair holding it needs to finish."""
    other = CompatClient((await more_servers()).base_url)
    everyone = await people(compat, *(f"p{i}" for i in range(12)))
    pairs = [(everyone[i], everyone[i + 1]) for i in range(0, len(everyone), 2)]

    async def both(a: Person, b: Person) -> None:
        b_elsewhere = Person(other, b.id, b.username, b.token, b.user_id)
        await asyncio.gather(
            a.direct(b.id, f"{a.username} first"),
            b_elsewhere.direct(a.id, f"{b.username} first"),
            a.direct(b.id, f"{a.username} again"),
        )

    await asyncio.gather(*(both(a, b) for a, b in pairs))
    for a, b in pairs:
        assert len(await a.rooms()) == 1 and len(await b.rooms()) == 1
        room = await direct_room(a, b)
        assert sorted(texts((await b.messages(room["id"])).body)) == sorted(
            [f"{a.username} first", f"{b.username} first", f"{a.username} again"]
        )


async def test_the_pair_keeps_talking_after_leaving_or_a_deleted_room(compat, server):
    """Whoever left their direct room, or if a moderator deleted it, a new
    message still reaches both."""
    mod, alice, bob = await people(compat, "mod", "alice", "bob")
    await promote(server, mod)
    await alice.direct(bob.id, "one")
    room = await direct_room(alice, bob)
    # The recipient left: they are brought back.
    await bob.update_room(room["id"], {"users": [alice.id]})
    await alice.direct(bob.id, "two")
    assert await direct_room(bob, alice) == room
    assert texts((await bob.messages(room["id"])).body) == ["one", "two"]
    # The sender left: the message still reaches the other.
    await alice.update_room(room["id"], {"users": [bob.id]})
    await alice.direct(bob.id, "three")
    again = await direct_room(bob, alice)
    assert texts((await bob.messages(again["id"])).body)[-1] == "three"
    assert await direct_room(alice, bob) == again
    # A moderator deleted their room: the next message makes a new one.
    await mod.call("DELETE", f"/api/rooms/{again['id']}/", status=204)
    await bob.direct(alice.id, "four")
    fresh = await direct_room(alice, bob)
    assert fresh["id"] != again["id"]
    assert texts((await alice.messages(fresh["id"])).body) == ["four"]


async def test_the_direct_room_is_an_api_room_like_any_other(compat):
    """As in the original, either of the pair may rename their room and
    change its members; messages between them still go there."""
    alice, bob, carol = await people(compat, "alice", "bob", "carol")
    await alice.direct(bob.id, "hi")
    room = await direct_room(bob, alice)
    renamed = (await bob.update_room(room["id"], {"name": "Us", "users": [alice.id, bob.id, carol.id]})).body
    assert renamed == {**room, "name": "Us", "users": [alice.id, bob.id, carol.id]}
    await bob.direct(alice.id, "still here")
    assert texts((await carol.messages(room["id"])).body) == ["hi", "still here"]
    assert (await bob.update_room(room["id"], {"users": [alice.id, bob.id]})).body["users"] == [alice.id, bob.id]
