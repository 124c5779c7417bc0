"""Moderation: the policy room, server-wide blocks, the moderator role, and
the moderators' tools (redact everything a user sent, delete a room).

Blocks live as ``m.policy.rule.user`` state events in the moderation policy
room, which the server creates at first start and in which every moderator
is a member; its timeline is the audit log. Every server process keeps the
current blocks in memory (``Blocks``), loaded at start and updated by the
notifier as rules are committed, so a lock made through any process takes
effect in all of them at once: the blocked user's long-polls and streams are
woken, find their token refused, and end.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, ItemsView
from typing import Any

import asyncpg

from ..auth.sessions import Requester
from ..errors import MatrixError, forbidden, not_found
from ..events import ids
from ..events import moderation as rules
from ..events.drafts import EventDraft
from ..events.power_levels import default_power_levels
from ..events.room_versions import LOCAL_ROOM_VERSION
from ..paging import fetch_page
from ..storage import events as event_store
from ..storage import moderation as store
from ..storage import sessions as session_store
from ..storage import users as user_store
from ..storage.sessions import revoke_cached_sessions
from .persister import Persister

log = logging.getLogger(__name__)

SYSTEM_LOCALPART = "_atomchat"
POLICY_ROOM_KEY = "policy_room"
ROOM_DELETED = "org.atomchat.room.deleted"
REDACT_BATCH = 200


class Blocks:
    """The current blocks, per process: user id -> "locked" or "suspended"."""

    def __init__(self) -> None:
        self._blocks: dict[str, str] = {}
        self._banned_servers: dict[str, str] = {}  # rule state key -> banned server name or glob
        self.policy_room: str | None = None

    def of(self, user_id: str) -> str | None:
        return self._blocks.get(user_id)

    def items(self) -> ItemsView[str, str]:
        return self._blocks.items()

    def apply_server_rule(self, state_key: str, content: dict[str, Any]) -> None:
        banned = rules.banned_server(content)
        if banned is None:
            self._banned_servers.pop(state_key, None)
        else:
            self._banned_servers[state_key] = banned

    def server_banned(self, server: str) -> bool:
        return rules.server_matches(server, self._banned_servers.values())

    def apply(self, state_key: str, content: dict[str, Any]) -> str | None:
        """Takes in one rule; returns the user whose block changed."""
        if not state_key.startswith("user:"):
            return None
        user_id = state_key[len("user:") :]
        block = rules.block_of(content)
        if block is None or block[0] != user_id:  # a rule blocks only the user its key names
            self._blocks.pop(user_id, None)
        else:
            self._blocks[user_id] = block[1]
        return user_id

    def require_unlocked(self, user_id: str) -> None:
        """Refuses every use of a locked account: its tokens and its logins."""
        if self._blocks.get(user_id) == "locked":
            raise MatrixError(401, "M_USER_LOCKED", "This account has been locked", soft_logout=True)

    def require(self, user_id: str, action: str) -> None:
        """Refuses an action the user's block forbids."""
        self.require_unlocked(user_id)
        if not rules.may_act(self._blocks.get(user_id), action):
            raise MatrixError(403, "M_USER_SUSPENDED", "This account is suspended: it can read but not act")


