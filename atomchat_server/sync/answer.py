"""One answer in the making: what every stream provider (sync/providers/)
reads and writes, so that the providers share no code and no state but this.

An answer covers the window (since, upto] of the global stream (``since``
None: everything, an initial sync). Each provider fills in its stream's part
of the answer, reading what providers before it wrote (the rooms provider,
for one, shows a room the user stayed in when a receipt or account data
came for it); SyncBuilder runs them in an order that makes that hold and
assembles the answer through response.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import asyncpg

from ..auth.sessions import Requester
from ..events.filters import SyncFilter
from ..events.visibility import Range
from ..storage.events import Event

if TYPE_CHECKING:
    from ..notifier import TypingNotices
    from ..services.presence import Presence


@dataclass(frozen=True)
class ServiceReads:
    """What an answer reads through services/, which app hands in (the sync
    engine sits below services/, the room and key endpoints use the same)."""

    presence: Presence
    # services.relations.bundle: events in their client form with their aggregations
    bundle: Callable[[asyncpg.Pool, Requester, str, Sequence[Event], Sequence[Range]], Awaitable[list[dict[str, Any]]]]
    # services.keys.key_state: a device's one-time key counts and unused fallback key types
    key_state: Callable[[asyncpg.Pool, str, str], Awaitable[tuple[dict[str, int], list[str]]]]
    # services.keys.device_list_changes: (changed, left) for a user between two positions
    device_list_changes: Callable[[asyncpg.Pool, str, int, int], Awaitable[tuple[list[str], list[str]]]]


class MembershipAt(NamedTuple):
    """The user's membership of a room as of a position."""

    membership: str | None
    stream: int
    event_id: str


@dataclass
class Answer:
    """The request, the window, what the answer reads through, and its
    sections as the providers fill them in."""

    pool: asyncpg.Pool
    services: ServiceReads
    typing: TypingNotices
    requester: Requester
    sync_filter: SyncFilter
    full_state: bool
    since: int | None
    # Where the answer ends: lowered by the to-device provider when the
    # answer stops early (``more``), before any other provider reads it.
    upto: int
    typing_since: int | None  # the typing position the client has (None: it knows no typers)
    more: bool = False

    # The membership provider's: which rooms the answer covers, and how.
    member_of: list[str] = field(default_factory=list)  # the rooms the user is in
    steady: list[str] = field(default_factory=list)  # joined rooms the user stayed in: only what changed
    fresh: list[str] = field(default_factory=list)  # joined rooms shown whole (or with their whole state)
    whole: list[str] = field(default_factory=list)  # of ``fresh``, those shown as newly joined
    invites: dict[str, MembershipAt] = field(default_factory=dict)
    leaves: dict[str, MembershipAt] = field(default_factory=dict)

    # Per room: ephemeral events (typing, then receipts) and account data.
    typing_at: int = 0  # where the answer leaves the typing notices
    ephemeral: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    room_account_data: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    # The sections, as response.answer takes them.
    join: dict[str, Any] = field(default_factory=dict)
    invite: dict[str, Any] = field(default_factory=dict)
    leave: dict[str, Any] = field(default_factory=dict)
    account_data: list[dict[str, Any]] = field(default_factory=list)
    presence: list[dict[str, Any]] = field(default_factory=list)
    to_device: list[dict[str, Any]] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    key_counts: dict[str, int] = field(default_factory=dict)
    fallback_keys: list[str] = field(default_factory=list)


class StreamProvider(Protocol):
    """One stream's part of an answer: complete when ``answer.since`` is
    None (an initial sync), else what changed in (since, upto]."""

    async def __call__(self, answer: Answer) -> None: ...
