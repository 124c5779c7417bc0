// The AtomChat web client: sign-in, the room list, the timeline and the
// composer, room settings and (for moderators) the console. It talks only to
// the public APIs, through matrix.js.

import { Client, enc, newTxnId } from "./matrix.js";
import { Rooms, isRedacted } from "./rooms.js";
import { clear, day, dialog, h, initials, time } from "./dom.js";
import { openConsole } from "./console.js";

const app = document.getElementById("app");
const status = document.getElementById("status");
const client = new Client();
let rooms = null;
let current = null; // the room id shown
let isModerator = false;
let view = null; // the nodes of the chat screen
let notice = "";

client.addEventListener("signedout", (event) => {
  notice = event.detail.reason;
  rooms = null;
  current = null;
  showAuth();
});
client.addEventListener("offline", () => setStatus("Offline: reconnecting…", true));
client.addEventListener("online", () => { setStatus("", false); resendPending(); });
client.addEventListener("sync", (event) => onSync(event.detail));

function setStatus(text, offline) {
  status.textContent = text;
  status.hidden = !offline;
  document.body.classList.toggle("offline", offline);
  if (view) {
    view.connection.textContent = offline ? "Offline" : "Online";
    view.connection.className = offline ? "connection off" : "connection on";
  }
}

// -- signing in -------------------------------------------------------------

const ERRORS = {
  M_USER_IN_USE: "That name is taken. Choose another one.",
  M_FORBIDDEN: "Wrong username or password.",
  M_USER_LOCKED: "This account is locked by a moderator.",
  M_USER_SUSPENDED: "This account is suspended by a moderator.",
  M_INVALID_USERNAME: "A name may only hold lower-case letters, digits and . _ = - /",
  M_WEAK_PASSWORD: "That password is too easy to guess. Choose a longer one.",
  M_LIMIT_EXCEEDED: "Too many attempts. Wait a moment and try again.",
  NETWORK: "The server cannot be reached.",
};

function explain(error) {
  if (error.errcode === "M_FORBIDDEN" && error.status !== 403) return error.message;
  return ERRORS[error.errcode] || error.message;
}

function showAuth(mode = "signin") {
  view = null;
  document.title = "AtomChat";
  const signup = mode === "signup";
  const errorBox = h("p", { class: "error", role: "alert", id: "auth-error" });
  const username = h("input", { id: "username", name: "username", autocomplete: "username", required: true,
                                autocapitalize: "none", spellcheck: "false" });
  const password = h("input", { id: "password", name: "password", type: "password", required: true,
                                autocomplete: signup ? "new-password" : "current-password" });
  const submit = h("button", { type: "submit", class: "primary", text: signup ? "Create account" : "Sign in" });
  const form = h("form", { class: "auth-form", "aria-describedby": "auth-error",
    onsubmit: async (event) => {
      event.preventDefault();
      submit.disabled = true;
      errorBox.textContent = "";
      try {
        const name = username.value.trim().replace(/^@/, "").replace(/:.*$/, "");
        if (signup) await client.register(name, password.value);
        else await client.login(name, password.value);
        notice = "";
        startChat();
      } catch (error) {
        errorBox.textContent = explain(error);
        submit.disabled = false;
        username.focus();
      }
    } },
  h("label", { for: "username", text: "Username" }), username,
  h("label", { for: "password", text: "Password" }), password,
  errorBox, submit);
  clear(app, h("section", { class: "auth", "aria-labelledby": "auth-title" },
    h("h1", { id: "auth-title", text: "AtomChat" }),
    notice ? h("p", { class: "notice", role: "alert", id: "signed-out", text: notice }) : null,
    h("h2", { text: signup ? "Create an account" : "Sign in" }),
    form,
    h("p", {}, signup ? "Already have an account? " : "New here? ",
      h("button", { type: "button", class: "link", text: signup ? "Sign in" : "Create an account",
                    onclick: () => showAuth(signup ? "signin" : "signup") }))));
  username.focus();
}

// -- the chat screen ----------------------------------------------------------

