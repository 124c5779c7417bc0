"""Registration: the interactive-auth flow real clients use, the options of
POST /register, the username and password rules, and /register/available."""

import pytest
from nio import AsyncClient, RegisterResponse

from ..support.client import DEFAULT_PASSWORD, MATRIX

REGISTER = f"{MATRIX}/register"
AVAILABLE = f"{MATRIX}/register/available"


async def whoami(api, token, status=200):
    schema = "matrix/whoami.response" if status == 200 else None
    return await api.request("GET", f"{MATRIX}/account/whoami", token=token, status=status, schema=schema)


async def devices(api, token):
    return (await api.request("GET", f"{MATRIX}/devices", token=token, schema="matrix/devices.response"))["devices"]


async def refused(api, body, status=400, query=""):
    return await api.request("POST", REGISTER + query, body, status=status)


# -- interactive authentication ---------------------------------------------


async def test_call_without_auth_is_challenged_and_creates_nothing(api):
    challenge = await api.request(
        "POST", REGISTER, {"username": "alice", "password": DEFAULT_PASSWORD}, status=401, schema="matrix/uia.response"
    )
    assert challenge["flows"] == [{"stages": ["m.login.dummy"]}]
    assert challenge["params"] == {}
    # A challenge is not a failure: it carries no error code.
    assert "errcode" not in challenge.body
    await api.request("GET", f"{AVAILABLE}?username=alice", schema="matrix/register_available.response")


async def test_dummy_stage_with_the_challenge_session_completes(api):
    challenge = await api.request(
        "POST", REGISTER, {"username": "alice", "password": DEFAULT_PASSWORD}, status=401, schema="matrix/uia.response"
    )
    done = await api.register("alice", auth={"type": "m.login.dummy", "session": challenge["session"]})
    assert done["user_id"] == "@alice:test.local"
    assert done["home_server"] == "test.local"
    me = await whoami(api, done["access_token"])
    assert me.body == {"user_id": "@alice:test.local", "device_id": done["device_id"], "is_guest": False}


async def test_dummy_stage_without_a_session_completes_at_once(api):
    done = await api.register("bob")
    assert done["user_id"] == "@bob:test.local"
    assert "refresh_token" not in done.body and "expires_in_ms" not in done.body
    await whoami(api, done["access_token"])


async def test_other_auth_types_get_the_challenge(api):
    for auth in ({"type": "m.login.password"}, {"type": "m.login.recaptcha", "session": "x"}):
        challenge = await api.request(
            "POST",
            REGISTER,
            {"username": "carol", "password": DEFAULT_PASSWORD, "auth": auth},
            status=401,
            schema="matrix/uia.response",
        )
        assert challenge["flows"] == [{"stages": ["m.login.dummy"]}]


async def test_matrix_nio_registers_in_one_request(server):
    client = AsyncClient(server.base_url, "")
    try:
        response = await client.register("nio_user", DEFAULT_PASSWORD, device_name="nio phone")
        assert isinstance(response, RegisterResponse), response
        assert response.user_id == "@nio_user:test.local"
        whoami_response = await client.whoami()
        assert whoami_response.user_id == "@nio_user:test.local"
        assert whoami_response.device_id == response.device_id
    finally:
        await client.close()


# -- options ----------------------------------------------------------------


async def test_inhibit_login_returns_only_the_user_id(api):
    done = await api.register("dave", inhibit_login=True)
    assert done.body == {"user_id": "@dave:test.local", "home_server": "test.local"}
    login = await api.login("dave")
    # No device was made for the registration itself.
    assert [d["device_id"] for d in await devices(api, login["access_token"])] == [login["device_id"]]


async def test_device_id_and_initial_display_name_are_kept(api):
    done = await api.register("erin", device_id="ERINPHONE", initial_device_display_name="Erin's phone")
    assert done["device_id"] == "ERINPHONE"
    [device] = await devices(api, done["access_token"])
    assert (device["device_id"], device["display_name"]) == ("ERINPHONE", "Erin's phone")


async def test_generated_device_ids_differ(api):
    first = await api.register("fred")
    second = await api.register("gina")
    assert first["device_id"] and second["device_id"] and first["device_id"] != second["device_id"]


async def test_refresh_token_on_request(api):
    done = await api.register("hank", refresh_token=True)
    assert done["refresh_token"]
    assert done["expires_in_ms"] == 300_000
    refreshed = await api.request(
        "POST", f"{MATRIX}/refresh", {"refresh_token": done["refresh_token"]}, schema="matrix/refresh.response"
    )
    me = await whoami(api, refreshed["access_token"])
    assert me["device_id"] == done["device_id"]


