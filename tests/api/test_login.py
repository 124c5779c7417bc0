"""Login, whoami, logout, access tokens, refresh tokens and password changes."""

import aiohttp
import asyncpg
import jwt
import pytest
from mautrix.client.api import ClientAPI
from mautrix.errors import MForbidden
from mautrix.types import UserID

from atomchat_server.auth.tokens import TokenClaims, TokenCodec

from ..support.client import DEFAULT_PASSWORD, MATRIX, ApiClient, password_auth
from ..support.servers import TEST_SETTINGS

LOGIN = f"{MATRIX}/login"
NEW_PASSWORD = "another long password 43"


async def whoami(api, token, status=200, **kwargs):
    schema = "matrix/whoami.response" if status == 200 else None
    return await api.request("GET", f"{MATRIX}/account/whoami", token=token, status=status, schema=schema, **kwargs)


async def refused_token(api, token, *, soft_logout=False):
    error = await whoami(api, token, status=401)
    assert error["errcode"] == "M_UNKNOWN_TOKEN"
    assert error["soft_logout"] is soft_logout
    return error


async def login_refused(api, body, status=403):
    return await api.request("POST", LOGIN, body, status=status)


def password_login(user, password=DEFAULT_PASSWORD, **extra):
    return {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
        **extra,
    }


async def device_ids(api, token):
    answer = await api.request("GET", f"{MATRIX}/devices", token=token, schema="matrix/devices.response")
    return sorted(d["device_id"] for d in answer["devices"])


async def change_password(
    api, token, new_password=NEW_PASSWORD, *, status=200, user="@alice:test.local", password=DEFAULT_PASSWORD, **extra
):
    body = {"new_password": new_password, "auth": password_auth(user, password), **extra}
    schema = "matrix/empty.response" if status == 200 else ("matrix/uia.response" if status == 401 else None)
    return await api.request("POST", f"{MATRIX}/account/password", body, token=token, status=status, schema=schema)


# -- login ------------------------------------------------------------------


async def test_login_flows(api):
    flows = await api.request("GET", LOGIN, schema="matrix/login_flows.response")
    assert flows.body == {"flows": [{"type": "m.login.password"}]}


async def test_login_by_localpart_and_by_full_user_id(api):
    await api.register("alice")
    for user in ("alice", "@alice:test.local", "ALICE", "@Alice:test.local"):
        login = await api.login(user)
        assert login["user_id"] == "@alice:test.local"
        assert login["home_server"] == "test.local"
        assert "refresh_token" not in login.body and "expires_in_ms" not in login.body
        assert (await whoami(api, login["access_token"]))["user_id"] == "@alice:test.local"


async def test_deprecated_top_level_user(api):
    await api.register("alice")
    body = {"type": "m.login.password", "user": "alice", "password": DEFAULT_PASSWORD}
    login = await api.request("POST", LOGIN, body, schema="matrix/login.response")
    assert login["user_id"] == "@alice:test.local"


async def test_user_of_another_server_is_refused(api):
    await api.register("alice")
    error = await login_refused(api, password_login("@alice:elsewhere.example"))
    assert error["errcode"] == "M_FORBIDDEN"


async def test_wrong_password_and_unknown_user_are_told_apart_by_nothing(api):
    await api.register("alice")
    wrong = await login_refused(api, password_login("alice", "not the password at all"))
    unknown = await login_refused(api, password_login("nobody"))
    assert wrong.body == unknown.body
    assert wrong["errcode"] == "M_FORBIDDEN"


async def test_unsupported_login_type(api):
    error = await login_refused(api, {"type": "m.login.token", "token": "abc"}, status=400)
    assert error["errcode"] == "M_UNKNOWN"


