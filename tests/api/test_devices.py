"""Device management: list, read, rename and delete devices, each user only
their own; deleting a device ends its session."""

import time

import pytest

from ..support.client import MATRIX, password_auth, path_param

DEVICES = f"{MATRIX}/devices"


async def list_devices(api, token):
    return (await api.request("GET", DEVICES, token=token, schema="matrix/devices.response"))["devices"]


async def get_device(api, token, device_id, status=200):
    answer = await api.request(
        "GET",
        f"{DEVICES}/{path_param(device_id)}",
        token=token,
        status=status,
        schema="matrix/device" if status == 200 else None,
    )
    return answer.body


async def whoami(api, token, status=200):
    return await api.request(
        "GET",
        f"{MATRIX}/account/whoami",
        token=token,
        status=status,
        schema="matrix/whoami.response" if status == 200 else None,
    )


async def delete_device(api, token, device_id, auth=None, status=200):
    body = {} if auth is None else {"auth": auth}
    schema = {200: "matrix/empty.response", 401: "matrix/uia.response"}.get(status)
    return await api.request(
        "DELETE", f"{DEVICES}/{path_param(device_id)}", body, token=token, status=status, schema=schema
    )


async def delete_devices(api, token, device_ids, auth=None, status=200):
    body = {"devices": device_ids}
    if auth is not None:
        body["auth"] = auth
    schema = {200: "matrix/empty.response", 401: "matrix/uia.response"}.get(status)
    return await api.request("POST", f"{MATRIX}/delete_devices", body, token=token, status=status, schema=schema)


@pytest.fixture
def alice(io_loop, api):
    """Alice, registered on her device ALICEPHONE."""
    return io_loop.run_sync(lambda: api.register("alice", device_id="ALICEPHONE", initial_device_display_name="phone"))


async def test_list_and_get(api, alice):
    laptop = await api.login("alice", device_id="ALICELAPTOP", initial_device_display_name="laptop")
    bare = await api.login("alice")
    listed = {d["device_id"]: d for d in await list_devices(api, alice["access_token"])}
    assert set(listed) == {"ALICEPHONE", "ALICELAPTOP", bare["device_id"]}
    assert listed["ALICELAPTOP"]["display_name"] == "laptop"
    assert listed[bare["device_id"]]["display_name"] is None
    one = await get_device(api, laptop["access_token"], "ALICEPHONE")
    assert one["device_id"] == "ALICEPHONE" and one["display_name"] == "phone"


async def test_last_seen_appears_after_use(api, alice):
    before_ms = int(time.time() * 1000) - 5_000
    other = await api.login("alice", device_id="QUIET")
    assert "last_seen_ts" not in await get_device(api, alice["access_token"], "QUIET")
    await whoami(api, other["access_token"])
    quiet = await get_device(api, alice["access_token"], "QUIET")
    assert before_ms <= quiet["last_seen_ts"] <= int(time.time() * 1000) + 5_000
    assert quiet["last_seen_ip"] == "127.0.0.1"
    # The caller's own request counts as use of its device.
    listed = {d["device_id"]: d for d in await list_devices(api, alice["access_token"])}
    assert listed["ALICEPHONE"]["last_seen_ip"] == "127.0.0.1"


async def test_rename(api, alice):
    path = f"{DEVICES}/ALICEPHONE"
    answer = await api.request(
        "PUT", path, {"display_name": "old phone"}, token=alice["access_token"], schema="matrix/empty.response"
    )
    assert answer.body == {}
    assert (await get_device(api, alice["access_token"], "ALICEPHONE"))["display_name"] == "old phone"
    # A body without display_name leaves the name as it is.
    await api.request("PUT", path, {}, token=alice["access_token"], schema="matrix/empty.response")
    assert (await get_device(api, alice["access_token"], "ALICEPHONE"))["display_name"] == "old phone"
    await api.request("PUT", path, {"display_name": None}, token=alice["access_token"], schema="matrix/empty.response")
    assert (await get_device(api, alice["access_token"], "ALICEPHONE"))["display_name"] is None


async def test_rename_rejects_wrong_types(api, alice):
    error = await api.request(
        "PUT", f"{DEVICES}/ALICEPHONE", {"display_name": 5}, token=alice["access_token"], status=400
    )
    assert error["errcode"] == "M_BAD_JSON" and "display_name" in error["error"]


async def test_unknown_device(api, alice):
    token = alice["access_token"]
    assert (await get_device(api, token, "NOSUCHDEVICE", status=404))["errcode"] == "M_NOT_FOUND"
    error = await api.request("PUT", f"{DEVICES}/NOSUCHDEVICE", {"display_name": "x"}, token=token, status=404)
    assert error["errcode"] == "M_NOT_FOUND"
    error = await api.request("PUT", f"{DEVICES}/NOSUCHDEVICE", {}, token=token, status=404)
    assert error["errcode"] == "M_NOT_FOUND"
    assert (await delete_device(api, token, "NOSUCHDEVICE", status=404))["errcode"] == "M_NOT_FOUND"


async def test_device_endpoints_need_a_token(api, alice):
    for method, path, body in [
        ("GET", DEVICES, None),
        ("GET", f"{DEVICES}/ALICEPHONE", None),
        ("PUT", f"{DEVICES}/ALICEPHONE", {"display_name": "x"}),
        ("DELETE", f"{DEVICES}/ALICEPHONE", {}),
        ("POST", f"{MATRIX}/delete_devices", {"devices": ["ALICEPHONE"]}),
    ]:
        error = await api.request(method, path, body, status=401)
        assert error["errcode"] == "M_MISSING_TOKEN"


