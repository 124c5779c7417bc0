"""Profiles: display names and avatars, and how a change reaches the
member events of the user's rooms."""

import pytest

from ..support.client import MATRIX, path_param
from ..support.room_steps import SERVER, register, room_of


async def get_field(api, user_id, field, *, status=200, encode=True):
    target = path_param(user_id) if encode else user_id
    return await api.request(
        "GET",
        f"{MATRIX}/profile/{target}/{field}",
        status=status,
        schema=f"matrix/profile_{field}.response" if status == 200 else None,
    )


async def get_profile(api, user_id, *, status=200):
    return await api.request(
        "GET",
        f"{MATRIX}/profile/{path_param(user_id)}",
        status=status,
        schema="matrix/profile.response" if status == 200 else None,
    )


async def set_field(user, field, value, *, status=200, encode=True):
    target = path_param(user.user_id) if encode else user.user_id
    return await user.call(
        "PUT", f"/profile/{target}/{field}", {field: value}, status=status, schema="matrix/empty.response"
    )


@pytest.mark.parametrize("encode", [True, False])
async def test_display_name_and_avatar(api, encode):
    (alice,) = await register(api, "alice")
    # Unset fields: the field endpoints name them as null, the profile leaves them out.
    assert (await get_field(api, alice.user_id, "displayname", encode=encode)).body == {"displayname": None}
    assert (await get_field(api, alice.user_id, "avatar_url", encode=encode)).body == {"avatar_url": None}
    assert (await get_profile(api, alice.user_id)).body == {}
    await set_field(alice, "displayname", "Alice Liddell", encode=encode)
    await set_field(alice, "avatar_url", f"mxc://{SERVER}/rabbit", encode=encode)
    assert (await get_field(api, alice.user_id, "displayname", encode=encode)).body == {"displayname": "Alice Liddell"}
    assert (await get_field(api, alice.user_id, "avatar_url")).body == {"avatar_url": f"mxc://{SERVER}/rabbit"}
    assert (await get_profile(api, alice.user_id)).body == {
        "displayname": "Alice Liddell",
        "avatar_url": f"mxc://{SERVER}/rabbit",
    }
    # Clearing a field.
    await set_field(alice, "displayname", None)
    assert (await get_field(api, alice.user_id, "displayname")).body == {"displayname": None}
    assert (await get_profile(api, alice.user_id)).body == {"avatar_url": f"mxc://{SERVER}/rabbit"}


async def test_a_new_name_reaches_the_rooms_one_is_in(api):
    alice, bob = await register(api, "alice", "bob")
    lounge = await alice.create_room(preset="public_chat")
    await bob.call("POST", f"/join/{lounge}", {"reason": "hello all"}, schema="matrix/join.response")
    study = await room_of(alice, bob)
    left = await room_of(alice, bob)
    await bob.leave(left)
    invited = await alice.create_room(invite=[bob.user_id])

    await set_field(bob, "displayname", "Bobby")
    for room_id in (lounge, study):
        member = await alice.get_state(room_id, "m.room.member", bob.user_id)
        # The join is re-sent with the new name (and without the old join's reason).
        assert member.body == {"membership": "join", "displayname": "Bobby"}
        newest = (await alice.messages(room_id, limit=1))["chunk"][0]
        assert (newest["type"], newest["state_key"], newest["sender"]) == ("m.room.member", bob.user_id, bob.user_id)
        assert newest["unsigned"]["prev_content"]["membership"] == "join"
        assert "displayname" not in newest["unsigned"]["prev_content"]
    assert (await alice.get_state(left, "m.room.member", bob.user_id)).body == {"membership": "leave"}
    assert (await alice.get_state(invited, "m.room.member", bob.user_id)).body == {"membership": "invite"}
    joined = await alice.call("GET", f"/rooms/{study}/joined_members", schema="matrix/joined_members.response")
    assert joined["joined"][bob.user_id] == {"display_name": "Bobby", "avatar_url": None}

    # An avatar keeps the name, and a later join of the invite carries both.
    await set_field(bob, "avatar_url", f"mxc://{SERVER}/bob")
    assert (await alice.get_state(study, "m.room.member", bob.user_id)).body == {
        "membership": "join",
        "displayname": "Bobby",
        "avatar_url": f"mxc://{SERVER}/bob",
    }
    await bob.join(invited)
    assert (await alice.get_state(invited, "m.room.member", bob.user_id)).body == {
        "membership": "join",
        "displayname": "Bobby",
        "avatar_url": f"mxc://{SERVER}/bob",
    }


async def test_profile_refusals(api):
    alice, bob = await register(api, "alice", "bob")
    refused = await alice.call(
        "PUT", f"/profile/{path_param(bob.user_id)}/displayname", {"displayname": "Not Bob"}, status=403
    )
    assert refused["errcode"] == "M_FORBIDDEN"
    assert (await get_field(api, bob.user_id, "displayname")).body == {"displayname": None}
    for field in ("displayname", "avatar_url"):
        unknown = await get_field(api, f"@nobody:{SERVER}", field, status=404)
        assert unknown["errcode"] == "M_NOT_FOUND"
    unknown = await get_profile(api, f"@nobody:{SERVER}", status=404)
    assert unknown["errcode"] == "M_NOT_FOUND"
    too_long = await set_field(alice, "displayname", "x" * 300, status=400)
    assert too_long["errcode"] == "M_BAD_JSON"
    wrong_type = await set_field(alice, "avatar_url", 42, status=400)
    assert wrong_type["errcode"] == "M_BAD_JSON"
    anonymous = await api.request(
        "PUT", f"{MATRIX}/profile/{path_param(alice.user_id)}/displayname", {"displayname": "Anon"}, status=401
    )
    assert anonymous["errcode"] == "M_MISSING_TOKEN"
