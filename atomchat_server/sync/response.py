"""The shape of a sync answer, written once: what a long-poll, a stream frame
and an initial sync send (protocol/sync.md, The answer), whichever way the
answer was made.

The builder (answers from the database) makes its sections with these
functions and writes the result with ``dumps``; the fast path of a
session (answers from dispatched events) makes the same sections with the
events it already holds as JSON text (``Encoded``, each encoded once for
every reader) and writes them with ``encode``, which gives what json.dumps
gives for the same answer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import orjson


class Encoded(str):
    """JSON text standing for a value in an answer: an event as the notifier
    encoded it once for all its readers."""

    __slots__ = ()


def encode(value: Any) -> str:
    """An answer as JSON text, as json.dumps(separators=(",", ":"),
    ensure_ascii=False) writes it, with each Encoded value written as it is."""
    if isinstance(value, Encoded):
        return value
    if isinstance(value, dict):
        return "{" + ",".join(_dumps(key) + ":" + encode(item) for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(item) for item in value) + "]"
    return _dumps(value)


def dumps(value: Any) -> str:
    """A value as JSON text, as json.dumps(separators=(",", ":"),
    ensure_ascii=False) writes it (the meaning, not always the bytes: a float
    may be written otherwise), through orjson, which writes a whole answer
    a dozen times faster; what orjson refuses (an integer beyond 64 bits, a
    string holding a lone surrogate) goes through the json module."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return _dumps(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def joined_room(
    events: Sequence[Any],
    *,
    limited: bool,
    prev_batch: str,
    state: Sequence[Any] = (),
    ephemeral: Sequence[Any] = (),
    account_data: Sequence[Any] = (),
) -> dict[str, Any]:
    """A joined room's section; its counts are added by ``counts``."""
    return {
        "timeline": {"events": list(events), "limited": limited, "prev_batch": prev_batch},
        "state": {"events": list(state)},
        "ephemeral": {"events": list(ephemeral)},
        "account_data": {"events": list(account_data)},
    }


def counts(room: dict[str, Any], notifications: int, highlights: int, joined: int, invited: int) -> None:
    """Adds a joined room's unread counts and member summary to its section."""
    room["unread_notifications"] = {"highlight_count": highlights, "notification_count": notifications}
    room["summary"] = {"m.joined_member_count": joined, "m.invited_member_count": invited}


def counts_of(room: dict[str, Any]) -> list[int]:
    """A section's counts, as ``counts`` takes them: [notifications, highlights, joined, invited]."""
    unread, summary = room["unread_notifications"], room["summary"]
    return [
        unread["notification_count"],
        unread["highlight_count"],
        summary["m.joined_member_count"],
        summary["m.invited_member_count"],
    ]


def invited_room(stripped: Sequence[Any]) -> dict[str, Any]:
    return {"invite_state": {"events": list(stripped)}}


def left_room(events: Sequence[Any], *, limited: bool, prev_batch: str) -> dict[str, Any]:
    return {
        "timeline": {"events": list(events), "limited": limited, "prev_batch": prev_batch},
        "state": {"events": []},
        "account_data": {"events": []},
    }


def answer(
    next_batch: str,
    *,
    join: dict[str, Any] | None = None,
    invite: dict[str, Any] | None = None,
    leave: dict[str, Any] | None = None,
    account_data: Sequence[Any] = (),
    presence: Sequence[Any] = (),
    to_device: Sequence[Any] = (),
    changed: Sequence[str] = (),
    left: Sequence[str] = (),
    key_counts: dict[str, int] | None = None,
    fallback_keys: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A whole answer. ``fallback_keys`` None leaves the device's unused
    fallback key types out: an answer of new events alone (the fast path)
    does not know them, and they have not changed."""
    body: dict[str, Any] = {
        "next_batch": next_batch,
        "rooms": {"join": join or {}, "invite": invite or {}, "leave": leave or {}},
        "account_data": {"events": list(account_data)},
        "presence": {"events": list(presence)},
        "to_device": {"events": list(to_device)},
        "device_lists": {"changed": list(changed), "left": list(left)},
        "device_one_time_keys_count": key_counts or {},
    }
    if fallback_keys is not None:
        body["device_unused_fallback_key_types"] = list(fallback_keys)
    return body
