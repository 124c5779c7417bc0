// What the client knows of its rooms, kept up to date from sync frames:
// names, members, power levels, timelines (with edits and deletions
// applied), unread counts, typing and read receipts. No page code here.

export class Room {
  constructor(id) {
    this.id = id;
    this.membership = "join";
    this.state = new Map(); // "type\u0000state_key" -> event
    this.timeline = []; // message-like events, oldest first
    this.byId = new Map();
    this.edits = new Map(); // target event id -> newest replacing content
    this.prevBatch = null;
    this.atStart = false;
    this.unread = 0;
    this.highlights = 0;
    this.typing = [];
    this.receipts = new Map(); // user id -> event id
    this.heroes = [];
    this.inviter = null;
    this.echoes = new Map(); // transaction id -> local echo of an event this client is sending
    this.replaced = []; // [echo, event]: echoes the server's copy has replaced since last asked
  }

  // A local echo: shown at once, marked pending until the server's copy comes.
  echo(event) {
    this.echoes.set(event.unsigned.transaction_id, event);
    this.timeline.push(event);
    return event;
  }

  takeEcho(event) {
    const txn = event.unsigned && event.unsigned.transaction_id;
    let echo = txn ? this.echoes.get(txn) : null;
    if (!echo) echo = [...this.echoes.values()].find((candidate) => candidate.realId === event.event_id);
    if (!echo) return false;
    this.echoes.delete(echo.unsigned.transaction_id);
    const index = this.timeline.indexOf(echo);
    if (index >= 0) this.timeline[index] = event;
    this.byId.set(event.event_id, event);
    this.replaced.push([echo, event]);
    return true;
  }

  stateEvent(type, key = "") { return this.state.get(`${type}\u0000${key}`); }

  stateContent(type, key = "") {
    const event = this.stateEvent(type, key);
    return (event && event.content) || {};
  }

  setState(event) { this.state.set(`${event.type}\u0000${event.state_key}`, event); }

  members(kind = "join") {
    const out = [];
    for (const event of this.state.values()) {
      if (event.type === "m.room.member" && event.content && event.content.membership === kind) {
        out.push(event.state_key);
      }
    }
    return out.sort();
  }

  displayName(userId) {
    const content = this.stateContent("m.room.member", userId);
    return content.displayname || userId.replace(/^@/, "").replace(/:.*$/, "");
  }

  name(me) {
    const name = this.stateContent("m.room.name").name;
    if (name) return name;
    const others = (this.heroes.length ? this.heroes : [...this.members("join"), ...this.members("invite")])
      .filter((user) => user !== me);
    if (others.length) return others.slice(0, 3).map((user) => this.displayName(user)).join(", ");
    return "Empty room";
  }

  powerOf(userId) {
    // From room version 12 the creators (the create event's sender and its
    // additional_creators) are above every level and are not listed: shown
    // as the top level, 100.
    const create = this.stateEvent("m.room.create");
    if (create && create.content && create.content.room_version === "12"
        && (create.sender === userId || (create.content.additional_creators || []).includes(userId))) {
      return 100;
    }
    const levels = this.stateContent("m.room.power_levels");
    const users = levels.users || {};
    return userId in users ? users[userId] : (levels.users_default || 0);
  }

  // The level needed for an action: "kick", "ban", "invite", "redact" or a state event type.
  needed(action) {
    const levels = this.stateContent("m.room.power_levels");
    if (["kick", "ban", "redact"].includes(action)) return levels[action] === undefined ? 50 : levels[action];
    if (action === "invite") return levels.invite || 0;
    const events = levels.events || {};
    return action in events ? events[action] : (levels.state_default === undefined ? 50 : levels.state_default);
  }

  can(me, action) { return this.powerOf(me) >= this.needed(action); }

  lastMessage() {
    for (let i = this.timeline.length - 1; i >= 0; i -= 1) {
      const event = this.timeline[i];
      if (event.type === "m.room.message") return event;
    }
    return null;
  }

  // Adds events at the end (live) or at the start (history, newest first).
  // Returns the events that are to be shown as new entries.
  add(events, { older = false } = {}) {
    const shown = [];
    for (const event of events) {
      if (this.byId.has(event.event_id)) continue;
      if (event.state_key !== undefined && !older) this.setState(event);
      if (this.applyRelation(event)) continue;
      if (!older && this.takeEcho(event)) continue;
      this.byId.set(event.event_id, event);
      if (!visible(event)) continue;
      shown.push(event);
    }
    if (older) this.timeline.unshift(...shown.reverse());
    else this.timeline.push(...shown);
    return shown;
  }

