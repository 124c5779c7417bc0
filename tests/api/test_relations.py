"""Relations over real HTTP: edits, threads, references and reactions sent
as events, listed by GET /v1/relations and /v1/threads, and aggregated in
unsigned.m.relations of /event, /context, /messages and limited /sync
timelines; visibility, redaction and bad input."""

from urllib.parse import urlencode

from ..support.client import path_param
from ..support.room_steps import check_events, ids_of, register, room_of
from ..support.sync_steps import sync, timeline

V1 = "/_matrix/client/v1"


def relates(rel_type, parent, **content):
    return {**content, "m.relates_to": {"rel_type": rel_type, "event_id": parent}}


def edit(parent, body):
    return relates(
        "m.replace",
        parent,
        msgtype="m.text",
        body=f"* {body}",
        **{"m.new_content": {"msgtype": "m.text", "body": body}},
    )


def in_thread(root, body):
    return relates("m.thread", root, msgtype="m.text", body=body)


def react(parent, key):
    return {"m.relates_to": {"rel_type": "m.annotation", "event_id": parent, "key": key}}


async def relations(user, room_id, event_id, *path, status=200, **params):
    tail = "".join(f"/{path_param(p)}" for p in path)
    query = urlencode(params)
    answer = await user.api.request(
        "GET",
        f"{V1}/rooms/{room_id}/relations/{path_param(event_id)}{tail}" + (f"?{query}" if query else ""),
        token=user.access_token,
        status=status,
        schema="matrix/relations.response" if status == 200 else None,
    )
    if status == 200:
        check_events(answer["chunk"])
    return answer


async def threads(user, room_id, status=200, **params):
    query = urlencode(params)
    return await user.api.request(
        "GET",
        f"{V1}/rooms/{room_id}/threads" + (f"?{query}" if query else ""),
        token=user.access_token,
        status=status,
        schema="matrix/threads.response" if status == 200 else None,
    )


async def send(user, room_id, content, event_type="m.room.message"):
    return (await user.send(room_id, content, event_type=event_type))["event_id"]


