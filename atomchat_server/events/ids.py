"""Matrix identifiers: user ids (@localpart:server) and the like."""

from __future__ import annotations

import secrets
import string


def user_id(localpart: str, server_name: str) -> str:
    return f"@{localpart}:{server_name}"


def server_of(identifier: str) -> str:
    """The server part of a user id, room alias or room id: what follows the
    first colon ("" when there is none, as in a version-12 room id)."""
    return identifier.partition(":")[2]


def split_user_id(value: str) -> tuple[str, str] | None:
    """(localpart, server) of a well-formed user id, else None."""
    if not value.startswith("@") or ":" not in value:
        return None
    localpart, _, server = value[1:].partition(":")
    if not localpart or not server:
        return None
    return localpart, server


def _opaque(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


_ALPHABET = string.ascii_letters + string.digits


def new_room_id(server_name: str) -> str:
    return f"!{_opaque(18)}:{server_name}"


def new_event_id() -> str:
    """A globally unique event id in the room-version-4+ form ($ and 43
    url-safe characters, no server part)."""
    return "$" + secrets.token_urlsafe(32)


def is_room_alias(value: str) -> bool:
    return value.startswith("#") and ":" in value[2:]


def is_room_id(value: str) -> bool:
    """``!opaque:server``, or from room version 12 ``!`` and the create
    event's reference hash (43 url-safe base64 characters, no server)."""
    if not value.startswith("!"):
        return False
    return ":" in value[2:] or (len(value) == 44 and set(value[1:]) <= _URL_SAFE)


_URL_SAFE = set(string.ascii_letters + string.digits + "-_")


_MATRIX_LOCALPART_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._=-/+")
_KEPT_BY_MAPPING = set("abcdefghijklmnopqrstuvwxyz0123456789.-/")


def localpart_for(username: str) -> str:
    """The Matrix localpart of an account whose username Matrix does not
    allow as is (the original API allows upper case and '@'): a valid
    username is its own localpart; any other is mapped as the Matrix spec
    suggests for other character sets (upper case to '_' and lower case,
    '_' to '__', anything else to '=' and its UTF-8 bytes in hex)."""
    if username and set(username) <= _MATRIX_LOCALPART_CHARS:
        return username
    out = []
    for char in username:
        if char in _KEPT_BY_MAPPING:
            out.append(char)
        elif "A" <= char <= "Z":
            out.append("_" + char.lower())
        elif char == "_":
            out.append("__")
        else:
            out.append("".join(f"={byte:02x}" for byte in char.encode()))
    return "".join(out)
