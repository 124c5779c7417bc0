"""Pure rules of end-to-end encryption's server side: which users a client
must re-query keys for, which backed-up session key to keep, and what makes
an uploaded key well-formed. No I/O; table-tested in tests/test_e2ee_rules.py."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

CROSS_SIGNING_TYPES = ("master", "self_signing", "user_signing")


def key_algorithm(key_id: str) -> str:
    """``signed_curve25519:AAAAHg`` -> ``signed_curve25519``."""
    return key_id.partition(":")[0]


def device_list_delta(
    me: str,
    sharing: set[str],
    key_changes: Iterable[str],
    member_changes: Iterable[tuple[str, str, str | None]],
    members_of_my_changed_rooms: Iterable[str],
) -> tuple[list[str], list[str]]:
    """``device_lists`` of a sync answer: (changed, left).

    ``sharing`` is who shares a joined room with ``me`` now (me included);
    ``key_changes`` the users whose devices or keys changed in the range;
    ``member_changes`` the (room, member, membership) events of the range in
    rooms ``me`` is or was in; ``members_of_my_changed_rooms`` the current
    members of the rooms ``me`` joined or left in the range. A user is
    reported changed when their keys changed, they joined a room of ``me``'s
    or ``me`` one of theirs (a display name change counts, harmlessly); left
    when they no longer share any room.
    """
    came = set(members_of_my_changed_rooms)
    went = set(members_of_my_changed_rooms)
    for _room, member, membership in member_changes:
        if membership == "join":
            came.add(member)
        elif membership in ("leave", "ban"):
            went.add(member)  # an invite or a knock shares nothing yet, nor ends sharing
    changed = {user for user in key_changes if user in sharing} | {user for user in came - {me} if user in sharing}
    left = {user for user in went - {me} if user not in sharing}
    return sorted(changed), sorted(left)


def backup_replaces(existing: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether a newly uploaded backup of a session key replaces the stored
    one: a verified key beats an unverified one, then the key that decrypts
    from an earlier message, then the one forwarded fewer times."""
    if existing is None:
        return True
    if existing["is_verified"] != new["is_verified"]:
        return bool(new["is_verified"])
    if existing["first_message_index"] != new["first_message_index"]:
        return new["first_message_index"] < existing["first_message_index"]
    return new["forwarded_count"] < existing["forwarded_count"]


def cross_signing_problem(
    user_id: str, key_type: str, key: Mapping[str, Any], master: Mapping[str, Any] | None
) -> str | None:
    """What is wrong with an uploaded cross-signing key, or None. It must be
    the uploader's, have the usage of its type and exactly one ed25519 key;
    the self-signing and user-signing keys must carry a signature by the
    master key (``master``: the master key they are uploaded with or under)."""
    if key.get("user_id") != user_id:
        return f"the {key_type} key belongs to another user"
    if key_type not in key.get("usage", []):
        return f"the {key_type} key's usage must include {key_type!r}"
    keys = key.get("keys", {})
    if len(keys) != 1 or not next(iter(keys)).startswith("ed25519:"):
        return f"the {key_type} key must hold exactly one ed25519 key"
    if key_type == "master":
        return None
    if master is None:
        return f"a {key_type} key needs a master key"
    master_key_id = next(iter(master.get("keys", {})), None)
    if master_key_id not in key.get("signatures", {}).get(user_id, {}):
        return f"the {key_type} key must be signed by the master key"
    return None


def public_key(key: Mapping[str, Any]) -> str:
    """The public part of a cross-signing key: the id its signers name it by."""
    return next(iter(key["keys"])).partition(":")[2]
