"""What every federation handler shares: the caller is another server,
authenticated by the X-Matrix signature of its request."""

from __future__ import annotations

from typing import Any

from ..errors import MatrixError
from ..federation.keyring import KeyNotFound
from ..federation.x_matrix import XMatrixError, parse_authorization, verify_request
from ..validation import load_json, schemas
from .base import BaseHandler, handler_methods

# A transaction of 50 PDUs and 100 EDUs, each up to the 64 KiB an event may
# take, fits; the federation listener's hard cap sits above it.
FEDERATION_MAX_BODY_BYTES = 150 * 65536


def unauthorized(message: str) -> MatrixError:
    return MatrixError(401, "M_UNAUTHORIZED", message)


class FederationHandler(BaseHandler):
    """Base of the handlers other servers call. ``self.origin`` is the
    server that signed the request, set before the method runs; a request
    without a valid signature for this server is answered 401, one from a
    server banned by the policy room (m.policy.rule.server) 403."""

    security = ("x_matrix",)
    origin: str
    _content: Any = None

    def body_limit(self) -> int:
        return max(FEDERATION_MAX_BODY_BYTES, super().body_limit())

    async def prepare(self) -> None:  # Tornado awaits a coroutine prepare
        super().prepare()
        if (self.request.method or "").lower() not in handler_methods(type(self)):
            return  # a CORS preflight (no credentials), or a method answered 405 without looking further
        header = self.request.headers.get("Authorization")
        if not header:
            raise unauthorized("Federation requests must be signed (Authorization: X-Matrix)")
        try:
            auth = parse_authorization(header)
        except XMatrixError as exc:
            raise unauthorized(str(exc)) from None
        content: Any = None
        if self.request.body.strip():
            content = load_json(self.request.body)
        try:
            key = await self.ctx.keyring.verify_key(auth.origin, auth.key)
        except KeyNotFound as exc:
            raise unauthorized(str(exc)) from None
        try:
            verify_request(
                auth,
                self.request.method or "GET",
                self.request.uri or "",
                content,
                self.ctx.settings.server_name,
                {auth.key: key},
            )
        except XMatrixError as exc:
            raise unauthorized(str(exc)) from None
        if self.ctx.moderation.blocks.server_banned(auth.origin):
            raise MatrixError(403, "M_FORBIDDEN", "This server does not federate with yours")
        self.origin = auth.origin
        self._content = content
        self.ctx.outbox.destination_is_up(auth.origin)

    def json_body(self, schema: str | None = None) -> dict[str, Any]:
        """The body prepare() read to check the signature, not read again
        (a 50-PDU transaction costs as much to read as to judge)."""
        body = {} if self._content is None else self._content
        if not isinstance(body, dict):
            raise MatrixError(400, "M_BAD_JSON", "The body must be a JSON object")
        if schema is not None:
            schemas().check_request(schema, body)
        return body

    def required_query(self, name: str) -> str:
        value = self.get_query_argument(name, None)
        if not value:
            raise MatrixError(400, "M_MISSING_PARAM", f"Missing query parameter '{name}'")
        return value