async def test_unsupported_identifier_type(api):
    body = {
        "type": "m.login.password",
        "password": DEFAULT_PASSWORD,
        "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "a@example.org"},
    }
    assert (await login_refused(api, body, status=400))["errcode"] == "M_UNKNOWN"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"type": "m.login.password", "password": DEFAULT_PASSWORD}, "identifier"),
        (
            {"type": "m.login.password", "identifier": {"type": "m.id.user"}, "password": DEFAULT_PASSWORD},
            "identifier.user",
        ),
        ({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}}, "password"),
        ({"identifier": {"type": "m.id.user", "user": "alice"}, "password": DEFAULT_PASSWORD}, "type"),
    ],
)
async def test_missing_fields(api, body, field):
    await api.register("alice")
    error = await login_refused(api, body, status=400)
    assert error["errcode"] == "M_MISSING_PARAM"
    assert f"'{field}'" in error["error"]


async def test_each_login_makes_a_new_device_and_token(api):
    registered = await api.register("alice")
    first = await api.login("alice")
    second = await api.login("@alice:test.local", initial_device_display_name="laptop")
    assert len({registered["device_id"], first["device_id"], second["device_id"]}) == 3
    assert len({registered["access_token"], first["access_token"], second["access_token"]}) == 3
    assert await device_ids(api, first["access_token"]) == sorted(
        [registered["device_id"], first["device_id"], second["device_id"]]
    )
    for login in (registered, first, second):
        assert (await whoami(api, login["access_token"]))["device_id"] == login["device_id"]


async def test_login_with_an_existing_device_id_replaces_its_token(api):
    await api.register("alice")
    first = await api.login("alice", device_id="PHONE", initial_device_display_name="phone")
    await whoami(api, first["access_token"])  # now cached as a live session
    # The display name of a known device stays as it was.
    second = await api.login("alice", device_id="PHONE", initial_device_display_name="tablet")
    assert second["device_id"] == "PHONE"
    await refused_token(api, first["access_token"])
    await whoami(api, second["access_token"])
    devices = await api.request(
        "GET", f"{MATRIX}/devices", token=second["access_token"], schema="matrix/devices.response"
    )
    phone = [d for d in devices["devices"] if d["device_id"] == "PHONE"]
    assert len(phone) == 1 and phone[0]["display_name"] == "phone"


async def test_mautrix_logs_in_with_the_full_user_id(server, api):
    await api.register("alice")
    async with aiohttp.ClientSession() as session:
        client = ClientAPI(base_url=server.base_url, client_session=session)
        response = await client.login(
            identifier=UserID("@alice:test.local"), password=DEFAULT_PASSWORD, device_name="bot"
        )
        assert response.user_id == "@alice:test.local"
        assert (await client.whoami()).device_id == response.device_id
        with pytest.raises(MForbidden):
            await ClientAPI(base_url=server.base_url, client_session=session).login(
                identifier=UserID("@alice:test.local"), password="not the password at all"
            )
        await client.logout()
    await refused_token(api, response.access_token)


# -- access tokens ----------------------------------------------------------


async def test_whoami(api):
    login = await api.register("alice")
    me = await whoami(api, login["access_token"])
    assert me.body == {"user_id": "@alice:test.local", "device_id": login["device_id"], "is_guest": False}


async def test_access_token_as_query_parameter(api):
    login = await api.register("alice")
    me = await api.request(
        "GET", f"{MATRIX}/account/whoami?access_token={login['access_token']}", schema="matrix/whoami.response"
    )
    assert me["user_id"] == "@alice:test.local"
    # A NUL cannot be in any token: unknown, as any wrong token (not bad input).
    error = await api.request("GET", f"{MATRIX}/account/whoami?access_token=%00", status=401)
    assert error["errcode"] == "M_UNKNOWN_TOKEN"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic YWxpY2U6c2VjcmV0"}, {"Authorization": "Bearer "}])
async def test_missing_token(api, headers):
    error = await api.request("GET", f"{MATRIX}/account/whoami", status=401, headers=headers)
    assert error["errcode"] == "M_MISSING_TOKEN"


def session_of(token):
    return jwt.decode(token, options={"verify_signature": False})


