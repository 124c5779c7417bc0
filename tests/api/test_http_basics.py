"""What every Matrix endpoint shares: routing errors, JSON parsing and
validation, body limits, CORS, content types, path decoding, rate limits,
and the two discovery endpoints."""

import json

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from ..support.client import DEFAULT_PASSWORD, MATRIX, password_auth

LOGIN = f"{MATRIX}/login"
REGISTER = f"{MATRIX}/register"


# -- routing ----------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", f"{MATRIX}/no/such/endpoint"),
        ("POST", f"{MATRIX}/no_such_endpoint"),
        ("GET", "/no/such/page"),
        ("GET", "/_matrix/client/v1/login"),
    ],
)
async def test_unknown_path(api, method, path):
    error = await api.request(method, path, {} if method == "POST" else None, status=404)
    assert error["errcode"] == "M_UNRECOGNIZED"


@pytest.mark.parametrize(
    "method, path",
    [
        ("DELETE", LOGIN),
        ("PUT", REGISTER),
        ("GET", f"{MATRIX}/logout"),
        ("POST", f"{MATRIX}/account/whoami"),
        ("POST", "/_matrix/client/versions"),
        ("PATCH", f"{MATRIX}/devices/X"),
    ],
)
async def test_wrong_method(api, method, path):
    error = await api.request(method, path, {} if method in ("POST", "PUT", "PATCH") else None, status=405)
    assert error["errcode"] == "M_UNRECOGNIZED"


# -- bodies -----------------------------------------------------------------


@pytest.mark.parametrize("raw", ['{"type": "m.login.password"', "not json", b"\xff\xfe{}", "{'type': 1}"])
async def test_malformed_json(api, raw):
    error = await api.request("POST", LOGIN, raw=raw, status=400)
    assert error["errcode"] == "M_NOT_JSON"


@pytest.mark.parametrize("raw", ['{"type": NaN}', '{"type": "m.login.password", "x": -Infinity}', '{"x": Infinity}'])
async def test_non_standard_constants_are_not_json(api, raw):
    error = await api.request("POST", LOGIN, raw=raw, status=400)
    assert error["errcode"] == "M_NOT_JSON"


@pytest.mark.parametrize(
    "raw", ['{"a": ' + "[" * 20000 + "]" * 20000 + "}", '{"type": "m.login.password", "x": 1e400}']
)
async def test_json_python_cannot_hold_is_refused_not_a_crash(api, raw):
    error = await api.request("POST", LOGIN, raw=raw, status=400)
    assert error["errcode"] == "M_BAD_JSON"


@pytest.mark.parametrize("raw", ["[]", '["m.login.password"]', '"text"', "42", "null", "true"])
async def test_json_that_is_not_an_object(api, raw):
    error = await api.request("POST", LOGIN, raw=raw, status=400)
    assert error["errcode"] == "M_BAD_JSON"


@pytest.mark.parametrize(
    "path, body, field",
    [
        (LOGIN, {"type": 1}, "type"),
        (
            LOGIN,
            {"type": "m.login.password", "password": 12345678, "identifier": {"type": "m.id.user", "user": "alice"}},
            "password",
        ),
        (
            LOGIN,
            {
                "type": "m.login.password",
                "password": DEFAULT_PASSWORD,
                "identifier": {"type": "m.id.user", "user": ["alice"]},
            },
            "identifier.user",
        ),
        (LOGIN, {"type": "m.login.password", "identifier": "alice", "password": DEFAULT_PASSWORD}, "identifier"),
        (
            LOGIN,
            {"type": "m.login.password", "user": "alice", "password": DEFAULT_PASSWORD, "refresh_token": "yes"},
            "refresh_token",
        ),
        (REGISTER, {"username": 7, "password": DEFAULT_PASSWORD, "auth": {"type": "m.login.dummy"}}, "username"),
        (
            REGISTER,
            {"username": "alice", "password": DEFAULT_PASSWORD, "inhibit_login": 1, "auth": {"type": "m.login.dummy"}},
            "inhibit_login",
        ),
        (REGISTER, {"username": "alice", "password": DEFAULT_PASSWORD, "auth": "m.login.dummy"}, "auth"),
        (f"{MATRIX}/refresh", {"refresh_token": None}, "refresh_token"),
    ],
)
async def test_wrong_field_types_name_the_field(api, path, body, field):
    error = await api.request("POST", path, body, status=400)
    assert error["errcode"] == "M_BAD_JSON"
    assert f"'{field}'" in error["error"]


