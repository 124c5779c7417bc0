"""Hashes, ids and signatures of events and JSON objects, as federation
defines them (room versions 10 to 12).

Everything here is pure. Canonical JSON is ``canonicaljson``'s and the
ed25519 signatures are ``signedjson``'s (over PyNaCl): these are the
libraries the Matrix ecosystem itself maintains, so the bytes signed and
hashed here are the bytes other servers sign and hash — a byte of difference
would make every event id and signature disagree.

- content hash: SHA-256 of the event without ``unsigned``, ``signatures``
  and ``hashes``, kept in ``hashes.sha256``; it lets a server tell a
  redacted event from a forged one.
- reference hash: SHA-256 of the redacted (pruned) event without
  ``signatures`` and ``unsigned``; the event id is "$" and its url-safe
  base64, and in version 12 the room id is the create event's with "!".
- event signature: the server's signature of the pruned event, so it stays
  valid when the event is redacted.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from typing import Any

import canonicaljson
import signedjson.key
import signedjson.sign
from signedjson.types import SigningKey, VerifyKey
from unpaddedbase64 import encode_base64

from .redaction import prune_event
from .room_versions import RoomVersion

SignatureError = signedjson.sign.SignatureVerifyException
_NOT_HASHED = ("unsigned", "signatures", "hashes")


def canonical_json(value: Any) -> bytes:
    """The canonical JSON encoding: sorted keys, no spaces, UTF-8."""
    return canonicaljson.encode_canonical_json(value)


def content_hash(event: Mapping[str, Any]) -> str:
    """The unpadded base64 SHA-256 that goes in ``hashes.sha256``."""
    hashed = {key: value for key, value in event.items() if key not in _NOT_HASHED}
    return encode_base64(hashlib.sha256(canonical_json(hashed)).digest())


def with_content_hash(event: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the event with its ``hashes.sha256`` set (a shallow copy:
    the values it shares with the event are not changed here)."""
    hashed = dict(event)
    hashed["hashes"] = {**hashed.get("hashes", {}), "sha256": content_hash(event)}
    return hashed


def has_valid_content_hash(event: Mapping[str, Any]) -> bool:
    """False for an event whose content was changed after it was hashed
    (the receiver then keeps only its redacted form)."""
    hashes = event.get("hashes")
    return isinstance(hashes, Mapping) and hashes.get("sha256") == content_hash(event)


def reference_hash(event: Mapping[str, Any], version: RoomVersion) -> bytes:
    pruned = prune_event(event, version)
    pruned.pop("signatures", None)
    return hashlib.sha256(canonical_json(pruned)).digest()


def event_id(event: Mapping[str, Any], version: RoomVersion) -> str:
    return "$" + encode_base64(reference_hash(event, version), urlsafe=True)


def room_id_of_create(create: Mapping[str, Any], version: RoomVersion) -> str:
    """The room id a version-12 create event makes (its event id with "!")."""
    if not version.room_id_is_create_event_id:
        raise ValueError(f"in room version {version.identifier} the room id is not derived from the create event")
    return "!" + event_id(create, version)[1:]


def sign_json(value: Mapping[str, Any], server_name: str, key: SigningKey) -> dict[str, Any]:
    """A copy of the object with this server's signature added (``unsigned``
    is left out of what is signed, as the appendix says)."""
    signed = copy.deepcopy(dict(value))
    return signedjson.sign.sign_json(signed, server_name, key)


def verify_json(value: Mapping[str, Any], server_name: str, key: VerifyKey) -> None:
    """Raise SignatureError unless the object carries a valid signature by
    ``key`` (identified by its ``alg:version``) for ``server_name``."""
    signedjson.sign.verify_signed_json(dict(value), server_name, key)


def sign_event(event: Mapping[str, Any], server_name: str, key: SigningKey, version: RoomVersion) -> dict[str, Any]:
    """A copy of the event with its content hash set and this server's
    signature of its pruned form added to ``signatures``."""
    hashed = with_content_hash(event)
    pruned = prune_event(hashed, version)
    signature = signedjson.sign.sign_json(pruned, server_name, key)["signatures"][server_name]
    # New dicts for what changes: the event's own ``signatures`` stay as they were.
    signatures = {name: dict(by_key) for name, by_key in hashed.get("signatures", {}).items()}
    signatures[server_name] = {**signatures.get(server_name, {}), **signature}
    hashed["signatures"] = signatures
    return hashed


def verify_event(event: Mapping[str, Any], server_name: str, key: VerifyKey, version: RoomVersion) -> None:
    """Raise SignatureError unless ``server_name`` signed the event's pruned
    form with ``key``. The content hash is checked apart (has_valid_content_hash):
    a bad hash means "redact", not "reject"."""
    signedjson.sign.verify_signed_json(prune_event(event, version), server_name, key)


def key_id(key: SigningKey | VerifyKey) -> str:
    return f"{key.alg}:{key.version}"


def signing_key_from_seed(seed_base64: str, version: str) -> SigningKey:
    """An ed25519 signing key from its unpadded base64 32-byte seed."""
    return signedjson.key.decode_signing_key_base64("ed25519", version, seed_base64)


def verify_key_of(key: SigningKey) -> VerifyKey:
    """The public half, carrying the key id verify_json reads."""
    return signedjson.key.get_verify_key(key)


def verify_key_base64(key: VerifyKey) -> str:
    return signedjson.key.encode_verify_key_base64(key)


def verify_key_from_base64(key_id_: str, key_base64: str) -> VerifyKey:
    """The verify key a server publishes as ``verify_keys[key_id].key``."""
    algorithm, _, version = key_id_.partition(":")
    return signedjson.key.decode_verify_key_base64(algorithm, version, key_base64)
