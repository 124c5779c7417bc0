"""The original API's accounts: registration with its username, password and
e-mail rules, tokens (JSON and form bodies), Token authentication and its
refusals, /api/users/me/, the HTTP edges an old client meets (unknown
paths, missing trailing slashes, wrong methods, bodies that are not JSON),
and accounts made here used on the Matrix API.
"""

from __future__ import annotations

from typing import Any

import pytest

from ..support.client import DEFAULT_PASSWORD, MATRIX, ApiClient
from ..support.compat_client import NOT_FOUND, CompatClient, person

REQUIRED = ["This field is required."]
BLANK = ["This field may not be blank."]
BAD_USERNAME = ["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."]
TAKEN = ["A user with that username already exists."]
SHORT = "This password is too short. It must contain at least 8 characters."
COMMON = "This password is too common."
NUMERIC = "This password is entirely numeric."
SIMILAR = "The password is too similar to the username."
BAD_CREDENTIALS = {"non_field_errors": ["Unable to log in with provided credentials."]}


@pytest.fixture
def compat(server):
    return CompatClient(server.base_url)


async def refused_registration(compat: CompatClient, body: Any, **kwargs: Any) -> dict[str, Any]:
    return (await compat.request("POST", "/api/users/", body, status=400, **kwargs)).body


# -- registration ----------------------------------------------------------------------


async def test_registration_answers_username_and_email_only(compat, api):
    answer = await compat.register("alice", email="alice@example.com")
    assert answer.body == {"email": "alice@example.com", "username": "alice"}
    # Without an e-mail (or with null) the answer says "".
    assert (await compat.register("bob")).body == {"email": "", "username": "bob"}
    assert (await compat.register("carol", email=None)).body == {"email": "", "username": "carol"}
    # Fields the original ignored are ignored: no moderator is made by asking.
    answer = await compat.register("mallory", is_staff=True, is_superuser=True, is_moderator=True, id=99)
    assert answer.body == {"email": "", "username": "mallory"}
    token = await compat.token("mallory")
    me = await compat.request("GET", "/api/users/me/", token=token, schema="api/me.response")
    assert me.body == {"id": 4, "username": "mallory", "email": "", "is_moderator": False}


async def test_registration_by_form_and_without_the_trailing_slash(compat):
    answer = await compat.request(
        "POST",
        "/api/users/",
        form={"username": "alice", "password": DEFAULT_PASSWORD, "email": "a@example.org"},
        status=201,
        schema="api/users.response",
    )
    assert answer.body == {"email": "a@example.org", "username": "alice"}
    answer = await compat.request(
        "POST", "/api/users", {"username": "bob", "password": DEFAULT_PASSWORD}, status=201, schema="api/users.response"
    )
    assert answer.body == {"email": "", "username": "bob"}


async def test_usernames_follow_the_original_rules(compat):
    for username in ("Alice", "a.b+c-d_e", "bob@example.com", "x" * 150, "Zoë"):
        assert (await compat.register(username)).body["username"] == username
    cases = [
        ({"password": DEFAULT_PASSWORD}, REQUIRED),
        ({"username": None, "password": DEFAULT_PASSWORD}, ["This field may not be null."]),
        ({"username": "", "password": DEFAULT_PASSWORD}, BLANK),
        ({"username": "   ", "password": DEFAULT_PASSWORD}, BLANK),
        ({"username": 42, "password": DEFAULT_PASSWORD}, ["Not a valid string."]),
        ({"username": "with space", "password": DEFAULT_PASSWORD}, BAD_USERNAME),
        ({"username": "semi;colon", "password": DEFAULT_PASSWORD}, BAD_USERNAME),
        ({"username": "slash/", "password": DEFAULT_PASSWORD}, BAD_USERNAME),
        ({"username": "y" * 151, "password": DEFAULT_PASSWORD}, ["Ensure this field has no more than 150 characters."]),
        # Taken, whatever the case.
        ({"username": "alice", "password": DEFAULT_PASSWORD}, TAKEN),
        ({"username": "ALICE", "password": DEFAULT_PASSWORD}, TAKEN),
        ({"username": "BOB@example.com", "password": DEFAULT_PASSWORD}, TAKEN),
    ]
    for body, messages in cases:
        assert await refused_registration(compat, body) == {"username": messages}, body


