"""Matrix client-server API: versions, capabilities, registration, login,
logout, refresh, whoami, password change and devices."""

from __future__ import annotations

import secrets
from typing import Any

from ..auth.sessions import Requester
from ..errors import AuthRequired, MatrixError, missing_param
from ..events.room_versions import CREATABLE_VERSIONS, ROOM_VERSION
from ..services.accounts import LoginResult
from .base import BaseHandler, client_address
from .contract import OBJECT, Op, Param

PREFIX = r"/_matrix/client/v3"

SPEC_VERSIONS = ["v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11"]


def login_json(result: LoginResult, server_name: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "user_id": result.user_id,
        "device_id": result.device_id,
        "access_token": result.access_token,
        "home_server": server_name,
    }
    if result.refresh_token is not None:
        body["refresh_token"] = result.refresh_token
        body["expires_in_ms"] = result.expires_in_ms
    return body


def auth_challenge(stage: str, failed: str | None = None) -> AuthRequired:
    """A 401 user-interactive-authentication answer offering one single-stage
    flow. Each stage here completes in one step, so the session id is only
    echoed, never stored."""
    return AuthRequired([{"stages": [stage]}], secrets.token_urlsafe(12), failed)


class VersionsHandler(BaseHandler):
    contract = {"get": Op("The Matrix specification versions served", {200: "matrix/versions.response"}, auth="none")}

    def get(self) -> None:
        self.send_json({"versions": SPEC_VERSIONS, "unstable_features": {}})


class CapabilitiesHandler(BaseHandler):
    contract = {"get": Op("What the account may change", {200: "matrix/capabilities.response"})}

    async def get(self) -> None:
        await self.authenticate()
        self.send_json(
            {
                "capabilities": {
                    "m.change_password": {"enabled": True},
                    "m.room_versions": {
                        "default": ROOM_VERSION,
                        "available": {version: "stable" for version in CREATABLE_VERSIONS},
                    },
                    "m.set_displayname": {"enabled": True},
                    "m.set_avatar_url": {"enabled": True},
                    "m.3pid_changes": {"enabled": False},
                }
            }
        )


class RegisterHandler(BaseHandler):
    contract = {
        "post": Op(
            "Register an account",
            {200: "matrix/register.response", 401: "matrix/uia.response"},
            request="matrix/register.request",
            auth="none",
            errors=(403, 429),
            query=(Param("kind", {"type": "string", "enum": ["user", "guest"]}, "Guest accounts are refused"),),
        )
    }

    async def post(self) -> None:
        body = self.json_body("matrix/register.request")
        if self.get_query_argument("kind", "user") == "guest":
            raise MatrixError(403, "M_GUEST_ACCESS_FORBIDDEN", "Guest accounts are not available")
        auth = body.get("auth")
        if auth is None or auth.get("type") != "m.login.dummy":
            raise auth_challenge("m.login.dummy")
        if "password" not in body:
            raise missing_param("Missing field 'password'")
        result = await self.ctx.accounts.register(
            username=body.get("username"),
            password=body["password"],
            device_id=body.get("device_id"),
            display_name=body.get("initial_device_display_name"),
            inhibit_login=body.get("inhibit_login", False),
            want_refresh=body.get("refresh_token", False),
            address=client_address(self),
        )
        if isinstance(result, str):
            self.send_json({"user_id": result, "home_server": self.ctx.settings.server_name})
        else:
            self.send_json(login_json(result, self.ctx.settings.server_name))


class RegisterAvailableHandler(BaseHandler):
    contract = {
        "get": Op(
            "Whether a user name is free",
            {200: "matrix/register_available.response"},
            auth="none",
            errors=(429,),
            query=(Param("username", required=True),),
        )
    }

    async def get(self) -> None:
        username = self.get_query_argument("username", None)
        if username is None:
            raise missing_param("Missing query parameter 'username'")
        await self.ctx.accounts.check_available(username)
        self.send_json({"available": True})


class LoginHandler(BaseHandler):
    contract = {
        "get": Op("The login flows offered", {200: "matrix/login_flows.response"}, auth="none"),
        "post": Op(
            "Log in with a password",
            {200: "matrix/login.response"},
            request="matrix/login.request",
            auth="none",
            errors=(403, 429),
        ),
    }

    def get(self) -> None:
        self.send_json({"flows": [{"type": "m.login.password"}]})

    async def post(self) -> None:
        body = self.json_body("matrix/login.request")
        if body["type"] != "m.login.password":
            raise MatrixError(400, "M_UNKNOWN", f"Unsupported login type {body['type']!r}")
        identifier = body.get("identifier")
        if identifier is not None:
            if identifier["type"] != "m.id.user":
                raise MatrixError(400, "M_UNKNOWN", "Only m.id.user identifiers are supported")
            if "user" not in identifier:
                raise missing_param("Missing field 'identifier.user'")
            user = identifier["user"]
        elif isinstance(body.get("user"), str):
            user = body["user"]  # the deprecated top-level form
        else:
            raise missing_param("Missing field 'identifier'")
        if "password" not in body:
            raise missing_param("Missing field 'password'")
        result = await self.ctx.accounts.login(
            identifier=user,
            password=body["password"],
            device_id=body.get("device_id"),
            display_name=body.get("initial_device_display_name"),
            want_refresh=body.get("refresh_token", False),
            address=client_address(self),
        )
        self.send_json(login_json(result, self.ctx.settings.server_name))


class RefreshHandler(BaseHandler):
    contract = {
        "post": Op(
            "Exchange a refresh token",
            {200: "matrix/refresh.response", 401: "common/error"},
            request="matrix/refresh.request",
            auth="none",
            errors=(403,),
        )
    }

    async def post(self) -> None:
        body = self.json_body("matrix/refresh.request")
        result = await self.ctx.accounts.refresh(body["refresh_token"])
        self.send_json(
            {
                "access_token": result.access_token,
                "refresh_token": result.refresh_token,
                "expires_in_ms": result.expires_in_ms,
            }
        )


