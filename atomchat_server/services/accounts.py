"""Registration, login, sessions, devices and passwords."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from ..auth import policy
from ..auth.passwords import Passwords
from ..auth.sessions import Requester, SessionCache
from ..auth.tokens import TokenClaims, TokenCodec, hash_refresh_token, new_device_id, new_refresh_token, new_session_id
from ..clock import REAL, Clock
from ..config import Settings
from ..errors import MatrixError, forbidden, not_found, unknown_token
from ..events import ids
from ..ratelimit import RateLimiter
from ..storage import sessions as session_store
from ..storage import users as user_store
from .moderation import SYSTEM_LOCALPART, Blocks


@dataclass(frozen=True)
class LoginResult:
    user_id: str
    device_id: str
    access_token: str
    refresh_token: str | None
    expires_in_ms: int | None


@dataclass(frozen=True)
class RateLimits:
    register_by_address: RateLimiter
    login_by_address: RateLimiter
    failed_login_by_account: RateLimiter

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock = REAL) -> RateLimits:
        return cls(
            RateLimiter(settings.rc_register_per_second, settings.rc_register_burst, clock=clock),
            RateLimiter(settings.rc_login_per_second, settings.rc_login_burst, clock=clock),
            RateLimiter(settings.rc_failed_login_per_second, settings.rc_failed_login_burst, clock=clock),
        )


def weak_password(problems: list[str]) -> MatrixError:
    return MatrixError(400, "M_WEAK_PASSWORD", " ".join(problems))


async def create_user(
    pool: asyncpg.Pool,
    passwords: Passwords,
    server_name: str,
    localpart: str,
    password: str,
    *,
    is_moderator: bool = False,
    email: str = "",
) -> str:
    """Creates an account after checking the password policy; returns the
    user id. Shared by registration on every surface and by the CLI.
    ``localpart`` is the username; the user id's localpart is its Matrix form."""
    if localpart == SYSTEM_LOCALPART:
        raise MatrixError(400, "M_USER_IN_USE", "That username is taken")
    problems = policy.password_problems(password, localpart)
    if problems:
        raise weak_password(problems)
    password_hash = await passwords.hash(password)
    user_id = ids.user_id(ids.localpart_for(localpart), server_name)
    try:
        await user_store.create_user(
            pool,
            user_id=user_id,
            localpart=localpart,
            password_hash=password_hash,
            is_moderator=is_moderator,
            email=email,
        )
    except user_store.UserExists:
        raise MatrixError(400, "M_USER_IN_USE", "That username is taken") from None
    return user_id