async def test_delete_needs_the_password(api, alice):
    other = await api.login("alice", device_id="OTHER")
    challenge = await delete_device(api, alice["access_token"], "OTHER", status=401)
    assert challenge["flows"] == [{"stages": ["m.login.password"]}]
    assert "errcode" not in challenge.body
    failed = await delete_device(
        api,
        alice["access_token"],
        "OTHER",
        auth=password_auth("alice", "not the password at all", challenge["session"]),
        status=401,
    )
    assert failed["errcode"] == "M_FORBIDDEN"
    await whoami(api, other["access_token"])
    await get_device(api, alice["access_token"], "OTHER")


async def test_delete_revokes_the_device_token(api, alice):
    other = await api.login("alice", device_id="OTHER")
    await whoami(api, other["access_token"])
    challenge = await delete_device(api, alice["access_token"], "OTHER", status=401)
    await delete_device(
        api, alice["access_token"], "OTHER", auth=password_auth("@alice:test.local", session=challenge["session"])
    )
    error = await whoami(api, other["access_token"], status=401)
    assert error["errcode"] == "M_UNKNOWN_TOKEN"
    await get_device(api, alice["access_token"], "OTHER", status=404)
    assert [d["device_id"] for d in await list_devices(api, alice["access_token"])] == ["ALICEPHONE"]


async def test_deleting_ones_own_device_logs_out(api, alice):
    await delete_device(api, alice["access_token"], "ALICEPHONE", auth=password_auth("alice"))
    await whoami(api, alice["access_token"], status=401)


async def test_percent_encoded_device_ids(api, alice):
    odd = "dev/ice:1 +é"
    other = await api.login("alice", device_id=odd, initial_device_display_name="odd")
    assert other["device_id"] == odd
    assert (await get_device(api, alice["access_token"], odd))["display_name"] == "odd"
    await api.request(
        "PUT",
        f"{DEVICES}/{path_param(odd)}",
        {"display_name": "renamed"},
        token=alice["access_token"],
        schema="matrix/empty.response",
    )
    assert (await get_device(api, alice["access_token"], odd))["display_name"] == "renamed"
    await delete_device(api, alice["access_token"], odd, auth=password_auth("alice"))
    await whoami(api, other["access_token"], status=401)


async def test_delete_devices(api, alice):
    others = [await api.login("alice", device_id=f"D{i}") for i in range(3)]
    token = alice["access_token"]
    challenge = await delete_devices(api, token, ["D0", "D1"], status=401)
    assert challenge["flows"] == [{"stages": ["m.login.password"]}]
    failed = await delete_devices(
        api, token, ["D0", "D1"], auth=password_auth("alice", "wrong password here"), status=401
    )
    assert failed["errcode"] == "M_FORBIDDEN"
    # Unknown ids among them are ignored.
    await delete_devices(
        api, token, ["D0", "D1", "NOSUCHDEVICE"], auth=password_auth("alice", session=challenge["session"])
    )
    for login in others[:2]:
        await whoami(api, login["access_token"], status=401)
    await whoami(api, others[2]["access_token"])
    assert sorted(d["device_id"] for d in await list_devices(api, token)) == ["ALICEPHONE", "D2"]


async def test_delete_devices_requires_a_list(api, alice):
    error = await api.request(
        "POST", f"{MATRIX}/delete_devices", {"auth": password_auth("alice")}, token=alice["access_token"], status=400
    )
    assert error["errcode"] == "M_MISSING_PARAM" and "devices" in error["error"]
    error = await api.request(
        "POST",
        f"{MATRIX}/delete_devices",
        {"devices": "D0", "auth": password_auth("alice")},
        token=alice["access_token"],
        status=400,
    )
    assert error["errcode"] == "M_BAD_JSON" and "devices" in error["error"]


async def test_other_users_devices_are_invisible_and_untouchable(api, alice):
    bob = await api.register("bob", device_id="BOBPHONE", initial_device_display_name="bob's")
    token = alice["access_token"]
    assert [d["device_id"] for d in await list_devices(api, token)] == ["ALICEPHONE"]
    assert (await get_device(api, token, "BOBPHONE", status=404))["errcode"] == "M_NOT_FOUND"
    error = await api.request("PUT", f"{DEVICES}/BOBPHONE", {"display_name": "mine now"}, token=token, status=404)
    assert error["errcode"] == "M_NOT_FOUND"
    answer = await delete_device(api, token, "BOBPHONE", auth=password_auth("alice"), status=404)
    assert answer["errcode"] == "M_NOT_FOUND"
    # Bob's password does not let Alice act on his devices either.
    answer = await delete_device(api, token, "BOBPHONE", auth=password_auth("bob"), status=404)
    assert answer["errcode"] == "M_NOT_FOUND"
    await delete_devices(api, token, ["BOBPHONE"], auth=password_auth("alice"))
    await whoami(api, bob["access_token"])
    mine = await get_device(api, bob["access_token"], "BOBPHONE")
    assert mine["display_name"] == "bob's"


async def test_a_device_id_may_repeat_across_users(api, alice):
    bob = await api.register("bob", device_id="ALICEPHONE")
    await whoami(api, alice["access_token"])
    await whoami(api, bob["access_token"])
    await delete_device(api, bob["access_token"], "ALICEPHONE", auth=password_auth("bob"))
    await whoami(api, bob["access_token"], status=401)
    await whoami(api, alice["access_token"])