async def test_edits_aggregate_the_latest_valid_one_everywhere(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    original = await alice.say(room_id, "I like cake")
    await send(alice, room_id, edit(original, "I like pie"))
    latest = await send(alice, room_id, edit(original, "I like chocolate cake"))
    await send(bob, room_id, edit(original, "bob cannot edit alice"))  # another sender: not valid
    # Without m.new_content: not valid either.
    await send(alice, room_id, relates("m.replace", original, msgtype="m.text", body="no new content"))

    event = (await bob.event(room_id, original)).body
    replacement = event["unsigned"]["m.relations"]["m.replace"]
    assert replacement["event_id"] == latest
    assert replacement["content"]["m.new_content"]["body"] == "I like chocolate cake"
    assert event["content"]["body"] == "I like cake"  # the original stays as sent
    assert "m.thread" not in event["unsigned"]["m.relations"]

    page = await bob.messages(room_id, limit=10)
    by_id = {e["event_id"]: e for e in page["chunk"]}
    assert by_id[original]["unsigned"]["m.relations"]["m.replace"]["event_id"] == latest
    context = await bob.context(room_id, latest, limit=10)
    before = {e["event_id"]: e for e in context["events_before"]}
    assert before[original]["unsigned"]["m.relations"]["m.replace"]["event_id"] == latest

    # Redacting the latest edit removes it from the aggregation.
    await alice.redact(room_id, latest)
    event = (await bob.event(room_id, original)).body
    assert event["unsigned"]["m.relations"]["m.replace"]["content"]["m.new_content"]["body"] == "I like pie"


async def test_reactions_are_listed_but_not_aggregated(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    message = await alice.say(room_id, "vote")
    first = await send(bob, room_id, react(message, "👍"), "m.reaction")
    second = await send(alice, room_id, react(message, "👍"), "m.reaction")
    reference = await send(bob, room_id, relates("m.reference", message, msgtype="m.text", body="see above"))
    event = (await alice.event(room_id, message)).body
    assert event["unsigned"]["m.relations"] == {"m.reference": {"chunk": [{"event_id": reference}]}}

    answer = await relations(alice, room_id, message, "m.annotation")
    assert ids_of(answer["chunk"]) == [second, first]  # newest first
    assert "next_batch" not in answer.body and "recursion_depth" not in answer.body
    answer = await relations(alice, room_id, message, "m.annotation", "m.reaction", dir="f")
    assert ids_of(answer["chunk"]) == [first, second]
    assert ids_of((await relations(alice, room_id, message, "m.annotation", "m.room.message"))["chunk"]) == []
    assert ids_of((await relations(alice, room_id, message))["chunk"]) == [reference, second, first]

    await bob.redact(room_id, first)
    assert ids_of((await relations(alice, room_id, message, "m.annotation"))["chunk"]) == [second]


async def test_relations_page_with_tokens_and_recurse(api):
    (alice,) = await register(api, "alice")
    room_id = await alice.create_room()
    root = await alice.say(room_id, "root")
    replies = [await send(alice, room_id, in_thread(root, f"reply {n}")) for n in range(5)]
    reaction = await send(alice, room_id, react(replies[0], "🎉"), "m.reaction")

    seen, token = [], None
    while True:
        params = {"limit": 2, **({"from": token} if token else {})}
        answer = await relations(alice, room_id, root, **params)
        assert len(answer["chunk"]) <= 2
        if token:
            assert answer["prev_batch"] == token
        seen += ids_of(answer["chunk"])
        token = answer.get("next_batch")
        if token is None:
            break
    assert seen == replies[::-1]

    forwards = await relations(alice, room_id, root, dir="f", limit=3)
    assert ids_of(forwards["chunk"]) == replies[:3]
    rest = await relations(alice, room_id, root, dir="f", limit=3, **{"from": forwards["next_batch"]})
    assert ids_of(rest["chunk"]) == replies[3:] and "next_batch" not in rest.body
    # 'to' stops a page at a token.
    bounded = await relations(alice, room_id, root, dir="f", to=forwards["next_batch"])
    assert ids_of(bounded["chunk"]) == replies[:3]

    deep = await relations(alice, room_id, root, recurse="true")
    assert deep["recursion_depth"] == 3
    assert ids_of(deep["chunk"]) == [reaction, *replies[::-1]]
    shallow = await relations(alice, room_id, root, recurse="false")
    assert shallow["recursion_depth"] == 1 and reaction not in ids_of(shallow["chunk"])
    # A filter holds on the way too: the reaction relates to the root only through a thread event.
    assert ids_of((await relations(alice, room_id, root, "m.annotation", recurse="true"))["chunk"]) == []


async def test_threads_summaries_and_list(api):
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room_id = await room_of(alice, bob, carol)
    first = await alice.say(room_id, "first thread")
    second = await bob.say(room_id, "second thread")
    await send(bob, room_id, in_thread(first, "bob in the first"))
    latest = await send(carol, room_id, in_thread(first, "carol in the first"))
    in_second = await send(bob, room_id, in_thread(second, "bob in the second"))

    root = (await carol.event(room_id, first)).body
    assert root["unsigned"]["m.relations"]["m.thread"]["count"] == 2
    assert root["unsigned"]["m.relations"]["m.thread"]["current_user_participated"] is True
    assert root["unsigned"]["m.relations"]["m.thread"]["latest_event"]["event_id"] == latest
    check_events([root["unsigned"]["m.relations"]["m.thread"]["latest_event"]])

    listed = await threads(alice, room_id)
    assert ids_of(listed["chunk"]) == [second, first]  # latest activity first
    summary = listed["chunk"][0]["unsigned"]["m.relations"]["m.thread"]
    assert summary == {**summary, "count": 1, "current_user_participated": False}
    assert summary["latest_event"]["event_id"] == in_second
    assert ids_of((await threads(alice, room_id, include="participated"))["chunk"]) == [first]  # the root's sender
    assert ids_of((await threads(carol, room_id, include="participated"))["chunk"]) == [first]

    page = await threads(alice, room_id, limit=1)
    assert ids_of(page["chunk"]) == [second]
    rest = await threads(alice, room_id, limit=1, **{"from": page["next_batch"]})
    assert ids_of(rest["chunk"]) == [first] and "next_batch" not in rest.body

    # New activity moves a thread to the front.
    back = await send(alice, room_id, in_thread(first, "back to the first"))
    assert ids_of((await threads(bob, room_id))["chunk"]) == [first, second]
    # The thread's latest event comes with its latest edit.
    fixed = await send(alice, room_id, edit(back, "back to the first, edited"))
    summary = (await bob.event(room_id, first))["unsigned"]["m.relations"]["m.thread"]
    assert summary["latest_event"]["unsigned"]["m.relations"]["m.replace"]["event_id"] == fixed
    # A redacted thread event leaves the thread.
    await alice.redact(room_id, back)
    summary = (await bob.event(room_id, first))["unsigned"]["m.relations"]["m.thread"]
    assert (summary["count"], summary["latest_event"]["event_id"]) == (2, latest)
    assert ids_of((await threads(bob, room_id))["chunk"]) == [second, first]


async def test_a_thread_cannot_start_from_a_relation(api):
    (alice,) = await register(api, "alice")
    room_id = await alice.create_room()
    root = await alice.say(room_id, "root")
    reply = await send(alice, room_id, in_thread(root, "reply"))
    answer = await alice.send(room_id, in_thread(reply, "nested"), status=400)
    assert answer["errcode"] == "M_UNKNOWN"
    assert (await threads(alice, room_id))["chunk"][0]["unsigned"]["m.relations"]["m.thread"]["count"] == 1


async def test_limited_sync_timeline_bundles_aggregations(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    root = await alice.say(room_id, "root")
    reply = await send(bob, room_id, in_thread(root, "reply"))
    filter_ = {"room": {"timeline": {"limit": 2}}}
    answer = await sync(bob, filter=filter_)
    events = timeline(answer, room_id)
    assert answer["rooms"]["join"][room_id]["timeline"]["limited"] is True
    assert ids_of(events) == [root, reply]
    assert events[0]["unsigned"]["m.relations"]["m.thread"]["latest_event"]["event_id"] == reply
    assert events[0]["unsigned"]["m.relations"]["m.thread"]["current_user_participated"] is True


async def test_relations_respect_history_visibility(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room(preset="public_chat")
    await alice.put_state(room_id, "m.room.history_visibility", {"history_visibility": "joined"})
    root = await alice.say(room_id, "before bob")
    early = await send(alice, room_id, in_thread(root, "also before bob"))
    await bob.join(room_id)
    late = await send(alice, room_id, in_thread(root, "after bob joined"))

    # Bob may not see the root: neither its relations nor the thread list show it.
    await relations(bob, room_id, root, status=404)
    assert (await threads(bob, room_id))["chunk"] == []
    await bob.leave(room_id)
    await relations(alice, room_id, root)  # alice sees all of it
    assert ids_of((await relations(alice, room_id, root))["chunk"]) == [late, early]
    # A stranger sees nothing.
    (carol,) = await register(api, "carol")
    answer = await relations(carol, room_id, root, status=403)
    assert answer["errcode"] == "M_FORBIDDEN"
    await threads(carol, room_id, status=403)


async def test_bad_requests_change_nothing(api):
    (alice,) = await register(api, "alice")
    room_id = await alice.create_room()
    root = await alice.say(room_id, "root")
    for params in ({"dir": "x"}, {"limit": "many"}, {"from": "nonsense"}, {"to": "s--1"}, {"recurse": "yes"}):
        answer = await relations(alice, room_id, root, status=400, **params)
        assert answer["errcode"] == "M_INVALID_PARAM"
    for params in ({"include": "mine"}, {"limit": "x"}, {"from": "t5"}):
        assert (await threads(alice, room_id, status=400, **params))["errcode"] == "M_INVALID_PARAM"
    assert (await relations(alice, room_id, "$unknown", status=404))["errcode"] == "M_NOT_FOUND"
    other = await alice.create_room()
    await relations(alice, other, root, status=404)  # an event of another room
    await relations(alice, "!nowhere:test.local", root, status=404)
    await threads(alice, "!nowhere:test.local", status=404)
    await api.request("GET", f"{V1}/rooms/{room_id}/threads", status=401)
    assert (await relations(alice, room_id, root))["chunk"] == []
