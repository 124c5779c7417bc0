// Push rules as Element uses them through matrix-js-sdk: the server's
// counts follow the rules (a mention highlights, a keyword of one's own
// highlights, a muted room stays quiet), rule changes reach the client as
// m.push_rules account data, and a read receipt clears the counts.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { ClientEvent, NotificationCountType, PushRuleKind, RoomEvent } from "matrix-js-sdk";

import { startedClient, syncWatcher, waitFor } from "./helpers.mjs";

let alice;
let bob;
let roomId;
const served = new Map(); // room -> unread_notifications of bob's latest /sync answer holding it

/** [total, highlight] as the server last sent them to bob. (The SDK's own
 * highlight count also follows rules it evaluates itself; the total it
 * takes from the server in rooms that are not encrypted.) */
const counts = () => {
    const unread = served.get(roomId) ?? {};
    return [unread.notification_count, unread.highlight_count];
};

/** Waits until the server has sent bob the counts [total, highlight] for the
 * room, and bob's client shows that total. */
const countsBecome = async (expected, what) => {
    await waitFor(bob, ClientEvent.Sync, () => JSON.stringify(counts()) === JSON.stringify(expected),
        `${what}: counts ${expected} (now ${counts()})`);
    await waitFor(bob, [ClientEvent.Sync, RoomEvent.UnreadNotifications],
        () => bob.getRoom(roomId).getUnreadNotificationCount(NotificationCountType.Total) === expected[0],
        `${what}: the total at bob's client`);
};

before(async () => {
    alice = await startedClient("alice");
    bob = await startedClient("bob", {}, { fetchFn: syncWatcher(served) });
    ({ room_id: roomId } = await alice.createRoom({ name: "Push", preset: "private_chat" }));
    await alice.invite(roomId, bob.getUserId());
    await waitFor(bob, ClientEvent.Room, () => bob.getRoom(roomId)?.getMyMembership() === "invite", "bob's invite");
    await bob.joinRoom(roomId);
    await waitFor(bob, [ClientEvent.Room, ClientEvent.Sync],
        () => bob.getRoom(roomId)?.getMyMembership() === "join", "bob in the room");
    // A third member, so the room is not one-to-one.
    const carol = await startedClient("carol");
    await alice.invite(roomId, carol.getUserId());
    await carol.joinRoom(roomId);
    carol.stopClient();
});

after(() => {
    for (const client of [alice, bob]) client?.stopClient();
});

test("messages count, and a mention highlights", async () => {
    await alice.sendTextMessage(roomId, "hello everyone");
    await countsBecome([1, 0], "a plain message");
    await alice.sendMessage(roomId, {
        msgtype: "m.text", body: "bob: look", "m.mentions": { user_ids: [bob.getUserId()] },
    });
    await countsBecome([2, 1], "a mention");
    await alice.sendMessage(roomId, { msgtype: "m.notice", body: "a bot speaks" });
    await alice.sendTextMessage(roomId, "and one more");
    await countsBecome([3, 1], "a notice does not count");
});

test("a keyword rule of bob's highlights, and reaches his client", async () => {
    await bob.addPushRule("global", PushRuleKind.ContentSpecific, "cake", {
        pattern: "cake", actions: ["notify", { set_tweak: "highlight" }],
    });
    await waitFor(bob, ClientEvent.AccountData,
        () => bob.pushRules?.global.content?.some((rule) => rule.rule_id === "cake"), "the rule at bob");
    await alice.sendTextMessage(roomId, "There is CAKE in the kitchen");
    await countsBecome([4, 2], "the keyword");
});

test("a muted room stays quiet, and a receipt clears the counts", async () => {
    await bob.addPushRule("global", PushRuleKind.RoomSpecific, roomId, { actions: [] });
    const { event_id: eventId } = await alice.sendTextMessage(roomId, "nobody hears this");
    const room = bob.getRoom(roomId);
    const event = await waitFor(room, RoomEvent.Timeline, () => room.findEventById(eventId), "the quiet message");
    assert.deepEqual(counts(), [4, 2]);
    await bob.sendReadReceipt(event);
    await countsBecome([0, 0], "the receipt");
    await bob.deletePushRule("global", PushRuleKind.RoomSpecific, roomId);
    await alice.sendTextMessage(roomId, "heard again");
    await countsBecome([1, 0], "the room unmuted");
});
