"""The server name belongs to the database.

Every user id and room id carries the server name, so a database can only
ever serve one. The name is stored (table ``server_state``) by the first
process that opens the database; every later one, ``atomchat serve`` or a
management command, uses the stored name when it is given none and refuses
to run when it is given another (it would make users whose ids name a
server this is not).
"""

from __future__ import annotations

from ..db import Database
from ..storage import moderation as store

SERVER_NAME_KEY = "server_name"
DEFAULT_SERVER_NAME = "localhost"


class ServerNameMismatch(Exception):
    """The configured server name is not the database's; the message says what to do."""


async def settle_server_name(pool: Database, configured: str | None) -> str:
    """The database's server name, stored now if this is its first start:
    the configured one, else (a database from before names were stored) the
    one its accounts already carry, else ``localhost``."""
    stored = await store.get_server_state(pool, SERVER_NAME_KEY)
    if stored is None:
        existing = await store.oldest_user_id(pool)
        first = existing.split(":", 1)[1] if existing else (configured or DEFAULT_SERVER_NAME)
        stored = await store.claim_server_state(pool, SERVER_NAME_KEY, first)
    if configured is not None and configured != stored:
        raise ServerNameMismatch(
            f"this database belongs to the server name {stored!r}, not {configured!r} (the server name is "
            f"part of every user id and cannot change); leave out --server-name, ATOMCHAT_SERVER_NAME and "
            f"server_name in the config file to use {stored!r}, or use another database"
        )
    return stored
