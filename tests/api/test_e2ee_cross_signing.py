"""Cross-signing over real HTTP: the first keys are published without a
password, replacing them needs one (user-interactive auth); signatures
uploaded later are merged into the keys others query, and a user's
user-signing key and signatures by others stay the signer's own business."""

from __future__ import annotations

from ..support.client import MATRIX, password_auth
from ..support.e2ee_steps import cross_signing_key, device_keys, query, upload
from ..support.room_steps import SERVER, register, room_of
from ..support.sync_steps import SyncLoop

SIGNING = "/keys/device_signing/upload"


async def challenged(user, body: dict):
    """The 401 of user-interactive authentication, checked against its own schema."""
    return await user.api.request(
        "POST", MATRIX + SIGNING, body, token=user.access_token, status=401, schema="matrix/uia.response"
    )


def keys_of(user, master: str = "MASTER") -> dict:
    return {
        "master_key": cross_signing_key(user, "master", master),
        "self_signing_key": cross_signing_key(user, "self_signing", "SELF", signed_by=master),
        "user_signing_key": cross_signing_key(user, "user_signing", "USER", signed_by=master),
    }


async def test_first_upload_needs_no_password_replacing_needs_it(api, server):
    alice, bob = await register(api, "alice", "bob")
    await room_of(alice, bob)
    bob_loop = SyncLoop(bob, server)
    await bob_loop.sync()
    # As matrix-js-sdk's first attempt sends it: no password needed for the first keys.
    await alice.call("POST", SIGNING, {**keys_of(alice), "auth": None}, schema="matrix/empty.response")
    assert (await bob_loop.sync())["device_lists"]["changed"] == [alice.user_id]
    # The same keys again: no password, and no change.
    await alice.call("POST", SIGNING, keys_of(alice), schema="matrix/empty.response")
    assert (await bob_loop.sync())["device_lists"]["changed"] == []

    challenge = await challenged(alice, keys_of(alice, "NEWMASTER"))
    assert challenge["flows"] == [{"stages": ["m.login.password"]}]
    wrong = {
        **keys_of(alice, "NEWMASTER"),
        "auth": password_auth(alice.user_id, "not the password", challenge["session"]),
    }
    assert (await challenged(alice, wrong))["errcode"] == "M_FORBIDDEN"
    as_bob = {**keys_of(alice, "NEWMASTER"), "auth": password_auth(bob.user_id)}
    await challenged(alice, as_bob)
    assert (await query(bob, {alice.user_id: []}))["master_keys"][alice.user_id]["keys"] == {"ed25519:MASTER": "MASTER"}
    right = {**keys_of(alice, "NEWMASTER"), "auth": password_auth(alice.user_id, session=challenge["session"])}
    await alice.call("POST", SIGNING, right, schema="matrix/empty.response")

    seen_by_bob = await query(bob, {alice.user_id: []})
    assert seen_by_bob["master_keys"] == {alice.user_id: keys_of(alice, "NEWMASTER")["master_key"]}
    assert seen_by_bob["self_signing_keys"] == {alice.user_id: keys_of(alice, "NEWMASTER")["self_signing_key"]}
    assert seen_by_bob["user_signing_keys"] == {}  # alice's own business
    assert (await query(alice, {alice.user_id: []}))["user_signing_keys"] == {
        alice.user_id: keys_of(alice, "NEWMASTER")["user_signing_key"]
    }


async def test_malformed_cross_signing_keys_are_refused(api):
    alice, bob = await register(api, "alice", "bob")
    good = keys_of(alice)
    cases = [
        {"master_key": cross_signing_key(bob, "master", "M")},  # bob's key
        {"master_key": cross_signing_key(alice, "self_signing", "M")},  # wrong usage
        {"master_key": {**cross_signing_key(alice, "master", "M"), "keys": {"ed25519:A": "A", "ed25519:B": "B"}}},
        {"master_key": {**cross_signing_key(alice, "master", "M"), "keys": {"curve25519:A": "A"}}},
        {"self_signing_key": good["self_signing_key"]},  # no master key yet
        {**good, "self_signing_key": cross_signing_key(alice, "self_signing", "SELF")},  # unsigned by the master
        {**good, "user_signing_key": cross_signing_key(alice, "user_signing", "USER", signed_by="OTHER")},
    ]
    for body in cases:
        assert (await alice.call("POST", SIGNING, body, status=400))["errcode"] == "M_INVALID_PARAM", body
    for body in ({"master_key": {"usage": ["master"]}}, {"master_key": "M"}):
        await alice.call("POST", SIGNING, body, status=400)
    assert (await query(bob, {alice.user_id: []}))["master_keys"] == {}