  // Edits and deletions change the event they point at; they are not shown
  // themselves. Returns whether the event was one of them.
  applyRelation(event) {
    const relates = event.content && event.content["m.relates_to"];
    if (event.type === "m.room.message" && relates && relates.rel_type === "m.replace" && event.content["m.new_content"]) {
      this.byId.set(event.event_id, event);
      const target = relates.event_id;
      const known = this.edits.get(target);
      if (!known || known.ts <= event.origin_server_ts) {
        this.edits.set(target, { content: event.content["m.new_content"], ts: event.origin_server_ts });
      }
      return true;
    }
    if (event.type === "m.room.redaction") {
      this.byId.set(event.event_id, event);
      const target = this.byId.get(event.redacts || (event.content && event.content.redacts));
      if (target) {
        target.content = {};
        target.unsigned = { ...(target.unsigned || {}), redacted_because: event };
      }
      return true;
    }
    return false;
  }
}

export function visible(event) {
  return event.type === "m.room.message" || event.type === "m.room.member" || event.type === "m.room.name"
    || event.type === "m.room.topic" || event.type === "m.room.create";
}

export function isRedacted(event) {
  return Boolean(event.unsigned && event.unsigned.redacted_because);
}

export class Rooms extends EventTarget {
  constructor(me) {
    super();
    this.me = me;
    this.rooms = new Map();
  }

  get(id) {
    let room = this.rooms.get(id);
    if (!room) {
      room = new Room(id);
      this.rooms.set(id, room);
    }
    return room;
  }

  // Applies one /sync answer (or stream frame). Returns what changed:
  // {rooms: Set of ids touched, live: Map id -> new events shown}.
  apply(frame) {
    const changed = { rooms: new Set(), live: new Map(), limited: new Set(), edited: new Map() };
    const groups = frame.rooms || {};
    for (const [id, data] of Object.entries(groups.join || {})) {
      const room = this.get(id);
      room.membership = "join";
      changed.rooms.add(id);
      for (const event of (data.state && data.state.events) || []) room.setState(event);
      if (data.summary && data.summary["m.heroes"]) room.heroes = data.summary["m.heroes"];
      const timeline = data.timeline || {};
      if (timeline.limited && room.timeline.length) {
        room.timeline = [...room.echoes.values()];
        room.byId = new Map();
        changed.limited.add(id);
      }
      if ((timeline.limited || room.prevBatch === null) && timeline.prev_batch) room.prevBatch = timeline.prev_batch;
      const before = new Set(room.edits.keys());
      const shown = room.add(timeline.events || []);
      const edited = [...(timeline.events || [])].map((event) => editTarget(event)).filter(Boolean);
      if (edited.length || before.size !== room.edits.size) changed.edited.set(id, edited);
      if (shown.length) changed.live.set(id, shown);
      for (const event of (data.ephemeral && data.ephemeral.events) || []) {
        if (event.type === "m.typing") room.typing = event.content.user_ids || [];
        if (event.type === "m.receipt") {
          for (const [eventId, kinds] of Object.entries(event.content)) {
            for (const user of Object.keys(kinds["m.read"] || {})) room.receipts.set(user, eventId);
          }
        }
      }
      const counts = data.unread_notifications;
      if (counts) {
        room.unread = counts.notification_count || 0;
        room.highlights = counts.highlight_count || 0;
      }
    }
    for (const [id, data] of Object.entries(groups.invite || {})) {
      const room = this.get(id);
      room.membership = "invite";
      for (const event of (data.invite_state && data.invite_state.events) || []) {
        room.setState(event);
        if (event.type === "m.room.member" && event.state_key === this.me) room.inviter = event.sender;
      }
      changed.rooms.add(id);
    }
    for (const id of Object.keys(groups.leave || {})) {
      this.rooms.delete(id);
      changed.rooms.add(id);
    }
    return changed;
  }

  list() {
    const rooms = [...this.rooms.values()];
    const last = (room) => {
      const event = room.timeline[room.timeline.length - 1];
      return event ? event.origin_server_ts : 0;
    };
    return rooms.sort((a, b) => (a.membership === "invite") - (b.membership === "invite") || last(b) - last(a))
      .sort((a, b) => (b.membership === "invite") - (a.membership === "invite"));
  }
}

function editTarget(event) {
  if (event.type === "m.room.redaction") return event.redacts || (event.content && event.content.redacts);
  const relates = event.content && event.content["m.relates_to"];
  return relates && relates.rel_type === "m.replace" ? relates.event_id : null;
}