function startChat() {
  rooms = new Rooms(client.userId);
  buildChat();
  client.startFeed(null);
  client.admin("GET", "/users?limit=1").then(() => {
    isModerator = true;
    if (view) view.consoleButton.hidden = false;
  }).catch(() => { isModerator = false; });
}

function buildChat() {
  const me = client.userId;
  const connection = h("span", { class: "connection", role: "status", text: "Connecting…" });
  const consoleButton = h("button", { type: "button", id: "open-console", text: "Moderation", hidden: !isModerator,
                                      onclick: () => openConsole(client, app, () => { buildChat(); renderAll(); }) });
  const roomList = h("ul", { class: "room-list", id: "room-list" });
  const header = h("header", { class: "topbar" },
    h("button", { type: "button", class: "back", id: "back", "aria-label": "Back to rooms", text: "‹",
                  onclick: () => selectRoom(null) }),
    h("strong", { class: "brand", text: "AtomChat" }), connection,
    h("span", { class: "me", id: "me", text: me }), consoleButton,
    h("button", { type: "button", id: "sign-out", text: "Sign out", onclick: () => client.logout() }));
  const sidebar = h("nav", { class: "sidebar", "aria-label": "Rooms" },
    h("div", { class: "sidebar-actions" },
      h("button", { type: "button", id: "new-room", text: "New room", onclick: newRoomDialog }),
      h("button", { type: "button", id: "new-dm", text: "Message someone", onclick: directDialog })),
    h("h2", { class: "visually-hidden", text: "Your rooms" }), roomList);
  const roomTitle = h("h2", { id: "room-title", tabindex: "-1" });
  const roomTopic = h("p", { class: "topic", id: "room-topic" });
  const roomActions = h("div", { class: "room-actions" });
  const timeline = h("ol", { class: "timeline", id: "timeline", role: "log", "aria-live": "polite",
                             "aria-label": "Messages", tabindex: "0" });
  const typing = h("p", { class: "typing", id: "typing", "aria-live": "polite" });
  const seen = h("p", { class: "seen", id: "seen" });
  const input = h("textarea", { id: "composer", rows: "1", placeholder: "Write a message…", "aria-label": "Message" });
  const composer = h("form", { class: "composer", id: "composer-form",
    onsubmit: (event) => { event.preventDefault(); sendText(); } },
    input, h("button", { type: "submit", class: "primary", id: "send", text: "Send" }));
  const invite = h("div", { class: "invite-panel", id: "invite-panel", hidden: true });
  const main = h("section", { class: "room", "aria-labelledby": "room-title" },
    h("div", { class: "room-head" }, h("div", {}, roomTitle, roomTopic), roomActions),
    timeline, seen, typing, invite, composer);
  const empty = h("section", { class: "empty", id: "no-room" },
    h("p", { text: "Choose a room, or start a new one." }));
  clear(app, header, h("div", { class: "layout" }, sidebar, main, empty));
  view = { connection, consoleButton, roomList, roomTitle, roomTopic, roomActions, timeline, typing, seen, input,
           composer, invite, main, empty, lastTyping: 0, typingTimer: 0, lastReceipt: null };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); sendText(); }
  });
  input.addEventListener("input", onTyping);
  timeline.addEventListener("scroll", () => { if (timeline.scrollTop < 150) backfill(); });
  setStatus(status.hidden ? "" : status.textContent, !status.hidden);
  if (client.feed && client.feed.online) setStatus("", false);
}

function renderAll() {
  renderRoomList();
  renderRoom();
}