async def test_garbage_and_forged_tokens(api):
    login = await api.register("alice")
    bob = await api.register("bob")
    claims = session_of(login["access_token"])
    right_key = TEST_SETTINGS["signing_key"].encode()
    codec = TokenCodec(right_key, "test.local")
    forgeries = [
        "garbage",
        login["access_token"] + "x",
        jwt.encode(claims, "some-other-key-of-enough-length-0123456789", algorithm="HS256"),
        jwt.encode(claims, None, algorithm="none"),
        jwt.encode({**claims, "iss": "elsewhere.example"}, right_key, algorithm="HS256"),
        # Genuine signatures over claims the server never issued.
        codec.issue(TokenClaims("@alice:test.local", login["device_id"], "no-such-session")),
        codec.issue(TokenClaims("@bob:test.local", bob["device_id"], claims["sid"])),
        codec.issue(TokenClaims("@alice:test.local", "OTHERDEVICE", claims["sid"])),
    ]
    for token in forgeries:
        await refused_token(api, token)
    await whoami(api, login["access_token"])


# -- logout -----------------------------------------------------------------


async def test_logout_revokes_only_its_own_session(api):
    registered = await api.register("alice")
    other = await api.login("alice")
    await whoami(api, other["access_token"])
    answer = await api.request(
        "POST", f"{MATRIX}/logout", {}, token=other["access_token"], schema="matrix/empty.response"
    )
    assert answer.body == {}
    await refused_token(api, other["access_token"])  # for good: soft_logout is false
    await whoami(api, registered["access_token"])
    assert await device_ids(api, registered["access_token"]) == [registered["device_id"]]
    # A second logout with the dead token is refused too.
    await api.request("POST", f"{MATRIX}/logout", {}, token=other["access_token"], status=401)


async def test_logout_all(api):
    logins = [await api.register("alice")] + [await api.login("alice") for _ in range(2)]
    bob = await api.register("bob")
    for login in logins:
        await whoami(api, login["access_token"])
    await api.request(
        "POST", f"{MATRIX}/logout/all", {}, token=logins[1]["access_token"], schema="matrix/empty.response"
    )
    for login in logins:
        await refused_token(api, login["access_token"])
    await whoami(api, bob["access_token"])
    fresh = await api.login("alice")
    assert await device_ids(api, fresh["access_token"]) == [fresh["device_id"]]


async def test_logout_needs_a_token(api):
    for path in ("logout", "logout/all"):
        error = await api.request("POST", f"{MATRIX}/{path}", {}, status=401)
        assert error["errcode"] == "M_MISSING_TOKEN"


async def test_logout_without_a_token_is_refused_before_its_body_is_read(api):
    """Found by fuzzing: a body that is not JSON answered 400, telling an
    anonymous caller about the body before refusing it."""
    for path in ("logout", "logout/all"):
        for raw in ("not json", "[]"):
            error = await api.request("POST", f"{MATRIX}/{path}", raw=raw, status=401)
            assert error["errcode"] == "M_MISSING_TOKEN"


# -- refresh tokens ---------------------------------------------------------


async def test_refresh_flow(api):
    await api.register("alice")
    login = await api.login("alice", refresh_token=True)
    assert login["refresh_token"] and login["expires_in_ms"] == 300_000
    refreshed = await api.request(
        "POST", f"{MATRIX}/refresh", {"refresh_token": login["refresh_token"]}, schema="matrix/refresh.response"
    )
    assert refreshed["refresh_token"] != login["refresh_token"]
    assert refreshed["access_token"] != login["access_token"]
    assert refreshed["expires_in_ms"] == 300_000
    me = await whoami(api, refreshed["access_token"])
    assert me["device_id"] == login["device_id"]
    # A refresh token works once.
    error = await api.request("POST", f"{MATRIX}/refresh", {"refresh_token": login["refresh_token"]}, status=401)
    assert error["errcode"] == "M_UNKNOWN_TOKEN"
    again = await api.request(
        "POST", f"{MATRIX}/refresh", {"refresh_token": refreshed["refresh_token"]}, schema="matrix/refresh.response"
    )
    await whoami(api, again["access_token"])


