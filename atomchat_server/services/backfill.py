"""History from before this server joined a room: asked of the room's other
servers (GET /backfill) when a reader pages back past the oldest event held.

One fill asks one server at a time for the events before where the room's
history here begins (its backward extremities), trying the next server when
one fails or has nothing new (the servers in the room, then those that were
in it earlier), within a bounded time for each and overall. Each PDU of an
answer is judged as received PDUs are (FederationEvents.check_history:
format, signature, hash, the rules on its own auth events); the rejected
are kept apart (refused_events), the accepted put before everything the
room holds (storage.backfill: history only, never current state, the head,
the forward extremities, the notifier or sync).

Two readers paging the same room at once share one fill in this process
(a lock per room), and the insert takes the room's backfill lock in the
database, so each event is inserted once whatever the processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from weakref import WeakValueDictionary

import asyncpg

from ..clock import Clock
from ..db import Database
from ..events.auth import redaction_applies
from ..events.format import client_event
from ..events.ids import server_of
from ..events.pdu import as_event
from ..events.pdu_checks import auth_state
from ..events.redaction import pruned_content
from ..events.room_versions import RoomVersion, room_version
from ..storage import backfill as backfill_store
from ..storage import events as event_store
from ..storage import pdus as pdu_store
from .federation_events import FederationEvents, RemoteCalls

log = logging.getLogger(__name__)

# Events asked of a server at once.
BATCH = 50
# Backward extremities named in one request.
MAX_FROM = 5
# How long one fill may take, all servers tried included (seconds).
FILL_SECONDS = 10.0
# Servers in the room tried in one fill, and then servers that were in it earlier.
MAX_SERVERS = 3
MAX_FORMER_SERVERS = 3
# How long one server may take to answer (seconds): one that hangs leaves
# the fill time to ask others.
SERVER_SECONDS = FILL_SECONDS / 3
# For how long a fill that found nothing is not tried again while the
# room's history here is unchanged (seconds), and how many rooms are kept so.
QUIET_SECONDS = 30.0
MAX_QUIET_ROOMS = 10000


class Backfill:
    def __init__(
        self, *, pool: asyncpg.Pool, client: RemoteCalls, events: FederationEvents, server_name: str, clock: Clock
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._client = client
        self._events = events
        self._server_name = server_name
        self._locks: WeakValueDictionary[str, asyncio.Lock] = WeakValueDictionary()
        # room id -> (its lowest position, when) of fills that found nothing:
        # readers paging at the start of a complete history, or while the
        # other servers are down, do not ask them again on every page.
        self._quiet: dict[str, tuple[int | None, float]] = {}

    async def fill(self, room_id: str, lowest: int | None) -> bool:
        """Takes in earlier history of the room from another server; whether
        the room's history here now goes further back than ``lowest`` (the
        position of its oldest event when the reader looked). A reader that
        waited on another's fill of the room finds it done. Never raises for
        a remote failure: the reader then gets what this server holds."""
        lock = self._locks.get(room_id)
        if lock is None:
            lock = self._locks[room_id] = asyncio.Lock()
        async with lock:
            now = await backfill_store.lowest_position(self._pool, room_id)
            if now is not None and (lowest is None or now < lowest):
                return True
            quiet = self._quiet.get(room_id)
            if quiet is not None and quiet[0] == now and self._clock.monotonic() - quiet[1] < QUIET_SECONDS:
                return False
            try:
                filled = await asyncio.wait_for(self._fill(room_id), FILL_SECONDS) > 0
            except asyncio.TimeoutError:
                log.info("backfill of %s took longer than %ss", room_id, FILL_SECONDS)
                filled = False
            if filled:
                self._quiet.pop(room_id, None)
            else:
                if len(self._quiet) >= MAX_QUIET_ROOMS:
                    self._quiet.clear()
                self._quiet[room_id] = (now, self._clock.monotonic())
            return filled

    async def _servers(self, room_id: str) -> list[str]:
        """Whom to ask, in order: servers with a user in the room now (the
        one named in the room id first: up to version 11 it made the room
        and knows its history first), then, should they all fail, servers
        that were in it earlier (those that joined first first), which may
        still hold its history and know the asker's users were in it."""
        present = set(await pdu_store.servers_in_room(self._pool, room_id)) | {self._server_name}
        current = sorted(present - {self._server_name}, key=lambda s: (s != server_of(room_id), s))
        former = await backfill_store.former_servers(self._pool, room_id, len(present) + MAX_FORMER_SERVERS)
        return current[:MAX_SERVERS] + [s for s in former if s not in present][:MAX_FORMER_SERVERS]

    async def _fill(self, room_id: str) -> int:
        room = await pdu_store.pdu_room(self._pool, room_id)
        servers = await self._servers(room_id) if room is not None else []
        if not servers:
            return 0  # a room of this server's users only: its history is all here
        joined = await backfill_store.joined_at_depth(self._pool, room_id, self._server_name)
        if joined is None:
            return 0  # no user of this server ever joined: nothing here to go back from
        start = await backfill_store.backward_extremities(self._pool, room_id, joined, MAX_FROM)
        if not start:
            return 0  # the room's history here reaches its create event
        assert room is not None, "no servers without a room"
        version = room_version(room.room_version)
        for server in servers:
            try:
                answer = await self._client.request(
                    server,
                    "GET",
                    f"/_matrix/federation/v1/backfill/{room_id}",
                    query={"v": start, "limit": str(BATCH)},
                    timeout=SERVER_SECONDS,
                )
            except Exception as exc:  # noqa: BLE001 - the next server is asked
                log.info("backfill of %s from %s failed: %s", room_id, server, exc)
                continue
            pdus = answer.get("pdus") if isinstance(answer, Mapping) else None
            if not isinstance(pdus, list):
                continue
            given = [p for p in pdus[: BATCH * 2] if isinstance(p, Mapping) and _of_room(p, room_id, version)]
            inserted = await self._take(server, room_id, given, version, joined)
            if inserted:
                return inserted
        return 0

    async def _take(self, origin: str, room_id: str, pdus: list[Any], version: RoomVersion, joined: int) -> int:
        """Judges an answer's PDUs, keeps the rejected apart and inserts the
        accepted from before the server's first join (depth below
        ``joined``) before everything held; how many were inserted (those
        held already, or inserted meanwhile by another process, are not).
        Events at or after the join are the forward history's: a gap there
        is get_missing_events' to fill, at the positions it belongs to."""
        pdus = [p for p in pdus if isinstance(p.get("depth"), int) and p["depth"] < joined]
        accepted, rejected = await self._events.check_history(origin, room_id, version, pdus)
        if rejected:
            await pdu_store.keep_refused(self._pool, room_id, "rejected", rejected, int(self._clock.time() * 1000))
        # Newest first: the countdown positions then keep the room's order.
        newest_first = sorted(
            accepted.items(), key=lambda p: (p[1][1]["depth"], p[1][1]["origin_server_ts"], p[0]), reverse=True
        )
        rows = [
            {
                "event_id": event_id,
                "type": event["type"],
                "state_key": event.get("state_key"),
                "sender": event["sender"],
                "content": event["content"],
                "origin_server_ts": event["origin_server_ts"],
                "depth": event["depth"],
                "prev_events": event["prev_events"],
                "redacts": event.get("redacts"),
                "pdu": {k: v for k, v in kept.items() if k != "unsigned"},
            }
            for event_id, (kept, event) in newest_first
        ]
        if not rows:
            return 0
        async with self._pool.acquire() as conn, conn.transaction():
            await backfill_store.lock_history(conn, room_id)
            inserted = await backfill_store.insert_history(conn, room_id, rows)
            await self._redact(conn, room_id, version, list(inserted))
        log.info("backfilled %d events of %s from %s", len(inserted), room_id, origin)
        return len(inserted)

    async def _redact(self, conn: Database, room_id: str, version: RoomVersion, event_ids: list[str]) -> None:
        """Applies the redactions among the events just placed in the
        history, and those held that name one of them, as a live redaction
        is applied: when its sender may redact the target (by the state it
        was sent in, its auth events). Backfill brings a redaction before
        its target (newest first): the target is redacted on arrival."""
        pairs = await backfill_store.redaction_pairs(conn, room_id, event_ids)
        if not pairs:
            return
        # From version 12 the create event counts without being cited.
        create = ["$" + room_id[1:]] if version.room_id_is_create_event_id else []
        cited = list({a for pair in pairs for a in pair.auth_events} | set(create))
        known = {r.event_id: as_event(r.pdu, r.event_id, version) for r in await pdu_store.pdus(conn, room_id, cited)}
        for redaction, auth_ids, target in pairs:
            state = auth_state([known[a] for a in (*create, *auth_ids) if a in known])
            if not redaction_applies(redaction._asdict(), target._asdict(), state):
                continue
            because = client_event(redaction, now_ms=int(self._clock.time() * 1000))
            del because["unsigned"]
            await event_store.redact(
                conn, target.event_id, pruned_content(target.type, target.content, version), because
            )


def _of_room(pdu: Mapping[str, Any], room_id: str, version: RoomVersion) -> bool:
    """Whether a PDU of an answer claims the room: by its room id, or (a
    room whose id names its create event) the create event, which has none
    and whose id check_history then matches to the room's."""
    if version.room_id_is_create_event_id and "room_id" not in pdu:
        return pdu.get("type") == "m.room.create"
    return pdu.get("room_id") == room_id