let listQueued = false;
function renderRoomList() {
  if (listQueued || !view) return;
  listQueued = true;
  requestAnimationFrame(() => {
    listQueued = false;
    if (!view || !rooms) return;
    const items = rooms.list().map((room) => {
      const last = room.lastMessage();
      const name = room.name(client.userId);
      const invited = room.membership === "invite";
      const badge = room.unread && room.id !== current
        ? h("span", { class: room.highlights ? "badge mention" : "badge",
                      "aria-label": `${room.unread} unread${room.highlights ? `, ${room.highlights} mentioning you` : ""}`,
                      text: room.highlights ? `@${room.unread}` : String(room.unread) }) : null;
      const preview = invited ? `Invitation from ${room.inviter || "someone"}`
        : last ? `${room.displayName(last.sender)}: ${messageText(room, last)}` : "";
      return h("li", {},
        h("button", { type: "button", class: room.id === current ? "room-item current" : "room-item",
                      "aria-current": room.id === current ? "true" : false, dataset: { room: room.id },
                      onclick: () => selectRoom(room.id) },
          h("span", { class: "avatar", "aria-hidden": "true", text: initials(name) }),
          h("span", { class: "room-text" }, h("span", { class: "room-name", text: name }),
            h("span", { class: "preview", text: preview })), badge));
    });
    clear(view.roomList, items.length ? items : [h("li", { class: "hint", text: "No rooms yet." })]);
  });
}

function selectRoom(id) {
  current = id;
  history.replaceState(null, "", id ? `#room=${enc(id)}` : "#");
  renderAll();
  if (id && view) view.roomTitle.focus();
}

function renderRoom() {
  if (!view) return;
  const room = current && rooms.rooms.get(current);
  document.body.classList.toggle("in-room", Boolean(room));
  view.main.hidden = !room;
  view.empty.hidden = Boolean(room);
  if (!room) { document.title = "AtomChat"; return; }
  const name = renderHead(room);
  const invited = room.membership === "invite";
  view.invite.hidden = !invited;
  view.composer.hidden = invited;
  if (invited) {
    clear(view.invite, h("p", { text: `${room.inviter || "Someone"} invited you to ${name}.` }),
      h("button", { type: "button", class: "primary", id: "accept-invite", text: "Accept",
                    onclick: () => act(() => client.call("POST", `/join/${enc(room.id)}`, {})) }),
      h("button", { type: "button", id: "decline-invite", text: "Decline",
                    onclick: () => act(() => client.call("POST", `/rooms/${enc(room.id)}/leave`, {})) }));
    clear(view.roomActions);
    clear(view.timeline);
    return;
  }
  clear(view.roomActions,
    h("button", { type: "button", id: "invite", text: "Invite", onclick: () => inviteDialog(room) }),
    h("button", { type: "button", id: "settings", text: "Settings", onclick: () => settingsDialog(room) }),
    h("button", { type: "button", id: "leave", text: "Leave", onclick: () => leaveRoom(room) }));
  renderTimeline(room);
}

function renderHead(room) {
  const name = room.name(client.userId);
  document.title = `${name} · AtomChat`;
  view.roomTitle.textContent = name;
  view.roomTopic.textContent = room.stateContent("m.room.topic").topic || "";
  return name;
}

function renderTimeline(room, { keepBottom = true } = {}) {
  room.replaced.length = 0;
  const list = view.timeline;
  const nodes = [];
  let lastDay = null;
  if (room.atStart) nodes.push(h("li", { class: "start", text: "This is the beginning of the room." }));
  for (const event of room.timeline) {
    const d = day(event.origin_server_ts);
    if (d !== lastDay) nodes.push(h("li", { class: "day", role: "separator", text: d }));
    lastDay = d;
    nodes.push(eventNode(room, event));
  }
  const fromBottom = list.scrollHeight - list.scrollTop;
  clear(list, nodes);
  if (keepBottom) list.scrollTop = list.scrollHeight;
  else list.scrollTop = list.scrollHeight - fromBottom;
  list.dataset.lastDay = lastDay || "";
  renderEphemeral(room);
  markRead(room);
}

function appendLive(room, events) {
  const list = view.timeline;
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  for (const event of events) {
    const d = day(event.origin_server_ts);
    if (d !== list.dataset.lastDay) list.append(h("li", { class: "day", role: "separator", text: d }));
    list.dataset.lastDay = d;
    list.append(eventNode(room, event));
  }
  if (atBottom || events.some((event) => event.sender === client.userId)) list.scrollTop = list.scrollHeight;
  markRead(room);
}

function messageText(room, event) {
  if (isRedacted(event)) return "Message deleted";
  const edit = room.edits.get(event.event_id);
  const content = edit ? edit.content : event.content;
  return content.body === undefined ? "" : String(content.body);
}