async def refresh(api, refresh_token: str, status: int = 200):
    if status != 200:
        return await api.request("POST", f"{MATRIX}/refresh", {"refresh_token": refresh_token}, status=status)
    return await api.request(
        "POST", f"{MATRIX}/refresh", {"refresh_token": refresh_token}, schema="matrix/refresh.response"
    )


async def test_a_refresh_whose_answer_was_lost_can_be_repeated(api):
    """The old refresh token works until a token of its answer is used: a
    client that lost the answer trades it again, and the lost pair's refresh
    token then stops working."""
    await api.register("alice")
    login = await api.login("alice", refresh_token=True)
    lost = await refresh(api, login["refresh_token"])
    repeated = await refresh(api, login["refresh_token"])
    assert repeated["refresh_token"] not in (lost["refresh_token"], login["refresh_token"])
    assert (await refresh(api, lost["refresh_token"], status=401))["errcode"] == "M_UNKNOWN_TOKEN"
    # Until the new pair is used, the old access token still works too.
    await whoami(api, login["access_token"])
    assert (await whoami(api, repeated["access_token"]))["device_id"] == login["device_id"]
    # Its first use ends the old refresh token and the old access token.
    error = await refresh(api, login["refresh_token"], status=401)
    assert error.body == {"errcode": "M_UNKNOWN_TOKEN", "error": "Unknown refresh token", "soft_logout": False}
    await whoami(api, login["access_token"], status=401)
    await whoami(api, (await refresh(api, repeated["refresh_token"]))["access_token"])


async def test_using_the_new_refresh_token_ends_the_old_one(api):
    await api.register("alice")
    login = await api.login("alice", refresh_token=True)
    first = await refresh(api, login["refresh_token"])
    second = await refresh(api, first["refresh_token"])
    # first's refresh token is now the previous one and still works (second's
    # answer may be lost); login's is gone.
    assert (await refresh(api, login["refresh_token"], status=401))["errcode"] == "M_UNKNOWN_TOKEN"
    third = await refresh(api, first["refresh_token"])
    assert (await refresh(api, second["refresh_token"], status=401))["errcode"] == "M_UNKNOWN_TOKEN"
    assert (await whoami(api, third["access_token"]))["device_id"] == login["device_id"]
    assert (await refresh(api, first["refresh_token"], status=401))["errcode"] == "M_UNKNOWN_TOKEN"
    for token in (login["access_token"], first["access_token"]):
        await whoami(api, token, status=401)


async def test_refresh_token_dies_with_its_session(api):
    await api.register("alice")
    login = await api.login("alice", refresh_token=True)
    await api.request("POST", f"{MATRIX}/logout", token=login["access_token"], schema="matrix/empty.response")
    error = await api.request("POST", f"{MATRIX}/refresh", {"refresh_token": login["refresh_token"]}, status=401)
    assert error["errcode"] == "M_UNKNOWN_TOKEN"


async def test_unknown_refresh_token(api):
    error = await api.request("POST", f"{MATRIX}/refresh", {"refresh_token": "atomchat_rt_made_up"}, status=401)
    assert error["errcode"] == "M_UNKNOWN_TOKEN"
    error = await api.request("POST", f"{MATRIX}/refresh", {}, status=400)
    assert error["errcode"] == "M_MISSING_PARAM"


@pytest.mark.settings(access_token_lifetime_seconds=1)
async def test_expired_access_token_is_a_soft_logout(api, clock):
    await api.register("alice")
    expiring = await api.login("alice", refresh_token=True)
    assert expiring["expires_in_ms"] == 1000
    lasting = await api.login("alice")
    clock.advance(2.1)
    await refused_token(api, expiring["access_token"], soft_logout=True)
    # Tokens issued without a refresh token do not expire.
    await whoami(api, lasting["access_token"])
    refreshed = await api.request(
        "POST", f"{MATRIX}/refresh", {"refresh_token": expiring["refresh_token"]}, schema="matrix/refresh.response"
    )
    assert (await whoami(api, refreshed["access_token"]))["device_id"] == expiring["device_id"]


# -- password change --------------------------------------------------------


