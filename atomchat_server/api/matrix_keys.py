"""Matrix client-server API: end-to-end encryption keys, to-device messages,
cross-signing and server-side key backup (protocol/e2ee.md)."""

from __future__ import annotations

from ..errors import MatrixError
from ..sync import tokens
from .base import BaseHandler
from .matrix_account import PREFIX, PasswordAuthMixin


class KeysUploadHandler(BaseHandler):
    async def post(self) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/keys_upload.request")
        counts = await self.ctx.keys.upload(requester, body)
        self.send_json({"one_time_key_counts": counts})


class KeysQueryHandler(BaseHandler):
    async def post(self) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/keys_query.request")
        self.send_json(await self.ctx.keys.query(requester, body["device_keys"]))


class KeysClaimHandler(BaseHandler):
    async def post(self) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/keys_claim.request")
        self.send_json(await self.ctx.keys.claim(requester, body["one_time_keys"]))


class KeysChangesHandler(BaseHandler):
    async def get(self) -> None:
        requester = await self.authenticate()
        after = tokens.parse(self._required("from"), "from")
        upto = tokens.parse(self._required("to"), "to")
        # Never past what is known to be committed: a later sync from `to` must not miss a change.
        upto = min(upto, self.ctx.notifier.committed_position)
        self.send_json(await self.ctx.keys.changes(requester, after, max(after, upto)))

    def _required(self, name: str) -> str:
        value = self.get_query_argument(name, None)
        if value is None:
            raise MatrixError(400, "M_MISSING_PARAM", f"'{name}' is required")
        return value


class SendToDeviceHandler(BaseHandler):
    async def put(self, event_type: str, txn_id: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/sendToDevice.request")
        await self.ctx.keys.send_to_device(requester, event_type, txn_id, body["messages"])
        self.send_json({})


class DeviceSigningUploadHandler(PasswordAuthMixin):
    async def post(self) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/device_signing_upload.request")
        if await self.ctx.keys.cross_signing_needs_auth(requester.user_id, body):
            await self.require_password(body)
        await self.ctx.keys.upload_cross_signing(requester, body)
        self.send_json({})


class SignaturesUploadHandler(BaseHandler):
    async def post(self) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/signatures_upload.request")
        self.send_json(await self.ctx.keys.upload_signatures(requester, body))


def _unrecognized_if(wrong: bool) -> None:
    """A method this path does not have (it exists on the other version path)."""
    if wrong:
        raise MatrixError(405, "M_UNRECOGNIZED", "Unrecognized request")


class BackupVersionHandler(BaseHandler):
    async def get(self, version: str | None = None) -> None:
        requester = await self.authenticate()
        self.send_json(await self.ctx.key_backup.version(requester, version))

    async def post(self, version: str | None = None) -> None:
        _unrecognized_if(version is not None)
        requester = await self.authenticate()
        body = self.json_body("matrix/room_keys_version.request")
        version = await self.ctx.key_backup.create_version(requester, body["algorithm"], body["auth_data"])
        self.send_json({"version": version})

    async def put(self, version: str | None = None) -> None:
        _unrecognized_if(version is None)
        requester = await self.authenticate()
        body = self.json_body("matrix/room_keys_version.request")
        await self.ctx.key_backup.update_version(requester, version, body)
        self.send_json({})

    async def delete(self, version: str | None = None) -> None:
        _unrecognized_if(version is None)
        requester = await self.authenticate()
        await self.ctx.key_backup.delete_version(requester, version)
        self.send_json({})


class BackupKeysHandler(BaseHandler):
    """/room_keys/keys, /room_keys/keys/{roomId} and /room_keys/keys/{roomId}/{sessionId}."""

    async def get(self, room_id: str | None = None, session_id: str | None = None) -> None:
        requester = await self.authenticate()
        self.send_json(await self.ctx.key_backup.get_keys(requester, self.get_query_argument("version", None),
                                                          room_id, session_id))

    async def put(self, room_id: str | None = None, session_id: str | None = None) -> None:
        requester = await self.authenticate()
        if room_id is None:
            rooms = self.json_body("matrix/room_keys.request")["rooms"]
        elif session_id is None:
            rooms = {room_id: self.json_body("matrix/room_keys_room")}
        else:
            rooms = {room_id: {"sessions": {session_id: self.json_body("matrix/room_keys_session")}}}
        self.send_json(await self.ctx.key_backup.put_keys(requester, self.get_query_argument("version", None), rooms))

    async def delete(self, room_id: str | None = None, session_id: str | None = None) -> None:
        requester = await self.authenticate()
        self.send_json(await self.ctx.key_backup.delete_keys(requester, self.get_query_argument("version", None),
                                                             room_id, session_id))


def routes() -> list[tuple[str, type]]:
    return [
        (PREFIX + r"/keys/upload", KeysUploadHandler),
        (PREFIX + r"/keys/query", KeysQueryHandler),
        (PREFIX + r"/keys/claim", KeysClaimHandler),
        (PREFIX + r"/keys/changes", KeysChangesHandler),
        (PREFIX + r"/keys/device_signing/upload", DeviceSigningUploadHandler),
        (PREFIX + r"/keys/signatures/upload", SignaturesUploadHandler),
        (PREFIX + r"/sendToDevice/([^/]+)/([^/]+)", SendToDeviceHandler),
        (PREFIX + r"/room_keys/version", BackupVersionHandler),
        (PREFIX + r"/room_keys/version/([^/]+)", BackupVersionHandler),
        (PREFIX + r"/room_keys/keys", BackupKeysHandler),
        (PREFIX + r"/room_keys/keys/([^/]+)", BackupKeysHandler),
        (PREFIX + r"/room_keys/keys/([^/]+)/([^/]+)", BackupKeysHandler),
    ]
