"""Signing and checking server-to-server requests (``Authorization: X-Matrix``).

Every federation request carries its origin server's signature of the JSON
object ``{method, uri, origin, destination, content}``; the receiver
rebuilds that object from the request it got and checks the signature with
the origin's published key. Pure functions: fetching the origin's key is
the caller's business, between ``parse_authorization`` (which says whose
key) and ``verify_request``.

The header follows RFC 9110's auth-params, read leniently as the
specification asks: any spaces after the scheme, optional spaces and tabs
around commas, case-insensitive names in any order, values quoted or not
(colons allowed unquoted), backslash escapes in quoted values, unknown
parameters ignored. What this server sends is the strict form older servers
expect: one space, lower-case names, quoted values, no spaces around commas.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from signedjson.types import SigningKey, VerifyKey

from ..events.signing import SignatureError, key_id, sign_json, verify_json

SCHEME = "X-Matrix"
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
# One parameter: a name, "=", then a quoted string or a token (with colons,
# for older servers' unquoted "origin=example.org:8448").
_PARAM = re.compile(rf'[ \t]*({_TOKEN})[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|([!#$%&\'*+.^_`|~0-9A-Za-z:-]+))[ \t]*')
_ESCAPE = re.compile(r"\\(.)")


class XMatrixError(ValueError):
    """A request whose X-Matrix authorization is missing, malformed or
    wrong; ``str(exc)`` says which, for the 401 answer."""


@dataclass(frozen=True)
class XMatrixAuth:
    origin: str
    key: str  # the key id, "ed25519:..."
    sig: str
    destination: str | None  # absent from older servers' requests


def request_json(method: str, uri: str, origin: str, destination: str, content: Any = None) -> dict[str, Any]:
    """The object the signature covers; ``uri`` is the path with its query,
    as sent (``/_matrix/federation/v1/...?...``)."""
    signed: dict[str, Any] = {"method": method, "uri": uri, "origin": origin, "destination": destination}
    if content is not None:
        signed["content"] = content
    return signed


def authorization_header(
    origin: str, destination: str, key: SigningKey, method: str, uri: str, content: Any = None
) -> str:
    signature = sign_json(request_json(method, uri, origin, destination, content), origin, key)
    sig = signature["signatures"][origin][key_id(key)]
    return f'{SCHEME} origin="{origin}",destination="{destination}",key="{key_id(key)}",sig="{sig}"'


def parse_authorization(header: str) -> XMatrixAuth:
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != SCHEME.lower():
        raise XMatrixError("the Authorization header is not of the X-Matrix scheme")
    params: dict[str, str] = {}
    position, rest = 0, rest.lstrip(" ")
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if match is None:
            raise XMatrixError(f"malformed X-Matrix parameters at {rest[position : position + 20]!r}")
        name = match[1].lower()
        if name in params:
            raise XMatrixError(f"the X-Matrix parameter {name!r} is given twice")
        params[name] = _ESCAPE.sub(r"\1", match[2]) if match[2] is not None else match[3]
        position = match.end()
        if position < len(rest):
            if rest[position] != ",":
                raise XMatrixError(f"malformed X-Matrix parameters at {rest[position : position + 20]!r}")
            position += 1
    missing = [name for name in ("origin", "key", "sig") if not params.get(name)]
    if missing:
        raise XMatrixError(f"the X-Matrix authorization lacks {', '.join(missing)}")
    return XMatrixAuth(
        origin=params["origin"], key=params["key"], sig=params["sig"], destination=params.get("destination")
    )


def verify_request(
    auth: XMatrixAuth, method: str, uri: str, content: Any, server_name: str, origin_keys: Mapping[str, VerifyKey]
) -> None:
    """Raise XMatrixError unless the request was signed for this server by
    ``auth.origin`` with one of its keys (``origin_keys``, by key id)."""
    if auth.destination is not None and auth.destination != server_name:
        raise XMatrixError(f"the request is addressed to {auth.destination}, not to this server")
    key = origin_keys.get(auth.key)
    if key is None:
        raise XMatrixError(f"{auth.origin} has no key {auth.key} known here")
    signed = request_json(method, uri, auth.origin, server_name, content)
    signed["signatures"] = {auth.origin: {auth.key: auth.sig}}
    try:
        verify_json(signed, auth.origin, key)
    except SignatureError:
        raise XMatrixError(f"the signature of {auth.origin} does not match the request") from None
