"""Matrix identifiers: user ids (@localpart:server) and the like."""

from __future__ import annotations


def user_id(localpart: str, server_name: str) -> str:
    return f"@{localpart}:{server_name}"


def split_user_id(value: str) -> tuple[str, str] | None:
    """(localpart, server) of a well-formed user id, else None."""
    if not value.startswith("@") or ":" not in value:
        return None
    localpart, _, server = value[1:].partition(":")
    if not localpart or not server:
        return None
    return localpart, server