@pytest.mark.parametrize(
    "path, body, field",
    [
        (LOGIN, {"user": "alice", "password": DEFAULT_PASSWORD}, "type"),
        (f"{MATRIX}/refresh", {}, "refresh_token"),
        (REGISTER, {"username": "alice", "password": DEFAULT_PASSWORD, "auth": {"session": "abc"}}, "auth.type"),
    ],
)
async def test_missing_required_field(api, path, body, field):
    error = await api.request("POST", path, body, status=400)
    assert error["errcode"] == "M_MISSING_PARAM"
    assert f"'{field}'" in error["error"]


@pytest.mark.settings(max_body_bytes=1024)
async def test_oversized_body(api):
    await api.register("alice")
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": DEFAULT_PASSWORD,
    }
    exact = json.dumps(body)
    exact += " " * (1024 - len(exact))
    await api.request("POST", LOGIN, raw=exact, schema="matrix/login.response")
    error = await api.request("POST", LOGIN, raw=exact + " ", status=413)
    assert error["errcode"] == "M_TOO_LARGE"
    error = await api.request("POST", LOGIN, raw=json.dumps({**body, "password": "x" * 5000}), status=413)
    assert error["errcode"] == "M_TOO_LARGE"


async def test_default_body_limit_is_64_kib(api):
    error = await api.request(
        "POST", LOGIN, raw=json.dumps({"type": "m.login.password", "pad": "x" * 65536}), status=413
    )
    assert error["errcode"] == "M_TOO_LARGE"


async def test_empty_json_body_reads_as_empty_object(api):
    login = await api.register("alice")
    # No body at all with Content-Type: application/json, as matrix-nio sends it.
    answer = await api.request("POST", f"{MATRIX}/logout", token=login["access_token"], schema="matrix/empty.response")
    assert answer.body == {}
    await api.request("GET", f"{MATRIX}/account/whoami", token=login["access_token"], status=401)


# -- headers ----------------------------------------------------------------


def assert_cors(headers):
    assert headers["Access-Control-Allow-Origin"] == "*"
    methods = {m.strip() for m in headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "PUT", "DELETE", "OPTIONS"} <= methods
    allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "x-requested-with"} <= allowed


async def test_cors_headers_on_every_answer(api):
    login = await api.register("alice")
    answers = [
        await api.request("GET", "/_matrix/client/versions", schema="matrix/versions.response"),
        await api.request(
            "GET", f"{MATRIX}/account/whoami", token=login["access_token"], schema="matrix/whoami.response"
        ),
        await api.request("GET", f"{MATRIX}/account/whoami", status=401),
        await api.request("POST", LOGIN, raw="{", status=400),
        await api.request("GET", f"{MATRIX}/nowhere", status=404),
        await api.request("DELETE", LOGIN, status=405),
    ]
    for answer in answers:
        assert_cors(answer.headers)


