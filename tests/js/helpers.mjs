// Shared steps of the matrix-js-sdk tests: accounts made the way Element
// makes them (a 401 with a session first, then m.login.dummy with it),
// clients started as Element starts them, and bounded waits for what a
// client must see. The server's base URL comes from ATOMCHAT_URL (the
// pytest test that runs these starts the server and sets it).
import { randomBytes } from "node:crypto";

import { ClientEvent, createClient, MatrixError, SyncState } from "matrix-js-sdk";

export const BASE_URL = process.env.ATOMCHAT_URL;
if (!BASE_URL) {
    throw new Error("ATOMCHAT_URL must name the server under test");
}
export const WAIT_MS = 20_000; // the most any single wait may take
export const PASSWORD = "correct horse battery staple 7";

// The SDK logs its every step through loggers of its own making; only its
// warnings and errors are kept, unless ATOMCHAT_JS_LOG asks for everything.
if (!process.env.ATOMCHAT_JS_LOG) {
    for (const method of ["log", "info", "debug"]) console[method] = () => {};
}

/** A fresh user: the interactive-auth round as Element does it. */
export async function register(prefix) {
    const username = `${prefix}${randomBytes(4).toString("hex")}`;
    const anonymous = createClient({ baseUrl: BASE_URL });
    let session;
    try {
        await anonymous.registerRequest({ username, password: PASSWORD });
        throw new Error("registration without auth must answer 401 with flows");
    } catch (error) {
        if (!(error instanceof MatrixError) || error.httpStatus !== 401) throw error;
        session = error.data.session;
        if (!error.data.flows?.some((flow) => flow.stages.includes("m.login.dummy"))) {
            throw new Error(`no m.login.dummy flow offered: ${JSON.stringify(error.data)}`);
        }
    }
    const done = await anonymous.registerRequest({ username, password: PASSWORD, auth: { type: "m.login.dummy", session } });
    return { userId: done.user_id, username };
}

/** A logged-in client, not yet started; ``options`` go to createClient. */
export async function login(user, options = {}) {
    const anonymous = createClient({ baseUrl: BASE_URL });
    const session = await anonymous.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: user.userId },
        password: PASSWORD,
    });
    return createClient({
        baseUrl: BASE_URL,
        userId: session.user_id,
        deviceId: session.device_id,
        accessToken: session.access_token,
        ...options,
    });
}

/** A fetch for createClient that keeps, per room, the unread_notifications
 * of the latest /sync answer that held the room (in ``seen``): what the
 * server said, before the SDK derives its own counts from it. */
export function syncWatcher(seen) {
    return async (url, init) => {
        const response = await fetch(url, init);
        if (new URL(String(url)).pathname.endsWith("/sync") && response.ok) {
            const body = await response.clone().json();
            for (const [roomId, room] of Object.entries(body.rooms?.join ?? {})) {
                if (room.unread_notifications) seen.set(roomId, room.unread_notifications);
            }
        }
        return response;
    };
}

/** Resolves with the value ``check`` returns once it is truthy, checking
 * after each of ``emitter``'s ``events`` (and at once); rejects after ``ms``. */
export function waitFor(emitter, events, check, what, ms = WAIT_MS) {
    return new Promise((resolve, reject) => {
        const names = Array.isArray(events) ? events : [events];
        let timer;
        const finish = (fn, value) => {
            clearTimeout(timer);
            for (const name of names) emitter.off(name, listener);
            fn(value);
        };
        const listener = () => {
            let value;
            try {
                value = check();
            } catch (error) {
                finish(reject, error);
                return;
            }
            if (value) finish(resolve, value);
        };
        timer = setTimeout(() => finish(reject, new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
        for (const name of names) emitter.on(name, listener);
        listener();
    });
}

/** Starts the client and waits until its first sync is in (PREPARED), as Element's start does. */
export async function start(client, opts = {}) {
    const ready = waitFor(client, ClientEvent.Sync,
        () => [SyncState.Prepared, SyncState.Syncing].includes(client.getSyncState()), "the first sync");
    const failed = new Promise((_, reject) => {
        client.on(ClientEvent.Sync, (state, _prev, data) => {
            if (state === SyncState.Error) reject(new Error(`sync failed: ${data?.error}`));
        });
    });
    await client.startClient({ initialSyncLimit: 20, ...opts });
    await Promise.race([ready, failed]);
    return client;
}

/** A registered, logged-in and started client. */
export async function startedClient(prefix, opts, options) {
    const user = await register(prefix);
    return start(await login(user, options), opts);
}

/** The room's live timeline as (sender, body) of its m.room.message events
 * the server has acknowledged (local echoes not yet sent are left out). */
export function messages(room) {
    return room.getLiveTimeline().getEvents()
        .filter((event) => event.getType() === "m.room.message" && !event.status)
        .map((event) => [event.getSender(), event.getContent().body]);
}
