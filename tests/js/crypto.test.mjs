// matrix-js-sdk with its Rust crypto initialised, as Element runs it: both
// clients start (uploading their device and one-time keys), and in an
// encrypted room each decrypts what the other says. Needs the server's
// end-to-end encryption endpoints (keys/upload, keys/query, keys/claim,
// sendToDevice, to-device messages and device lists in /sync).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { ClientEvent, MatrixEventEvent, RoomEvent, RoomStateEvent } from "matrix-js-sdk";

import { login, register, start, waitFor } from "./helpers.mjs";

const clients = [];
let alice;
let bob;
let roomId;

async function cryptoClient(prefix) {
    const client = await login(await register(prefix));
    await client.initRustCrypto({ useIndexedDB: false });
    clients.push(client);
    return start(client);
}

/** The decrypted body of the event, once the client could decrypt it. */
async function decryptedBody(client, eventId) {
    const room = client.getRoom(roomId);
    const event = await waitFor(room, RoomEvent.Timeline, () => room.findEventById(eventId), `event ${eventId}`);
    await waitFor(event, MatrixEventEvent.Decrypted,
        () => !event.isBeingDecrypted() && event.getType() === "m.room.message" && !event.isDecryptionFailure(),
        `the decryption of ${eventId}`);
    assert.equal(event.getWireType(), "m.room.encrypted");
    return event.getContent().body;
}

/** Waits until the server holds the client's device keys: Rust crypto
 * uploads them just after the first sync, and a user queried before that
 * (with no room shared, so no device list change to tell) stays without. */
async function published(client) {
    const user = client.getUserId();
    for (let attempt = 0; attempt < 100; attempt++) {
        const answer = await client.http.authedRequest("POST", "/keys/query", undefined, { device_keys: { [user]: [] } });
        if (answer.device_keys?.[user]?.[client.getDeviceId()]) return;
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`the keys of ${user} never reached the server`);
}

before(async () => {
    alice = await cryptoClient("alice");
    bob = await cryptoClient("bob");
    await Promise.all([published(alice), published(bob)]);
});

after(() => {
    for (const client of clients) client.stopClient();
});

test("both clients start with Rust crypto and publish their device keys", async () => {
    for (const [client, other] of [[alice, bob], [bob, alice]]) {
        const devices = await client.getCrypto().getUserDeviceInfo([other.getUserId()], true);
        assert.ok(devices.get(other.getUserId())?.has(other.getDeviceId()), "the other's device is known");
    }
});

test("in an encrypted room each decrypts the other's messages", async () => {
    ({ room_id: roomId } = await alice.createRoom({
        name: "Secrets",
        preset: "private_chat",
        invite: [bob.getUserId()],
        initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
    }));
    await waitFor(bob, ClientEvent.Room, () => bob.getRoom(roomId)?.getMyMembership() === "invite", "bob's invite");
    await bob.joinRoom(roomId);
    await waitFor(alice, RoomStateEvent.Members,
        () => alice.getRoom(roomId)?.getMember(bob.getUserId())?.membership === "join", "bob's join at alice");
    assert.ok(await alice.getCrypto().isEncryptionEnabledInRoom(roomId));

    const fromAlice = await alice.sendTextMessage(roomId, "the cake is in the cupboard");
    assert.equal(await decryptedBody(bob, fromAlice.event_id), "the cake is in the cupboard");
    const fromBob = await bob.sendTextMessage(roomId, "thanks, I found it");
    assert.equal(await decryptedBody(alice, fromBob.event_id), "thanks, I found it");
});