async def test_weak_passwords_are_refused_with_every_reason(compat):
    cases = [
        ({"username": "alice"}, {"password": REQUIRED}),
        ({"username": "alice", "password": ""}, {"password": BLANK}),
        ({"username": "alice", "password": "Xq3!z"}, {"password": [SHORT]}),
        ({"username": "alice", "password": "password"}, {"password": [COMMON]}),
        ({"username": "alice", "password": "83920174655"}, {"password": [NUMERIC]}),
        ({"username": "alice", "password": "12345678"}, {"password": [COMMON, NUMERIC]}),
        ({"username": "alice", "password": "1234"}, {"password": [SHORT, COMMON, NUMERIC]}),
        ({"username": "margaretta", "password": "margaretta7"}, {"password": [SIMILAR]}),
        ({"username": "Margaretta", "password": "mARGARETTA7"}, {"password": [SIMILAR]}),
    ]
    for body, errors in cases:
        assert await refused_registration(compat, body) == errors, body
    # Nothing was created on the way.
    await compat.register("alice")
    await compat.register("margaretta")


async def test_invalid_emails_are_refused(compat):
    for email in ("not-an-email", "a@b", "@example.com", "a b@example.com", "a@example.com.", 7):
        body = {"username": "alice", "password": DEFAULT_PASSWORD, "email": email}
        assert await refused_registration(compat, body) == {"email": ["Enter a valid email address."]}, email
    everything = await refused_registration(compat, {"username": "no good", "password": "short", "email": "x"})
    assert everything == {"username": BAD_USERNAME, "password": [SHORT], "email": ["Enter a valid email address."]}
    await compat.register("alice", email="")


# -- tokens -----------------------------------------------------------------------------


async def test_a_token_from_json_or_form_works_on_api_and_as_bearer_on_matrix(compat, api):
    await compat.register("alice", email="alice@example.com")
    from_json = await compat.token("alice")
    from_form = (
        await compat.request(
            "POST",
            "/api/auth/tokens/",
            form={"username": "alice", "password": DEFAULT_PASSWORD},
            schema="api/tokens.response",
        )
    )["token"]
    assert from_json != from_form
    for token in (from_json, from_form):
        me = await compat.request("GET", "/api/users/me/", token=token, schema="api/me.response")
        assert me.body == {"id": 1, "username": "alice", "email": "alice@example.com", "is_moderator": False}
        whoami = await api.request("GET", f"{MATRIX}/account/whoami", token=token, schema="matrix/whoami.response")
        assert whoami["user_id"] == "@alice:test.local"
    # Without the trailing slash, too.
    answer = await compat.request(
        "POST", "/api/auth/tokens", {"username": "alice", "password": DEFAULT_PASSWORD}, schema="api/tokens.response"
    )
    await compat.request("GET", "/api/users/me", token=answer["token"], schema="api/me.response")


async def test_token_refusals(compat):
    await compat.register("alice")
    cases = [
        ({"username": "alice", "password": "wrong password 42"}, BAD_CREDENTIALS),
        ({"username": "nobody", "password": DEFAULT_PASSWORD}, BAD_CREDENTIALS),
        ({"username": "@alice:elsewhere.example", "password": DEFAULT_PASSWORD}, BAD_CREDENTIALS),
        ({"username": "alice"}, {"password": REQUIRED}),
        ({"password": DEFAULT_PASSWORD}, {"username": REQUIRED}),
        ({}, {"username": REQUIRED, "password": REQUIRED}),
        ({"username": "", "password": ""}, {"username": BLANK, "password": BLANK}),
    ]
    for body, errors in cases:
        answer = await compat.request("POST", "/api/auth/tokens/", body, status=400)
        assert answer.body == errors, body
    answer = await compat.request(
        "POST", "/api/auth/tokens/", form={"username": "alice", "password": "nope"}, status=400
    )
    assert answer.body == BAD_CREDENTIALS


