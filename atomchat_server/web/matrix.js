// The client's connection to the server: the session (tokens kept in
// localStorage and refreshed before they expire), HTTP requests to the
// Matrix client API and the admin API, and the live feed of changes: the
// AtomChat WebSocket stream, or /sync long-polls where WebSockets fail.
// Nothing here touches the page; main.js listens to the events it emits.

const CLIENT = "/_matrix/client/v3";
const ADMIN = "/_atomchat/admin/v1";
const STREAM = "/_atomchat/client/v1/stream";
const STORE_KEY = "atomchat.session";
const FILTER = JSON.stringify({ room: { timeline: { limit: 40 } } });

export class MatrixError extends Error {
  constructor(status, body) {
    super(body.error || `HTTP ${status}`);
    this.status = status;
    this.errcode = body.errcode || "M_UNKNOWN";
    this.body = body;
  }
}

export const enc = encodeURIComponent;

let txnCounter = 0;
export function newTxnId() {
  txnCounter += 1;
  return `w${Date.now()}.${txnCounter}`;
}

export class Client extends EventTarget {
  constructor() {
    super();
    this.session = JSON.parse(localStorage.getItem(STORE_KEY) || "null");
    this.refreshing = null;
    this.refreshTimer = 0;
    this.feed = null;
    if (this.session) this.scheduleRefresh();
  }

  get userId() { return this.session && this.session.user_id; }
  get serverName() { return this.userId ? this.userId.slice(this.userId.indexOf(":") + 1) : location.hostname; }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  save(answer) {
    const previous = this.session || {};
    this.session = {
      user_id: answer.user_id || previous.user_id,
      device_id: answer.device_id || previous.device_id,
      access_token: answer.access_token,
      refresh_token: answer.refresh_token || previous.refresh_token,
      expires_at: answer.expires_in_ms ? Date.now() + answer.expires_in_ms : null,
    };
    localStorage.setItem(STORE_KEY, JSON.stringify(this.session));
    this.scheduleRefresh();
  }

  scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    const at = this.session && this.session.expires_at;
    if (!at || !this.session.refresh_token) return;
    const wait = Math.max(1000, at - Date.now() - 30000);
    this.refreshTimer = setTimeout(() => this.refresh().catch(() => {}), wait);
  }

  // Ends the session locally: ``reason`` is shown on the sign-in screen.
  signOut(reason) {
    clearTimeout(this.refreshTimer);
    if (this.feed) this.feed.stop();
    this.feed = null;
    this.session = null;
    localStorage.removeItem(STORE_KEY);
    this.emit("signedout", { reason });
  }

  async raw(method, url, body, token) {
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (error) {
      throw new MatrixError(0, { errcode: "NETWORK", error: "The server cannot be reached" });
    }
    const text = await response.text();
    let data = {};
    try { data = text ? JSON.parse(text) : {}; } catch (error) { data = { error: text }; }
    if (!response.ok) throw new MatrixError(response.status, data);
    return data;
  }

  // A request with the session's token; an expired token is refreshed once
  // and the request repeated; a locked account is signed out.
  async call(method, path, body, { prefix = CLIENT } = {}) {
    if (!this.session) throw new MatrixError(401, { errcode: "M_MISSING_TOKEN", error: "Not signed in" });
    for (let attempt = 0; ; attempt += 1) {
      const token = this.session.access_token;
      try {
        return await this.raw(method, prefix + path, body, token);
      } catch (error) {
        if (error.errcode === "M_USER_LOCKED") {
          this.signOut("Your account has been locked by a moderator. You have been signed out.");
          throw error;
        }
        if (error.errcode === "M_UNKNOWN_TOKEN" && attempt === 0 && this.session) {
          // A refresh in flight ends the token this request carried: its
          // answer may come back before the refresh's does.
          if (this.refreshing) await this.refreshing.catch(() => {});
          if (!this.session) throw error;
          if (this.session.access_token !== token) continue; // refreshed meanwhile
          if (this.session.refresh_token && error.body.soft_logout) {
            await this.refresh();
            continue;
          }
          this.signOut("Your session has ended. Please sign in again.");
        }
        throw error;
      }
    }
  }

  admin(method, path, body) { return this.call(method, path, body, { prefix: ADMIN }); }

  refresh() {
    if (!this.refreshing) {
      const refreshToken = this.session && this.session.refresh_token;
      this.refreshing = this.raw("POST", `${CLIENT}/refresh`, { refresh_token: refreshToken })
        .then((answer) => { this.save(answer); })
        .catch((error) => {
          if (error.status === 0) throw error; // offline: try again later
          this.signOut(error.errcode === "M_USER_LOCKED"
            ? "Your account has been locked by a moderator. You have been signed out."
            : "Your session has ended. Please sign in again.");
          throw error;
        })
        .finally(() => { this.refreshing = null; });
    }
    return this.refreshing;
  }

  async register(username, password) {
    const body = { username, password, refresh_token: true, initial_device_display_name: "AtomChat web",
                   auth: { type: "m.login.dummy" } };
    this.save(await this.raw("POST", `${CLIENT}/register`, body));
  }

  async login(username, password) {
    const body = { type: "m.login.password", identifier: { type: "m.id.user", user: username }, password,
                   refresh_token: true, initial_device_display_name: "AtomChat web" };
    this.save(await this.raw("POST", `${CLIENT}/login`, body));
  }

  async logout() {
    try { await this.call("POST", "/logout", {}); } catch (error) { /* signed out either way */ }
    this.signOut("");
  }

  // -- the live feed --------------------------------------------------------

  startFeed(since) {
    this.feed = new Feed(this, since);
    this.feed.start();
    return this.feed;
  }

  // Sends an event: over the stream when it is open, else over HTTP.
  async send(roomId, type, content, txnId) {
    if (this.feed && this.feed.socketReady()) {
      try {
        return await this.feed.request("send", { room_id: roomId, type, content, txn_id: txnId });
      } catch (error) {
        if (error.errcode !== "SOCKET_CLOSED") throw error;
      }
    }
    return this.call("PUT", `/rooms/${enc(roomId)}/send/${enc(type)}/${enc(txnId)}`, content);
  }

  async ephemeral(method, params, fallback) {
    if (this.feed && this.feed.socketReady()) {
      try { return await this.feed.request(method, params); } catch (error) { /* fall back */ }
    }
    return fallback();
  }
}