function stateText(room, event) {
  const who = room.displayName(event.sender);
  const content = event.content || {};
  switch (event.type) {
    case "m.room.create": return `${who} created the room`;
    case "m.room.name": return `${who} named the room ${content.name || ""}`.trim();
    case "m.room.topic": return `${who} set the topic: ${content.topic || ""}`;
    default: {
      const target = event.state_key === event.sender ? who : room.displayName(event.state_key);
      const verbs = { join: "joined", invite: `invited ${target}`, leave: event.state_key === event.sender
        ? "left" : `removed ${target}`, ban: `banned ${target}` };
      return `${who} ${verbs[content.membership] || "changed membership"}`;
    }
  }
}

function eventNode(room, event) {
  const key = event.echo ? `~${event.unsigned.transaction_id}` : event.event_id;
  if (event.type !== "m.room.message") {
    return h("li", { class: "notice-line", dataset: { key }, text: stateText(room, event) });
  }
  const me = client.userId;
  const name = room.displayName(event.sender);
  const redacted = isRedacted(event);
  const edited = room.edits.has(event.event_id);
  const stateLabel = { sending: "Sending…", failed: "Failed to send" }[event.pending];
  const actions = [];
  if (event.pending === "failed") {
    actions.push(h("button", { type: "button", class: "retry", text: "Retry", onclick: () => resend(room, event) }));
  }
  if (!event.pending && !redacted && event.event_id) {
    if (event.sender === me) {
      actions.push(h("button", { type: "button", class: "edit", text: "Edit", onclick: () => editMessage(room, event) }));
    }
    if (event.sender === me || room.can(me, "redact")) {
      actions.push(h("button", { type: "button", class: "delete", text: "Delete",
                                 onclick: () => deleteMessage(room, event) }));
    }
  }
  return h("li", { class: `msg${event.sender === me ? " mine" : ""}${event.pending ? ` ${event.pending}` : ""}`,
                   dataset: { key, sender: event.sender } },
    h("span", { class: "avatar", "aria-hidden": "true", text: initials(name) }),
    h("div", { class: "bubble" },
      h("div", { class: "meta" }, h("span", { class: "sender", text: name }),
        h("time", { datetime: new Date(event.origin_server_ts).toISOString(), text: time(event.origin_server_ts) }),
        edited && !redacted ? h("span", { class: "edited", text: "(edited)" }) : null,
        stateLabel ? h("span", { class: "pending-label", role: "status", text: stateLabel }) : null),
      h("p", { class: redacted ? "body deleted" : "body", text: messageText(room, event) }),
      actions.length ? h("div", { class: "actions" }, actions) : null));
}

function replaceNode(room, key, event) {
  if (!view || room.id !== current) return;
  const node = [...view.timeline.children].find((child) => child.dataset.key === key);
  if (node) node.replaceWith(eventNode(room, event));
}

function renderEphemeral(room) {
  const me = client.userId;
  const typing = room.typing.filter((user) => user !== me).map((user) => room.displayName(user));
  view.typing.textContent = typing.length ? `${typing.join(", ")} ${typing.length > 1 ? "are" : "is"} typing…` : "";
  const last = room.timeline[room.timeline.length - 1];
  const seenBy = last && last.event_id ? [...room.receipts].filter(([user, id]) => id === last.event_id && user !== me
    && user !== last.sender).map(([user]) => room.displayName(user)) : [];
  view.seen.textContent = seenBy.length ? `Seen by ${seenBy.join(", ")}` : "";
}

function markRead(room) {
  if (document.visibilityState !== "visible" || room.membership !== "join") return;
  const last = [...room.timeline].reverse().find((event) => event.event_id && !event.pending);
  if (!last || last.sender === client.userId || view.lastReceipt === last.event_id) return;
  view.lastReceipt = last.event_id;
  room.unread = 0;
  room.highlights = 0;
  client.ephemeral("receipt", { room_id: room.id, event_id: last.event_id },
    () => client.call("POST", `/rooms/${enc(room.id)}/receipt/m.read/${enc(last.event_id)}`, {}))
    .catch(() => { view && (view.lastReceipt = null); });
}

