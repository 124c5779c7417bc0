"""Device keys, one-time and fallback keys, and device lists, over real HTTP:
what a device publishes, who may read it, every one-time key handed out
exactly once however many claim at once, and who hears of a change."""

from __future__ import annotations

import asyncio
from typing import Any

from ..support.e2ee_steps import claim, device_keys, one_time_keys, query, upload
from ..support.room_steps import another_device, register, room_of
from ..support.stream_steps import Stream
from ..support.sync_steps import SyncLoop, held_then_woken, sync


async def test_upload_then_query_returns_the_keys_with_the_device_name(api):
    alice, bob = await register(api, "alice", "bob")
    await alice.call(
        "PUT", f"/devices/{alice.device_id}", {"display_name": "Alice's laptop"}, schema="matrix/empty.response"
    )
    answer = await upload(
        alice,
        {
            "device_keys": device_keys(alice),
            "one_time_keys": one_time_keys(alice, 3),
            "fallback_keys": {"signed_curve25519:F1": {"key": "fb", "fallback": True}},
        },
    )
    assert answer.body == {"one_time_key_counts": {"signed_curve25519": 3}}
    # The same key ids again change nothing; new ones add to the count.
    assert (await upload(alice, {"one_time_keys": one_time_keys(alice, 5)})).body == {
        "one_time_key_counts": {"signed_curve25519": 5}
    }
    assert (await upload(alice, {})).body == {"one_time_key_counts": {"signed_curve25519": 5}}

    found = await query(bob, {alice.user_id: [], "@nobody:test.local": [], "@carol:elsewhere.org": []})
    assert found["device_keys"] == {
        alice.user_id: {alice.device_id: {**device_keys(alice), "unsigned": {"device_display_name": "Alice's laptop"}}},
        "@nobody:test.local": {},
    }
    assert found["failures"] == {}
    # Asking for a named device: that one only.
    assert (await query(bob, {alice.user_id: ["NOPE"]}))["device_keys"] == {alice.user_id: {}}


async def test_upload_is_refused_for_another_device_and_for_bad_bodies(api):
    alice, bob = await register(api, "alice", "bob")
    refused = await upload(alice, {"device_keys": device_keys(bob)}, status=400)
    assert refused["errcode"] == "M_INVALID_PARAM"
    other_device = {**device_keys(alice), "device_id": "SOMEOTHER"}
    assert (await upload(alice, {"device_keys": other_device}, status=400))["errcode"] == "M_INVALID_PARAM"
    bad_bodies: tuple[dict[str, Any], ...] = (
        {"device_keys": {"user_id": alice.user_id}},
        {"one_time_keys": {"no-colon": "k"}},
        {"one_time_keys": {"signed_curve25519:A": {"signatures": {}}}},
        {"fallback_keys": {"signed_curve25519:A": "k", "signed_curve25519:B": "k"}},
        {"one_time_keys": []},
    )
    for bad in bad_bodies:
        answer = await upload(alice, bad, status=400)
        assert answer["errcode"] in ("M_BAD_JSON", "M_MISSING_PARAM", "M_INVALID_PARAM"), bad
    # Nothing was stored by the refused requests.
    assert (await query(bob, {alice.user_id: []}))["device_keys"] == {alice.user_id: {}}
    assert (await upload(alice, {})).body == {"one_time_key_counts": {"signed_curve25519": 0}}
    await alice.api.request("POST", "/_matrix/client/v3/keys/upload", {}, status=401)
    await alice.api.request("POST", "/_matrix/client/v3/keys/query", {"device_keys": {}}, status=401)
    await alice.api.request("POST", "/_matrix/client/v3/keys/claim", {"one_time_keys": {}}, status=401)
    assert (await query(alice, {}, status=200)).body["device_keys"] == {}
    await alice.call("POST", "/keys/query", {}, status=400)