class Moderation:
    def __init__(self, *, pool: asyncpg.Pool, persister: Persister, blocks: Blocks, server_name: str) -> None:
        self._pool = pool
        self._persister = persister
        self.blocks = blocks
        self.server_name = server_name
        self.system_user = ids.user_id(SYSTEM_LOCALPART, server_name)

    # -- the policy room ------------------------------------------------------------

    async def start(self) -> None:
        """Finds (or, on first start, creates) the policy room, loads the
        blocks, and makes every moderator a member of it."""
        room_id = await store.claim_server_state(self._pool, POLICY_ROOM_KEY, ids.new_room_id(self.server_name))
        if await event_store.get_room(self._pool, room_id) is None:
            await self._create_policy_room(room_id)
        self.blocks.policy_room = room_id
        for row in await event_store.current_state(self._pool, room_id):
            if row.type == rules.POLICY_RULE:
                self.blocks.apply(row.key, row.content)
            elif row.type == rules.SERVER_RULE:
                self.blocks.apply_server_rule(row.key, row.content)
        moderators = set(await store.moderators(self._pool))
        for member in await event_store.member_events(self._pool, room_id, memberships=["join"]):
            if member.key != self.system_user and member.key not in moderators:
                await self._leave_policy_room(member.key)
        joined = {m.key for m in await event_store.member_events(self._pool, room_id, memberships=["join"])}
        for user_id in moderators - joined:
            await self._join_policy_room(user_id)

    async def _create_policy_room(self, room_id: str) -> None:
        await store.ensure_system_user(self._pool, self.system_user, SYSTEM_LOCALPART)
        power = default_power_levels(self.system_user)
        power["users_default"] = 50  # only moderators join, and each may write rules

        def state(event_type: str, content: dict[str, Any], state_key: str = "") -> EventDraft:
            return EventDraft(
                room_id=room_id, sender=self.system_user, type=event_type, content=content, state_key=state_key
            )

        drafts = [
            state("m.room.create", {"creator": self.system_user, "room_version": LOCAL_ROOM_VERSION}),
            state("m.room.member", {"membership": "join"}, self.system_user),
            state("m.room.power_levels", power),
            state("m.room.join_rules", {"join_rule": "invite"}),
            state("m.room.history_visibility", {"history_visibility": "shared"}),
            state("m.room.name", {"name": "AtomChat moderation"}),
            state("m.room.topic", {"topic": "Server-wide blocks (m.policy.rule.user) and moderation actions."}),
        ]
        try:
            await self._persister.write(drafts, new_room=LOCAL_ROOM_VERSION)
            log.info("created the moderation policy room %s", room_id)
        except Exception:
            # Another process created it at the same moment.
            if await event_store.get_room(self._pool, room_id) is None:
                raise

    @property
    def policy_room(self) -> str:
        """The moderation policy room; start() finds or makes it before the server serves anyone."""
        assert self.blocks.policy_room is not None, "start() first"
        return self.blocks.policy_room

    async def _join_policy_room(self, user_id: str) -> None:
        room_id = self.policy_room
        await self._persister.write(
            [
                EventDraft(
                    room_id=room_id,
                    sender=self.system_user,
                    type="m.room.member",
                    content={"membership": "invite"},
                    state_key=user_id,
                ),
                EventDraft(
                    room_id=room_id,
                    sender=user_id,
                    type="m.room.member",
                    content={"membership": "join"},
                    state_key=user_id,
                ),
            ]
        )

    async def _leave_policy_room(self, user_id: str) -> None:
        await self._persister.write(
            [
                EventDraft(
                    room_id=self.policy_room,
                    sender=self.system_user,
                    type="m.room.member",
                    content={"membership": "leave"},
                    state_key=user_id,
                )
            ]
        )

    def observe(self, row: event_store.Event) -> str | None:
        """The notifier's hook for each committed event: takes in rules of
        the policy room; returns the user whose block changed."""
        if row.room_id == self.blocks.policy_room and row.type == rules.POLICY_RULE:
            return self.blocks.apply(row.key, row.content)
        if row.room_id == self.blocks.policy_room and row.type == rules.SERVER_RULE:
            self.blocks.apply_server_rule(row.key, row.content)
        return None

    # -- blocks ----------------------------------------------------------------------------

    def require_moderator(self, requester: Requester) -> None:
        if not requester.is_moderator:
            raise forbidden("Only moderators may do that")

    async def _target(self, user_id: str) -> user_store.User:
        user = await user_store.get_user(self._pool, user_id)
        if user is None or user_id == self.system_user:
            raise not_found("Unknown user")
        return user

    async def _other_active_moderators(self, user_id: str) -> list[str]:
        """The moderators other than ``user_id`` who can still act: a locked
        one cannot, so the last moderator able to act may neither be locked
        nor step down."""
        return [m for m in await store.moderators(self._pool) if m != user_id and self.blocks.of(m) != "locked"]

    async def set_block(self, moderator: str, user_id: str, block: str | None, reason: str = "") -> None:
        """Locks, suspends or (None) unblocks a user, as a rule in the policy
        room. A user of another server has no account here: blocking them
        refuses the events they send from their server."""
        split = ids.split_user_id(user_id)
        if split is not None and split[1] != self.server_name:
            await self._write_block(moderator, user_id, block, reason)
            return
        user = await self._target(user_id)
        if block == "locked":
            if user_id == moderator:
                raise forbidden("Moderators cannot lock themselves")
            if user.is_moderator and not await self._other_active_moderators(user_id):
                raise forbidden("The last moderator cannot be locked")
        await self._write_block(moderator, user_id, block, reason)

    async def _write_block(self, moderator: str, user_id: str, block: str | None, reason: str) -> None:
        await self._persister.write(
            [
                EventDraft(
                    room_id=self.policy_room,
                    sender=moderator,
                    type=rules.POLICY_RULE,
                    content=rules.rule_content(user_id, block, reason),
                    state_key=rules.rule_state_key(user_id),
                    by_moderator=True,
                )
            ]
        )
        # The rule takes effect here at once; other processes learn it from the notifier.
        self.blocks.apply(rules.rule_state_key(user_id), rules.rule_content(user_id, block, reason))

    async def set_server_ban(self, moderator: str, server: str, banned: bool, reason: str = "") -> None:
        """Bans (or lets in again) another server, or every server a glob
        matches, as a rule in the policy room: its requests are refused."""
        state_key, content = rules.server_rule_state_key(server), rules.server_rule_content(server, banned, reason)
        await self._persister.write(
            [
                EventDraft(
                    room_id=self.policy_room,
                    sender=moderator,
                    type=rules.SERVER_RULE,
                    content=content,
                    state_key=state_key,
                    by_moderator=True,
                )
            ]
        )
        self.blocks.apply_server_rule(state_key, content)

    async def set_moderator(self, acting: str | None, user_id: str, is_moderator: bool) -> None:
        """Grants or takes the moderator role (``acting`` None: the operator's CLI)."""
        user = await self._target(user_id)
        if not is_moderator and user.is_moderator and not await self._other_active_moderators(user_id):
            raise forbidden("The last moderator cannot be demoted")
        await store.set_moderator(self._pool, user_id, is_moderator)
        await revoke_cached_sessions(self._pool, user_id)  # cached requesters carry the role
        joined = await event_store.is_joined(self._pool, self.policy_room, user_id)
        if is_moderator and not joined:
            await self._join_policy_room(user_id)
        elif not is_moderator and joined:
            await self._leave_policy_room(user_id)

    # -- moderators' tools ---------------------------------------------------------------

    async def redact_all(self, moderator: str, user_id: str, reason: str = "") -> int:
        """Redacts every message the user sent, in every room; returns how many."""
        await self._target(user_id)
        count, after = 0, 0
        while True:
            rows = await store.events_of_sender(self._pool, user_id, after, REDACT_BATCH)
            if not rows:
                return count
            for row in rows:
                content = {"reason": reason} if reason else {}
                await self._persister.write(
                    [
                        EventDraft(
                            room_id=row.room_id,
                            sender=moderator,
                            type="m.room.redaction",
                            content=content,
                            redacts=row.event_id,
                            by_moderator=True,
                        )
                    ]
                )
                count += 1
            after = rows[-1].stream

    async def delete_room(self, moderator: str, room_id: str, *, purge: bool, reason: str = "") -> None:
        """Removes every member, takes the room out of lists and the directory,
        and makes its history unreadable; with ``purge`` deletes its events."""
        room = await event_store.get_room(self._pool, room_id)
        if room is None or room.deleted or room_id == self.blocks.policy_room:
            raise not_found("Unknown room")
        members = await event_store.member_events(self._pool, room_id, memberships=["join", "invite"])
        if members:
            await self._persister.write(
                [
                    EventDraft(
                        room_id=room_id,
                        sender=self.system_user,
                        type="m.room.member",
                        content={"membership": "leave", "reason": reason or "The room was deleted"},
                        state_key=member.state_key,
                        by_server=True,
                    )
                    for member in members
                ]
            )
        async with self._pool.acquire() as conn, conn.transaction():
            await store.mark_room_deleted(conn, room_id)
            if purge:
                await store.purge_room(conn, room_id)
        await self._persister.write(
            [
                EventDraft(
                    room_id=self.policy_room,
                    sender=moderator,
                    type=ROOM_DELETED,
                    content={"room_id": room_id, "purge": purge, "reason": reason},
                    by_moderator=True,
                )
            ]
        )


