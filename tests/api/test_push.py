"""Push rules over real HTTP: reading the default set, editing rules
(placement, enabled, actions), refusals that change nothing, and their
effect on /sync's notification and highlight counts and on GET
/notifications, for the sender's room-mates, through both a full sync and
a resumed one. Also the start-up endpoints Element calls that stand for
services this server does not run, and pushers."""

from __future__ import annotations

import asyncio
from typing import Any

from ..support.client import MATRIX, ApiClient, path_param
from ..support.room_steps import register, room_of, text
from ..support.sync_steps import SyncLoop, on, room, sync, timeline

EMPTY = "matrix/empty.response"
RULES = "matrix/pushrules.response"
RULESET = "matrix/push_ruleset"
RULE = "matrix/push_rule"
NOTIFICATIONS = "matrix/notifications.response"


def rule_path(kind: str, rule_id: str, attribute: str = "") -> str:
    return f"/pushrules/global/{kind}/{path_param(rule_id)}" + (f"/{attribute}" if attribute else "")


async def put_rule(user, kind, rule_id, body, *, query="", status=200):
    return await user.call("PUT", rule_path(kind, rule_id) + query, body, status=status, schema=EMPTY)


async def rule_ids(user, kind="override"):
    return [r["rule_id"] for r in (await user.call("GET", "/pushrules/", schema=RULES))["global"][kind]]


def counts(answer, room_id):
    unread = room(answer, room_id)["unread_notifications"]
    return unread["notification_count"], unread["highlight_count"]


def mention(body, *user_ids, room_mention=False):
    return {**text(body), "m.mentions": {"user_ids": list(user_ids), "room": room_mention}}


# -- reading and editing ---------------------------------------------------------------------


async def test_the_default_rule_set_with_and_without_trailing_slash(api):
    (alice,) = await register(api, "alice")
    everything = await alice.call("GET", "/pushrules/", schema=RULES)
    assert (await alice.call("GET", "/pushrules", schema=RULES)).body == everything.body
    assert (await alice.call("GET", "/pushrules/global/", schema=RULESET)).body == everything["global"]
    override = everything["global"]["override"]
    assert override[0] == {
        "rule_id": ".m.rule.master",
        "default": True,
        "enabled": False,
        "conditions": [],
        "actions": [],
    }
    mention_rule = await alice.call("GET", rule_path("override", ".m.rule.is_user_mention"), schema=RULE)
    assert mention_rule["conditions"] == [
        {"kind": "event_property_contains", "key": "content.m\\.mentions.user_ids", "value": alice.user_id}
    ]
    assert (
        await alice.call("GET", rule_path("underride", ".m.rule.message", "actions"), schema="matrix/push_rule_actions")
    ).body == {"actions": ["notify"]}


async def test_refusals(api):
    (alice,) = await register(api, "alice")
    before = (await alice.call("GET", "/pushrules/", schema=RULES)).body
    await api.request("GET", MATRIX + "/pushrules/", status=401)
    cases: list[tuple[str, str, Any, int, str]] = [
        ("GET", rule_path("override", "nope"), None, 404, "M_NOT_FOUND"),
        ("GET", "/pushrules/device/override/x", None, 400, "M_INVALID_PARAM"),
        ("GET", "/pushrules/global/everything/x", None, 400, "M_INVALID_PARAM"),
        ("PUT", rule_path("override", "x"), {"conditions": []}, 400, "M_MISSING_PARAM"),
        ("PUT", rule_path("override", "x"), {"actions": "notify"}, 400, "M_BAD_JSON"),
        ("PUT", rule_path("override", ".m.rule.message"), {"actions": []}, 400, "M_INVALID_PARAM"),
        ("PUT", rule_path("override", "x") + "?before=nope", {"actions": []}, 404, "M_NOT_FOUND"),
        ("PUT", rule_path("content", "x"), {"actions": []}, 400, "M_MISSING_PARAM"),
        ("PUT", rule_path("room", "x"), {"actions": []}, 400, "M_INVALID_PARAM"),
        ("DELETE", rule_path("override", ".m.rule.master"), None, 400, "M_INVALID_PARAM"),
        ("DELETE", rule_path("override", "nope"), None, 404, "M_NOT_FOUND"),
        ("PUT", rule_path("override", ".m.rule.master", "enabled"), {"enabled": "yes"}, 400, "M_BAD_JSON"),
        ("PUT", rule_path("override", "nope", "enabled"), {"enabled": True}, 404, "M_NOT_FOUND"),
        ("PUT", rule_path("override", "nope", "actions"), {"actions": []}, 404, "M_NOT_FOUND"),
        ("PUT", "/user/" + path_param(alice.user_id) + "/account_data/m.push_rules", {"global": {}}, 405, "M_BAD_JSON"),
    ]
    for method, path, body, status, errcode in cases:
        answer = await alice.call(method, path, body, status=status)
        assert answer["errcode"] == errcode, (method, path, answer.body)
    assert (await alice.call("GET", "/pushrules/", schema=RULES)).body == before


