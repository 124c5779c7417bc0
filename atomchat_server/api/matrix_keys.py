"""Matrix client-server API: end-to-end encryption keys, to-device messages,
cross-signing and server-side key backup (protocol/e2ee.md)."""

from __future__ import annotations

from ..errors import missing_param
from ..sync import tokens
from .base import BaseHandler
from .contract import Op, Param
from .matrix_account import PREFIX, PasswordAuthMixin

UIA_401 = ("matrix/uia.response", "common/error")
VERSION = Param("version", description="The backup version (required).")


class KeysUploadHandler(BaseHandler):
    contract = {
        "post": Op(
            "Publish this device's keys", {200: "matrix/keys_upload.response"}, request="matrix/keys_upload.request"
        )
    }

    async def post(self) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/keys_upload.request")
        counts = await self.ctx.keys.upload(requester, body)
        self.send_json({"one_time_key_counts": counts})


class KeysQueryHandler(BaseHandler):
    contract = {
        "post": Op(
            "Device and cross-signing keys of users",
            {200: "matrix/keys_query.response"},
            request="matrix/keys_query.request",
        )
    }

    async def post(self) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/keys_query.request")
        self.send_json(await self.ctx.keys.query(requester, body["device_keys"]))


class KeysClaimHandler(BaseHandler):
    contract = {
        "post": Op(
            "Claim one-time keys of devices", {200: "matrix/keys_claim.response"}, request="matrix/keys_claim.request"
        )
    }

    async def post(self) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/keys_claim.request")
        self.send_json(await self.ctx.keys.claim(requester, body["one_time_keys"]))


class KeysChangesHandler(BaseHandler):
    contract = {
        "get": Op(
            "Whose devices changed between two sync tokens",
            {200: "matrix/keys_changes.response"},
            query=(Param("from", required=True), Param("to", required=True)),
        )
    }

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
            raise missing_param(f"'{name}' is required")
        return value