class AdminQueries:
    """What the admin API shows moderators about users and rooms."""

    def __init__(
        self, *, pool: asyncpg.Pool, blocks: Blocks, system_user: str, log_out: Callable[[str], Awaitable[None]]
    ) -> None:
        self._pool = pool
        self._blocks = blocks
        self._system_user = system_user
        # Accounts.logout_all: handed in, as accounts imports this module (Blocks).
        self._log_out = log_out

    def _user_json(self, row: store.AccountSummary) -> dict[str, Any]:
        return {
            "user_id": row.user_id,
            "id": row.id,
            "displayname": row.displayname,
            "is_moderator": row.is_moderator,
            "locked": self._blocks.of(row.user_id) == "locked",
            "suspended": self._blocks.of(row.user_id) == "suspended",
            "created_ts": int(row.created_at.timestamp() * 1000),
            "last_seen_ts": int(row.last_seen_at.timestamp() * 1000) if row.last_seen_at else None,
        }

    async def users(self, *, search: str | None, only: str | None, after: int, limit: int) -> dict[str, Any]:
        """A page of accounts; ``only`` narrows to "locked", "suspended" or "moderators"."""
        user_ids = None
        if only in ("locked", "suspended"):
            user_ids = [user for user, block in self._blocks.items() if block == only]
        rows, more = await fetch_page(
            lambda n: store.list_users(
                self._pool,
                search=search,
                user_ids=user_ids,
                moderators_only=only == "moderators",
                after_id=after,
                limit=n,
                exclude=self._system_user,
            ),
            limit,
        )
        body: dict[str, Any] = {"users": [self._user_json(row) for row in rows]}
        if more:
            body["next_from"] = str(rows[-1].id)
        return body

    async def user(self, user_id: str) -> dict[str, Any]:
        rows = await store.list_users(
            self._pool,
            search=None,
            user_ids=[user_id],
            moderators_only=False,
            after_id=0,
            limit=1,
            exclude=self._system_user,
        )
        if not rows:
            raise not_found("Unknown user")
        devices = await session_store.list_devices(self._pool, user_id)
        return {
            **self._user_json(rows[0]),
            "rooms": [
                {"room_id": r.room_id, "membership": r.membership} for r in await store.user_rooms(self._pool, user_id)
            ],
            "devices": [
                {
                    "device_id": d.device_id,
                    "display_name": d.display_name,
                    "last_seen_ip": d.last_seen_ip,
                    "last_seen_ts": int(d.last_seen_at.timestamp() * 1000) if d.last_seen_at else None,
                }
                for d in devices
            ],
        }

    async def log_out(self, user_id: str) -> None:
        """Logs an account out on every device; 404 for an unknown user (or
        the server's own account), as the user's page."""
        await self.user(user_id)
        await self._log_out(user_id)

    @staticmethod
    def _room_json(row: store.RoomSummary) -> dict[str, Any]:
        return {
            "room_id": row.room_id,
            "id": row.id,
            "name": row.name,
            "creator": row.creator,
            "num_joined_members": row.members,
            "published": row.published,
            "created_ts": int(row.created_at.timestamp() * 1000),
            "last_activity_ts": row.last_activity_ts,
        }

    async def rooms(self, *, search: str | None, after: int, limit: int) -> dict[str, Any]:
        rows, more = await fetch_page(
            lambda n: store.list_rooms(
                self._pool, search=search, after_id=after, limit=n, exclude=self._blocks.policy_room or ""
            ),
            limit,
        )
        body: dict[str, Any] = {"rooms": [self._room_json(row) for row in rows]}
        if more:
            body["next_from"] = str(rows[-1].id)
        return body

    async def room(self, room_id: str) -> dict[str, Any]:
        row = await store.room_summary(self._pool, room_id)
        if row is None:
            raise not_found("Unknown room")
        state = {(r.type, r.state_key): r.content for r in await event_store.current_state(self._pool, room_id)}
        members = await event_store.member_events(self._pool, room_id, memberships=["join", "invite", "ban"])
        return {
            **self._room_json(row),
            "topic": state.get(("m.room.topic", ""), {}).get("topic"),
            "join_rule": state.get(("m.room.join_rules", ""), {}).get("join_rule"),
            "history_visibility": state.get(("m.room.history_visibility", ""), {}).get("history_visibility"),
            "members": [{"user_id": m.state_key, "membership": m.content.get("membership")} for m in members],
        }