async def test_rules_are_placed_enabled_changed_and_deleted(api):
    alice, bob = await register(api, "alice", "bob")
    await put_rule(
        alice,
        "override",
        "a",
        {"actions": [], "conditions": [{"kind": "event_match", "key": "type", "pattern": "x.*"}]},
    )
    await put_rule(alice, "override", "b", {"actions": ["notify"]})
    await put_rule(alice, "override", "c", {"actions": ["notify"]}, query="?after=b")
    await put_rule(alice, "override", "d", {"actions": ["notify"]}, query="?before=a")
    ids = await rule_ids(alice)
    assert ids[:5] == [".m.rule.master", "b", "c", "d", "a"] and ids[5] == ".m.rule.suppress_notices"
    assert await rule_ids(bob) == [ids[0]] + ids[5:]  # rules are per user

    assert (await alice.call("GET", rule_path("override", "a"), schema=RULE)).body == {
        "rule_id": "a",
        "default": False,
        "enabled": True,
        "actions": [],
        "conditions": [{"kind": "event_match", "key": "type", "pattern": "x.*"}],
    }
    await alice.call("PUT", rule_path("override", "a", "enabled"), {"enabled": False}, schema=EMPTY)
    await alice.call("PUT", rule_path("override", ".m.rule.master", "enabled"), {"enabled": True}, schema=EMPTY)
    await alice.call("PUT", rule_path("underride", ".m.rule.message", "actions"), {"actions": []}, schema=EMPTY)
    assert (await alice.call("GET", rule_path("override", "a", "enabled"), schema="matrix/push_rule_enabled")).body == {
        "enabled": False
    }
    listed = (await alice.call("GET", "/pushrules/", schema=RULES))["global"]
    assert listed["override"][0]["enabled"] is True
    assert [r for r in listed["underride"] if r["rule_id"] == ".m.rule.message"][0]["actions"] == []
    # Replacing a rule keeps its place and whether it is enabled.
    await put_rule(alice, "override", "a", {"actions": ["notify"]})
    assert (await rule_ids(alice))[:5] == ids[:5]
    assert (await alice.call("GET", rule_path("override", "a"), schema=RULE))["enabled"] is False

    await alice.call("DELETE", rule_path("override", "c"), schema=EMPTY)
    assert (await rule_ids(alice))[:4] == [".m.rule.master", "b", "d", "a"]


async def test_concurrent_edits_are_all_kept(api):
    (alice,) = await register(api, "alice")
    await asyncio.gather(
        *(put_rule(alice, "content", f"word{n}", {"pattern": f"word{n}", "actions": ["notify"]}) for n in range(12))
    )
    assert sorted(await rule_ids(alice, "content")) == sorted(f"word{n}" for n in range(12))


async def test_a_change_reaches_the_users_clients_as_account_data(api, server):
    (alice,) = await register(api, "alice")
    loop = SyncLoop(alice, server)
    await loop.sync()
    await put_rule(alice, "sender", "@spam:test.local", {"actions": []})
    answer = await loop.sync()
    pushed = [e for e in answer["account_data"]["events"] if e["type"] == "m.push_rules"]
    assert len(pushed) == 1
    assert [r["rule_id"] for r in pushed[0]["content"]["global"]["sender"]] == ["@spam:test.local"]
    assert pushed[0]["content"] == (await alice.call("GET", "/pushrules/", schema=RULES)).body


# -- what notifies whom ------------------------------------------------------------------------


