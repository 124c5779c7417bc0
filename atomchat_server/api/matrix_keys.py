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


def routes() -> list[tuple[str, type]]:
    return [
        (PREFIX + r"/keys/upload", KeysUploadHandler),
        (PREFIX + r"/keys/query", KeysQueryHandler),
        (PREFIX + r"/keys/claim", KeysClaimHandler),
        (PREFIX + r"/keys/changes", KeysChangesHandler),
        (PREFIX + r"/keys/device_signing/upload", DeviceSigningUploadHandler),
        (PREFIX + r"/keys/signatures/upload", SignaturesUploadHandler),
        (PREFIX + r"/sendToDevice/([^/]+)/([^/]+)", SendToDeviceHandler),
    ]
