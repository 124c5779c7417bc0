// The moderators' console, over the admin API (/_atomchat/admin/v1): every
// room with its activity and members, reading a room without joining it,
// the users with search and lock / suspend / unlock with a reason, the audit
// log (the moderation policy room) and the reports.

import { enc } from "./matrix.js";
import { clear, h, time, day } from "./dom.js";

export function openConsole(client, app, back) {
  const panel = h("div", { class: "console-body", id: "console-body", tabindex: "-1" });
  const tab = (id, label, show) => h("button", { type: "button", role: "tab", id: `tab-${id}`, text: label,
    onclick: (event) => {
      for (const other of event.target.parentNode.children) other.setAttribute("aria-selected", "false");
      event.target.setAttribute("aria-selected", "true");
      show(client, panel);
    } });
  const tabs = h("div", { role: "tablist", class: "tabs", "aria-label": "Console sections" },
    tab("rooms", "Rooms", showRooms), tab("users", "Users", showUsers), tab("audit", "Audit log", showAudit),
    tab("reports", "Reports", showReports));
  clear(app, h("header", { class: "topbar" }, h("strong", { class: "brand", text: "AtomChat moderation" }),
    h("button", { type: "button", id: "close-console", text: "Back to chat", onclick: back })),
  h("main", { class: "console", "aria-label": "Moderation console" }, tabs, panel));
  tabs.firstChild.click();
  tabs.firstChild.focus();
}

function failed(panel, error) {
  clear(panel, h("p", { class: "error", role: "alert", text: error.message }));
}

function when(ts) {
  return ts ? `${day(ts)} ${time(ts)}` : "never";
}