async def test_counts_follow_the_rules_in_full_and_resumed_syncs(api, server):
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room_id = await room_of(alice, bob, carol)
    muted = await room_of(alice, bob, carol)
    bobs = SyncLoop(bob, server)
    await bobs.sync()
    await put_rule(bob, "room", muted, {"actions": []})
    await put_rule(bob, "content", "cake", {"pattern": "cake", "actions": ["notify", {"set_tweak": "highlight"}]})

    await alice.say(room_id, "hello")  # notify
    await alice.send(room_id, mention("hey bob", bob.user_id))  # highlight
    await alice.send(room_id, mention("hey carol", carol.user_id))  # notify
    await alice.send(room_id, {"msgtype": "m.notice", "body": "a bot says"})  # nothing
    await alice.say(room_id, "Cake!")  # highlight (keyword)
    await bob.say(room_id, "my own words")  # never the sender's
    await alice.send(room_id, {"body": "x"}, event_type="m.room.topicish")  # no rule
    await alice.say(muted, "in the muted room")  # nothing for bob
    await alice.send(muted, mention("but this mentions bob", bob.user_id))  # highlight still

    resumed = await bobs.sync()
    assert counts(resumed, room_id) == (4, 2)
    assert counts(resumed, muted) == (1, 1)
    full = await sync(bob)
    assert counts(full, room_id) == (4, 2) and counts(full, muted) == (1, 1)
    assert counts(await sync(carol), room_id) == (5, 1)  # bob's message too; the keyword is bob's
    assert counts(await sync(alice), room_id) == (1, 0)  # bob's message

    # Resumed syncs keep counting as messages arrive, and a receipt clears.
    await alice.send(room_id, mention("again", bob.user_id))
    assert counts(await bobs.sync(), room_id) == (5, 3)
    latest = await alice.say(room_id, "last")
    assert counts(await bobs.sync(), room_id) == (6, 3)
    await bob.call("POST", f"/rooms/{room_id}/receipt/m.read/{path_param(latest)}", {}, schema=EMPTY)
    assert counts(await bobs.sync(), room_id) == (0, 0)
    assert counts(await sync(bob), room_id) == (0, 0)


async def test_a_redacted_mention_no_longer_counts(api, server):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    event_id = (await alice.send(room_id, mention("psst", bob.user_id)))["event_id"]
    assert counts(await sync(bob), room_id) == (1, 1)
    await alice.call("PUT", f"/rooms/{room_id}/redact/{path_param(event_id)}/r1", {}, schema="matrix/event_id.response")
    assert counts(await sync(bob), room_id) == (0, 0)


