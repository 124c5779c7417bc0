"""Server-side key backup (room_keys) over real HTTP: versions created,
read, updated and deleted; keys stored only into the current version, the
better of two keys of a session kept, with etag and count; nobody reads or
writes another user's backup."""

from __future__ import annotations

import asyncio

from ..support.room_steps import register

AUTH = {"public_key": "abcdefg", "signatures": {"@alice:test.local": {"ed25519:DEV": "sig"}}}
ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"


def key(index: int = 0, forwarded: int = 0, verified: bool = False, data: str = "d") -> dict:
    return {
        "first_message_index": index,
        "forwarded_count": forwarded,
        "is_verified": verified,
        "session_data": {"ephemeral": "e", "ciphertext": data, "mac": "m"},
    }


async def create(user, algorithm: str = ALGORITHM, auth: dict = AUTH) -> str:
    answer = await user.call(
        "POST",
        "/room_keys/version",
        {"algorithm": algorithm, "auth_data": auth},
        schema="matrix/room_keys_version_created.response",
    )
    return answer["version"]


async def put(user, path: str, body: dict, version: str, *, status: int = 200):
    return await user.call(
        "PUT",
        f"/room_keys/keys{path}?version={version}",
        body,
        status=status,
        schema="matrix/room_keys_update.response",
    )


async def test_versions_are_created_read_updated_and_deleted(api):
    alice, bob = await register(api, "alice", "bob")
    missing = await alice.call("GET", "/room_keys/version", status=404)
    assert missing["errcode"] == "M_NOT_FOUND"
    first = await create(alice)
    second = await create(alice, auth={"public_key": "other"})
    assert (first, second) == ("1", "2")
    current = await alice.call("GET", "/room_keys/version", schema="matrix/room_keys_version.response")
    assert current.body == {
        "algorithm": ALGORITHM,
        "auth_data": {"public_key": "other"},
        "count": 0,
        "etag": "0",
        "version": "2",
    }
    assert (await alice.call("GET", "/room_keys/version/1", schema="matrix/room_keys_version.response"))[
        "auth_data"
    ] == AUTH
    # Bob has none of alice's backups.
    await bob.call("GET", "/room_keys/version", status=404)
    await bob.call("GET", "/room_keys/version/1", status=404)
    await bob.call("DELETE", "/room_keys/version/1", status=404)

    await alice.call(
        "PUT",
        "/room_keys/version/2",
        {"algorithm": ALGORITHM, "auth_data": {"public_key": "new"}, "version": "2"},
        schema="matrix/empty.response",
    )
    assert (await alice.call("GET", "/room_keys/version/2", schema="matrix/room_keys_version.response"))[
        "auth_data"
    ] == {"public_key": "new"}
    for body, errcode in (
        ({"algorithm": "m.other", "auth_data": {}}, "M_INVALID_PARAM"),
        ({"algorithm": ALGORITHM, "auth_data": {}, "version": "1"}, "M_INVALID_PARAM"),
        ({"algorithm": ALGORITHM}, "M_MISSING_PARAM"),
        ({"algorithm": 5, "auth_data": {}}, "M_BAD_JSON"),
    ):
        assert (await alice.call("PUT", "/room_keys/version/2", body, status=400))["errcode"] == errcode
    await alice.call("PUT", "/room_keys/version/9", {"algorithm": ALGORITHM, "auth_data": {}}, status=404)
    await alice.call("POST", "/room_keys/version", {"auth_data": {}}, status=400)
    await alice.call("POST", "/room_keys/version/2", {"algorithm": ALGORITHM, "auth_data": {}}, status=405)

    # Deleting the current version makes the previous one current again.
    await alice.call("DELETE", "/room_keys/version/2", schema="matrix/empty.response")
    await alice.call("DELETE", "/room_keys/version/2", status=404)
    assert (await alice.call("GET", "/room_keys/version", schema="matrix/room_keys_version.response"))["version"] == "1"
    assert await create(alice) == "3"  # numbers are never reused
    await api.request("GET", "/_matrix/client/v3/room_keys/version", status=401)


async def test_keys_go_into_the_current_version_only_and_the_better_key_wins(api):
    alice, bob = await register(api, "alice", "bob")
    old = await create(alice)
    version = await create(alice)
    room = "!room:test.local"
    stored = await put(alice, "", {"rooms": {room: {"sessions": {"s1": key(5), "s2": key(0)}}}}, version)
    assert stored.body == {"etag": "1", "count": 2}
    # A worse key (later first index, not verified) leaves the stored one; the etag stays.
    assert (await put(alice, f"/{room}/s1", key(9, data="worse"), version)).body == {"etag": "1", "count": 2}
    assert (await put(alice, f"/{room}", {"sessions": {"s1": key(2, data="better")}}, version)).body == {
        "etag": "2",
        "count": 2,
    }
    await put(alice, f"/{room}/s1", key(7, verified=True, data="verified"), version)
    await put(alice, f"/{room}/s2", key(0, forwarded=3, data="more forwarded"), version)

    one = await alice.call("GET", f"/room_keys/keys/{room}/s1?version={version}", schema="matrix/room_keys_session")
    assert one.body == key(7, verified=True, data="verified")
    whole = await alice.call("GET", f"/room_keys/keys?version={version}", schema="matrix/room_keys.response")
    assert whole.body == {"rooms": {room: {"sessions": {"s1": key(7, verified=True, data="verified"), "s2": key(0)}}}}
    assert (
        await alice.call("GET", f"/room_keys/keys/!other:test.local?version={version}", schema="matrix/room_keys_room")
    ).body == {"sessions": {}}
    await alice.call("GET", f"/room_keys/keys/{room}/nope?version={version}", status=404)

    # An older version is refused with the current one named; an unknown one is not found.
    wrong = await put(alice, f"/{room}/s3", key(), old, status=403)
    assert wrong.body["errcode"] == "M_WRONG_ROOM_KEYS_VERSION" and wrong.body["current_version"] == version
    await put(alice, f"/{room}/s3", key(), "77", status=404)
    await put(alice, f"/{room}/s3", key(), "x", status=404)
    assert (await alice.call("PUT", f"/room_keys/keys/{room}/s3", key(), status=400))["errcode"] == "M_MISSING_PARAM"
    await put(alice, f"/{room}/s3", {"first_message_index": 0}, version, status=400)
    # Bob cannot reach alice's backup version.
    await bob.call("GET", f"/room_keys/keys?version={version}", status=404)
    await put(bob, f"/{room}/s1", key(), version, status=404)
    assert (await alice.call("GET", "/room_keys/version", schema="matrix/room_keys_version.response"))["count"] == 2

    deleted = await alice.call(
        "DELETE", f"/room_keys/keys/{room}/s1?version={version}", schema="matrix/room_keys_update.response"
    )
    assert deleted.body["count"] == 1
    emptied = await alice.call(
        "DELETE", f"/room_keys/keys?version={version}", schema="matrix/room_keys_update.response"
    )
    assert emptied.body["count"] == 0 and int(emptied.body["etag"]) > int(deleted.body["etag"])


async def test_concurrent_uploads_of_one_session_keep_the_best(api):
    [alice] = await register(api, "alice")
    version = await create(alice)
    room = "!room:test.local"
    await asyncio.gather(
        *(put(alice, f"/{room}/s", key(index, data=str(index)), version) for index in (9, 4, 7, 1, 8, 3, 6, 2, 5))
    )
    best = await alice.call("GET", f"/room_keys/keys/{room}/s?version={version}", schema="matrix/room_keys_session")
    assert best.body == key(1, data="1")
