"""Sending this server's events to the other servers in their rooms.

Each event this process commits in a room whose events are PDUs, sent by
one of this server's users, is queued in the outbox for every other server
with a user joined to the room (and, for a membership change, the target's
server too), in the transaction that commits the event: the event and its
rows in the outbox are committed together or not at all, so a crash
cannot lose what was to be sent. Once committed, the outbox's senders for
those servers are woken; nothing here waits on a remote server.

Which rooms have users of other servers is known in memory, so that a
room with only this server's users costs nothing: every room where a user
of another server has (or had) a membership, each with the other servers
joined to it as last read from the database, or unknown. A member event
about a user of another server, written by this process or by any other
(the notifier observes every committed event), makes its room's servers
unknown: they are read again, in the transaction, when next needed. The
memory is trusted for a batch only when it has seen every event before
the batch: this process's own batches and the notifier's dispatch cover
positions up to the batch's floor; otherwise (another process's commit
not dispatched here yet) the batch reads its rooms' servers, as it would
without the memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from ..db import Database
from ..events.ids import server_of
from ..storage import pdus as pdu_store
from ..storage.events import Event


class PduOutbox(Protocol):
    """The part of federation.outbox.Outbox this service uses."""

    async def queue_pdus(
        self, db: Database, destinations: Iterable[str], pdus: Sequence[Mapping[str, Any]]
    ) -> None: ...

    def wake(self, destinations: Iterable[str]) -> None: ...


class PduSender:
    """``position`` tells up to which stream position the notifier has
    dispatched (and so observed) every event."""

    def __init__(self, *, outbox: PduOutbox, server_name: str, position: Callable[[], int]) -> None:
        self._outbox = outbox
        self._server_name = server_name
        self._position = position
        # Room -> the other servers joined to it (None: read them again).
        # A room missing has only ever had this server's users.
        self._rooms: dict[str, tuple[str, ...] | None] = {}
        self._seen = 0  # every event up to here is reflected in _rooms

    async def load(self, db: Database) -> None:
        """Learns the rooms with users of other servers. Call after adding
        ``observe`` to the notifier: what commits meanwhile is seen by one or
        the other."""
        for room_id in await pdu_store.rooms_with_remote_members(db, self._server_name):
            self._rooms.setdefault(room_id, None)

    def observe(self, row: Event) -> str | None:
        """The notifier's hook for each committed event (of any process)."""
        if row.stream > self._seen:
            self._note(row.room_id, row.type, row.state_key)
        return None

    def _note(self, room_id: str, event_type: str, state_key: str | None) -> None:
        if self._remote(event_type, state_key):
            self._rooms[room_id] = None

    def _remote(self, event_type: str, state_key: str | None) -> bool:
        """A member event about a user of another server."""
        if event_type != "m.room.member" or not state_key:
            return False
        return server_of(state_key) != self._server_name

    async def queue(
        self, conn: Database, rows: list[dict[str, Any]], floor: int | None, last: int
    ) -> Callable[[], None]:
        """The persister's commit hook: queues this server's PDUs of the
        batch on its transaction; once committed, wakes their senders."""
        current = floor is not None and max(self._position(), self._seen) >= floor
        by_room: dict[str, list[dict[str, Any]]] = {}
        changed: set[str] = set()  # rooms where the batch changed a remote user's membership
        for row in rows:
            if self._remote(row["type"], row["state_key"]):
                changed.add(row["room_id"])
            if row.get("pdu") is not None and server_of(row["sender"]) == self._server_name:
                by_room.setdefault(row["room_id"], []).append(row)
        read: dict[str, tuple[str, ...]] = {}
        woken: set[str] = set()
        for room_id, room_rows in by_room.items():
            known = self._rooms.get(room_id) if room_id not in changed else None
            if current and room_id not in changed and room_id not in self._rooms:
                servers: set[str] = set()  # only this server's users were ever in the room
            elif current and known is not None:
                servers = set(known)
            else:
                read[room_id] = tuple(
                    s for s in await pdu_store.servers_in_room(conn, room_id) if s != self._server_name
                )
                servers = set(read[room_id])
            for row in room_rows:
                # The target of a membership change hears of it even when not (or no longer) in the room.
                if row["type"] == "m.room.member" and row["state_key"]:
                    servers.add(server_of(row["state_key"]))
            servers.discard(self._server_name)
            if servers:
                await self._outbox.queue_pdus(conn, sorted(servers), [row["pdu"] for row in room_rows])
                woken.update(servers)

        def committed() -> None:
            for row in rows:
                self._note(row["room_id"], row["type"], row["state_key"])
            for room_id, servers in read.items():  # read after the batch's own changes: current
                if servers or room_id in self._rooms:
                    self._rooms[room_id] = servers
            if current:
                self._seen = max(self._seen, last)
            if woken:
                self._outbox.wake(sorted(woken))

        return committed