# -- authentication -----------------------------------------------------------------------


async def test_authentication_failures_are_401_with_the_original_details(compat, api):
    alice = await person(compat, "alice")
    no_credentials = {"detail": "Authentication credentials were not provided."}
    invalid = {"detail": "Invalid token."}
    for method, path in (
        ("GET", "/api/users/me/"),
        ("GET", "/api/rooms/"),
        ("POST", "/api/rooms/"),
        ("GET", "/api/rooms/1/"),
        ("GET", "/api/rooms/1/messages/"),
        ("POST", "/api/messages/"),
        ("PUT", "/api/users/1/block/"),
        ("DELETE", "/api/rooms/1/"),
    ):
        answer = await compat.request(method, path, {}, status=401)
        assert answer.body == no_credentials, path
        answer = await compat.request(method, path, {}, token="not-a-token", status=401)
        assert answer.body == invalid, path
    for header in (f"Token {alice.token[:-2]}", "Token ", f"Basic {alice.token}", alice.token):
        answer = await compat.request("GET", "/api/users/me/", headers={"Authorization": header}, status=401)
        assert answer.body == invalid, header
    # A token of a session that ended is unknown from then on.
    matrix_user = alice.on_matrix(api)
    await matrix_user.call("POST", "/logout", {}, schema="matrix/empty.response")
    answer = await compat.request("GET", "/api/users/me/", token=alice.token, status=401)
    assert answer.body == invalid


async def test_a_matrix_login_token_works_on_api(compat, api):
    registered = await api.register("bob")
    me = await compat.request("GET", "/api/users/me/", token=registered["access_token"], schema="api/me.response")
    assert me.body == {"id": 1, "username": "bob", "email": "", "is_moderator": False}
    # Matrix clients send it as Bearer; /api takes that scheme too.
    me = await compat.request(
        "GET",
        "/api/users/me/",
        schema="api/me.response",
        headers={"Authorization": f"Bearer {registered['access_token']}"},
    )
    assert me["id"] == 1


# -- HTTP edges ---------------------------------------------------------------------------


async def test_unknown_api_paths_are_json_404s(compat):
    alice = await person(compat, "alice")
    for path in (
        "/api",
        "/api/",
        "/api/nothing/",
        "/api/users/1/",
        "/api/rooms/1/members/",
        "/api/users/me/extra/",
        "/api/auth/",
        "/api/rooms/1/messages/2/",
        "/api/%00",
    ):
        for token in (None, alice.token):
            answer = await compat.request("GET", path, token=token, status=404)
            assert answer.body == NOT_FOUND, path


async def test_wrong_methods_are_405_naming_the_method(compat):
    alice = await person(compat, "alice")
    cases = [
        ("GET", "/api/messages/"),
        ("GET", "/api/auth/tokens/"),
        ("GET", "/api/users/"),
        ("DELETE", "/api/users/"),
        ("PATCH", "/api/users/1/block/"),
        ("GET", "/api/users/1/block/"),
        ("POST", "/api/users/me/"),
        ("PUT", "/api/rooms/"),
        ("DELETE", "/api/rooms/1/messages/"),
        ("GET", "/api/messages"),
    ]
    for method, path in cases:
        answer = await alice.call(method, path, {} if method != "GET" else None, status=405)
        assert answer.body == {"detail": f'Method "{method}" not allowed.'}, (method, path)


