"""Steps the end-to-end encryption tests share: a device's keys as a client
would upload them (shapes only: the server never checks the cryptography),
and the key endpoints called as clients call them."""

from __future__ import annotations

import uuid
from typing import Any

from .client import Response
from .room_steps import User


def device_keys(user: User, *, curve: str = "curveKEY", ed: str = "edKEY") -> dict[str, Any]:
    device = user.device_id
    return {
        "user_id": user.user_id,
        "device_id": device,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {f"curve25519:{device}": curve, f"ed25519:{device}": ed},
        "signatures": {user.user_id: {f"ed25519:{device}": "sig-of-" + device}},
    }


def one_time_keys(user: User, count: int, *, start: int = 0) -> dict[str, Any]:
    return {
        f"signed_curve25519:K{i:04d}": {
            "key": f"otk{i}-{user.device_id}",
            "signatures": {user.user_id: {f"ed25519:{user.device_id}": "s"}},
        }
        for i in range(start, start + count)
    }


def cross_signing_key(user: User, usage: str, public: str, signed_by: str | None = None) -> dict[str, Any]:
    key: dict[str, Any] = {"user_id": user.user_id, "usage": [usage], "keys": {f"ed25519:{public}": public}}
    if signed_by is not None:
        key["signatures"] = {user.user_id: {f"ed25519:{signed_by}": f"sig-by-{signed_by}"}}
    return key


async def upload(user: User, body: dict[str, Any], *, status: int = 200) -> Response:
    return await user.call("POST", "/keys/upload", body, status=status, schema="matrix/keys_upload.response")


async def query(user: User, wanted: dict[str, list[str]], *, status: int = 200) -> Response:
    return await user.call(
        "POST", "/keys/query", {"device_keys": wanted}, status=status, schema="matrix/keys_query.response"
    )


async def claim(user: User, wanted: dict[str, dict[str, str]], *, status: int = 200) -> Response:
    return await user.call(
        "POST", "/keys/claim", {"one_time_keys": wanted}, status=status, schema="matrix/keys_claim.response"
    )


async def send_to_device(
    user: User,
    messages: dict[str, dict[str, Any]],
    *,
    event_type: str = "org.example.ping",
    txn_id: str | None = None,
    status: int = 200,
) -> Response:
    return await user.call(
        "PUT",
        f"/sendToDevice/{event_type}/{txn_id or uuid.uuid4().hex}",
        {"messages": messages},
        status=status,
        schema="matrix/empty.response",
    )