class Accounts:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        server_name: str,
        passwords: Passwords,
        codec: TokenCodec,
        sessions: SessionCache,
        limits: RateLimits,
        access_token_lifetime: int,
        blocks: Blocks,
        catch_up: Callable[[], Awaitable[None]],
    ) -> None:
        self._pool = pool
        self._blocks = blocks
        self._catch_up = catch_up
        self.server_name = server_name
        self._passwords = passwords
        self._codec = codec
        self._sessions = sessions
        self._limits = limits
        self._access_token_lifetime = access_token_lifetime
        # Called with a user id once some of their devices are deleted (their
        # keys go with them) or renamed (others show the name): users sharing
        # a room must hear about it.
        self.devices_changed: Callable[[str], Awaitable[None]] | None = None

    # -- identities -------------------------------------------------------

    def localpart_of(self, identifier: str) -> str:
        """The localpart named by a login identifier: a bare localpart or a
        full user id of this server."""
        if identifier.startswith("@"):
            parts = ids.split_user_id(identifier)
            if parts is None or parts[1] != self.server_name:
                raise forbidden("Invalid username or password")
            return parts[0]
        return identifier

    async def check_available(self, username: str) -> str:
        """The localpart a registration with this username gets (usernames
        are taken in lower case); M_INVALID_USERNAME or M_USER_IN_USE when
        it cannot be had. /register/available and /register answer alike."""
        localpart = username.lower()
        try:
            policy.check_matrix_localpart(localpart)
        except policy.PolicyViolation as exc:
            raise MatrixError(400, "M_INVALID_USERNAME", str(exc)) from None
        if await user_store.localpart_taken(self._pool, localpart):
            raise MatrixError(400, "M_USER_IN_USE", "That username is taken")
        return localpart

    # -- registration and login --------------------------------------------

    async def register(
        self,
        *,
        username: str | None,
        password: str,
        device_id: str | None,
        display_name: str | None,
        inhibit_login: bool,
        want_refresh: bool,
        address: str,
    ) -> LoginResult | str:
        """Registers a Matrix account; returns a login, or just the user id
        when the client asked not to be logged in."""
        self._limits.register_by_address.check(address)
        localpart = await self.check_available(username or "u" + secrets.token_hex(6))
        user_id = await create_user(self._pool, self._passwords, self.server_name, localpart, password)
        if inhibit_login:
            return user_id
        return await self._start_session(user_id, device_id, display_name, want_refresh)

    async def create_account(self, username: str, password: str, *, email: str, address: str) -> str:
        """Registration on the original API: its username rules were checked by the caller."""
        self._limits.register_by_address.check(address)
        return await create_user(self._pool, self._passwords, self.server_name, username, password, email=email)

    async def user(self, user_id: str) -> user_store.User:
        user = await user_store.get_user(self._pool, user_id)
        if user is None:
            raise not_found("Unknown user")
        return user

    async def verify_password(self, identifier: str, password: str) -> str:
        """The user id whose password this is; M_FORBIDDEN otherwise. Failed
        attempts are rate limited per account."""
        localpart = self.localpart_of(identifier)
        # A full user id names the account exactly; a bare name is its
        # username (for accounts made on /api, the user id's localpart is a
        # mapping of it), compared without regard to case.
        if identifier.startswith("@"):
            user = await user_store.get_user(self._pool, identifier.lower())  # user ids are lower case
        else:
            user = await user_store.find_by_localpart(self._pool, localpart)
        account_key = user.user_id if user else localpart.lower()
        self._limits.failed_login_by_account.check(account_key, consume=False)
        ok, new_hash = await self._passwords.verify(user.password_hash if user else None, password)
        if not ok:
            self._limits.failed_login_by_account.consume(account_key)
            raise forbidden("Invalid username or password")
        assert user is not None, "verify() refuses a missing password hash"
        if new_hash is not None:
            await user_store.set_password_hash(self._pool, user.user_id, new_hash)
        return user.user_id

    async def login(
        self,
        *,
        identifier: str,
        password: str,
        device_id: str | None,
        display_name: str | None,
        want_refresh: bool,
        address: str,
    ) -> LoginResult:
        self._limits.login_by_address.check(address)
        user_id = await self.verify_password(identifier, password)
        await self._catch_up()
        self._blocks.require_unlocked(user_id)
        return await self._start_session(user_id, device_id, display_name, want_refresh)

    async def _start_session(
        self, user_id: str, device_id: str | None, display_name: str | None, want_refresh: bool
    ) -> LoginResult:
        device_id = device_id or new_device_id()
        session_id = new_session_id()
        refresh_token = new_refresh_token() if want_refresh else None
        replaced = await session_store.start_session(
            self._pool,
            user_id=user_id,
            device_id=device_id,
            display_name=display_name,
            session_id=session_id,
            refresh_token_hash=hash_refresh_token(refresh_token) if refresh_token else None,
        )
        if replaced:
            # As in delete_devices: revoked here at once, not when the NOTIFY arrives.
            self._sessions.forget_user(user_id)
        return self._tokens_for(TokenClaims(user_id, device_id, session_id), refresh_token)

    def _tokens_for(self, claims: TokenClaims, refresh_token: str | None) -> LoginResult:
        lifetime = self._access_token_lifetime if refresh_token else None
        return LoginResult(
            user_id=claims.user_id,
            device_id=claims.device_id,
            access_token=self._codec.issue(claims, lifetime),
            refresh_token=refresh_token,
            expires_in_ms=lifetime * 1000 if lifetime else None,
        )

    async def refresh(self, refresh_token: str) -> LoginResult:
        """Trades a refresh token for a new access token and refresh token;
        the old refresh token and the old access token stop working once
        the new access token is used (SessionCache.authenticate), or the old
        refresh token once the new one is. A locked account's
        refresh token is refused like its access tokens, and left as it was."""
        old_hash = hash_refresh_token(refresh_token)
        user_id = await session_store.refresh_token_user(self._pool, old_hash)
        if user_id is not None:
            await self._catch_up()
            self._blocks.require_unlocked(user_id)
        new_token = new_refresh_token()
        row = await session_store.rotate_refresh_token(self._pool, old_hash, hash_refresh_token(new_token))
        if row is None:
            raise unknown_token("Unknown refresh token")
        claims = TokenClaims(row.user_id, row.device_id, row.session_id, row.token_generation)
        return self._tokens_for(claims, new_token)

    def token_claims(self, access_token: str) -> TokenClaims:
        """The claims of a genuine, unexpired access token (else M_UNKNOWN_TOKEN):
        what an open stream or a sync session keeps, rather than the token,
        to authenticate again when its user's sessions change."""
        return self._codec.read(access_token)

    async def authenticate(self, claims: TokenClaims, *, allow_locked: bool = False) -> Requester:
        """The session an access token belongs to, given its claims
        (token_claims). A locked account's tokens are refused, except where
        ``allow_locked`` (logging out)."""
        requester = await self._sessions.authenticate(claims)
        if allow_locked:
            return requester
        # The session check has heard every notification committed before this
        # request; once those events are handed out, the blocks are current.
        await self._catch_up()
        self._blocks.require_unlocked(requester.user_id)
        return requester

    # -- sessions and devices ----------------------------------------------

    async def logout(self, requester: Requester) -> None:
        await self.delete_devices(requester.user_id, [requester.device_id])

    async def logout_all(self, user_id: str) -> None:
        await self.delete_devices(user_id, None)

    async def delete_devices(self, user_id: str, device_ids: list[str] | None) -> int:
        count = await session_store.delete_devices(self._pool, user_id, device_ids)
        # The notifier does this too once the NOTIFY arrives; doing it here
        # makes the revocation immediate for this process's next request.
        self._sessions.forget_user(user_id)
        if count and self.devices_changed is not None:
            await self.devices_changed(user_id)
        return count

    async def list_devices(self, user_id: str) -> list[dict[str, Any]]:
        return [_device_json(row) for row in await session_store.list_devices(self._pool, user_id)]

    async def get_device(self, user_id: str, device_id: str) -> dict[str, Any]:
        row = await session_store.get_device(self._pool, user_id, device_id)
        if row is None:
            raise not_found("Unknown device")
        return _device_json(row)

    async def rename_device(self, user_id: str, device_id: str, display_name: str | None) -> None:
        if not await session_store.rename_device(self._pool, user_id, device_id, display_name):
            raise not_found("Unknown device")
        if self.devices_changed is not None:
            await self.devices_changed(user_id)

    async def record_last_seen(self, requester: Requester, address: str) -> None:
        if self._sessions.due_for_last_seen(requester.session_id):
            await session_store.touch_device(self._pool, requester.user_id, requester.device_id, address)

    async def change_password(self, requester: Requester, new_password: str, *, logout_devices: bool) -> None:
        localpart = self.localpart_of(requester.user_id)
        problems = policy.password_problems(new_password, localpart)
        if problems:
            raise weak_password(problems)
        await user_store.set_password_hash(self._pool, requester.user_id, await self._passwords.hash(new_password))
        if logout_devices:
            devices = await session_store.list_devices(self._pool, requester.user_id)
            others = [d.device_id for d in devices if d.device_id != requester.device_id]
            if others:
                await self.delete_devices(requester.user_id, others)


def _device_json(row: session_store.Device) -> dict[str, Any]:
    device: dict[str, Any] = {"device_id": row.device_id, "display_name": row.display_name}
    if row.last_seen_at is not None:
        device["last_seen_ts"] = int(row.last_seen_at.timestamp() * 1000)
        device["last_seen_ip"] = row.last_seen_ip
    return device