// -- sync -----------------------------------------------------------------------

function onSync(frame) {
  if (!rooms) return;
  const changed = rooms.apply(frame);
  if (!view) return;
  if (current === null && !listRestored && restoreFromHash()) return; // shown whole, this frame included
  const room = current && rooms.rooms.get(current);
  if (current && !room) { selectRoom(null); return; }
  renderRoomList();
  if (!room || !changed.rooms.has(current)) return;
  if (changed.limited.has(current) || room.membership === "invite" || view.composer.hidden) { renderRoom(); return; }
  for (const [echo, event] of room.replaced.splice(0)) replaceNode(room, `~${echo.unsigned.transaction_id}`, event);
  const live = changed.live.get(current);
  if (live) appendLive(room, live);
  for (const target of changed.edited.get(current) || []) {
    const event = room.byId.get(target);
    if (event) replaceNode(room, target, event);
  }
  renderHead(room);
  renderEphemeral(room);
}

let listRestored = false;
function restoreFromHash() {
  listRestored = true;
  const match = /^#room=(.+)$/.exec(location.hash);
  if (match) {
    const id = decodeURIComponent(match[1]);
    if (rooms.rooms.has(id)) { selectRoom(id); return true; }
  }
  return false;
}

async function backfill() {
  const room = current && rooms.rooms.get(current);
  if (!room || room.loading || room.atStart || !room.prevBatch || room.membership !== "join") return;
  room.loading = true;
  try {
    const query = new URLSearchParams({ dir: "b", from: room.prevBatch, limit: "50" });
    const page = await client.call("GET", `/rooms/${enc(room.id)}/messages?${query}`);
    room.add(page.chunk || [], { older: true });
    room.prevBatch = page.end || null;
    if (!page.end || !(page.chunk || []).length) room.atStart = true;
    if (room.id === current) renderTimeline(room, { keepBottom: false });
  } catch (error) {
    flash(explain(error));
  } finally {
    room.loading = false;
  }
}

// -- sending --------------------------------------------------------------------

async function sendText() {
  const room = current && rooms.rooms.get(current);
  const text = view.input.value.trim();
  if (!room || !text) return;
  view.input.value = "";
  stopTyping(room);
  const txn = newTxnId();
  const event = room.echo({ type: "m.room.message", sender: client.userId, origin_server_ts: Date.now(),
                            content: { msgtype: "m.text", body: text }, unsigned: { transaction_id: txn },
                            pending: "sending", echo: true });
  appendLive(room, [event]);
  await deliver(room, event);
}

async function deliver(room, event) {
  const txn = event.unsigned.transaction_id;
  try {
    const result = await client.send(room.id, event.type, event.content, txn);
    if (room.echoes.has(txn)) { // the server's copy has not come yet: mark the echo sent
      event.realId = result.event_id;
      event.event_id = result.event_id;
      event.pending = "";
      replaceNode(room, `~${txn}`, event);
    }
  } catch (error) {
    if (error.status === 0) return; // offline: sent again when the connection is back
    event.pending = "failed";
    replaceNode(room, `~${txn}`, event);
    flash(explain(error));
  }
}

function resendPending() {
  if (!rooms) return;
  for (const room of rooms.rooms.values()) {
    for (const event of room.echoes.values()) if (event.pending === "sending") deliver(room, event);
  }
}

function resend(room, event) {
  event.pending = "sending";
  replaceNode(room, `~${event.unsigned.transaction_id}`, event);
  deliver(room, event);
}

function onTyping() {
  const room = current && rooms.rooms.get(current);
  if (!room) return;
  const now = Date.now();
  if (now - view.lastTyping > 3000 && view.input.value) {
    view.lastTyping = now;
    client.ephemeral("typing", { room_id: room.id, typing: true, timeout: 5000 },
      () => client.call("PUT", `/rooms/${enc(room.id)}/typing/${enc(client.userId)}`, { typing: true, timeout: 5000 }))
      .catch(() => {});
  }
  clearTimeout(view.typingTimer);
  view.typingTimer = setTimeout(() => stopTyping(room), 4000);
}