class WhoamiHandler(BaseHandler):
    contract = {"get": Op("Who the token belongs to", {200: "matrix/whoami.response"})}

    async def get(self) -> None:
        requester = await self.authenticate()
        self.send_json({"user_id": requester.user_id, "device_id": requester.device_id, "is_guest": False})


class LogoutHandler(BaseHandler):
    """A locked account may still log out (spec: account locking)."""

    contract = {"post": Op("Log this device out", {200: "matrix/empty.response"}, request=OBJECT)}

    async def post(self) -> None:
        requester = await self.authenticate(allow_locked=True)
        self.json_body()
        await self.ctx.accounts.logout(requester)
        self.send_json({})


class LogoutAllHandler(BaseHandler):
    """A locked account may still log out everywhere (spec: account locking)."""

    contract = {"post": Op("Log every device out", {200: "matrix/empty.response"}, request=OBJECT)}

    async def post(self) -> None:
        requester = await self.authenticate(allow_locked=True)
        self.json_body()
        await self.ctx.accounts.logout_all(requester.user_id)
        self.send_json({})


class PasswordAuthMixin(BaseHandler):
    async def require_password(self, requester: Requester, body: dict[str, Any]) -> None:
        """User-interactive authentication by the account's current password."""
        auth = body.get("auth")
        if not isinstance(auth, dict) or auth.get("type") != "m.login.password":
            raise auth_challenge("m.login.password")
        identifier = auth.get("identifier") or {}
        claimed = identifier.get("user", auth.get("user", requester.user_id))
        password = auth.get("password")
        if not isinstance(claimed, str) or not isinstance(password, str):
            raise auth_challenge("m.login.password", "Invalid password")
        try:
            user_id = await self.ctx.accounts.verify_password(claimed, password)
        except MatrixError as exc:
            if exc.errcode == "M_LIMIT_EXCEEDED":
                raise
            raise auth_challenge("m.login.password", "Invalid password") from None
        if user_id != requester.user_id:
            raise auth_challenge("m.login.password", "Invalid password")


class PasswordHandler(PasswordAuthMixin):
    contract = {
        "post": Op(
            "Change the password",
            {200: "matrix/empty.response", 401: ("matrix/uia.response", "common/error")},
            request="matrix/password.request",
            errors=(403, 429),
        )
    }

    async def post(self) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/password.request")
        await self.require_password(requester, body)
        await self.ctx.accounts.change_password(
            requester, body["new_password"], logout_devices=body.get("logout_devices", True)
        )
        self.send_json({})


class DevicesHandler(BaseHandler):
    contract = {"get": Op("The account's devices", {200: "matrix/devices.response"})}

    async def get(self) -> None:
        requester = await self.authenticate()
        self.send_json({"devices": await self.ctx.accounts.list_devices(requester.user_id)})


class DeviceHandler(PasswordAuthMixin):
    contract = {
        "get": Op("One device", {200: "matrix/device"}, errors=(404,)),
        "put": Op(
            "Rename a device", {200: "matrix/empty.response"}, request="matrix/device.update.request", errors=(404,)
        ),
        "delete": Op(
            "Delete a device (password required)",
            {200: "matrix/empty.response", 401: ("matrix/uia.response", "common/error")},
            request="matrix/device.delete.request",
            errors=(403, 404, 429),
        ),
    }

    async def get(self, device_id: str) -> None:
        requester = await self.authenticate()
        self.send_json(await self.ctx.accounts.get_device(requester.user_id, device_id))

    async def put(self, device_id: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/device.update.request")
        if "display_name" in body:
            await self.ctx.accounts.rename_device(requester.user_id, device_id, body["display_name"])
        else:
            await self.ctx.accounts.get_device(requester.user_id, device_id)  # unchanged, but must exist
        self.send_json({})

    async def delete(self, device_id: str) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/device.delete.request")
        await self.ctx.accounts.get_device(requester.user_id, device_id)  # 404 before asking for a password
        await self.require_password(requester, body)
        await self.ctx.accounts.delete_devices(requester.user_id, [device_id])
        self.send_json({})


class DeleteDevicesHandler(PasswordAuthMixin):
    contract = {
        "post": Op(
            "Delete devices (password required)",
            {200: "matrix/empty.response", 401: ("matrix/uia.response", "common/error")},
            request="matrix/delete_devices.request",
            errors=(403, 429),
        )
    }

    async def post(self) -> None:
        requester = await self.authenticate()
        body = self.json_body("matrix/delete_devices.request")
        await self.require_password(requester, body)
        await self.ctx.accounts.delete_devices(requester.user_id, body["devices"])
        self.send_json({})


def routes() -> list[tuple[str, type]]:
    return [
        (r"/_matrix/client/versions", VersionsHandler),
        (PREFIX + r"/capabilities", CapabilitiesHandler),
        (PREFIX + r"/register", RegisterHandler),
        (PREFIX + r"/register/available", RegisterAvailableHandler),
        (PREFIX + r"/login", LoginHandler),
        (PREFIX + r"/refresh", RefreshHandler),
        (PREFIX + r"/account/whoami", WhoamiHandler),
        (PREFIX + r"/account/password", PasswordHandler),
        (PREFIX + r"/logout", LogoutHandler),
        (PREFIX + r"/logout/all", LogoutAllHandler),
        (PREFIX + r"/devices", DevicesHandler),
        (PREFIX + r"/devices/([^/]+)", DeviceHandler),
        (PREFIX + r"/delete_devices", DeleteDevicesHandler),
    ]
