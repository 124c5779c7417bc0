"""After POST /refresh the old access token works only until the new one is
first used; from then on it is refused everywhere at once: on this server
process and others, and a stream it opened is closed."""

from __future__ import annotations

from ..support.client import MATRIX, ApiClient
from ..support.stream_steps import Stream
from .test_login import whoami


async def login_and_refresh(api) -> tuple[dict, dict]:
    await api.register("alice")
    login = (await api.login("alice", refresh_token=True)).body
    refreshed = (
        await api.request(
            "POST", f"{MATRIX}/refresh", {"refresh_token": login["refresh_token"]}, schema="matrix/refresh.response"
        )
    ).body
    return login, refreshed


async def test_the_old_access_token_ends_when_the_new_one_is_used(server, api, more_servers):
    other = ApiClient((await more_servers()).base_url)
    login, refreshed = await login_and_refresh(api)
    # Until the new token is used, the old one still works (a client may
    # have requests in flight with it), on either process.
    for client in (api, other):
        assert (await whoami(client, login["access_token"]))["device_id"] == login["device_id"]
    stream = await Stream.open(server.base_url, token=login["access_token"])
    await stream.frame()

    assert (await whoami(api, refreshed["access_token"]))["device_id"] == login["device_id"]
    for client in (api, other):
        error = await whoami(client, login["access_token"], status=401)
        assert error.body == {
            "errcode": "M_UNKNOWN_TOKEN",
            "soft_logout": False,
            "error": "This access token was replaced by a refreshed one",
        }
        await whoami(client, refreshed["access_token"])
    assert (await stream.closed())[0] == 4401

    # The next refresh does the same to the token of the first.
    again = (
        await api.request(
            "POST", f"{MATRIX}/refresh", {"refresh_token": refreshed["refresh_token"]}, schema="matrix/refresh.response"
        )
    ).body
    await whoami(other, refreshed["access_token"])
    await whoami(other, again["access_token"])
    for token in (login["access_token"], refreshed["access_token"]):
        for client in (api, other):
            await whoami(client, token, status=401)
    await whoami(api, again["access_token"])


async def test_a_token_of_another_session_is_untouched(server, api):
    login, refreshed = await login_and_refresh(api)
    phone = (await api.login("alice", refresh_token=True)).body
    await whoami(api, refreshed["access_token"])
    await whoami(api, phone["access_token"])
    await whoami(api, login["access_token"], status=401)
