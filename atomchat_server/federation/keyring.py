"""Other servers' signing keys: fetched from the server itself, checked,
and cached (in memory and in PostgreSQL) until they expire.

A server publishes its keys at ``GET /_matrix/key/v2/server``, signed by
each of its current keys. ``verify_keys`` are valid until
``valid_until_ts``; ``old_verify_keys`` were valid until their
``expired_ts`` and still check what was signed before. A key is used for a
signature made at time T (now, for a request; the event's time, for an
event) only if it was valid at T. A server is asked again at most every
``REFETCH_SECONDS`` for a key it did not have, and one fetch per server is
in flight at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import asyncpg
from signedjson.types import SigningKey, VerifyKey

from ..events.signing import SignatureError, key_id, verify_json, verify_key_from_base64, verify_key_of
from ..storage import federation as store
from ..storage.federation import StoredKey
from .remote import Remote, RemoteError, Unreachable

log = logging.getLogger("atomchat.federation")

KEY_PATH = "/_matrix/key/v2/server"
REFETCH_SECONDS = 10.0
# A published validity is believed for at most this long (the spec's cap
# for room versions 5 and later).
MAX_VALIDITY_MS = 7 * 24 * 60 * 60 * 1000


class KeyNotFound(Exception):
    """No key with that id, valid at the time asked, could be had from the server."""


class BadSignature(Exception):
    """An object lacks a valid signature of the server it should be signed by."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def keys_of_document(server_name: str, document: Any, now_ms: int) -> list[StoredKey]:
    """The keys a ``/_matrix/key/v2/server`` answer publishes, after checking
    that it is ``server_name``'s and signed by every one of its current keys.
    ValueError says what is wrong."""
    if not isinstance(document, Mapping) or document.get("server_name") != server_name:
        raise ValueError("the key document is not of this server")
    verify_keys, old_keys = document.get("verify_keys"), document.get("old_verify_keys", {})
    valid_until = document.get("valid_until_ts")
    if not isinstance(verify_keys, Mapping) or not verify_keys or not isinstance(old_keys, Mapping):
        raise ValueError("the key document has no verify_keys")
    if not isinstance(valid_until, int) or isinstance(valid_until, bool):
        raise ValueError("the key document has no valid_until_ts")
    valid_until = min(valid_until, now_ms + MAX_VALIDITY_MS)
    keys: list[StoredKey] = []
    for published, expiry in [(verify_keys, None), (old_keys, "expired_ts")]:
        for name, entry in published.items():
            if (
                not isinstance(entry, Mapping)
                or not isinstance(entry.get("key"), str)
                or not name.startswith("ed25519:")
            ):
                continue  # an algorithm this server does not know
            until = valid_until if expiry is None else entry.get(expiry)
            if not isinstance(until, int) or isinstance(until, bool):
                continue
            try:
                verify_key_from_base64(name, entry["key"])
            except Exception:  # signedjson and PyNaCl raise several kinds for a malformed key
                raise ValueError(f"the key {name} is malformed") from None
            keys.append(StoredKey(server_name, name, entry["key"], min(until, valid_until)))
    current = [key for key in keys if key.key_id in verify_keys]
    if not current:
        raise ValueError("the key document has no ed25519 key")
    for key in current:
        try:
            verify_json(document, server_name, verify_key_from_base64(key.key_id, key.verify_key))
        except SignatureError:
            raise ValueError(f"the key document is not signed with {key.key_id}") from None
    return keys


class KeyRing:
    def __init__(self, pool: asyncpg.Pool, client: Remote, server_name: str, own_key: SigningKey) -> None:
        self._pool = pool
        self._client = client
        self._server_name = server_name
        self._own = verify_key_of(own_key)
        self._cache: dict[tuple[str, str], tuple[VerifyKey, int]] = {}
        self._fetching: dict[str, asyncio.Future[None]] = {}
        self._last_fetch: dict[str, float] = {}

    def _known(self, server_name: str, key: StoredKey) -> tuple[VerifyKey, int]:
        verify_key = verify_key_from_base64(key.key_id, key.verify_key)
        self._cache[(server_name, key.key_id)] = (verify_key, key.valid_until_ts)
        return verify_key, key.valid_until_ts

    async def verify_key(self, server_name: str, key_id_: str, *, at_ms: int | None = None) -> VerifyKey:
        """``server_name``'s key ``key_id_`` if it was valid at ``at_ms``
        (default now): from memory, the database, or the server itself."""
        at = _now_ms() if at_ms is None else at_ms
        if server_name == self._server_name:
            if key_id_ == key_id(self._own):
                return self._own
            raise KeyNotFound(f"this server has no key {key_id_}")
        found = self._cache.get((server_name, key_id_))
        if found is None:
            stored = await store.get_key(self._pool, server_name, key_id_)
            found = None if stored is None else self._known(server_name, stored)
        if found is None or found[1] < at:
            await self._fetch(server_name)
            found = self._cache.get((server_name, key_id_))
        if found is None:
            raise KeyNotFound(f"{server_name} has no key {key_id_}")
        if found[1] < at:
            raise KeyNotFound(f"the key {key_id_} of {server_name} was not valid at the time of signing")
        return found[0]

    async def verify_signed_json(self, obj: Mapping[str, Any], server_name: str, *, at_ms: int | None = None) -> None:
        """Raise BadSignature unless ``obj`` carries a valid ed25519
        signature of ``server_name`` with a key valid at ``at_ms`` (default now)."""
        signatures = obj.get("signatures")
        mine = signatures.get(server_name) if isinstance(signatures, Mapping) else None
        key_ids = [name for name in mine if name.startswith("ed25519:")] if isinstance(mine, Mapping) else []
        if not key_ids:
            raise BadSignature(f"not signed by {server_name}")
        errors = []
        for name in key_ids:
            try:
                verify_json(obj, server_name, await self.verify_key(server_name, name, at_ms=at_ms))
                return
            except KeyNotFound as exc:
                errors.append(str(exc))
            except SignatureError:
                errors.append(f"the signature with {name} does not match")
        raise BadSignature(f"no valid signature of {server_name}: {'; '.join(errors)}")

    async def _fetch(self, server_name: str) -> None:
        """Fetches the server's keys, once at a time per server and not more
        often than every REFETCH_SECONDS."""
        running = self._fetching.get(server_name)
        if running is not None:
            await asyncio.shield(running)
            return
        if time.monotonic() - self._last_fetch.get(server_name, -REFETCH_SECONDS) < REFETCH_SECONDS:
            return
        self._last_fetch[server_name] = time.monotonic()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._fetching[server_name] = future
        try:
            await self._fetch_now(server_name)
        finally:
            del self._fetching[server_name]
            future.set_result(None)

    async def _fetch_now(self, server_name: str) -> None:
        try:
            document = await self._client.request(server_name, "GET", KEY_PATH, signed=False, timeout=15.0)
            now = _now_ms()
            keys = keys_of_document(server_name, document, now)
        except (Unreachable, RemoteError, ValueError) as exc:
            log.info("cannot fetch the keys of %s: %s", server_name, exc)
            return
        await store.put_keys(self._pool, keys, now)
        for key in keys:
            self._known(server_name, key)
