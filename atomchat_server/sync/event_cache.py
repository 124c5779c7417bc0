"""What the sync fast path keeps of the dispatched events, so that an
answer made from them costs no query and each event's JSON is made once.

The notifier only carries events to listeners; this cache watches its
dispatch (``Notifier.watchers``) and keeps, per process:

- each event's JSON as every reader but its sending device sees it, made
  once however many clients it goes to, and reused for ENCODED_SECONDS
  (its ``unsigned.age`` is as old as the encoding), at most ENCODED_EVENTS;
- the newest member event of (room, user) as of the notifier's position,
  at most MEMBER_EVENTS pairs, for the answers of lazy-loading clients
  (the member events of their timelines' senders); one read from the
  database is kept only if nothing was dispatched since it was read;
- the answers made during the current dispatch, by what they are made of
  (SyncSession._assemble): receivers to whom the same events look the same
  get the same text, made once.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Hashable, Iterable

from ..clock import REAL, Clock
from ..events.format import client_event
from ..notifier import Notifier
from ..storage.events import Event

ENCODED_EVENTS = 4096
# An encoding is reused this long: its unsigned.age is as old as the encoding.
ENCODED_SECONDS = 1.0
# Member events kept for lazy-loading answers: (room, user) pairs, the newest dispatched.
MEMBER_EVENTS = 20_000


class EventCache:
    def __init__(self, notifier: Notifier, clock: Clock = REAL) -> None:
        self._notifier = notifier
        self._clock = clock
        self._encoded: OrderedDict[int, tuple[float, str]] = OrderedDict()
        self._members: OrderedDict[tuple[str, str], Event] = OrderedDict()
        self.shared_answers: dict[Hashable, str] = {}
        notifier.watchers.append(self)

    # -- the notifier's watcher ---------------------------------------------------

    def dispatching(self, rows: list[Event]) -> None:
        """A dispatch begins: its answers are new, its member events the newest."""
        self.shared_answers.clear()
        for row in rows:
            if row.type == "m.room.member":
                self._remember(row)

    def dispatch_failed(self) -> None:
        """The failed dispatch may have left member events half remembered."""
        self._members.clear()

    # -- encodings ----------------------------------------------------------------

    def encoded(self, row: Event) -> str:
        """The JSON of an event as every reader but its sending device sees it."""
        now = self._clock.monotonic()
        cached = self._encoded.get(row.stream)
        if cached is not None and now - cached[0] < ENCODED_SECONDS:
            return cached[1]
        text = json.dumps(client_event(row), ensure_ascii=False, separators=(",", ":"))
        self._encoded[row.stream] = (now, text)
        if len(self._encoded) > ENCODED_EVENTS:
            self._encoded.popitem(last=False)
        return text

    # -- member events ------------------------------------------------------------

    def member_event(self, room_id: str, user_id: str) -> Event | None:
        """The user's newest member event in the room as of the notifier's
        position, if known here (else None: read it from the database, and
        hand it to remember_members)."""
        row = self._members.get((room_id, user_id))
        if row is not None:
            self._members.move_to_end((room_id, user_id))
        return row

    def remember_members(self, rows: Iterable[Event], position: int) -> None:
        """Member events read from the database as of ``position``: kept
        unless events were dispatched since (a newer one may be among them)."""
        if position == self._notifier.position:
            for row in rows:
                if (row.room_id, row.state_key) not in self._members:
                    self._remember(row)

    def _remember(self, row: Event) -> None:
        assert row.state_key is not None, "a member event has a state key"
        key = (row.room_id, row.state_key)
        self._members[key] = row
        self._members.move_to_end(key)
        if len(self._members) > MEMBER_EVENTS:
            self._members.popitem(last=False)