// The live feed: sync frames as they come. Emits "sync" (one /sync answer),
// "online" and "offline" on the client. Reconnects by itself, resuming
// after the last position it handed on.
class Feed {
  constructor(client, since) {
    this.client = client;
    this.since = since || null;
    this.stopped = false;
    this.socket = null;
    this.pending = new Map();
    this.nextId = 1;
    this.failures = 0;
    this.mode = new URLSearchParams(location.search).get("transport") === "poll" || !window.WebSocket
      ? "poll" : "stream";
    this.everOpened = false;
    this.online = null;
    this.timer = 0;
    this.poll = null;
  }

  setOnline(online) {
    if (this.online === online) return;
    this.online = online;
    this.client.emit(online ? "online" : "offline", { mode: this.mode });
  }

  start() {
    if (this.stopped) return;
    if (this.mode === "stream") this.openSocket(); else this.longPoll();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, "signed out");
    if (this.poll) this.poll.abort();
  }

  retry() {
    if (this.stopped) return;
    this.failures += 1;
    const wait = Math.min(5000, 250 * 2 ** Math.min(this.failures, 5));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.start(), wait);
  }

  deliver(frame) {
    this.since = frame.next_batch;
    this.client.emit("sync", frame);
  }

  socketReady() { return this.socket && this.socket.readyState === WebSocket.OPEN && this.authed; }

  openSocket() {
    const url = new URL(STREAM, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    if (this.since) url.searchParams.set("since", this.since);
    else url.searchParams.set("filter", FILTER);
    const socket = new WebSocket(url);
    this.socket = socket;
    this.authed = false;
    let opened = false;
    const token = this.client.session.access_token;
    socket.onopen = () => {
      opened = true;
      this.everOpened = true;
      socket.send(JSON.stringify({ type: "auth", access_token: token }));
      this.authed = true;
      this.failures = 0;
      this.setOnline(true);
    };
    socket.onmessage = (message) => {
      const frame = JSON.parse(message.data);
      if (frame.type === "sync") this.deliver(frame);
      else if (frame.id !== undefined && this.pending.has(frame.id)) {
        const { resolve, reject } = this.pending.get(frame.id);
        this.pending.delete(frame.id);
        if (frame.error) reject(new MatrixError(400, frame.error)); else resolve(frame.result);
      }
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.authed = false;
      for (const { reject } of this.pending.values()) {
        reject(new MatrixError(0, { errcode: "SOCKET_CLOSED", error: "The connection closed" }));
      }
      this.pending.clear();
      if (this.stopped) return;
      if (event.code === 4401) {
        this.sessionEnded(event.reason, token);
        return;
      }
      if (!opened && !this.everOpened && this.failures >= 2) {
        this.mode = "poll"; // WebSockets seem blocked: long-poll /sync instead
      }
      this.setOnline(false);
      this.retry();
    };
  }

  async sessionEnded(reason, token) {
    if (/locked/i.test(reason)) {
      this.client.signOut("Your account has been locked by a moderator. You have been signed out.");
      return;
    }
    const session = this.client.session;
    if (!session) return;
    try {
      if (session.access_token === token) await this.client.refresh();
      this.start();
    } catch (error) {
      this.setOnline(false);
      this.retry();
    }
  }

  request(method, params) {
    const id = this.nextId;
    this.nextId += 1;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }

  async longPoll() {
    while (!this.stopped && this.mode === "poll") {
      const query = new URLSearchParams({ timeout: this.since ? "25000" : "0" });
      if (this.since) query.set("since", this.since); else query.set("filter", FILTER);
      try {
        const frame = await this.client.call("GET", `/sync?${query}`);
        if (this.stopped) return;
        this.failures = 0;
        this.setOnline(true);
        this.deliver(frame);
      } catch (error) {
        if (this.stopped || !this.client.session) return;
        this.setOnline(false);
        this.retry();
        return;
      }
    }
  }
}
