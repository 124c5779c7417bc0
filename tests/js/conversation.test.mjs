// Two matrix-js-sdk clients (what Element is built on) hold a conversation
// on AtomChat: start-up, a room, invite and join, messages both ways in
// order, receipts, typing, a display name and a room name, a redaction,
// scrolling back through 50 earlier messages, and logging out.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { ClientEvent, MatrixError, RoomEvent, RoomMemberEvent, RoomStateEvent } from "matrix-js-sdk";

import { login, messages, register, start, startedClient, waitFor } from "./helpers.mjs";

const clients = [];
let alice;
let bob;
let roomId;

before(async () => {
    alice = await startedClient("alice");
    bob = await startedClient("bob");
    clients.push(alice, bob);
});

after(() => {
    for (const client of clients) client.stopClient();
});

test("both clients start and see their push rules", () => {
    for (const client of [alice, bob]) {
        assert.ok(client.isInitialSyncComplete());
        const override = client.pushRules.global.override.map((rule) => rule.rule_id);
        assert.equal(override[0], ".m.rule.master");
        assert.ok(override.includes(".m.rule.is_user_mention"));
        assert.ok(client.pushRules.global.underride.some((rule) => rule.rule_id === ".m.rule.message"));
    }
});

test("alice creates a room and invites bob, who joins", async () => {
    ({ room_id: roomId } = await alice.createRoom({ name: "Tea", preset: "private_chat" }));
    await alice.invite(roomId, bob.getUserId());
    await waitFor(bob, ClientEvent.Room, () => bob.getRoom(roomId)?.getMyMembership() === "invite", "bob's invite");
    await bob.joinRoom(roomId);
    await waitFor(alice, RoomStateEvent.Members,
        () => alice.getRoom(roomId)?.getMember(bob.getUserId())?.membership === "join", "bob's join at alice");
    const room = await waitFor(bob, [ClientEvent.Room, ClientEvent.Sync],
        () => bob.getRoom(roomId)?.getMyMembership() === "join" && bob.getRoom(roomId), "the room at bob");
    assert.equal(room.name, "Tea");
});

test("they talk both ways and each sees every message in order", async () => {
    // Turns as people take them: each answers once the other's message is in.
    const said = [];
    for (let turn = 0; turn < 4; turn++) {
        for (const [client, other, who] of [[alice, bob, "alice"], [bob, alice, "bob"]]) {
            const body = `${who} says ${turn}`;
            await client.sendTextMessage(roomId, body);
            said.push([client.getUserId(), body]);
            const room = other.getRoom(roomId);
            await waitFor(room, RoomEvent.Timeline, () => messages(room).length === said.length, `"${body}"`);
        }
    }
    // And a burst from both at once, each side's own messages in the order sent.
    const burst = await Promise.all([alice, bob].map(async (client) => {
        for (let n = 0; n < 5; n++) await client.sendTextMessage(roomId, `burst ${n}`);
    }));
    assert.equal(burst.length, 2);
    for (const client of [alice, bob]) {
        const room = client.getRoom(roomId);
        await waitFor(room, [RoomEvent.Timeline, RoomEvent.LocalEchoUpdated],
            () => messages(room).length === said.length + 10, "the burst");
        assert.deepEqual(messages(room).slice(0, said.length), said);
        for (const sender of [alice, bob]) {
            const bodies = messages(room).slice(said.length).filter(([who]) => who === sender.getUserId());
            assert.deepEqual(bodies.map(([, body]) => body), ["burst 0", "burst 1", "burst 2", "burst 3", "burst 4"]);
        }
    }
});

test("a read receipt reaches the other client", async () => {
    const room = bob.getRoom(roomId);
    const last = room.getLiveTimeline().getEvents().filter((event) => event.getSender() === alice.getUserId()).at(-1);
    await bob.sendReadReceipt(last);
    const aliceRoom = alice.getRoom(roomId);
    // The receipt the server delivered (not one the SDK infers from bob's own events).
    await waitFor(aliceRoom, RoomEvent.Receipt,
        () => aliceRoom.getEventReadUpTo(bob.getUserId(), true) === last.getId(), "bob's receipt at alice");
});

test("typing notices start and stop", async () => {
    const member = () => bob.getRoom(roomId).getMember(alice.getUserId());
    await alice.sendTyping(roomId, true, 10_000);
    await waitFor(bob, RoomMemberEvent.Typing, () => member().typing, "alice typing");
    await alice.sendTyping(roomId, false, 0);
    await waitFor(bob, RoomMemberEvent.Typing, () => !member().typing, "alice stopped typing");
});

test("a new display name and a new room name reach the other client", async () => {
    await bob.setDisplayName("Bobby Tables");
    await waitFor(alice, RoomMemberEvent.Name,
        () => alice.getRoom(roomId).getMember(bob.getUserId())?.name === "Bobby Tables", "bob's new name");
    await alice.setRoomName(roomId, "Tea and cake");
    await waitFor(bob, RoomEvent.Name, () => bob.getRoom(roomId).name === "Tea and cake", "the new room name");
});

test("a redaction removes the message's content at the other client", async () => {
    const { event_id: eventId } = await alice.sendTextMessage(roomId, "oops, wrong room");
    const room = bob.getRoom(roomId);
    await waitFor(room, RoomEvent.Timeline, () => room.findEventById(eventId), "the message at bob");
    await alice.redactEvent(roomId, eventId);
    const redacted = await waitFor(room, [RoomEvent.Redaction, RoomEvent.Timeline],
        () => room.findEventById(eventId)?.isRedacted() && room.findEventById(eventId), "the redaction at bob");
    assert.deepEqual(redacted.getContent(), {});
});

test("a client started later scrolls back through 50 earlier messages", async () => {
    const bodies = [];
    for (let n = 0; n < 60; n++) {
        bodies.push(`history ${n}`);
        await alice.sendTextMessage(roomId, bodies.at(-1));
    }
    const late = await start(await login({ userId: bob.getUserId() }), { initialSyncLimit: 10 });
    clients.push(late);
    const room = late.getRoom(roomId);
    const history = () => messages(room).map(([, body]) => body).filter((body) => body?.startsWith("history"));
    assert.ok(history().length <= 10, `the initial sync is limited (${history().length} messages)`);
    const seen = history().length;
    // Back to the room's creation, where the server says there is nothing older.
    for (let page = 0; page < 20 && room.getLiveTimeline().getPaginationToken("b") !== null; page++) {
        await late.scrollback(room, 25);
    }
    assert.ok(history().length - seen >= 50, `scrolled back ${history().length - seen} messages`);
    assert.deepEqual(history(), bodies);
    assert.equal(room.getLiveTimeline().getEvents()[0].getType(), "m.room.create");
    assert.deepEqual(messages(room).slice(0, 2).map(([, body]) => body), ["alice says 0", "bob says 0"]);
});

test("logging out ends the session", async () => {
    const extra = await login({ userId: alice.getUserId() });
    await extra.whoami();
    await extra.logout(true);
    await assert.rejects(extra.whoami(), (error) => error instanceof MatrixError && error.errcode === "M_UNKNOWN_TOKEN");
    // The other sessions of the account are unaffected.
    assert.equal((await alice.whoami()).user_id, alice.getUserId());
});
