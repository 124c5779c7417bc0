"""Blocking on the original API: PUT /api/users/{id}/block/ is the
moderation lock. It is written as the same policy rule the moderation API
writes, ends the user's open streams, refuses their tokens with the
original's message and their logins, and lifting it brings the very same
tokens back.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from atomchat_server.events.moderation import POLICY_RULE

from ..support.client import DEFAULT_PASSWORD, MATRIX
from ..support.compat_client import NOT_ALLOWED, NOT_FOUND, CompatClient, Person, people, promote
from ..support.moderation_steps import ADMIN, policy_events, rules_of
from ..support.stream_steps import Stream, stream_url

INACTIVE = {"detail": "User inactive or deleted."}
BAD_CREDENTIALS = {"non_field_errors": ["Unable to log in with provided credentials."]}


@pytest.fixture
def compat(server):
    return CompatClient(server.base_url)


async def block(mod: Person, someone: Person, is_active, *, status: int = 200, **kwargs) -> dict:
    answer = await mod.call(
        "PUT",
        f"/api/users/{someone.id}/block/",
        {"is_active": is_active},
        status=status,
        schema="api/block.response",
        **kwargs,
    )
    return answer.body


async def stream_with_token(server, someone: Person, *, header: bool) -> Stream:
    """A WebSocket stream opened with the /api token, as `Authorization:
    Token <key>` or as ?access_token=."""
    if header:
        request = HTTPRequest(
            stream_url(server.base_url),
            headers={"Authorization": f"Token {someone.token}"},
            connect_timeout=5,
            request_timeout=5,
        )
    else:
        request = HTTPRequest(
            stream_url(server.base_url, access_token=someone.token), connect_timeout=5, request_timeout=5
        )
    return Stream(await websocket_connect(request))


async def test_a_block_locks_the_account_and_lifting_it_restores_the_same_tokens(compat, server, api):
    mod, alice, bob = await people(compat, "mod", "alice", "bob")
    await promote(server, mod)
    room = await alice.create_room("Tea", [bob.id])
    phone = await api.login("alice")  # a Matrix session too
    streams = [
        await stream_with_token(server, alice, header=True),
        await stream_with_token(server, alice, header=False),
    ]
    for stream in streams:
        first = await stream.frame()
        assert first["type"] == "sync"
    closing = [asyncio.ensure_future(stream.closed(timeout=5)) for stream in streams]

    started = time.monotonic()
    assert await block(mod, alice, False) == {"username": "alice", "is_active": False}
    for code, _ in await asyncio.gather(*closing):
        assert code == 4401
    assert time.monotonic() - started < 2.0

    for path in ("/api/users/me/", "/api/rooms/", f"/api/rooms/{room['id']}/", f"/api/rooms/{room['id']}/messages/"):
        assert (await alice.call("GET", path, status=401)).body == INACTIVE, path
    assert (await alice.call("POST", "/api/messages/", {"text": "hi", "user_to": bob.id}, status=401)).body == INACTIVE
    for token in (alice.token, phone["access_token"]):
        whoami = await api.request("GET", f"{MATRIX}/account/whoami", token=token, status=401)
        assert whoami["errcode"] == "M_USER_LOCKED"
        assert (await compat.request("GET", "/api/users/me/", token=token, status=401)).body == INACTIVE
    # No new token, with the right password or any other.
    for password in (DEFAULT_PASSWORD, "wrong password 42"):
        answer = await compat.request(
            "POST", "/api/auth/tokens/", {"username": "alice", "password": password}, status=400
        )
        assert answer.body == BAD_CREDENTIALS
    # Others go on as before.
    await bob.post(room["id"], "alice is away")
    # Blocking twice is no error.
    assert await block(mod, alice, False) == {"username": "alice", "is_active": False}

    assert await block(mod, alice, True) == {"username": "alice", "is_active": True}
    for token in (alice.token, phone["access_token"]):  # the very same tokens
        me = await compat.request("GET", "/api/users/me/", token=token, schema="api/me.response")
        assert me["username"] == "alice"
    assert [m["text"] for m in (await alice.messages(room["id"])).body] == ["alice is away"]
    await compat.token("alice")
    reopened = await stream_with_token(server, alice, header=True)
    assert (await reopened.frame())["type"] == "sync"
    await reopened.close()


async def test_a_block_is_the_moderation_apis_policy_rule(compat, server, api):
    """/api's block and the admin API's lock write the same m.policy.rule.user
    state event in the policy room, which moderators read as its timeline."""
    mod, alice, bob = await people(compat, "mod", "alice", "bob")
    await promote(server, mod)
    await block(mod, alice, False)
    await block(mod, alice, True)
    moderator = mod.on_matrix(api)
    await api.request(
        "PUT", f"{ADMIN}/users/{bob.user_id}/lock", {"locked": True}, token=mod.token, schema="admin/lock.response"
    )
    rules = rules_of(await policy_events(moderator))
    assert rules == [
        (mod.user_id, f"user:{alice.user_id}", {"entity": alice.user_id, "recommendation": "m.ban", "reason": ""}),
        (mod.user_id, f"user:{alice.user_id}", {}),
        (mod.user_id, f"user:{bob.user_id}", {"entity": bob.user_id, "recommendation": "m.ban", "reason": ""}),
    ]
    # The admin API's lock is the /api block: bob's token gets the original's answer.
    assert (await bob.call("GET", "/api/users/me/", status=401)).body == INACTIVE
    assert await block(mod, bob, True) == {"username": "bob", "is_active": True}
    events = await policy_events(moderator)
    assert [e["type"] for e in events] == [POLICY_RULE] * 4
    assert events[-1]["content"] == {}


async def test_block_refusals(compat, server):
    mod, alice, bob = await people(compat, "mod", "alice", "bob")
    await promote(server, mod)
    # Only moderators; not even on oneself.
    for who, target in ((alice, bob), (alice, alice), (bob, mod)):
        for is_active in (False, True):
            answer = await block(who, target, is_active, status=403)
            assert answer == {"detail": NOT_ALLOWED}
    # A moderator cannot lock themselves out.
    assert await block(mod, mod, False, status=403) == {"detail": NOT_ALLOWED}
    # Unknown or malformed ids; number 0 is the server's own account.
    for number in ("999", "0", "abc", "-1", "99999999999999999999"):
        response = await mod.call("PUT", f"/api/users/{number}/block/", {"is_active": False}, status=404)
        assert response.body == NOT_FOUND, number
    # The body.
    invalid = {"is_active": ["Must be a valid boolean."]}
    for body, errors in (
        ({}, {"is_active": ["This field is required."]}),
        ({"active": False}, {"is_active": ["This field is required."]}),
        ({"is_active": None}, {"is_active": ["This field may not be null."]}),
        ({"is_active": "maybe"}, invalid),
        ({"is_active": 2}, invalid),
        ({"is_active": ""}, invalid),
        ({"is_active": []}, invalid),
        ({"is_active": {"value": False}}, invalid),
    ):
        response = await mod.call("PUT", f"/api/users/{bob.id}/block/", body, status=400)
        assert response.body == errors, body
    # Only PUT.
    for method in ("PATCH", "GET", "POST", "DELETE"):
        payload = None if method == "GET" else {"is_active": False}
        response = await mod.call(method, f"/api/users/{bob.id}/block/", payload, status=405)
        assert response.body == {"detail": f'Method "{method}" not allowed.'}
    # Nothing was blocked on the way.
    for someone in (alice, bob, mod):
        await someone.call("GET", "/api/users/me/", schema="api/me.response")


async def test_the_original_boolean_spellings_and_forms_are_understood(compat, server):
    """The original read true/false, 1/0 and the words a form sends."""
    mod, bob = await people(compat, "mod", "bob")
    await promote(server, mod)
    for is_active, expected in (
        (0, False),
        (1, True),
        ("false", False),
        ("True", True),
        ("off", False),
        ("yes", True),
        ("0", False),
        ("1", True),
    ):
        assert await block(mod, bob, is_active) == {"username": "bob", "is_active": expected}, is_active
    for value, expected in (("false", False), ("true", True)):
        answer = await mod.call(
            "PUT", f"/api/users/{bob.id}/block", form={"is_active": value}, schema="api/block.response"
        )
        assert answer.body == {"username": "bob", "is_active": expected}
    await bob.call("GET", "/api/users/me/", schema="api/me.response")


async def test_a_suspended_user_reads_on_api_but_cannot_act(compat, server, api):
    """The moderation API's other block, the suspension, shows on /api as a 403 with its reason."""
    mod, alice, bob = await people(compat, "mod", "alice", "bob")
    await promote(server, mod)
    room = await alice.create_room("Tea", [bob.id])
    await alice.post(room["id"], "before")
    await api.request(
        "PUT",
        f"{ADMIN}/users/{bob.user_id}/suspend",
        {"suspended": True},
        token=mod.token,
        schema="admin/suspend.response",
    )
    suspended = {"detail": "This account is suspended: it can read but not act"}
    assert [m["text"] for m in (await bob.messages(room["id"])).body] == ["before"]
    assert (await bob.room(room["id"])).body == room
    await compat.token("bob")
    assert (await bob.post(room["id"], "after", status=403)).body == suspended
    assert (await bob.direct(alice.id, "psst", status=403)).body == suspended
    assert (await bob.call("POST", "/api/rooms/", {"name": "Mine"}, status=403)).body == suspended
    assert (await bob.update_room(room["id"], {"name": "Renamed"}, status=403)).body == suspended
    assert (await alice.room(room["id"])).body == room
