"""Sending this server's events to the other servers in their rooms.

Each event this process commits in a room whose events are PDUs, sent by
one of this server's users, is handed to the outbox for every other server
with a user joined to the room (and, for an invite or a kick, the target's
server too). The outbox keeps it durably and delivers it in order; nothing
here waits on a remote server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import asyncpg

from ..events.pdu_checks import server_of
from ..storage import pdus as pdu_store

log = logging.getLogger(__name__)


class PduOutbox(Protocol):
    """The part of federation.outbox.Outbox this service uses."""

    async def enqueue_pdus(self, destinations: Iterable[str], pdus: Sequence[Mapping[str, Any]]) -> None: ...


class PduSender:
    def __init__(self, *, pool: asyncpg.Pool, outbox: PduOutbox, server_name: str) -> None:
        self._pool = pool
        self._outbox = outbox
        self._server_name = server_name
        self._tasks: set[asyncio.Task[None]] = set()

    def appended(self, rows: list[dict[str, Any]]) -> None:
        """The persister's hook: queues the sending of this server's PDUs."""
        mine = [row for row in rows if row.get("pdu") is not None and server_of(row["sender"]) == self._server_name]
        if not mine:
            return
        task = asyncio.get_running_loop().create_task(self._send(mine))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, rows: list[dict[str, Any]]) -> None:
        by_room: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_room.setdefault(row["room_id"], []).append(row)
        for room_id, room_rows in by_room.items():
            try:
                servers = set(await pdu_store.servers_in_room(self._pool, room_id))
                for row in room_rows:
                    # The target of a membership change hears of it even when not (or no longer) in the room.
                    if row["type"] == "m.room.member" and row["state_key"]:
                        servers.add(server_of(row["state_key"]))
                servers.discard(self._server_name)
                if servers:
                    await self._outbox.enqueue_pdus(sorted(servers), [row["pdu"] for row in room_rows])
            except Exception:
                log.exception("could not queue the events of %s for other servers", room_id)

    async def settled(self) -> None:
        """Returns once every queued sending has been handed to the outbox."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