async def test_each_one_time_key_is_claimed_once_under_concurrency_then_the_fallback(api):
    alice, *claimers = await register(api, "alice", *(f"c{i}" for i in range(8)))
    await upload(
        alice,
        {
            "device_keys": device_keys(alice),
            "one_time_keys": one_time_keys(alice, 5),
            "fallback_keys": {"signed_curve25519:FB": {"key": "fallback", "fallback": True}},
        },
    )
    wanted = {alice.user_id: {alice.device_id: "signed_curve25519"}}
    answers = await asyncio.gather(*(claim(c, wanted) for c in claimers for _ in range(2)))
    got = [next(iter(a["one_time_keys"][alice.user_id][alice.device_id].items())) for a in answers]
    one_time = [key_id for key_id, _ in got if key_id != "signed_curve25519:FB"]
    assert sorted(one_time) == sorted(one_time_keys(alice, 5)), "each one-time key exactly once"
    assert [key for key_id, key in got if key_id == "signed_curve25519:FB"] == [
        {"key": "fallback", "fallback": True}
    ] * 11
    # The owner's sync reports none left and the fallback key used.
    first = await sync(alice)
    assert first["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert first["device_unused_fallback_key_types"] == []
    # A new fallback key is unused again; unknown devices and algorithms give nothing.
    await upload(alice, {"fallback_keys": {"signed_curve25519:FB2": {"key": "fallback2", "fallback": True}}})
    assert (await sync(alice))["device_unused_fallback_key_types"] == ["signed_curve25519"]
    nothing = await claim(
        claimers[0],
        {
            alice.user_id: {"NODEVICE": "signed_curve25519", alice.device_id: "other_alg"},
            "@ghost:elsewhere.org": {"X": "signed_curve25519"},
        },
    )
    assert nothing.body == {"one_time_keys": {}, "failures": {}}


async def test_device_list_changes_reach_room_mates_only_and_follow_membership(api, server):
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    room_id = await room_of(alice, bob)
    bob_loop, carol_loop = SyncLoop(bob, server), SyncLoop(carol, server)
    await bob_loop.sync()
    await carol_loop.sync()
    start = bob_loop.since

    # A key upload wakes a room mate's long-poll with the change.
    answer, elapsed = await held_then_woken(bob_loop, lambda: upload(alice, {"device_keys": device_keys(alice)}))
    assert answer["device_lists"] == {"changed": [alice.user_id], "left": []}
    assert elapsed < 5
    # Carol shares no room: nothing for her.
    assert (await carol_loop.sync())["device_lists"] == {"changed": [], "left": []}
    # The same keys again are no change.
    await upload(alice, {"device_keys": device_keys(alice)})
    assert (await bob_loop.sync())["device_lists"] == {"changed": [], "left": []}

    # Carol joins: both sides learn of each other.
    alice_loop = SyncLoop(alice, server)
    await alice_loop.sync()
    await alice.invite(room_id, carol)
    await carol.join(room_id)
    assert set((await carol_loop.sync())["device_lists"]["changed"]) == {alice.user_id, bob.user_id}
    assert (await alice_loop.sync())["device_lists"]["changed"] == [carol.user_id]
    # Bob leaves: alice and carol hear he is gone; bob hears they are.
    await bob.leave(room_id)
    assert (await alice_loop.sync())["device_lists"] == {"changed": [], "left": [bob.user_id]}
    assert (await bob_loop.sync())["device_lists"]["left"] == sorted([alice.user_id, carol.user_id])

    # /keys/changes answers the same between two tokens.
    end = (await sync(bob))["next_batch"]
    changes = await bob.call("GET", f"/keys/changes?from={start}&to={end}", schema="matrix/keys_changes.response")
    assert changes.body == {"changed": [], "left": sorted([alice.user_id, carol.user_id])}
    for bad in (f"/keys/changes?from={start}", "/keys/changes?from=x&to=y"):
        await bob.call("GET", bad, status=400)


async def test_a_deleted_device_is_a_change_and_its_keys_are_gone(api, server):
    alice, bob = await register(api, "alice", "bob")
    laptop = await another_device(alice)
    await room_of(alice, bob)
    await upload(laptop, {"device_keys": device_keys(laptop), "one_time_keys": one_time_keys(laptop, 2)})
    bob_loop = SyncLoop(bob, server)
    await bob_loop.sync()
    await laptop.call("POST", "/logout", {}, schema="matrix/empty.response")
    assert (await bob_loop.sync())["device_lists"]["changed"] == [alice.user_id]
    assert (await query(bob, {alice.user_id: []}))["device_keys"] == {alice.user_id: {}}


async def test_the_stream_carries_device_list_changes_of_room_mates(api, server):
    alice, bob = await register(api, "alice", "bob")
    await room_of(alice, bob)
    stream = await Stream.open(server.base_url, token=bob.access_token)
    first = await stream.frame()
    assert first["device_one_time_keys_count"] == {"signed_curve25519": 0}
    await upload(alice, {"device_keys": device_keys(alice)})
    frames = await stream.sync_until(lambda fs: any(f["device_lists"]["changed"] for f in fs))
    assert [f["device_lists"] for f in frames if f["device_lists"]["changed"]] == [
        {"changed": [alice.user_id], "left": []}
    ]
    await stream.close()


async def test_renaming_a_device_is_a_change_others_see_in_its_keys(api, server):
    alice, bob = await register(api, "alice", "bob")
    await room_of(alice, bob)
    await upload(alice, {"device_keys": device_keys(alice)})
    bob_loop = SyncLoop(bob, server)
    await bob_loop.sync()
    await alice.call(
        "PUT", f"/devices/{alice.device_id}", {"display_name": "Work phone"}, schema="matrix/empty.response"
    )
    assert (await bob_loop.sync())["device_lists"]["changed"] == [alice.user_id]
    device = (await query(bob, {alice.user_id: []}))["device_keys"][alice.user_id][alice.device_id]
    assert device["unsigned"] == {"device_display_name": "Work phone"}