async function showRooms(client, panel) {
  clear(panel, h("p", { text: "Loading rooms…" }));
  try {
    const answer = await client.admin("GET", "/rooms?limit=500");
    const rows = answer.rooms.map((room) => h("tr", {},
      h("td", {}, h("button", { type: "button", class: "link", text: room.name || room.room_id,
                                dataset: { room: room.room_id }, onclick: () => showRoom(client, panel, room) })),
      h("td", { text: String(room.num_joined_members) }),
      h("td", { text: when(room.last_activity_ts) }),
      h("td", { text: room.creator || "" })));
    clear(panel, h("table", { class: "grid", id: "console-rooms" },
      h("caption", { text: `${answer.rooms.length} rooms` }),
      h("thead", {}, h("tr", {}, ["Room", "Members", "Last activity", "Creator"].map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", {}, rows)));
  } catch (error) { failed(panel, error); }
}

async function showRoom(client, panel, summary) {
  clear(panel, h("p", { text: "Loading room…" }));
  try {
    const room = await client.admin("GET", `/rooms/${enc(summary.room_id)}`);
    const page = await client.admin("GET", `/rooms/${enc(summary.room_id)}/messages?dir=b&limit=100`);
    const messages = page.chunk.slice().reverse().filter((event) => event.type === "m.room.message")
      .map((event) => h("li", {}, h("span", { class: "sender", text: event.sender }), " ",
        h("time", { text: when(event.origin_server_ts) }), h("p", { class: "body",
          text: event.content && event.content.body !== undefined ? String(event.content.body) : "Message deleted" })));
    clear(panel,
      h("button", { type: "button", class: "link", text: "All rooms", onclick: () => showRooms(client, panel) }),
      h("h2", { id: "console-room-name", text: room.name || room.room_id }),
      h("p", { text: `${room.room_id} · topic: ${room.topic || "none"} · join rule: ${room.join_rule || "?"}` }),
      h("h3", { text: "Members" }),
      h("ul", {}, room.members.map((m) => h("li", { text: `${m.user_id} (${m.membership})` }))),
      h("h3", { text: "Latest messages" }),
      h("ol", { class: "console-messages", id: "console-messages" }, messages));
  } catch (error) { failed(panel, error); }
}

async function showUsers(client, panel) {
  const search = h("input", { id: "console-user-search", type: "search" });
  const list = h("div", { id: "console-users", "aria-live": "polite" });
  const load = async () => {
    try {
      const query = new URLSearchParams({ limit: "200" });
      if (search.value.trim()) query.set("search", search.value.trim());
      const answer = await client.admin("GET", `/users?${query}`);
      clear(list, h("table", { class: "grid" },
        h("thead", {}, h("tr", {}, ["User", "State", "Last seen", "Action"].map((t) => h("th", { scope: "col", text: t })))),
        h("tbody", {}, answer.users.map((user) => userRow(client, user, load)))));
    } catch (error) { failed(list, error); }
  };
  let timer = 0;
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(load, 200); });
  clear(panel, h("label", { for: "console-user-search", text: "Search users" }), search, list);
  await load();
}

function userRow(client, user, reload) {
  const state = user.locked ? "locked" : user.suspended ? "suspended" : "active";
  const reason = h("input", { class: "reason", "aria-label": `Reason for ${user.user_id}`, placeholder: "Reason" });
  const block = (kind, on) => async () => {
    const key = kind === "lock" ? "locked" : "suspended";
    const body = { [key]: on };
    if (on && reason.value.trim()) body.reason = reason.value.trim();
    try {
      await client.admin("PUT", `/users/${enc(user.user_id)}/${kind}`, body);
      await reload();
    } catch (error) { alert(error.message); }
  };
  const actions = state === "active"
    ? [reason, h("button", { type: "button", class: "lock", text: "Lock", onclick: block("lock", true) }),
       h("button", { type: "button", class: "suspend", text: "Suspend", onclick: block("suspend", true) })]
    : [h("button", { type: "button", class: "unlock", text: state === "locked" ? "Unlock" : "Lift suspension",
                     onclick: block(state === "locked" ? "lock" : "suspend", false) })];
  return h("tr", { dataset: { user: user.user_id } },
    h("td", { text: `${user.displayname || ""} ${user.user_id}${user.is_moderator ? " (moderator)" : ""}` }),
    h("td", { class: "state", text: state }),
    h("td", { text: when(user.last_seen_ts) }),
    h("td", { class: "actions" }, actions));
}

async function policyRoom(client) {
  const joined = await client.call("GET", "/joined_rooms");
  const system = `@_atomchat:${client.serverName}`;
  for (const id of joined.joined_rooms) {
    try {
      const create = await client.call("GET", `/rooms/${enc(id)}/state/m.room.create/`);
      if (create.creator === system) return id;
    } catch (error) { /* not readable: not the one */ }
  }
  return null;
}

async function showAudit(client, panel) {
  clear(panel, h("p", { text: "Loading the audit log…" }));
  try {
    const id = await policyRoom(client);
    if (!id) { clear(panel, h("p", { text: "No moderation policy room found." })); return; }
    const filter = JSON.stringify({ types: ["m.policy.rule.user", "org.atomchat.room.deleted"] });
    const page = await client.call("GET", `/rooms/${enc(id)}/messages?dir=b&limit=100&filter=${enc(filter)}`);
    const rows = page.chunk.map((event) => {
      const content = event.content || {};
      let what;
      if (event.type === "org.atomchat.room.deleted") what = `deleted room ${content.room_id}`;
      else if (!content.recommendation) what = `lifted the block on ${String(event.state_key).replace(/^user:/, "")}`;
      else what = `${content.recommendation === "m.ban" ? "locked" : "suspended"} ${content.entity}`;
      return h("tr", {}, h("td", { text: when(event.origin_server_ts) }), h("td", { text: event.sender }),
        h("td", { text: what }), h("td", { text: content.reason || "" }));
    });
    clear(panel, h("table", { class: "grid", id: "console-audit" },
      h("thead", {}, h("tr", {}, ["When", "Moderator", "Action", "Reason"].map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", {}, rows)));
  } catch (error) { failed(panel, error); }
}

async function showReports(client, panel) {
  clear(panel, h("p", { text: "Loading reports…" }));
  try {
    const answer = await client.admin("GET", "/reports?status=all&limit=200");
    const rows = answer.reports.map((report) => h("tr", {},
      h("td", { text: when(report.received_ts) }), h("td", { text: report.kind }),
      h("td", { text: report.user_id || report.room_id || "" }), h("td", { text: report.reporter }),
      h("td", { text: report.reason || "" }), h("td", { text: report.status })));
    clear(panel, h("table", { class: "grid", id: "console-reports" },
      h("caption", { text: `${answer.reports.length} reports` }),
      h("thead", {}, h("tr", {}, ["Received", "Kind", "About", "Reporter", "Reason", "Status"].map((t) =>
        h("th", { scope: "col", text: t })))),
      h("tbody", {}, rows)));
  } catch (error) { failed(panel, error); }
}
