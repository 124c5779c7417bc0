"""The original AtomChat REST API's behaviour, over the same rooms and events.

Rooms made here are Matrix rooms (private, with the original API's rule that
any member may rename the room and change its members); messages are
m.room.message events. Validation failures are reported per field, in the
shapes and words the original API's clients know.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any

import asyncpg

from ..auth import policy
from ..auth.sessions import Requester
from ..db import Database
from ..errors import MatrixError, forbidden, not_found
from ..events import ids
from ..events.drafts import EventDraft
from ..events.power_levels import EDIT_MEMBERS, default_power_levels, edits_members
from ..events.room_creation import RoomRequest
from ..events.room_versions import LOCAL_ROOM_VERSION
from ..paging import fetch_page
from ..services.accounts import Accounts
from ..services.moderation import Moderation
from ..services.persister import Persister
from ..services.rooms import Rooms
from ..services.rooms.base import check_size, member_profile, power_state, requested, require_room
from ..storage import events as event_store
from ..storage import users as user_store
from ..storage.users import User
from . import storage as store

log = logging.getLogger(__name__)

# Django's username rule: letters, digits and @ . + - _ ; at most 150 characters.
_USERNAME = re.compile(r"^[\w.@+-]+\Z")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+\Z")
_INTEGER = re.compile(r"-?[0-9]+")
_TRUE_WORDS = frozenset({"t", "T", "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", "1"})
_FALSE_WORDS = frozenset({"f", "F", "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", "0"})
MAX_USERNAME = 150
MAX_USER_ID_BYTES = 255  # the Matrix limit on a whole user id
STREAM_PAGE = 500

REQUIRED = "This field is required."
NULL = "This field may not be null."
BLANK = "This field may not be blank."
NAME_TAKEN = "room with this name already exists."


class FieldErrors(Exception):
    """A 400 in the original API's shape: {"field": ["message", ...]}."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def iso(moment: datetime | int) -> str:
    """ISO 8601 UTC with microseconds and Z; ``moment`` may be milliseconds."""
    if isinstance(moment, int):
        moment = datetime.fromtimestamp(moment / 1000, timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def message_json(row: store.Message) -> dict[str, Any]:
    return {"text": row.text, "created_at": iso(row.origin_server_ts), "author": row.author}


def room_json(row: store.RoomObject) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name or "",
        "is_private": True,
        "created_at": iso(row.created_at),
        "users": list(row.member_ids),
    }


def _text(body: dict[str, Any], field: str, errors: dict[str, list[str]]) -> str | None:
    value = body.get(field)
    if field not in body:
        errors[field] = [REQUIRED]
    elif value is None:
        errors[field] = [NULL]
    elif not isinstance(value, str):
        errors[field] = ["Not a valid string."]
    elif not value.strip():
        errors[field] = [BLANK]
    else:
        return value
    return None


def _pk(value: Any, field: str, errors: dict[str, list[str]]) -> int | None:
    """An account number as the original read one: an integer, or its
    digits in a string (as a form sends it)."""
    if value is None:
        errors[field] = [NULL]
        return None
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        errors[field] = [f"Incorrect type. Expected pk value, received {type(value).__name__}."]
        return None
    if not -(2**63) <= value < 2**63:  # no account has it, and PostgreSQL cannot compare it
        errors[field] = [f'Invalid pk "{value}" - object does not exist.']
        return None
    return value