class SendToDeviceHandler(BaseHandler):
    contract = {
        "put": Op("Send to-device messages", {200: "matrix/empty.response"}, request="matrix/sendToDevice.request")
    }

    async def put(self, event_type: str, txn_id: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/sendToDevice.request")
        await self.ctx.keys.send_to_device(requester, event_type, txn_id, body["messages"])
        self.send_json({})


class DeviceSigningUploadHandler(PasswordAuthMixin):
    contract = {
        "post": Op(
            "Publish cross-signing keys (password required to replace them)",
            {200: "matrix/empty.response", 401: UIA_401},
            request="matrix/device_signing_upload.request",
            errors=(429,),
        )
    }

    async def post(self) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/device_signing_upload.request")
        if await self.ctx.keys.cross_signing_needs_auth(requester.user_id, body):
            await self.require_password(requester, body)
        await self.ctx.keys.upload_cross_signing(requester, body)
        self.send_json({})


class SignaturesUploadHandler(BaseHandler):
    contract = {
        "post": Op(
            "Publish signatures of keys",
            {200: "matrix/signatures_upload.response"},
            request="matrix/signatures_upload.request",
        )
    }

    async def post(self) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/signatures_upload.request")
        self.send_json(await self.ctx.keys.upload_signatures(requester, body))


class BackupCurrentVersionHandler(BaseHandler):
    contract = {
        "get": Op("The current key backup version", {200: "matrix/room_keys_version.response"}, errors=(404,)),
        "post": Op(
            "Create a key backup version",
            {200: "matrix/room_keys_version_created.response"},
            request="matrix/room_keys_version.request",
        ),
    }

    async def get(self) -> None:
        requester = await self.authenticate()
        self.send_json(await self.ctx.key_backup.version(requester, None))

    async def post(self) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/room_keys_version.request")
        version = await self.ctx.key_backup.create_version(requester, body["algorithm"], body["auth_data"])
        self.send_json({"version": version})


class BackupVersionHandler(BaseHandler):
    contract = {
        "get": Op("A key backup version", {200: "matrix/room_keys_version.response"}, errors=(404,)),
        "put": Op(
            "Update a key backup version's auth_data",
            {200: "matrix/empty.response"},
            request="matrix/room_keys_version.request",
            errors=(404,),
        ),
        "delete": Op("Delete a key backup version and its keys", {200: "matrix/empty.response"}, errors=(404,)),
    }

    async def get(self, version: str) -> None:
        requester = await self.authenticate()
        self.send_json(await self.ctx.key_backup.version(requester, version))

    async def put(self, version: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/room_keys_version.request")
        await self.ctx.key_backup.update_version(requester, version, body)
        self.send_json({})

    async def delete(self, version: str) -> None:
        requester = await self.authenticate()
        await self.ctx.key_backup.delete_version(requester, version)
        self.send_json({})


def _backup_keys_contract(what: str, body: str, answer: str) -> dict[str, Op]:
    return {
        "get": Op(f"Backed-up keys: {what}", {200: answer}, query=(VERSION,), errors=(404,)),
        "put": Op(
            f"Back up keys: {what}",
            {200: "matrix/room_keys_update.response"},
            request=body,
            query=(VERSION,),
            errors=(403, 404),
        ),
        "delete": Op(
            f"Delete backed-up keys: {what}", {200: "matrix/room_keys_update.response"}, query=(VERSION,), errors=(404,)
        ),
    }


class BackupKeysHandler(BaseHandler):
    """/room_keys/keys: every room's keys. The subclasses narrow it to one room
    and one session by their path arguments."""

    contract = _backup_keys_contract("all rooms", "matrix/room_keys.request", "matrix/room_keys.response")

    def rooms(self, room_id: str | None, session_id: str | None) -> dict:
        """The PUT body as room -> {"sessions": session -> key}."""
        return self.json_body("matrix/room_keys.request")["rooms"]

    async def get(self, room_id: str | None = None, session_id: str | None = None) -> None:
        requester = await self.authenticate()
        self.send_json(
            await self.ctx.key_backup.get_keys(requester, self.get_query_argument("version", None), room_id, session_id)
        )

    async def put(self, room_id: str | None = None, session_id: str | None = None) -> None:
        requester = await self.authenticate()
        rooms = self.rooms(room_id, session_id)
        self.send_json(await self.ctx.key_backup.put_keys(requester, self.get_query_argument("version", None), rooms))

    async def delete(self, room_id: str | None = None, session_id: str | None = None) -> None:
        requester = await self.authenticate()
        self.send_json(
            await self.ctx.key_backup.delete_keys(
                requester, self.get_query_argument("version", None), room_id, session_id
            )
        )


class BackupRoomKeysHandler(BackupKeysHandler):
    contract = _backup_keys_contract("one room", "matrix/room_keys_room", "matrix/room_keys_room")

    def rooms(self, room_id: str | None, session_id: str | None) -> dict:
        return {room_id: self.json_body("matrix/room_keys_room")}


class BackupSessionKeyHandler(BackupKeysHandler):
    contract = _backup_keys_contract("one session", "matrix/room_keys_session", "matrix/room_keys_session")

    def rooms(self, room_id: str | None, session_id: str | None) -> dict:
        return {room_id: {"sessions": {session_id: self.json_body("matrix/room_keys_session")}}}


def routes() -> list[tuple[str, type]]:
    return [
        (PREFIX + r"/keys/upload", KeysUploadHandler),
        (PREFIX + r"/keys/query", KeysQueryHandler),
        (PREFIX + r"/keys/claim", KeysClaimHandler),
        (PREFIX + r"/keys/changes", KeysChangesHandler),
        (PREFIX + r"/keys/device_signing/upload", DeviceSigningUploadHandler),
        (PREFIX + r"/keys/signatures/upload", SignaturesUploadHandler),
        (PREFIX + r"/sendToDevice/([^/]+)/([^/]+)", SendToDeviceHandler),
        (PREFIX + r"/room_keys/version", BackupCurrentVersionHandler),
        (PREFIX + r"/room_keys/version/([^/]+)", BackupVersionHandler),
        (PREFIX + r"/room_keys/keys", BackupKeysHandler),
        (PREFIX + r"/room_keys/keys/([^/]+)", BackupRoomKeysHandler),
        (PREFIX + r"/room_keys/keys/([^/]+)/([^/]+)", BackupSessionKeyHandler),
    ]