@pytest.mark.parametrize("path", [LOGIN, f"{MATRIX}/account/whoami", f"{MATRIX}/devices/ABC", f"{MATRIX}/nowhere"])
async def test_cors_preflight(server, path):
    request = HTTPRequest(
        server.base_url + path,
        method="OPTIONS",
        headers={
            "Origin": "https://app.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    response = await AsyncHTTPClient().fetch(request, raise_error=False)
    assert response.code in (200, 204)
    assert_cors(response.headers)


async def test_every_success_is_json(api):
    login = await api.register("alice", device_id="PHONE")
    token = login["access_token"]
    answers = [
        await api.request("GET", "/_matrix/client/versions", schema="matrix/versions.response"),
        await api.request("GET", f"{MATRIX}/capabilities", token=token, schema="matrix/capabilities.response"),
        await api.request("GET", LOGIN, schema="matrix/login_flows.response"),
        await api.request(
            "GET", f"{MATRIX}/register/available?username=bob", schema="matrix/register_available.response"
        ),
        await api.request("GET", f"{MATRIX}/account/whoami", token=token, schema="matrix/whoami.response"),
        await api.request("GET", f"{MATRIX}/devices", token=token, schema="matrix/devices.response"),
        await api.request("GET", f"{MATRIX}/devices/PHONE", token=token, schema="matrix/device"),
        await api.request(
            "PUT", f"{MATRIX}/devices/PHONE", {"display_name": "p"}, token=token, schema="matrix/empty.response"
        ),
        await api.request("POST", f"{MATRIX}/logout", token=token, schema="matrix/empty.response"),
    ]
    for answer in answers:
        assert answer.headers["Content-Type"].split(";")[0] == "application/json"


async def test_path_segments_decode_raw_and_percent_encoded(api):
    login = await api.register("alice", device_id="@dev:ice!$")
    token = login["access_token"]
    for path in ("@dev:ice!$", "%40dev%3Aice%21%24", "%40dev:ice!%24"):
        device = await api.request("GET", f"{MATRIX}/devices/{path}", token=token, schema="matrix/device")
        assert device["device_id"] == "@dev:ice!$"
    await api.request(
        "PUT",
        f"{MATRIX}/devices/%40dev%3Aice%21%24",
        {"display_name": "odd"},
        token=token,
        schema="matrix/empty.response",
    )
    device = await api.request("GET", f"{MATRIX}/devices/@dev:ice!$", token=token, schema="matrix/device")
    assert device["display_name"] == "odd"


# -- rate limits ------------------------------------------------------------


def assert_limited(error):
    assert error["errcode"] == "M_LIMIT_EXCEEDED"
    assert isinstance(error["retry_after_ms"], int) and error["retry_after_ms"] > 0


@pytest.mark.settings(rc_register_burst=2, rc_register_per_second=0.01)
async def test_registration_limit_per_address(api):
    await api.register("alice")
    await api.register("bob")
    body = {"username": "carol", "password": DEFAULT_PASSWORD, "auth": {"type": "m.login.dummy"}}
    error = await api.request("POST", REGISTER, body, status=429)
    assert_limited(error)
    assert error["retry_after_ms"] > 60_000
    # Nothing was created by the refused attempt.
    await api.request("GET", f"{MATRIX}/register/available?username=carol", schema="matrix/register_available.response")


@pytest.mark.settings(rc_login_burst=2, rc_login_per_second=5.0)
async def test_login_limit_per_address(api, clock):
    await api.register("alice")
    await api.login("alice")
    await api.login("alice")
    error = await api.request(
        "POST", LOGIN, {"type": "m.login.password", "user": "alice", "password": DEFAULT_PASSWORD}, status=429
    )
    assert_limited(error)
    assert error["retry_after_ms"] <= 200
    clock.advance(error["retry_after_ms"] / 1000 + 0.05)
    await api.login("alice")


@pytest.mark.settings(rc_failed_login_burst=2, rc_failed_login_per_second=0.01)
async def test_failed_login_limit_per_account(api):
    await api.register("alice")
    await api.register("bob")
    wrong = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "not the password at all",
    }
    for _ in range(2):
        error = await api.request("POST", LOGIN, wrong, status=403)
        assert error["errcode"] == "M_FORBIDDEN"
    assert_limited(await api.request("POST", LOGIN, wrong, status=429))
    # The account is locked whatever the spelling of its name and even with the right password...
    right = {**wrong, "password": DEFAULT_PASSWORD, "identifier": {"type": "m.id.user", "user": "@ALICE:test.local"}}
    assert_limited(await api.request("POST", LOGIN, right, status=429))
    # ...while other accounts log in as usual from the same address.
    await api.login("bob")


@pytest.mark.settings(rc_failed_login_burst=2, rc_failed_login_per_second=0.01)
async def test_wrong_passwords_in_interactive_auth_count_as_failed_logins(api):
    login = await api.register("alice")
    body = {"new_password": "a brand new password 7", "auth": password_auth("alice", "not the password at all")}
    for _ in range(2):
        failed = await api.request(
            "POST",
            f"{MATRIX}/account/password",
            body,
            token=login["access_token"],
            status=401,
            schema="matrix/uia.response",
        )
        assert failed["errcode"] == "M_FORBIDDEN"
    assert_limited(
        await api.request("POST", f"{MATRIX}/account/password", body, token=login["access_token"], status=429)
    )
    assert_limited(
        await api.request(
            "POST", LOGIN, {"type": "m.login.password", "user": "alice", "password": DEFAULT_PASSWORD}, status=429
        )
    )


@pytest.mark.settings(rc_failed_login_burst=1, rc_failed_login_per_second=0.01)
async def test_successful_logins_do_not_count_as_failures(api):
    await api.register("alice")
    for _ in range(3):
        await api.login("alice")
    wrong = {"type": "m.login.password", "user": "alice", "password": "not the password at all"}
    await api.request("POST", LOGIN, wrong, status=403)
    assert_limited(await api.request("POST", LOGIN, wrong, status=429))


# -- discovery --------------------------------------------------------------


async def test_versions(api):
    versions = await api.request("GET", "/_matrix/client/versions", schema="matrix/versions.response")
    assert "v1.1" in versions["versions"]
    assert isinstance(versions["unstable_features"], dict)


async def test_capabilities(api):
    error = await api.request("GET", f"{MATRIX}/capabilities", status=401)
    assert error["errcode"] == "M_MISSING_TOKEN"
    login = await api.register("alice")
    answer = await api.request(
        "GET", f"{MATRIX}/capabilities", token=login["access_token"], schema="matrix/capabilities.response"
    )
    capabilities = answer["capabilities"]
    assert capabilities["m.change_password"] == {"enabled": True}
    versions = capabilities["m.room_versions"]
    assert versions["default"] in versions["available"]
