"""The server's ed25519 signing key and the document that publishes it.

Other servers check every event and request of this server against the
keys it publishes at ``GET /_matrix/key/v2/server``. The key is made on
first start and kept in the data directory (mode 0600, like the token key),
in the one-line format other Matrix servers use (``ed25519 <version>
<unpadded base64 seed>``), so an operator can move it between servers.
Losing it is not fatal but makes other servers distrust events signed
before, until they fetch them through a notary.
"""

from __future__ import annotations

import secrets
import string
from pathlib import Path
from typing import Any

import signedjson.key
from signedjson.types import SigningKey

from ..auth.key_files import read_or_create
from ..events.signing import key_id, sign_json, verify_key_base64, verify_key_of

KEY_FILE = "federation.key"
# How long other servers may cache the key (valid_until_ts); they fetch it
# again after, which is how a rotation would spread.
KEY_VALIDITY_MS = 24 * 60 * 60 * 1000
_VERSION_CHARS = string.ascii_letters + string.digits


def _new_key_line() -> str:
    version = "a_" + "".join(secrets.choice(_VERSION_CHARS) for _ in range(4))
    key = signedjson.key.generate_signing_key(version)
    return f"{key.alg} {key.version} {signedjson.key.encode_signing_key_base64(key)}\n"


def load_or_create_server_key(data_dir: Path) -> SigningKey:
    text = read_or_create(data_dir, KEY_FILE, _new_key_line)
    return signedjson.key.read_signing_keys(text.splitlines())[0]


def key_document(server_name: str, key: SigningKey, now_ms: int) -> dict[str, Any]:
    """The body of ``GET /_matrix/key/v2/server``: the verify key, how long
    it may be trusted, and the server's signature of it all."""
    return sign_json(
        {
            "server_name": server_name,
            "valid_until_ts": now_ms + KEY_VALIDITY_MS,
            "verify_keys": {key_id(key): {"key": verify_key_base64(verify_key_of(key))}},
            "old_verify_keys": {},
        },
        server_name,
        key,
    )