async def test_notifications_are_listed_newest_first_in_pages(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    sent = []
    for n in range(5):
        content = mention(f"m{n}", bob.user_id) if n % 2 == 0 else text(f"m{n}")
        sent.append((await alice.send(room_id, content))["event_id"])
    await alice.send(room_id, {"msgtype": "m.notice", "body": "not listed"})

    first = await bob.call("GET", "/notifications?limit=3", schema=NOTIFICATIONS)
    assert [n["event"]["event_id"] for n in first["notifications"]] == sent[::-1][:3]
    top = first["notifications"][0]
    assert top["room_id"] == room_id and top["read"] is False and top["ts"] == top["event"]["origin_server_ts"]
    assert top["actions"] == ["notify", {"set_tweak": "sound", "value": "default"}, {"set_tweak": "highlight"}]
    # Two members: the one-to-one rule, with its sound.
    assert first["notifications"][1]["actions"] == ["notify", {"set_tweak": "sound", "value": "default"}]
    second = await bob.call("GET", f"/notifications?limit=3&from={first['next_token']}", schema=NOTIFICATIONS)
    # ... and, oldest, the invite to the room.
    assert [n["event"]["event_id"] for n in second["notifications"][:2]] == sent[::-1][3:]
    assert second["notifications"][2]["event"]["state_key"] == bob.user_id
    third = await bob.call("GET", f"/notifications?limit=3&from={second['next_token']}", schema=NOTIFICATIONS)
    assert third.body == {"notifications": []}

    highlights = await bob.call("GET", "/notifications?only=highlight", schema=NOTIFICATIONS)
    assert [n["event"]["event_id"] for n in highlights["notifications"]] == [sent[4], sent[2], sent[0]]
    await bob.call("POST", f"/rooms/{room_id}/receipt/m.read/{path_param(sent[2])}", {}, schema=EMPTY)
    after = await bob.call("GET", "/notifications", schema=NOTIFICATIONS)
    assert [n["read"] for n in after["notifications"]] == [False, False, True, True, True, True]
    assert (await alice.call("GET", "/notifications", schema=NOTIFICATIONS)).body == {"notifications": []}
    await bob.call("GET", "/notifications?from=abc", status=400)


async def test_an_invite_notifies_the_invited_user(api):
    alice, bob = await register(api, "alice", "bob")
    room_id = await alice.create_room()
    await alice.invite(room_id, bob)
    listed = (await bob.call("GET", "/notifications", schema=NOTIFICATIONS))["notifications"]
    assert [(n["event"]["type"], n["event"]["state_key"]) for n in listed] == [("m.room.member", bob.user_id)]


# -- start-up endpoints and pushers ----------------------------------------------------------------


async def test_start_up_endpoints_of_a_server_without_those_services(api, server):
    (alice,) = await register(api, "alice")
    assert (
        await api.request("GET", "/.well-known/matrix/client", schema="matrix/well_known_client.response")
    ).body == {"m.homeserver": {"base_url": server.base_url}}
    assert (await alice.call("GET", "/voip/turnServer", schema="matrix/turnServer.response")).body == {}
    assert (await alice.call("GET", "/thirdparty/protocols", schema="matrix/thirdparty_protocols.response")).body == {}
    assert (await alice.call("GET", "/account/3pid", schema="matrix/threepids.response")).body == {"threepids": []}
    assert (await alice.call("GET", "/room_keys/version", status=404))["errcode"] == "M_NOT_FOUND"
    for path in ("/voip/turnServer", "/thirdparty/protocols", "/account/3pid", "/room_keys/version", "/pushers"):
        await api.request("GET", MATRIX + path, status=401)
    await alice.call("GET", "/capabilities", schema="matrix/capabilities.response")
    # Query parameters a server does not know are ignored (matrix-js-sdk sends some).
    await alice.call(
        "GET", "/sync?_cacheBuster=123&org.matrix.msc4222.use_state_after=true", schema="matrix/sync.response"
    )


PUSHER = {
    "pushkey": "key1",
    "kind": "http",
    "app_id": "org.example.app",
    "app_display_name": "Example",
    "device_display_name": "Phone",
    "lang": "en",
    "data": {"url": "https://push.example.org/_matrix/push/v1/notify"},
}


async def test_pushers_are_kept_replaced_and_removed(api):
    alice, bob = await register(api, "alice", "bob")
    pushers = "matrix/pushers.response"
    assert (await alice.call("GET", "/pushers", schema=pushers)).body == {"pushers": []}
    await alice.call("POST", "/pushers/set", PUSHER, schema=EMPTY)
    await alice.call("POST", "/pushers/set", {**PUSHER, "lang": "fr", "profile_tag": "t"}, schema=EMPTY)
    assert (await alice.call("GET", "/pushers", schema=pushers))["pushers"] == [
        {**PUSHER, "lang": "fr", "profile_tag": "t"}
    ]
    # The same app and key for another user: alice's goes unless appended.
    await bob.call("POST", "/pushers/set", {**PUSHER, "append": True}, schema=EMPTY)
    assert len((await alice.call("GET", "/pushers", schema=pushers))["pushers"]) == 1
    await bob.call("POST", "/pushers/set", PUSHER, schema=EMPTY)
    assert (await alice.call("GET", "/pushers", schema=pushers))["pushers"] == []
    assert (await bob.call("GET", "/pushers", schema=pushers))["pushers"] == [PUSHER]
    refusals: list[tuple[dict[str, Any], str]] = [
        ({**PUSHER, "data": {}}, "M_MISSING_PARAM"),
        ({k: v for k, v in PUSHER.items() if k != "lang"}, "M_MISSING_PARAM"),
        ({**PUSHER, "kind": "carrier-pigeon"}, "M_BAD_JSON"),
        ({"kind": "http", "app_id": "x"}, "M_MISSING_PARAM"),
    ]
    for body, errcode in refusals:
        assert (
            await bob.call(
                "POST", "/pushers/set", {**body, "pushkey": "key2"} if "pushkey" in body else body, status=400
            )
        )["errcode"] == errcode
    await bob.call("POST", "/pushers/set", {"pushkey": "key1", "app_id": PUSHER["app_id"], "kind": None}, schema=EMPTY)
    assert (await bob.call("GET", "/pushers", schema=pushers))["pushers"] == []


async def test_counts_of_events_written_by_another_server_process(api, server, more_servers):
    # Events another process wrote reach this one's sync without their push
    # outcomes (they are read back from the database): the counts are read again.
    other = ApiClient((await more_servers()).base_url)
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room_id = await room_of(alice, bob, carol)
    bobs = SyncLoop(bob, server)
    await bobs.sync()
    sent = [
        (await on(alice, other).send(room_id, content))["event_id"]
        for content in (text("from the other process"), mention("bob, from there", bob.user_id))
    ]
    seen: list[str] = []
    for _ in range(10):
        answer = await bobs.sync(timeout=5_000)
        seen += [event["event_id"] for event in timeline(answer, room_id)]
        if seen == sent:
            break
    assert seen == sent
    assert counts(answer, room_id) == (2, 1)
    await alice.say(room_id, "and from this one")  # this process's own: counted on what it had
    assert counts(await bobs.sync(timeout=5_000), room_id) == (3, 1)
