"""The shortest path a new user takes: register, log in, whoami, log out."""

from ..support.client import MATRIX


async def test_register_login_whoami_logout(api):
    challenge = await api.request(
        "POST",
        f"{MATRIX}/register",
        {"username": "alice", "password": "a long password 42"},
        status=401,
        schema="matrix/uia.response",
    )
    assert challenge["flows"] == [{"stages": ["m.login.dummy"]}]
    registered = await api.register("alice")
    assert registered["user_id"] == "@alice:test.local"
    login = await api.login("@alice:test.local")
    me = await api.request(
        "GET", f"{MATRIX}/account/whoami", token=login["access_token"], schema="matrix/whoami.response"
    )
    assert me.body == {"user_id": "@alice:test.local", "device_id": login["device_id"], "is_guest": False}
    await api.request("POST", f"{MATRIX}/logout", token=login["access_token"], schema="matrix/empty.response")
    gone = await api.request("GET", f"{MATRIX}/account/whoami", token=login["access_token"], status=401)
    assert gone["errcode"] == "M_UNKNOWN_TOKEN"
    # The registration's own session is untouched by the other device's logout.
    await api.request(
        "GET", f"{MATRIX}/account/whoami", token=registered["access_token"], schema="matrix/whoami.response"
    )