function stopTyping(room) {
  if (!view || !view.lastTyping) return;
  view.lastTyping = 0;
  clearTimeout(view.typingTimer);
  client.ephemeral("typing", { room_id: room.id, typing: false },
    () => client.call("PUT", `/rooms/${enc(room.id)}/typing/${enc(client.userId)}`, { typing: false }))
    .catch(() => {});
}

function editMessage(room, event) {
  dialog("Edit message", (close) => {
    const field = h("textarea", { id: "edit-text", rows: "3" });
    field.value = messageText(room, event);
    return h("form", { onsubmit: async (submit) => {
      submit.preventDefault();
      const body = field.value.trim();
      if (!body) return;
      close();
      const content = { msgtype: "m.text", body: `* ${body}`, "m.new_content": { msgtype: "m.text", body },
                        "m.relates_to": { rel_type: "m.replace", event_id: event.event_id } };
      await act(() => client.send(room.id, "m.room.message", content, newTxnId()));
    } }, h("label", { for: "edit-text", text: "Message" }), field,
    h("button", { type: "submit", class: "primary", text: "Save" }));
  });
}

function deleteMessage(room, event) {
  if (!confirm("Delete this message?")) return;
  act(() => client.call("PUT", `/rooms/${enc(room.id)}/redact/${enc(event.event_id)}/${enc(newTxnId())}`, {}));
}

// -- rooms ----------------------------------------------------------------------

async function act(action) {
  try {
    return await action();
  } catch (error) {
    flash(explain(error));
    return null;
  }
}

function flash(text) {
  const box = h("div", { class: "toast", role: "alert", text });
  document.body.append(box);
  setTimeout(() => box.remove(), 6000);
}

function newRoomDialog() {
  dialog("New room", (close) => {
    const name = h("input", { id: "new-room-name", required: true, maxlength: "255" });
    const topic = h("input", { id: "new-room-topic", maxlength: "1000" });
    return h("form", { onsubmit: async (event) => {
      event.preventDefault();
      const body = { preset: "private_chat", name: name.value.trim() };
      if (topic.value.trim()) body.topic = topic.value.trim();
      const answer = await act(() => client.call("POST", "/createRoom", body));
      if (answer) { close(); selectWhenKnown(answer.room_id); }
    } },
    h("label", { for: "new-room-name", text: "Room name" }), name,
    h("label", { for: "new-room-topic", text: "Topic (optional)" }), topic,
    h("button", { type: "submit", class: "primary", id: "create-room", text: "Create room" }));
  });
}

// Selects a room now if a sync frame has brought it, else once one does.
let pendingSelect = null;
function selectWhenKnown(id) {
  if (rooms && rooms.rooms.has(id)) selectRoom(id); else pendingSelect = id;
}
client.addEventListener("sync", () => {
  if (pendingSelect && rooms && rooms.rooms.has(pendingSelect)) {
    const id = pendingSelect;
    pendingSelect = null;
    selectRoom(id);
  }
});

// A search box over the user directory, plus the typed name as a user id.
function userPicker(label, onPick) {
  const input = h("input", { id: "user-search", type: "search", autocomplete: "off", required: true });
  const results = h("ul", { class: "results", id: "user-results", "aria-live": "polite" });
  let timer = 0;
  const pickButton = (userId, name) => h("li", {}, h("button", { type: "button", class: "pick",
    dataset: { user: userId }, text: name && name !== userId ? `${name} (${userId})` : userId,
    onclick: () => onPick(userId) }));
  const search = async () => {
    const term = input.value.trim();
    if (!term) { clear(results); return; }
    const typed = term.startsWith("@") ? (term.includes(":") ? term : `${term}:${client.serverName}`)
      : `@${term}:${client.serverName}`;
    const answer = await act(() => client.call("POST", "/user_directory/search", { search_term: term, limit: 10 }));
    const found = ((answer && answer.results) || []).filter((user) => user.user_id !== client.userId);
    const items = found.map((user) => pickButton(user.user_id, user.display_name));
    if (!found.some((user) => user.user_id === typed) && typed !== client.userId) items.push(pickButton(typed));
    clear(results, items);
  };
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(search, 200); });
  return h("div", { class: "picker" }, h("label", { for: "user-search", text: label }), input, results);
}