async def test_uploaded_signatures_are_merged_for_those_who_may_see_them(api, server):
    alice, bob, carol = await register(api, "alice", "bob", "carol")
    await room_of(alice, bob, carol)
    await upload(alice, {"device_keys": device_keys(alice)})
    await alice.call("POST", SIGNING, keys_of(alice), schema="matrix/empty.response")
    await bob.call("POST", SIGNING, keys_of(bob, "BOBMASTER"), schema="matrix/empty.response")
    carol_loop = SyncLoop(carol, server)
    await carol_loop.sync()

    own_device = {**device_keys(alice), "signatures": {alice.user_id: {"ed25519:SELF": "ssk-sig"}}}
    bobs_master = {**keys_of(bob, "BOBMASTER")["master_key"], "signatures": {alice.user_id: {"ed25519:USER": "usk"}}}
    answer = await alice.call(
        "POST",
        "/keys/signatures/upload",
        {
            alice.user_id: {alice.device_id: own_device, "NOSUCHDEVICE": own_device},
            bob.user_id: {"BOBMASTER": bobs_master, bob.device_id: own_device},
            f"@ghost:{SERVER}": {"X": own_device},
        },
        schema="matrix/signatures_upload.response",
    )
    unknown = {"errcode": "M_NOT_FOUND", "error": "No such key of this user that you may sign"}
    assert answer["failures"] == {
        alice.user_id: {"NOSUCHDEVICE": unknown},
        bob.user_id: {bob.device_id: unknown},
        f"@ghost:{SERVER}": {"X": unknown},
    }
    assert alice.user_id in (await carol_loop.sync())["device_lists"]["changed"]

    # Everyone sees alice's signature of her own device.
    for reader in (alice, bob, carol):
        device = (await query(reader, {alice.user_id: []}))["device_keys"][alice.user_id][alice.device_id]
        assert device["signatures"][alice.user_id] == {
            f"ed25519:{alice.device_id}": f"sig-of-{alice.device_id}",
            "ed25519:SELF": "ssk-sig",
        }
    # Her signature of bob's master key is hers alone to see.
    assert (await query(alice, {bob.user_id: []}))["master_keys"][bob.user_id]["signatures"] == {
        alice.user_id: {"ed25519:USER": "usk"}
    }
    assert "signatures" not in (await query(carol, {bob.user_id: []}))["master_keys"][bob.user_id]

    # A signed object that is not the key held is refused, and stores nothing.
    forged = {**bobs_master, "keys": {"ed25519:FORGED": "FORGED"}}
    refused = await carol.call(
        "POST",
        "/keys/signatures/upload",
        {bob.user_id: {"BOBMASTER": forged}},
        schema="matrix/signatures_upload.response",
    )
    assert refused["failures"][bob.user_id]["BOBMASTER"]["errcode"] == "M_INVALID_SIGNATURE"
    unsigned = await carol.call(
        "POST",
        "/keys/signatures/upload",
        {bob.user_id: {"BOBMASTER": {**bobs_master, "signatures": {}}}},
        schema="matrix/signatures_upload.response",
    )
    assert unsigned["failures"][bob.user_id]["BOBMASTER"]["errcode"] == "M_INVALID_SIGNATURE"
    await carol.call("POST", "/keys/signatures/upload", {bob.user_id: {"BOBMASTER": {"keys": {}}}}, status=400)
    assert "signatures" not in (await query(carol, {bob.user_id: []}))["master_keys"][bob.user_id]