async def test_without_username_a_localpart_is_generated(api):
    body = {"password": DEFAULT_PASSWORD, "auth": {"type": "m.login.dummy"}}
    done = await api.request("POST", REGISTER, body, schema="matrix/register.response")
    assert done["user_id"].endswith(":test.local")
    await whoami(api, done["access_token"])


async def test_guest_accounts_are_refused(api):
    body = {"username": "guesty", "password": DEFAULT_PASSWORD, "auth": {"type": "m.login.dummy"}}
    error = await refused(api, body, status=403, query="?kind=guest")
    assert error["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"
    await api.request("GET", f"{AVAILABLE}?username=guesty", schema="matrix/register_available.response")


async def test_missing_password(api):
    error = await refused(api, {"username": "ivan", "auth": {"type": "m.login.dummy"}})
    assert error["errcode"] == "M_MISSING_PARAM"
    assert "password" in error["error"]


# -- usernames --------------------------------------------------------------


@pytest.mark.parametrize("username", ["al ice", "al:ice", "@alice", "ålice", "alice!", "a" * 65, "a" * 300])
async def test_invalid_usernames(api, username):
    error = await refused(api, {"username": username, "password": DEFAULT_PASSWORD, "auth": {"type": "m.login.dummy"}})
    assert error["errcode"] == "M_INVALID_USERNAME"


async def test_every_allowed_character(api):
    done = await api.register("a.b_c=d-e/f+g9")
    assert done["user_id"] == "@a.b_c=d-e/f+g9:test.local"


async def test_uppercase_username_is_lowercased(api):
    done = await api.register("MixedCase")
    assert done["user_id"] == "@mixedcase:test.local"
    await api.login("mixedcase")
    await api.login("MIXEDCASE")


async def test_taken_username(api):
    await api.register("judy")
    error = await refused(api, {"username": "judy", "password": DEFAULT_PASSWORD, "auth": {"type": "m.login.dummy"}})
    assert error["errcode"] == "M_USER_IN_USE"


async def test_taken_regardless_of_case(api):
    await api.register("kate")
    for username in ("KATE", "Kate"):
        body = {"username": username, "password": DEFAULT_PASSWORD, "auth": {"type": "m.login.dummy"}}
        assert (await refused(api, body))["errcode"] == "M_USER_IN_USE"


async def test_taken_check_comes_before_the_password_check(api):
    await api.register("liam")
    error = await refused(api, {"username": "liam", "password": "short", "auth": {"type": "m.login.dummy"}})
    assert error["errcode"] == "M_USER_IN_USE"


# -- password policy --------------------------------------------------------


@pytest.mark.parametrize(
    "password, reason",
    [
        ("short7!", "too short"),
        ("password", "too common"),
        ("Password1", "too common"),
        ("12345678901", "entirely numeric"),
        ("maximilian", "similar to the username"),
        ("maximilian1", "similar to the username"),
    ],
)
async def test_weak_passwords(api, password, reason):
    error = await refused(api, {"username": "maximilian", "password": password, "auth": {"type": "m.login.dummy"}})
    assert error["errcode"] == "M_WEAK_PASSWORD"
    assert reason in error["error"]
    await api.request("GET", f"{AVAILABLE}?username=maximilian", schema="matrix/register_available.response")


async def test_password_of_exactly_eight_characters_is_enough(api):
    await api.register("nora", password="kq7#vbZw")
    await api.login("nora", password="kq7#vbZw")


# -- /register/available ----------------------------------------------------


async def test_available(api):
    answer = await api.request("GET", f"{AVAILABLE}?username=olga", schema="matrix/register_available.response")
    assert answer.body == {"available": True}


async def test_available_is_false_once_taken(api):
    await api.register("pete")
    for username in ("pete", "PETE"):
        error = await api.request("GET", f"{AVAILABLE}?username={username}", status=400)
        assert error["errcode"] == "M_USER_IN_USE"


async def test_available_answers_as_registration_would_for_uppercase(api):
    await api.request("GET", f"{AVAILABLE}?username=Quinn", schema="matrix/register_available.response")
    done = await api.register("Quinn")
    assert done["user_id"] == "@quinn:test.local"


@pytest.mark.parametrize("username", ["al%20ice", "al%3Aice", "%40alice", "", "a" * 65])
async def test_available_rejects_invalid_names(api, username):
    error = await api.request("GET", f"{AVAILABLE}?username={username}", status=400)
    assert error["errcode"] == "M_INVALID_USERNAME"


async def test_available_needs_the_username_parameter(api):
    error = await api.request("GET", AVAILABLE, status=400)
    assert error["errcode"] == "M_MISSING_PARAM"
