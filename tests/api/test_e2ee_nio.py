"""An end-to-end encrypted conversation through matrix-nio with encryption
(its `e2e` extra, vodozemac underneath): each device uploads its keys,
queries and claims the other's, shares its Megolm session in an Olm-encrypted
to-device message, and each decrypts what the other sends in a room with
m.room.encryption. The server sees only ciphertext."""

from __future__ import annotations

import time

import nio
import pytest

from ..support.client import DEFAULT_PASSWORD as PASSWORD
from ..support.client import ApiClient
from ..support.e2ee_steps import query, upload
from ..support.real_clients import SYNC_MS, WAIT, nio_sync, ok, user_id
from ..support.room_steps import User

ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


@pytest.fixture
def encrypted_clients(io_loop, server, tmp_path):
    made: list[nio.AsyncClient] = []

    async def make(localpart: str) -> nio.AsyncClient:
        store = tmp_path / localpart
        store.mkdir()
        config = nio.AsyncClientConfig(
            encryption_enabled=True, store_sync_tokens=True, max_limit_exceeded=0, max_timeouts=0, request_timeout=30
        )
        client = nio.AsyncClient(server.base_url, user_id(localpart), store_path=str(store), config=config)
        made.append(client)
        ok(await client.register(localpart, PASSWORD, f"{localpart}'s nio"), nio.RegisterResponse)
        assert client.olm is not None, "nio's encryption is not set up"
        return client

    yield make

    async def close():
        for client in made:
            await client.close()

    io_loop.run_sync(close)


async def keep_keys(client: nio.AsyncClient) -> None:
    """What nio's sync_forever does between syncs: publish, query and claim keys as needed."""
    if client.should_upload_keys:
        ok(await client.keys_upload(), nio.KeysUploadResponse)
    if client.should_query_keys:
        ok(await client.keys_query(), nio.KeysQueryResponse)
    if client.should_claim_keys:
        ok(await client.keys_claim(client.get_users_for_key_claiming()), nio.KeysClaimResponse)


async def decrypted_until(client: nio.AsyncClient, room_id: str, count: int) -> list[str]:
    """Syncs until ``count`` messages of others in the room have arrived, decrypted."""
    texts: list[str] = []
    undecrypted: list[nio.MegolmEvent] = []
    deadline = time.monotonic() + WAIT
    while len(texts) < count:
        assert time.monotonic() < deadline, f"got {texts}, undecrypted {undecrypted}"
        response = await nio_sync(client, SYNC_MS)
        await keep_keys(client)
        room = response.rooms.join.get(room_id)
        for event in room.timeline.events if room else []:
            if event.sender == client.user_id:
                continue
            if isinstance(event, nio.RoomMessageText):
                assert event.decrypted, "a message in an encrypted room came unencrypted"
                texts.append(event.body)
            elif isinstance(event, nio.MegolmEvent):
                undecrypted.append(event)
    assert not undecrypted, f"could not decrypt {undecrypted}"
    return texts


async def test_nio_users_talk_in_an_encrypted_room_each_decrypting_the_other(server, encrypted_clients):
    alice = await encrypted_clients("alice")
    bob = await encrypted_clients("bob")
    for client in (alice, bob):
        uploaded = ok(await client.keys_upload(), nio.KeysUploadResponse)
        assert uploaded.signed_curve25519_count > 0

    room_id = ok(
        await alice.room_create(invite=[bob.user_id], initial_state=[ENCRYPTION]), nio.RoomCreateResponse
    ).room_id
    await nio_sync(bob)
    ok(await bob.join(room_id), nio.JoinResponse)
    for client in (alice, bob):
        await nio_sync(client)
        await keep_keys(client)
        assert client.rooms[room_id].encrypted

    # Each sees the other's device through keys/query, as the server stored it.
    assert bob.device_id in alice.device_store[bob.user_id]
    assert alice.device_id in bob.device_store[alice.user_id]
    watcher = User(ApiClient(server.base_url), alice.user_id, alice.access_token, alice.device_id)
    stored = (await query(watcher, {bob.user_id: []}))["device_keys"][bob.user_id][bob.device_id]
    assert stored["keys"][f"ed25519:{bob.device_id}"] == bob.olm.account.identity_keys["ed25519"]

    # Alice's first send claims a one-time key of bob's device and shares her
    # Megolm session with it in an Olm to-device message.
    bob_http = User(watcher.api, bob.user_id, bob.access_token, bob.device_id)
    bob_keys_before = (await upload(bob_http, {}))["one_time_key_counts"]["signed_curve25519"]
    assert bob_keys_before > 0
    ok(
        await alice.room_send(
            room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": "hello bob, secretly"},
            ignore_unverified_devices=True,
        ),
        nio.RoomSendResponse,
    )
    # Exactly one of bob's one-time keys went to alice (bob tops them up at his next sync).
    assert (await upload(bob_http, {}))["one_time_key_counts"]["signed_curve25519"] == bob_keys_before - 1
    assert await decrypted_until(bob, room_id, 1) == ["hello bob, secretly"]
    ok(
        await bob.room_send(
            room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": "hi alice, also secret"},
            ignore_unverified_devices=True,
        ),
        nio.RoomSendResponse,
    )
    ok(
        await alice.room_send(
            room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": "second from alice"},
            ignore_unverified_devices=True,
        ),
        nio.RoomSendResponse,
    )
    assert await decrypted_until(alice, room_id, 1) == ["hi alice, also secret"]
    assert await decrypted_until(bob, room_id, 1) == ["second from alice"]

    # The server stored only ciphertext.
    history = await watcher.messages(room_id, dir="b", limit=50)
    messages = [event for event in history["chunk"] if "state_key" not in event]
    assert [event["type"] for event in messages] == ["m.room.encrypted"] * 3
    assert all("secret" not in str(event["content"]) for event in messages)