def _boolean(value: Any) -> bool | None:
    """A boolean as the original read one: JSON true/false, 1/0, or the
    words a form sends ("true", "off", ...); None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        if value in _TRUE_WORDS:
            return True
        if value in _FALSE_WORDS:
            return False
    return None


# The power levels a room made through /api has, besides the defaults (and
# m.room.name at 0).
API_ROOM_LEVELS = {"kick": 0, "invite": 0, EDIT_MEMBERS: 0}


def made_by_old_api(first_levels: dict[str, Any] | None) -> bool:
    """Whether a room's first power levels are those /api gave its rooms
    before EDIT_MEMBERS existed: kick, invite and m.room.name at 0."""
    if not isinstance(first_levels, dict) or EDIT_MEMBERS in first_levels:
        return False
    events = first_levels.get("events")
    return (
        first_levels.get("kick") == 0
        and first_levels.get("invite") == 0
        and isinstance(events, dict)
        and events.get("m.room.name") == 0
    )


class Compat:
    def __init__(
        self, *, pool: asyncpg.Pool, persister: Persister, accounts: Accounts, rooms: Rooms, moderation: Moderation
    ) -> None:
        self._pool = pool
        self._persister = persister
        self._locks = store.Locks(pool)
        self._accounts = accounts
        self._rooms = rooms
        self._moderation = moderation

    async def upgrade_old_api_rooms(self) -> None:
        """Gives the rooms made through /api before EDIT_MEMBERS existed the
        level at 0, so their members go on editing the member list as
        before. Sent as the room's creator and judged by the room rules like
        any change of theirs: where the creator has left or lost the power to
        change power levels, the room keeps the Matrix rules alone."""
        for row in await store.rooms_to_upgrade(self._pool):
            if made_by_old_api(row.first_levels):
                try:
                    await self._set_power_level(row.creator, row.room_id, EDIT_MEMBERS, 0)
                except MatrixError as refusal:
                    log.info("room %s keeps the Matrix rules for member edits: %s", row.room_id, refusal.error)
            await store.upgraded(self._pool, row.room_id)

    async def _set_power_level(self, user_id: str, room_id: str, key: str, level: int) -> None:
        """Sets one key of the room's power levels, as ``user_id`` and judged
        by the room rules as their change (the upgrade above; people change
        power levels with the Matrix API's state events)."""
        await require_room(self._pool, room_id)
        current = await event_store.state_event(self._pool, room_id, "m.room.power_levels", "")
        content = dict(current.content) if current is not None else {}
        if content.get(key) != level:
            draft = EventDraft(
                room_id=room_id,
                sender=user_id,
                type="m.room.power_levels",
                content={**content, key: level},
                state_key="",
            )
            check_size(draft)
            await self._persister.write([draft])

    # -- accounts --------------------------------------------------------------------

    async def register(self, body: dict[str, Any], address: str) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        username = _text(body, "username", errors)
        if username is not None:
            if len(username) > MAX_USERNAME:
                errors["username"] = [f"Ensure this field has no more than {MAX_USERNAME} characters."]
            elif not _USERNAME.match(username):
                errors["username"] = [
                    "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."
                ]
            elif len(self._user_id_for(username).encode()) > MAX_USER_ID_BYTES:
                # Upper case and symbols take two or more characters in a
                # user id; Matrix clients cannot address a longer one.
                errors["username"] = ["This username is too long to be written as a Matrix user id."]
        password = _text(body, "password", errors)
        if password is not None:
            problems = policy.password_problems(password, username or "")
            if problems:
                errors["password"] = problems
        email = body.get("email", "")
        if email is None:
            email = ""
        if not isinstance(email, str) or (email and not _EMAIL.match(email)):
            errors["email"] = ["Enter a valid email address."]
        if errors:
            raise FieldErrors(errors)
        assert username is not None and password is not None, "_text() reported them missing"
        try:
            await self._accounts.create_account(username, password, email=email, address=address)
        except MatrixError as error:
            if error.errcode == "M_USER_IN_USE":
                raise FieldErrors({"username": ["A user with that username already exists."]}) from None
            raise
        return {"email": email, "username": username}

    def _user_id_for(self, username: str) -> str:
        return ids.user_id(ids.localpart_for(username), self._accounts.server_name)

    async def token(self, body: dict[str, Any], address: str) -> str:
        errors: dict[str, list[str]] = {}
        username = _text(body, "username", errors)
        password = _text(body, "password", errors)
        if errors:
            raise FieldErrors(errors)
        assert username is not None and password is not None, "_text() reported them missing"
        # A username here is always a username, even one that starts with
        # '@', which the Matrix login would read as a user id.
        account = await user_store.find_by_localpart(self._pool, username)
        try:
            result = await self._accounts.login(
                identifier=account.user_id if account else username,
                password=password,
                device_id=None,
                display_name="AtomChat API",
                want_refresh=False,
                address=address,
            )
        except MatrixError as error:
            if error.errcode in ("M_FORBIDDEN", "M_USER_LOCKED"):
                raise FieldErrors({"non_field_errors": ["Unable to log in with provided credentials."]}) from None
            raise
        return result.access_token

    async def me(self, requester: Requester) -> dict[str, Any]:
        user = await self._accounts.user(requester.user_id)
        return {"id": user.id, "username": user.localpart, "email": user.email, "is_moderator": user.is_moderator}

    # -- rooms -------------------------------------------------------------------------

    async def rooms(self, requester: Requester) -> list[dict[str, Any]]:
        if requester.is_moderator:
            rows = await store.all_rooms(self._pool, exclude=self._moderation.blocks.policy_room or "")
        else:
            rows = await store.rooms_of(self._pool, requester.user_id)
        return [room_json(row) for row in rows]

    async def _members(self, numbers: list[int], field: str, errors: dict[str, list[str]]) -> list[str]:
        """The user ids of a list of account numbers, or field errors."""
        found = {user.id: user.user_id for user in await store.users_by_ids(self._pool, numbers)}
        for number in numbers:
            if number not in found:
                errors[field] = [f'Invalid pk "{number}" - object does not exist.']
                return []
        return [found[number] for number in numbers]

    async def _users_field(self, body: dict[str, Any], errors: dict[str, list[str]]) -> list[str] | None:
        if "users" not in body:
            return None
        value = body["users"]
        if not isinstance(value, list):
            errors["users"] = [f'Expected a list of items but got type "{type(value).__name__}".']
            return None
        if not value:
            errors["users"] = ["This list may not be empty."]
            return None
        numbers = []
        for item in value:
            number = _pk(item, "users", errors)
            if number is None:
                return None
            numbers.append(number)
        return await self._members(list(dict.fromkeys(numbers)), "users", errors)

    async def create_room(self, requester: Requester, body: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        name = _text(body, "name", errors)
        if name is not None and await store.room_name_taken(self._pool, name):
            errors["name"] = [NAME_TAKEN]
        members = await self._users_field(body, errors)
        if errors:
            raise FieldErrors(errors)
        assert name is not None, "_text() reported it missing"
        async with self._name_lock(name):
            room_id = await self._new_private_room(requester, name)
        await self._edit_members(requester, room_id, add=[u for u in members or [] if u != requester.user_id])
        return await self._room_json(room_id)

    async def _room_json(self, room_id: str) -> dict[str, Any]:
        row = await store.room_object_by_room_id(self._pool, room_id)
        assert row is not None, "the room was just written"
        return room_json(row)

    @asynccontextmanager
    async def _name_lock(self, name: str, room_id: str | None = None) -> AsyncIterator[None]:
        """Holds a room name while a room takes it, so that of two asking for
        one name at once (on any server process) just one gets it; the
        name's check before it is then only for reporting every field's error at once."""
        async with self._locks.hold("room-name:" + name) as conn:
            if await store.room_name_taken(conn, name, room_id):
                raise FieldErrors({"name": [NAME_TAKEN]})
            yield

    async def _new_private_room(self, requester: Requester, name: str, *, is_direct: bool = False) -> str:
        # Any member may rename the room and change its members, as in the
        # original: the room's power levels say so (EDIT_MEMBERS), and the
        # room rules hold every edit to them.
        events = dict(default_power_levels(requester.user_id)["events"], **{"m.room.name": 0})
        # The member-list rule is this server's own, so these rooms stay
        # local (LOCAL_ROOM_VERSION), as before federation.
        request = RoomRequest(
            preset="private_chat",
            name=name,
            is_direct=is_direct,
            power_level_content_override={**API_ROOM_LEVELS, "events": events},
            room_version=LOCAL_ROOM_VERSION,
        )
        return await self._rooms.create_room(requester, request, alias_localpart=None, publish=False)

    async def _room_object(self, number: int) -> store.RoomObject:
        """A room by number; 404 for none, a deleted one, and the moderation
        policy room (the moderators' audit log, which the server runs)."""
        row = await store.room_object(self._pool, number)
        if row is None or row.room_id == self._moderation.blocks.policy_room:
            raise not_found("Not found.")
        return row

    async def _visible_room(self, requester: Requester, number: int) -> store.RoomObject:
        """The room, if the requester is a member or a moderator; 404 or 403 otherwise."""
        row = await self._room_object(number)
        if not requester.is_moderator and not await event_store.is_joined(self._pool, row.room_id, requester.user_id):
            raise forbidden("You do not have permission to perform this action.")
        return row

    async def room(self, requester: Requester, number: int) -> dict[str, Any]:
        return room_json(await self._visible_room(requester, number))

    async def update_room(self, requester: Requester, number: int, body: dict[str, Any]) -> dict[str, Any]:
        row = await self._visible_room(requester, number)
        errors: dict[str, list[str]] = {}
        name = _text(body, "name", errors) if "name" in body else None
        if name is not None and name != row.name and await store.room_name_taken(self._pool, name, row.room_id):
            errors["name"] = [NAME_TAKEN]
        members = await self._users_field(body, errors)
        if errors:
            raise FieldErrors(errors)
        room_id = row.room_id
        add: list[str] = []
        remove: list[str] = []
        if members is not None:
            current = {m.key for m in await event_store.joined_members(self._pool, room_id)}
            add = [user_id for user_id in members if user_id not in current]
            remove = sorted(current - set(members))
        rename = name if name is not None and name != row.name else None
        if rename is not None:
            async with self._name_lock(rename, room_id):
                await self._edit_members(requester, room_id, add=add, remove=remove, name=rename)
        else:
            await self._edit_members(requester, room_id, add=add, remove=remove)
        return await self._room_json(room_id)

    async def _edit_members(
        self,
        requester: Requester,
        room_id: str,
        *,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        name: str | None = None,
    ) -> None:
        """The original API's edit of a room: its name and member changes
        as one unit, so a refused part changes nothing. Each change is the
        requester's own event, judged by the room's rules as a Matrix
        request would be: an added user is invited, and joined at once too
        only where the room lets the requester edit its member list
        (EDIT_MEMBERS); a removal is a leave the rules must allow."""
        if name is not None:
            self._moderation.blocks.require(requester.user_id, "state")
        if add:
            self._moderation.blocks.require(requester.user_id, "invite")
        if any(user_id != requester.user_id for user_id in remove):
            self._moderation.blocks.require(requester.user_id, "kick")
        await require_room(self._pool, room_id)
        at_once = edits_members(await power_state(self._pool, room_id), requester.user_id)
        drafts = []
        if name is not None:
            drafts.append(requested(requester, room_id, "m.room.name", {"name": name}, state_key=""))
        for user_id in add:
            current = await event_store.membership(self._pool, room_id, user_id)
            membership = current.membership if current else None
            if membership == "join" or (membership == "invite" and not at_once):
                continue
            profile = await member_profile(self._pool, user_id)
            if membership != "invite":
                drafts.append(
                    requested(
                        requester, room_id, "m.room.member", {"membership": "invite", **profile}, state_key=user_id
                    )
                )
            if at_once:
                # The one event this API writes that nobody asked for: a join
                # in the added user's name. The rule that allows it is
                # ``added_by``: the persister judges this join by the room
                # rules (the invite just before it admits it) and, under the
                # stream lock, also requires that the room still lets the
                # requester edit its member list (power_levels.edits_members),
                # refusing the whole edit otherwise. No other bypass exists:
                # every other event here is the requester's own, judged as a
                # Matrix request of theirs would be
                # (tests/test_compat_room_rules.py).
                drafts.append(
                    EventDraft(
                        room_id=room_id,
                        sender=user_id,
                        type="m.room.member",
                        content={"membership": "join", **profile},
                        state_key=user_id,
                        added_by=requester.user_id,
                    )
                )
        # The requester's own leave last: they act on the others as a member.
        for user_id in sorted(remove, key=lambda user_id: user_id == requester.user_id):
            drafts.append(requested(requester, room_id, "m.room.member", {"membership": "leave"}, state_key=user_id))
        for draft in drafts:
            check_size(draft)
        if drafts:
            await self._persister.write(drafts)

    async def delete_room(self, requester: Requester, number: int) -> None:
        row = await self._room_object(number)
        if not requester.is_moderator:
            raise forbidden("You do not have permission to perform this action.")
        await self._moderation.delete_room(requester.user_id, row.room_id, purge=False)

    # -- messages ------------------------------------------------------------------------

    async def message_pages(
        self, requester: Requester, number: int, *, limit: int | None, before: int | None
    ) -> tuple[AsyncIterator[list[dict[str, Any]]], int | None]:
        """The room's messages oldest first, as pages to stream; with a
        ``limit``, just the newest ``limit`` before ``before``, and the cursor
        for the page before them (None at the start of the room)."""
        row = await self._visible_room(requester, number)
        room_id = row.room_id
        if limit is not None:
            rows, more = await fetch_page(
                lambda n: store.messages(self._pool, room_id, before=before, limit=n, newest_first=True), limit
            )
            older = rows[-1].stream if more else None
            page = [message_json(r) for r in reversed(rows)]

            async def one_page() -> AsyncIterator[list[dict[str, Any]]]:
                yield page

            return one_page(), older

        async def all_pages() -> AsyncIterator[list[dict[str, Any]]]:
            after = None
            while True:
                rows = await store.messages(
                    self._pool, room_id, before=before, after=after, limit=STREAM_PAGE, newest_first=False
                )
                if not rows:
                    return
                yield [message_json(r) for r in rows]
                after = rows[-1].stream

        return all_pages(), None

    async def post_message(self, requester: Requester, number: int, body: dict[str, Any]) -> dict[str, Any]:
        row = await self._visible_room(requester, number)
        errors: dict[str, list[str]] = {}
        text = _text(body, "text", errors)
        if errors:
            raise FieldErrors(errors)
        assert text is not None, "_text() reported it missing"
        return await self._send(requester, row.room_id, text)

    async def _send(self, requester: Requester, room_id: str, text: str) -> dict[str, Any]:
        event_id = await self._rooms.send(
            requester,
            room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": text},
            "api-" + secrets.token_urlsafe(12),
        )
        row = await store.message(self._pool, event_id)
        assert row is not None, "the message was just sent"
        return message_json(row)

    async def direct_message(self, requester: Requester, body: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        text = _text(body, "text", errors)
        other = None
        if "user_to" not in body:
            errors["user_to"] = [REQUIRED]
        else:
            number = _pk(body["user_to"], "user_to", errors)
            if number is not None:
                found = await store.user_by_id(self._pool, number)
                if found is None:
                    errors["user_to"] = [f'Invalid pk "{number}" - object does not exist.']
                else:
                    other = found
        if errors:
            raise FieldErrors(errors)
        assert text is not None and other is not None, "reported missing above"
        me = await self._accounts.user(requester.user_id)
        low, high = sorted((me, other), key=lambda user: user.id)
        async with self._locks.hold(f"direct:{low.id}:{high.id}") as conn:
            room_id = await store.direct_room(conn, low.id, high.id)
            if room_id is not None and not await self._still_usable(conn, room_id, requester.user_id):
                room_id = None
            if room_id is None:
                room_id = await self._new_direct_room(requester, low, high)
                await store.set_direct_room(conn, low.id, high.id, room_id)
            else:
                # Whoever left the pair's room is brought back by the next message to them.
                await self._edit_members(requester, room_id, add=[other.user_id])
        message = await self._send(requester, room_id, text)
        return {"text": message["text"], "created_at": message["created_at"]}

    @staticmethod
    async def _still_usable(conn: Database, room_id: str, writer: str) -> bool:
        """Whether the pair's room takes the writer's message: not deleted by
        a moderator, and the writer has not left it (one cannot rejoin a
        private room on one's own); else the pair gets a new room."""
        room = await event_store.get_room(conn, room_id)
        return room is not None and not room.deleted and await event_store.is_joined(conn, room_id, writer)

    async def _new_direct_room(self, requester: Requester, low: User, high: User) -> str:
        # Named as the original did, not held to the names' uniqueness (a
        # taken name must not stop a message); the rest as any /api room.
        room_id = await self._new_private_room(requester, f"{low.localpart}&{high.localpart}_private", is_direct=True)
        await self._edit_members(
            requester, room_id, add=[u.user_id for u in (low, high) if u.user_id != requester.user_id]
        )
        return room_id

    # -- moderation ------------------------------------------------------------------------

    async def block(self, requester: Requester, number: int, body: dict[str, Any]) -> dict[str, Any]:
        if not requester.is_moderator:
            raise forbidden("You do not have permission to perform this action.")
        user = await store.user_by_id(self._pool, number)
        if user is None:
            raise not_found("Not found.")
        if "is_active" not in body:
            raise FieldErrors({"is_active": [REQUIRED]})
        if body["is_active"] is None:
            raise FieldErrors({"is_active": [NULL]})
        value = _boolean(body["is_active"])
        if value is None:
            raise FieldErrors({"is_active": ["Must be a valid boolean."]})
        await self._moderation.set_block(requester.user_id, user.user_id, None if value else "locked")
        return {"username": user.localpart, "is_active": value}
