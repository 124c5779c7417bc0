"""Presence: whether a user is online, and how their clients change it.

A user's clients change it in two ways. Syncing (or keeping a stream open)
with ``set_presence`` online or unavailable says the user is there; setting
it with PUT /presence/{userId}/status chooses a state, which syncing then
leaves alone: a user who chose unavailable, or to appear offline, stays so
while their clients sync (choosing online hands it back to syncing). A
user whom no client has seen for the presence timeout goes offline, and a
chosen unavailable state ends with that.
"""

from __future__ import annotations

from typing import Any

ONLINE = "online"
UNAVAILABLE = "unavailable"
OFFLINE = "offline"
STATES = (ONLINE, UNAVAILABLE, OFFLINE)


def after_sync(current_state: str | None, chosen: bool, syncing_as: str) -> str | None:
    """The state a sync with ``set_presence=syncing_as`` moves the user to,
    or None when it stays as it is (``current_state`` None: never seen)."""
    if syncing_as == OFFLINE or chosen:
        return None
    return None if current_state == syncing_as else syncing_as


def presence_event(
    user_id: str, state: str, status_msg: str | None, last_active_ts: int, now_ms: int, active_window_ms: int
) -> dict[str, Any]:
    """The m.presence event of a user, as /sync delivers it. The user is
    ``currently_active`` while online and seen within ``active_window_ms``."""
    content = presence_content(state, status_msg, last_active_ts, now_ms, active_window_ms)
    return {"type": "m.presence", "sender": user_id, "content": content}


def presence_content(
    state: str, status_msg: str | None, last_active_ts: int | None, now_ms: int, active_window_ms: int
) -> dict[str, Any]:
    """What GET /presence/{userId}/status answers, and an m.presence event's content."""
    content: dict[str, Any] = {"presence": state}
    if last_active_ts is not None:
        ago = max(0, now_ms - last_active_ts)
        content["last_active_ago"] = ago
        content["currently_active"] = state == ONLINE and ago <= active_window_ms
    if status_msg is not None:
        content["status_msg"] = status_msg
    return content