async def test_password_change_without_auth_is_challenged(api):
    login = await api.register("alice")
    challenge = await api.request(
        "POST",
        f"{MATRIX}/account/password",
        {"new_password": NEW_PASSWORD},
        token=login["access_token"],
        status=401,
        schema="matrix/uia.response",
    )
    assert challenge["flows"] == [{"stages": ["m.login.password"]}]
    assert "errcode" not in challenge.body
    await api.login("alice")


async def test_password_change_with_wrong_current_password(api):
    login = await api.register("alice")
    failed = await change_password(api, login["access_token"], password="not the password at all", status=401)
    assert failed["errcode"] == "M_FORBIDDEN"
    assert failed["flows"] == [{"stages": ["m.login.password"]}]
    await api.login("alice")


async def test_password_change_with_someone_elses_password(api):
    login = await api.register("alice")
    await api.register("bob")
    failed = await change_password(api, login["access_token"], user="bob", status=401)
    assert failed["errcode"] == "M_FORBIDDEN"
    await api.login("alice")


async def test_password_change(api):
    login = await api.register("alice")
    challenge = await api.request(
        "POST",
        f"{MATRIX}/account/password",
        {"new_password": NEW_PASSWORD},
        token=login["access_token"],
        status=401,
        schema="matrix/uia.response",
    )
    body = {
        "new_password": NEW_PASSWORD,
        "logout_devices": False,
        "auth": password_auth("alice", session=challenge["session"]),
    }
    await api.request(
        "POST", f"{MATRIX}/account/password", body, token=login["access_token"], schema="matrix/empty.response"
    )
    error = await login_refused(api, password_login("alice"))
    assert error["errcode"] == "M_FORBIDDEN"
    await api.login("alice", NEW_PASSWORD)


async def test_password_change_logs_out_other_devices_by_default(api):
    caller = await api.register("alice")
    others = [await api.login("alice") for _ in range(2)]
    for login in others:
        await whoami(api, login["access_token"])
    await change_password(api, caller["access_token"])
    for login in others:
        await refused_token(api, login["access_token"])
    await whoami(api, caller["access_token"])
    assert await device_ids(api, caller["access_token"]) == [caller["device_id"]]


async def test_password_change_can_keep_other_devices(api):
    caller = await api.register("alice")
    other = await api.login("alice")
    await change_password(api, caller["access_token"], logout_devices=False)
    await whoami(api, other["access_token"])


async def test_weak_new_password_is_refused(api):
    login = await api.register("alice")
    for weak in ("short", "password123", "alice1234", "123456789012"):
        error = await change_password(api, login["access_token"], weak, status=400)
        assert error["errcode"] == "M_WEAK_PASSWORD"
    await api.login("alice")


async def test_password_change_needs_a_token(api):
    error = await api.request("POST", f"{MATRIX}/account/password", {"new_password": NEW_PASSWORD}, status=401)
    assert error["errcode"] == "M_MISSING_TOKEN"


# -- password hashes --------------------------------------------------------


async def stored_hash(dsn, user_id):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT password_hash FROM users WHERE user_id = $1", user_id)
    finally:
        await conn.close()


async def test_hash_is_upgraded_on_login_when_parameters_change(api, database_dsn, more_servers):
    await api.register("alice")
    original = await stored_hash(database_dsn, "@alice:test.local")
    assert original.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    # The same database served by a server restarted with stronger parameters.
    restarted = await more_servers(own_hasher=True, argon2_time_cost=2, argon2_memory_kib=2048)
    restarted_api = ApiClient(restarted.base_url)
    await login_refused(restarted_api, password_login("alice", "not the password at all"))
    assert await stored_hash(database_dsn, "@alice:test.local") == original
    await restarted_api.login("alice")
    upgraded = await stored_hash(database_dsn, "@alice:test.local")
    assert upgraded.startswith("$argon2id$v=19$m=2048,t=2,p=1$")
    await restarted_api.login("alice")
    assert await stored_hash(database_dsn, "@alice:test.local") == upgraded