function inviteDialog(room) {
  dialog(`Invite to ${room.name(client.userId)}`, (close) => h("div", {},
    userPicker("Find people by name", async (userId) => {
      const done = await act(() => client.call("POST", `/rooms/${enc(room.id)}/invite`, { user_id: userId }));
      if (done) { close(); flash(`Invited ${userId}`); }
    })));
}

function directDialog() {
  dialog("Message someone", (close) => h("div", {},
    userPicker("Find a person by name", async (userId) => {
      const answer = await act(() => client.call("POST", "/createRoom",
        { preset: "trusted_private_chat", is_direct: true, invite: [userId] }));
      if (answer) { close(); selectWhenKnown(answer.room_id); }
    })));
}

async function leaveRoom(room) {
  if (!confirm(`Leave ${room.name(client.userId)}?`)) return;
  const done = await act(() => client.call("POST", `/rooms/${enc(room.id)}/leave`, {}));
  if (done) selectRoom(null);
}

function settingsDialog(room) {
  const me = client.userId;
  dialog("Room settings", () => {
    const name = h("input", { id: "settings-name", maxlength: "255", disabled: !room.can(me, "m.room.name") });
    name.value = room.stateContent("m.room.name").name || "";
    const topic = h("input", { id: "settings-topic", maxlength: "1000", disabled: !room.can(me, "m.room.topic") });
    topic.value = room.stateContent("m.room.topic").topic || "";
    const save = async (type, body) => act(() => client.call("PUT", `/rooms/${enc(room.id)}/state/${type}/`, body));
    const form = h("form", { onsubmit: async (event) => {
      event.preventDefault();
      if (!name.disabled && name.value !== (room.stateContent("m.room.name").name || "")) {
        await save("m.room.name", { name: name.value });
      }
      if (!topic.disabled && topic.value !== (room.stateContent("m.room.topic").topic || "")) {
        await save("m.room.topic", { topic: topic.value });
      }
      flash("Saved");
    } },
    h("label", { for: "settings-name", text: "Name" }), name,
    h("label", { for: "settings-topic", text: "Topic" }), topic,
    h("button", { type: "submit", class: "primary", text: "Save", disabled: name.disabled && topic.disabled }));
    const members = [...room.members("join"), ...room.members("invite"), ...room.members("ban")].map((user) => {
      const membership = room.stateContent("m.room.member", user).membership;
      const power = room.powerOf(user);
      const role = power >= 100 ? "admin" : power >= 50 ? "moderator" : "member";
      const mine = room.powerOf(me);
      const buttons = [];
      if (user !== me && mine > power) {
        if (membership !== "ban" && room.can(me, "kick")) {
          buttons.push(h("button", { type: "button", text: "Kick", onclick: () => act(() =>
            client.call("POST", `/rooms/${enc(room.id)}/kick`, { user_id: user })) }));
        }
        if (room.can(me, "ban")) {
          buttons.push(membership === "ban"
            ? h("button", { type: "button", text: "Unban", onclick: () => act(() =>
              client.call("POST", `/rooms/${enc(room.id)}/unban`, { user_id: user })) })
            : h("button", { type: "button", text: "Ban", onclick: () => act(() =>
              client.call("POST", `/rooms/${enc(room.id)}/ban`, { user_id: user })) }));
        }
      }
      return h("li", {}, h("span", { text: `${room.displayName(user)} (${user})` }),
        h("span", { class: "role", text: `${role} · power ${power}${membership !== "join" ? ` · ${membership}` : ""}` }),
        buttons);
    });
    return h("div", {}, form, h("h3", { text: "Members" }), h("ul", { class: "members" }, members));
  });
}

// -- start ----------------------------------------------------------------------

document.addEventListener("visibilitychange", () => {
  const room = current && rooms && rooms.rooms.get(current);
  if (room && view) markRead(room);
});

if (client.session) startChat(); else showAuth();
