"""Server-side key backup (room_keys): a user keeps their Megolm session keys,
encrypted by their client, in numbered backup versions. Keys go only into
the current version, so two devices cannot fill different backups unawares;
of two uploads of one session the better key is kept (events/e2ee.py)."""

from __future__ import annotations

from typing import Any

import asyncpg

from ..auth.sessions import Requester
from ..errors import MatrixError, invalid_param, missing_param, not_found
from ..events.e2ee import backup_replaces
from ..storage import key_backup as store


def _number(version: str) -> int | None:
    return int(version) if version.isascii() and version.isdigit() and len(version) < 18 else None


def _version_json(row: store.BackupVersion) -> dict[str, Any]:
    return {
        "algorithm": row.algorithm,
        "auth_data": row.auth_data,
        "count": row.count,
        "etag": str(row.etag),
        "version": str(row.version),
    }


def _key_json(row: store.BackedUpKey) -> dict[str, Any]:
    return {
        "first_message_index": row.first_message_index,
        "forwarded_count": row.forwarded_count,
        "is_verified": row.is_verified,
        "session_data": row.session_data,
    }


class KeyBackup:
    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create_version(self, requester: Requester, algorithm: str, auth_data: dict[str, Any]) -> str:
        return str(await store.create_version(self._pool, requester.user_id, algorithm, auth_data))

    async def version(self, requester: Requester, version: str | None) -> dict[str, Any]:
        """The named version, or the current one; M_NOT_FOUND when there is none."""
        number = None if version is None else _number(version)
        row = (
            None
            if version is not None and number is None
            else await store.get_version(self._pool, requester.user_id, number)
        )
        if row is None:
            raise not_found("No such backup version" if version is not None else "No current backup version")
        return _version_json(row)

    async def update_version(self, requester: Requester, version: str, body: dict[str, Any]) -> None:
        """Changes a version's auth_data; its algorithm cannot change."""
        current = await self.version(requester, version)
        if "version" in body and body["version"] != version:
            raise invalid_param("The version in the body is not the one in the path")
        if body["algorithm"] != current["algorithm"]:
            raise invalid_param("A backup version's algorithm cannot change")
        await store.update_auth_data(self._pool, requester.user_id, int(version), body["auth_data"])

    async def delete_version(self, requester: Requester, version: str) -> None:
        number = _number(version)
        if number is None or not await store.delete_version(self._pool, requester.user_id, number):
            raise not_found("No such backup version")

    async def put_keys(
        self, requester: Requester, version: str | None, rooms: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        """Stores keys (room -> {"sessions": session -> key}) into the current
        version; another version named is M_WRONG_ROOM_KEYS_VERSION."""
        number = await self._existing(requester, version)
        sessions = [
            (room_id, session_id, key)
            for room_id, room in rooms.items()
            for session_id, key in room["sessions"].items()
        ]
        result = await store.put_sessions(self._pool, requester.user_id, number, sessions, backup_replaces)
        if result is None:
            current = await store.get_version(self._pool, requester.user_id, None)
            raise MatrixError(
                403,
                "M_WRONG_ROOM_KEYS_VERSION",
                "That is not the current backup version",
                current_version=str(current.version) if current else None,
            )
        return {"etag": str(result[0]), "count": result[1]}

    async def get_keys(
        self, requester: Requester, version: str | None, room_id: str | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        """{"rooms": ...}, or one room's {"sessions": ...}, or one session's key (M_NOT_FOUND if absent)."""
        number = await self._existing(requester, version)
        rows = await store.get_sessions(self._pool, requester.user_id, number, room_id, session_id)
        if session_id is not None:
            if not rows:
                raise not_found("No such session in the backup")
            return _key_json(rows[0])
        rooms: dict[str, dict[str, Any]] = {}
        for row in rows:
            rooms.setdefault(row.room_id, {"sessions": {}})["sessions"][row.session_id] = _key_json(row)
        if room_id is not None:
            return rooms.get(room_id, {"sessions": {}})
        return {"rooms": rooms}

    async def delete_keys(
        self, requester: Requester, version: str | None, room_id: str | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        number = await self._existing(requester, version)
        etag, count = await store.delete_sessions(self._pool, requester.user_id, number, room_id, session_id)
        return {"etag": str(etag), "count": count}

    async def _existing(self, requester: Requester, version: str | None) -> int:
        if version is None:
            raise missing_param("The 'version' query parameter is required")
        number = _number(version)
        if number is None or await store.get_version(self._pool, requester.user_id, number) is None:
            raise not_found("No such backup version")
        return number
