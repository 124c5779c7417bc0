"""End-to-end encryption's server side: devices publish their keys, others
query and claim them, devices send each other to-device messages, and
everyone who shares a room with a user hears when that user's devices change.

The server relays and stores; it never sees a decryption key. Writes that
clients must hear about (a device's keys changed, a to-device message) take
a position in the global stream through the persister, so they reach /sync
and the stream in the same order as everything else.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import partial
from typing import Any

import asyncpg

from ..auth.sessions import Requester
from ..db import Database
from ..errors import invalid_param
from ..events import e2ee
from ..events.ids import split_user_id
from ..storage import keys as store
from .persister import Persister

# What every sync answer reports even with none left: clients read a missing
# count as "unknown" and may not top their keys up.
REPORTED_ALGORITHMS = ("signed_curve25519",)


async def key_state(db: Database, user_id: str, device_id: str) -> tuple[dict[str, int], list[str]]:
    """The device's one-time key counts (REPORTED_ALGORITHMS always among
    them) and the algorithms of its unused fallback keys."""
    counts, fallback = await store.key_state(db, user_id, device_id)
    for algorithm in REPORTED_ALGORITHMS:
        counts.setdefault(algorithm, 0)
    return counts, fallback


async def device_list_changes(db: Database, user_id: str, after: int, upto: int) -> tuple[list[str], list[str]]:
    """(changed, left) for the user between two positions: /sync's
    device_lists and /keys/changes. One range query when nothing happened;
    who shares a room is read only for the users concerned."""
    rows = await store.device_list_events_between(db, user_id, after, upto)
    if not rows:
        return [], []
    key_changes = [row.member for row in rows if row.room_id is None]
    member_changes = [(row.room_id, row.member, row.membership) for row in rows if row.room_id is not None]
    my_rooms = sorted({room for room, member, _ in member_changes if member == user_id})
    members = await store.joined_members_of(db, my_rooms) if my_rooms else []
    concerned = set(key_changes) | {member for _, member, _ in member_changes} | set(members)
    sharing = await store.users_sharing_rooms(db, user_id, sorted(concerned))
    return e2ee.device_list_delta(user_id, sharing, key_changes, member_changes, members)


class Keys:
    def __init__(self, *, pool: asyncpg.Pool, persister: Persister, server_name: str) -> None:
        self._pool = pool
        self._persister = persister
        self._server_name = server_name

    # -- device and one-time keys ---------------------------------------------------

    async def upload(self, requester: Requester, body: dict[str, Any]) -> dict[str, int]:
        user_id, device_id = requester.user_id, requester.device_id
        device_keys = body.get("device_keys")
        if device_keys is not None:
            if device_keys["user_id"] != user_id or device_keys["device_id"] != device_id:
                raise invalid_param("device_keys must be of the device making the request")
            await self._persister.update(
                partial(store.put_device_keys, user_id=user_id, device_id=device_id, keys=device_keys)
            )
        one_time = [(e2ee.key_algorithm(key_id), key_id, key) for key_id, key in body.get("one_time_keys", {}).items()]
        if one_time:
            await store.add_one_time_keys(self._pool, user_id=user_id, device_id=device_id, keys=one_time)
        fallback = [(e2ee.key_algorithm(key_id), key_id, key) for key_id, key in body.get("fallback_keys", {}).items()]
        if fallback:
            if len({algorithm for algorithm, _, _ in fallback}) != len(fallback):
                raise invalid_param("One fallback key per algorithm")
            await store.put_fallback_keys(self._pool, user_id=user_id, device_id=device_id, keys=fallback)
        return (await key_state(self._pool, user_id, device_id))[0]

    async def query(self, requester: Requester, wanted: dict[str, list[str]]) -> dict[str, Any]:
        """Device and cross-signing keys of local users (anyone on this server
        may ask for anyone's, as the keys are public); others are failures."""
        local = {user_id: devices for user_id, devices in wanted.items() if self._is_local(user_id)}
        signatures = await store.signatures_for(self._pool, list(local), requester.user_id)
        extra: dict[tuple[str, str], list[store.KeySignature]] = {}
        for signature in signatures:
            extra.setdefault((signature.target_user, signature.target_key_id), []).append(signature)
        device_keys: dict[str, dict[str, Any]] = {user_id: {} for user_id in local}
        for row in await store.device_keys_of(self._pool, local):
            keys = _with_signatures(row.keys, extra.get((row.user_id, row.device_id), ()))
            keys["unsigned"] = {"device_display_name": row.display_name} if row.display_name else {}
            device_keys[row.user_id][row.device_id] = keys
        answer: dict[str, Any] = {
            "device_keys": device_keys,
            "failures": {},
            "master_keys": {},
            "self_signing_keys": {},
            "user_signing_keys": {},
        }
        for cross in await store.cross_signing_keys_of(self._pool, list(local)):
            if cross.key_type == "user_signing" and cross.user_id != requester.user_id:
                continue  # only its owner needs to know whom they trust
            key = _with_signatures(cross.keys, extra.get((cross.user_id, e2ee.public_key(cross.keys)), ()))
            answer[f"{cross.key_type}_keys"][cross.user_id] = key
        return answer

    async def claim(self, requester: Requester, wanted: dict[str, dict[str, str]]) -> dict[str, Any]:
        claimed: dict[str, dict[str, Any]] = {}
        for user_id, devices in wanted.items():
            if not self._is_local(user_id):
                continue
            for device_id, algorithm in devices.items():
                row = await store.claim_key(self._pool, user_id, device_id, algorithm)
                if row is not None:
                    claimed.setdefault(user_id, {})[device_id] = {row.key_id: row.key}
        return {"one_time_keys": claimed, "failures": {}}

    async def changes(self, requester: Requester, after: int, upto: int) -> dict[str, list[str]]:
        changed, left = await device_list_changes(self._pool, requester.user_id, after, upto)
        return {"changed": changed, "left": left}

    async def acknowledge(self, requester: Requester, position: int) -> None:
        """The device has its to-device messages up to ``position``: delete them."""
        await store.acknowledge_to_device(self._pool, requester.user_id, requester.device_id, position)

    async def devices_changed(self, user_id: str) -> None:
        """A user's devices went (their keys with them) or were renamed: tell who shares a room."""
        await self._persister.update(partial(store.device_list_changed, user_id=user_id))

    # -- to-device messages ---------------------------------------------------------------

    async def send_to_device(
        self, requester: Requester, event_type: str, txn_id: str, messages: dict[str, dict[str, Any]]
    ) -> None:
        """Queues a message per named device (``*``: every device of the user)
        of local users, once per transaction id."""
        everyone = [user_id for user_id, devices in messages.items() if "*" in devices and self._is_local(user_id)]
        all_devices: dict[str, list[str]] = {}
        for row in await store.devices_of(self._pool, everyone) if everyone else ():
            all_devices.setdefault(row.user_id, []).append(row.device_id)
        queued: dict[tuple[str, str], Any] = {}
        for user_id, devices in messages.items():
            if not self._is_local(user_id):
                continue
            for device_id, content in devices.items():
                targets = all_devices.get(user_id, []) if device_id == "*" else [device_id]
                for target in targets:
                    queued[(user_id, target)] = content  # a named device wins over "*" for it
        await self._persister.update(
            partial(
                store.put_to_device,
                sender=requester.user_id,
                sender_device=requester.device_id,
                txn_id=txn_id,
                type=event_type,
                messages=[(user, device, content) for (user, device), content in queued.items()],
            )
        )

    # -- cross-signing ----------------------------------------------------------------------

    async def cross_signing_needs_auth(self, user_id: str, body: dict[str, Any]) -> bool:
        """Replacing cross-signing keys needs the password; publishing the
        first ones (or the same ones again) does not, so a client can set
        up cross-signing without asking (spec v1.11)."""
        held = {row.key_type: row.keys for row in await store.cross_signing_keys_of(self._pool, [user_id])}
        if "master" not in held:
            return False
        return any(
            f"{key_type}_key" in body and _bare(body[f"{key_type}_key"]) != _bare(held.get(key_type))
            for key_type in e2ee.CROSS_SIGNING_TYPES
        )

    async def upload_cross_signing(self, requester: Requester, body: dict[str, Any]) -> None:
        user_id = requester.user_id
        held = {row.key_type: row.keys for row in await store.cross_signing_keys_of(self._pool, [user_id])}
        uploaded = {
            key_type: body[f"{key_type}_key"] for key_type in e2ee.CROSS_SIGNING_TYPES if f"{key_type}_key" in body
        }
        master = uploaded.get("master", held.get("master"))
        for key_type, key in uploaded.items():
            problem = e2ee.cross_signing_problem(user_id, key_type, key, master)
            if problem is not None:
                raise invalid_param(problem)
        if uploaded:
            await self._persister.update(partial(store.put_cross_signing_keys, user_id=user_id, keys=uploaded))

    async def upload_signatures(self, requester: Requester, body: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Stores the requester's signatures of their own devices and keys and
        of other users' master keys; what cannot be matched to a known key
        is reported in ``failures``."""
        signer = requester.user_id
        failures: dict[str, dict[str, Any]] = {}
        rows: list[tuple[str, str, str, str]] = []
        for user_id, objects in body.items():
            devices = (
                {row.device_id: row.keys for row in await store.device_keys_of(self._pool, {user_id: []})}
                if user_id == signer
                else {}
            )
            cross = {row.key_type: row.keys for row in await store.cross_signing_keys_of(self._pool, [user_id])}
            master = cross.get("master")
            for key_id, signed in objects.items():
                stored = devices.get(key_id)
                if stored is None and master is not None and e2ee.public_key(master) == key_id:
                    stored = master
                if stored is None:
                    failures.setdefault(user_id, {})[key_id] = {
                        "errcode": "M_NOT_FOUND",
                        "error": "No such key of this user that you may sign",
                    }
                    continue
                if _bare(signed) != _bare(stored):
                    failures.setdefault(user_id, {})[key_id] = {
                        "errcode": "M_INVALID_SIGNATURE",
                        "error": "The signed object is not the key held",
                    }
                    continue
                new = signed.get("signatures", {}).get(signer, {})
                if not new:
                    failures.setdefault(user_id, {})[key_id] = {
                        "errcode": "M_INVALID_SIGNATURE",
                        "error": "No signature by you",
                    }
                    continue
                rows.extend((user_id, key_id, signer_key, value) for signer_key, value in new.items())
        if rows:
            await self._persister.update(
                partial(
                    store.add_signatures,
                    signer_user=signer,
                    signatures=rows,
                    notify=sorted({signer} | {row[0] for row in rows}),
                )
            )
        return {"failures": failures}

    def _is_local(self, user_id: str) -> bool:
        parts = split_user_id(user_id)
        return parts is not None and parts[1] == self._server_name


def _bare(key: Any) -> Any:
    """A key without what others add to it: signatures and unsigned data."""
    if not isinstance(key, dict):
        return key
    return {name: value for name, value in key.items() if name not in ("signatures", "unsigned")}


def _with_signatures(key: dict[str, Any], rows: Sequence[store.KeySignature]) -> dict[str, Any]:
    """The key with the separately uploaded signatures merged in."""
    if not rows:
        return key
    key = copy.deepcopy(key)
    signatures = key.setdefault("signatures", {})
    for row in rows:
        signatures.setdefault(row.signer_user, {})[row.signer_key_id] = row.signature
    return key
