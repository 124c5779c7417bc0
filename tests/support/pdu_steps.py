"""A pretend remote server for the PDU tests: its signing key, and PDUs it
signs that cite what the local server's room holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg
import signedjson.key
from signedjson.types import SigningKey, VerifyKey

from atomchat_server.events import signing
from atomchat_server.events.auth import auth_event_keys
from atomchat_server.events.pdu import build_pdu, finish_pdu
from atomchat_server.events.room_versions import room_version


class KeyNotFound(Exception):
    pass


@dataclass
class Keys:
    """Verify keys by (server, key id): the KeyRing's answer for the servers a test made."""

    known: dict[tuple[str, str], VerifyKey] = field(default_factory=dict)

    async def verify_key(self, server_name: str, key_id: str, *, at_ms: int | None = None) -> VerifyKey:
        try:
            return self.known[(server_name, key_id)]
        except KeyError:
            raise KeyNotFound(f"{server_name} {key_id}") from None


@dataclass
class RemoteServer:
    name: str
    key: SigningKey = field(default_factory=lambda: signedjson.key.generate_signing_key("t1"))

    def trusted_by(self, keys: Keys) -> None:
        keys.known[(self.name, signing.key_id(self.key))] = signing.verify_key_of(self.key)

    def user(self, localpart: str) -> str:
        return f"@{localpart}:{self.name}"

    async def pdu(
        self,
        dsn: str,
        room_id: str,
        sender: str,
        event_type: str,
        content: dict[str, Any],
        state_key: str | None = None,
        *,
        prev_events: list[str] | None = None,
        redacts: str | None = None,
        ts: int = 1_700_000_000_000,
    ) -> tuple[str, dict[str, Any]]:
        """(event id, signed PDU) of an event citing the room's forward
        extremities (or ``prev_events``) and its current state as auth events."""
        conn = await asyncpg.connect(dsn)
        try:
            room = await conn.fetchrow(
                "SELECT room_version, extremities, head_depth FROM rooms WHERE room_id = $1", room_id
            )
            version = room_version(room["room_version"])
            draft = {"type": event_type, "sender": sender, "content": content, "room_id": room_id}
            if state_key is not None:
                draft["state_key"] = state_key
            auth = []
            for key in auth_event_keys(draft, version):
                found = await conn.fetchval(
                    "SELECT event_id FROM current_state WHERE room_id = $1 AND type = $2 AND state_key = $3",
                    room_id,
                    *key,
                )
                if found:
                    auth.append(found)
            prev = prev_events if prev_events is not None else list(room["extremities"])
            depth = await conn.fetchval("SELECT COALESCE(max(depth), 0) FROM events WHERE event_id = ANY($1)", prev)
        finally:
            await conn.close()
        unsigned = build_pdu(
            room_id=room_id,
            sender=sender,
            event_type=event_type,
            content=content,
            state_key=state_key,
            redacts=redacts,
            origin_server_ts=ts,
            depth=depth + 1,
            prev_events=prev,
            auth_events=auth,
            version=version,
        )
        return finish_pdu(unsigned, self.name, self.key, version)


def sign_template(server: RemoteServer, template: dict[str, Any], version_id: str) -> tuple[str, dict[str, Any]]:
    """A make_join/make_leave template as the remote server completes it."""
    return finish_pdu(template, server.name, server.key, room_version(version_id))