async def test_me(compat, server):
    alice = await person(compat, "Alice.Smith")
    answer = await alice.call("GET", "/api/users/me/", schema="api/me.response")
    assert answer.body == {"id": 1, "username": "Alice.Smith", "email": "", "is_moderator": False}
    await server.atomchat.ctx.moderation.set_moderator(None, alice.user_id, True)
    assert (await alice.call("GET", "/api/users/me", schema="api/me.response"))["is_moderator"] is True


# -- accounts made here on the Matrix API -----------------------------------------------------


async def test_usernames_matrix_does_not_allow_map_to_a_user_id_that_logs_in(compat, api):
    expected = {
        "Alice.Smith": "@_alice._smith:test.local",
        "bob@example.com": "@bob=40example.com:test.local",
        "c_d": "@c_d:test.local",
        "Zoë": "@_zo=c3=ab:test.local",
        "@home": "@=40home:test.local",
    }
    for username, user_id in expected.items():
        someone = await person(compat, username)
        assert someone.user_id == user_id
        # By username, in any case, and by the mapped user id (a username
        # that starts with '@' reads as a user id on Matrix: by the id only).
        names = [user_id] if username.startswith("@") else [username, username.upper(), user_id]
        for name in names:
            login = await ApiClient(api.base_url).login(name)
            assert login["user_id"] == user_id, name
            me = await compat.request("GET", "/api/users/me/", token=login["access_token"], schema="api/me.response")
            assert me["username"] == username
    # The mapped name is not the username: it does not log in as one.
    await compat.request(
        "POST", "/api/auth/tokens/", {"username": "_alice._smith", "password": DEFAULT_PASSWORD}, status=400
    )


async def test_usernames_too_long_for_a_user_id_are_refused(compat, api):
    """Upper case letters take two characters in a user id and '@' three;
    a username whose user id would pass Matrix's 255 bytes is refused, one
    that just fits logs in on Matrix."""
    too_long = ["This username is too long to be written as a Matrix user id."]
    for fits, refused in (
        ("x" + "A" * 121, "xx" + "A" * 121),
        ("@" * 81, "@" * 81 + "x"),
        ("x" * 57 + "A" * 93, "x" * 56 + "A" * 94),
    ):
        body = {"username": refused, "password": DEFAULT_PASSWORD}
        assert await refused_registration(compat, body) == {"username": too_long}, refused
        someone = await person(compat, fits)
        assert len(someone.user_id) == 255
        assert (await api.login(someone.user_id))["user_id"] == someone.user_id


@pytest.mark.settings(rc_register_burst=1, rc_register_per_second=0.01, rc_login_burst=1, rc_login_per_second=0.01)
async def test_too_many_attempts_are_throttled_with_retry_after(compat):
    await compat.register("alice")
    await compat.token("alice")
    for path, body in (
        ("/api/users/", {"username": "bob", "password": DEFAULT_PASSWORD}),
        ("/api/auth/tokens/", {"username": "alice", "password": DEFAULT_PASSWORD}),
    ):
        answer = await compat.request("POST", path, body, status=429)
        seconds = int(answer.headers["Retry-After"])
        assert 60 < seconds <= 100
        assert answer.body == {"detail": f"Request was throttled. Expected available in {seconds} seconds."}


async def test_bodies_that_are_not_objects_and_cors(compat):
    answer = await compat.request("POST", "/api/users/", raw="[1, 2]", status=400)
    assert answer.body == {"non_field_errors": ["The body must be a JSON object"]}
    answer = await compat.request("POST", "/api/users/", raw="{not json", status=400)
    assert answer.body == {"detail": "JSON parse error - the body is not valid JSON."}
    # An empty body is an empty object: every required field is missing.
    answer = await compat.request("POST", "/api/users/", raw="", status=400)
    assert answer.body == {"username": REQUIRED, "password": REQUIRED}
    # Browsers may call /api from any origin.
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    preflight = await compat.request("OPTIONS", "/api/rooms/", status=204)
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
