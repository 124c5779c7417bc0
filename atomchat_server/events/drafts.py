"""Events before they have a place in the log.

A draft is what a client asked for: room, sender, type, content and, for
state, the state key. The persister gives it a stream position, depth,
prev_events and timestamp when it commits it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .ids import new_event_id

# Matrix caps a whole event at 64 KiB of JSON.
MAX_EVENT_BYTES = 65536


@dataclass(frozen=True)
class EventDraft:
    room_id: str
    sender: str
    type: str
    content: dict[str, Any]
    state_key: str | None = None
    redacts: str | None = None
    event_id: str = field(default_factory=new_event_id)
    # Sent by a server moderator: judged on the moderator's view of the room
    # (events/moderation.py) rather than the plain room state.
    by_moderator: bool = False
    # Sent by the server itself, outside the room's rules (removing the
    # members of a room a moderator deleted).
    by_server: bool = False
    # A join written for someone whom this user added (the original /api's
    # add): allowed only while the room lets that user edit its member list
    # (power_levels.edits_members), judged with the rest under the lock.
    added_by: str | None = None
    # The PDU when it is already made: a received event, or the create
    # event of a version-12 room (whose id names the room, so it is made
    # before the room's other events). The persister then keeps its
    # timestamp, depth, prev_events and auth_events, and ``event_id`` is its id.
    pdu: dict[str, Any] | None = None
    # Part of a room's past this server learns on joining it (its state and
    # auth chain): stored, but not one of the room's forward extremities.
    outlier: bool = False
    # A received state event that state resolution did not make current:
    # stored in the timeline, but the room's state keeps what it had.
    not_current: bool = False

    @property
    def is_state(self) -> bool:
        return self.state_key is not None

    def as_event(self) -> dict[str, Any]:
        """The draft as the event dict the authorization rules read."""
        event = {
            "event_id": self.event_id,
            "room_id": self.room_id,
            "sender": self.sender,
            "type": self.type,
            "content": self.content,
        }
        if self.state_key is not None:
            event["state_key"] = self.state_key
        if self.redacts is not None:
            event["redacts"] = self.redacts
        if self.pdu is not None and "room_id" not in self.pdu:
            del event["room_id"]  # a version-12 create event, which makes the room id
        return event
