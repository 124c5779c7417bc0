"""What the moderation tests do as a moderator and check as the user
moderated: the admin API's requests, blocks and their refusals, the policy
room read back as an audit log, and a lock ending a user's stream and
long-poll. Shared by the HTTP tests (api/) and the ones across processes
(processes/)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from atomchat_server.events.moderation import POLICY_RULE
from atomchat_server.services.moderation import ROOM_DELETED

from .client import DEFAULT_PASSWORD, MATRIX, Response, check_schema, path_param
from .room_steps import SERVER, User, register
from .stream_steps import Stream, stream_url
from .sync_steps import SyncLoop, long_polls_at, long_polls_waiting_at

ADMIN = "/_atomchat/admin/v1"
SPEC_ADMIN = "/_matrix/client/v1/admin"  # the Matrix spec's lock and suspend endpoints (MSC4323)
SYSTEM_USER = f"@_atomchat:{SERVER}"
BLOCK_SCHEMAS = {"lock": "admin/lock.response", "suspend": "admin/suspend.response"}
BLOCK_KEYS = {"lock": "locked", "suspend": "suspended"}


# -- steps the moderation tests share -----------------------------------------------------


async def admin(
    user: User, method: str, path: str, body: Any = None, *, status: int = 200, schema: str | None = None
) -> Response:
    """A request under /_atomchat/admin/v1 as ``user``."""
    return await user.api.request(
        method, ADMIN + path, body, token=user.access_token, status=status, schema=schema if status < 400 else None
    )


def user_path(user: User | str) -> str:
    return "/users/" + path_param(user if isinstance(user, str) else user.user_id)


async def promote(server, user: User) -> None:
    """Makes ``user`` a moderator as ``atomchat user promote`` does."""
    await server.atomchat.ctx.moderation.set_moderator(None, user.user_id, True)


async def moderator_and(server, api, *names: str) -> list[User]:
    """A moderator "mod" and the users ``names``, all logged in."""
    mod, *users = await register(api, "mod", *names)
    await promote(server, mod)
    return [mod, *users]


async def block(
    mod: User, user: User | str, kind: str, on: bool = True, reason: str | None = None, *, status: int = 200
) -> Response:
    """Locks or suspends (``on``) or lifts it, through the AtomChat admin API."""
    key = BLOCK_KEYS[kind]
    body: dict[str, Any] = {key: on}
    if reason is not None:
        body["reason"] = reason
    answer = await admin(mod, "PUT", f"{user_path(user)}/{kind}", body, status=status, schema=BLOCK_SCHEMAS[kind])
    if status == 200:
        assert answer.body == {key: on}
    return answer


async def expect_error(answer: Response, status: int, errcode: str) -> None:
    assert (answer.status, answer["errcode"]) == (status, errcode), answer.body


async def whoami(user: User, *, status: int = 200) -> Response:
    return await user.call("GET", "/account/whoami", status=status, schema="matrix/whoami.response")


async def login_refused(api, name: str, status: int = 401) -> Response:
    """A password login with the right password that the server refuses."""
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": name}, "password": DEFAULT_PASSWORD}
    return await api.request("POST", f"{MATRIX}/login", body, status=status)


async def refused(user: User, method: str, path: str, body: Any = None, *, status: int, errcode: str) -> None:
    answer = await user.call(method, path, body, status=status)
    assert answer["errcode"] == errcode, answer.body


async def policy_room(mod: User) -> str:
    """The moderation policy room, as a moderator finds it: the joined room
    the server's own account created."""
    found = []
    for room_id in await mod.joined_rooms():
        create = await mod.get_state(room_id, "m.room.create")
        if create["creator"] == SYSTEM_USER:
            found.append(room_id)
    assert len(found) == 1, found
    return found[0]


async def policy_events(mod: User) -> list[dict[str, Any]]:
    """The policy rules and room deletions in the policy room's timeline, oldest first."""
    events, _ = await mod.all_messages(
        await policy_room(mod), limit=50, dir="f", filter={"types": [POLICY_RULE, ROOM_DELETED]}
    )
    return events


def rules_of(events: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """(sender, state key, content) of each policy rule event."""
    return [(e["sender"], e["state_key"], e["content"]) for e in events if e["type"] == POLICY_RULE]


def rule(user: User, recommendation: str, reason: str) -> dict[str, str]:
    return {"entity": user.user_id, "recommendation": recommendation, "reason": reason}


async def finished(awaitable) -> tuple[Any, float]:
    """The result of ``awaitable`` and the monotonic time it came."""
    result = await awaitable
    return result, time.monotonic()


async def stream_refused(server, user: User) -> dict[str, Any]:
    """Opens a stream with the user's token, expecting a refusal before the upgrade; returns the error body."""
    with pytest.raises(HTTPClientError) as refusal:
        await websocket_connect(
            HTTPRequest(
                stream_url(server.base_url), request_timeout=5, headers={"Authorization": f"Bearer {user.access_token}"}
            )
        )
    body = json.loads(refusal.value.response.body)
    check_schema("common/error", body)
    return {"status": refusal.value.code, **body}


# -- locking ---------------------------------------------------------------------------

LOCK_ENDS_WITHIN_S = 1.0


async def lock_ends_stream_and_long_poll(
    mod: User, streamer: User, poller: User, stream_server_url: str, reason: str
) -> tuple[float, float]:
    """Holds a stream of ``streamer`` on ``stream_server_url`` and a long-poll
    of ``poller`` where ``poller.api`` points (two sessions of one account),
    locks the account through ``mod``'s server, and checks that the stream
    closes with 4401 and the long-poll ends with 401 M_USER_LOCKED (a soft
    logout), each within LOCK_ENDS_WITHIN_S of the lock request starting.
    Returns those two delays."""
    stream = await Stream.open(stream_server_url, token=streamer.access_token)
    await stream.frame()
    loop = SyncLoop(poller)
    await loop.sync()
    waiting = await long_polls_at(poller.api.base_url)
    poll = asyncio.ensure_future(finished(loop.sync(timeout=20_000, status=401)))
    closing = asyncio.ensure_future(finished(stream.closed(timeout=5)))
    await long_polls_waiting_at([poller.api.base_url], waiting + 1)
    assert not poll.done() and not closing.done()

    started = time.monotonic()
    await block(mod, poller, "lock", reason=reason)
    ((code, _), closed_at), (answer, answered_at) = await asyncio.gather(closing, poll)
    assert code == 4401
    assert answer["errcode"] == "M_USER_LOCKED" and answer["soft_logout"] is True
    assert closed_at - started < LOCK_ENDS_WITHIN_S, closed_at - started
    assert answered_at - started < LOCK_ENDS_WITHIN_S, answered_at - started
    return closed_at - started, answered_at - started


async def set_role(mod: User, user: User, moderator: bool, *, status: int = 200) -> Response:
    answer = await admin(
        mod,
        "PUT",
        f"{user_path(user)}/moderator",
        {"moderator": moderator},
        status=status,
        schema="admin/moderator.response",
    )
    if status == 200:
        assert answer.body == {"moderator": moderator}
    return answer
