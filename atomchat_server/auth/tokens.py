"""Access tokens (signed JWTs) and refresh tokens (opaque, stored hashed).

An access token carries the user id, the device id, the session id and,
after a refresh, the refresh's generation. The
signature proves the server issued it; the session id is then checked against
the live sessions (see ``sessions.py``), so deleting a session revokes its
tokens at once although they are self-describing.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import jwt

from ..clock import REAL, Clock
from ..errors import unknown_token
from .key_files import read_or_create

_ALGORITHM = "HS256"
VERIFIED_TOKENS = 50_000
KEY_FILE = "signing.key"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: str
    device_id: str
    session_id: str
    # Which refresh of the session issued the token (0: the login); see
    # SessionCache.authenticate.
    generation: int = 0
    # When the token lapses (seconds since the epoch; None: never). Read
    # from a token's "exp"; issue() sets that from the lifetime it is given.
    expires: int | None = None


def load_or_create_signing_key(data_dir: Path) -> bytes:
    """Reads the key from the data directory, creating it (mode 0600) on first start."""
    text = read_or_create(data_dir, KEY_FILE, lambda: base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    return base64.b64decode(text.strip())


class TokenCodec:
    def __init__(self, key: bytes, issuer: str, clock: Clock = REAL) -> None:
        self._key = key
        self._issuer = issuer
        self._clock = clock
        # Tokens already verified, by digest: a client sends the same token
        # with every request, and checking its signature and claims again
        # each time is a measurable share of a cheap request. Keyed by 16
        # bytes rather than the token's 300 characters, so that a connected
        # client's token is held nowhere: what its stream or sync session
        # keeps are these claims, shared with this cache.
        self._verified: OrderedDict[bytes, TokenClaims] = OrderedDict()

    def issue(self, claims: TokenClaims, lifetime_seconds: int | None = None) -> str:
        now = int(self._clock.time())
        payload = {
            "iss": self._issuer,
            "sub": claims.user_id,
            "dev": claims.device_id,
            "sid": claims.session_id,
            "iat": now,
            # A nonce keeps two tokens issued in the same second distinct.
            "jti": secrets.token_urlsafe(8),
        }
        if claims.generation:
            payload["gen"] = claims.generation
        if lifetime_seconds is not None:
            payload["exp"] = now + lifetime_seconds
        return jwt.encode(payload, self._key, algorithm=_ALGORITHM)

    def read(self, token: str) -> TokenClaims:
        """The claims of a genuine, unexpired token of this server.

        Raises M_UNKNOWN_TOKEN otherwise, with ``soft_logout`` true when the
        token was genuine but has expired (the client should refresh it)."""
        key = hashlib.blake2b(token.encode(), digest_size=16).digest()
        claims = self._verified.get(key)
        if claims is not None:
            if self.expired(claims):
                del self._verified[key]
                raise unknown_token("The access token has expired", soft_logout=True)
            self._verified.move_to_end(key)
            return claims
        try:
            # The times are checked below against this server's clock, not PyJWT's.
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                issuer=self._issuer,
                options={"require": ["sub", "dev", "sid", "iat"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            raise unknown_token() from None
        generation, expires = payload.get("gen", 0), payload.get("exp")
        if (
            not isinstance(generation, int)
            or isinstance(generation, bool)
            or not (expires is None or isinstance(expires, int) and not isinstance(expires, bool))
        ):
            raise unknown_token()
        # Interned: the session cache's Requester holds the same three (sessions.py).
        claims = TokenClaims(
            sys.intern(payload["sub"]), sys.intern(payload["dev"]), sys.intern(payload["sid"]), generation, expires
        )
        if self.expired(claims):
            raise unknown_token("The access token has expired", soft_logout=True)
        self._verified[key] = claims
        if len(self._verified) > VERIFIED_TOKENS:
            self._verified.popitem(last=False)
        return claims

    def expired(self, claims: TokenClaims) -> bool:
        """Whether the token these claims were read from has lapsed."""
        return claims.expires is not None and self._clock.time() >= claims.expires


def new_refresh_token() -> str:
    return "atomchat_rt_" + secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_session_id() -> str:
    return secrets.token_urlsafe(16)


def new_device_id() -> str:
    return "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(10))
