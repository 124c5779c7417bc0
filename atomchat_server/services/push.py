"""Push rules: reading and editing a user's rules, and judging every new
event for every member of its room.

Edits run through the persister under the stream lock (read, change, write
back as ``m.push_rules`` account data), so concurrent edits of one user's
rules never lose each other. Evaluation runs inside the persister's
transaction without round trips of its own: the batch's first query brings
each room's member count and the members that matter, and the outcomes are
stored by the statement that appends the events. What is stored is small:
the outcome of a member with the default rules whom the event does not name
(once per event), and the members who fare otherwise (mentioned, invited,
or with rules of their own); a plain message in a room of fifty costs one
short walk of the rules, not fifty. The outcomes stay on the appended row
(``row["push"]``), from which the sync fast path keeps its counts without
asking the database.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from ..db import Database
from ..errors import MatrixError, missing_param
from ..events import push_rules as rules
from ..storage import ephemeral as ephemeral_store
from ..storage import push as push_store
from .persister import Persister

COMPILED_CACHE = 10_000  # users with rules of their own whose compiled rules are kept

_STATUS = {"M_NOT_FOUND": 404}
PUSHER_FIELDS = ("pushkey", "kind", "app_id", "app_display_name", "device_display_name", "lang", "data")


def _refusal(error: rules.RuleError) -> MatrixError:
    return MatrixError(_STATUS.get(error.errcode, 400), error.errcode, str(error))


class PushRules:
    def __init__(self, *, pool: asyncpg.Pool, persister: Persister) -> None:
        self._pool = pool
        self._persister = persister

    async def ruleset(self, user_id: str) -> dict[str, Any]:
        stored = await ephemeral_store.get_account_data(self._pool, user_id, "", push_store.PUSH_RULES_TYPE)
        return rules.ruleset(user_id, stored)

    async def rule(self, user_id: str, kind: str, rule_id: str) -> dict[str, Any]:
        try:
            return rules.find_rule(await self.ruleset(user_id), kind, rule_id)
        except rules.RuleError as error:
            raise _refusal(error) from None

    async def edit(self, user_id: str, change: Callable[[dict[str, Any]], Any]) -> None:
        """Applies ``change`` (one of events.push_rules' edits) to the user's
        current rules under the stream lock and stores the result."""
        refused: list[rules.RuleError] = []

        async def write(conn: Database) -> int | None:
            stored = await ephemeral_store.get_account_data(conn, user_id, "", push_store.PUSH_RULES_TYPE)
            current = rules.ruleset(user_id, stored)
            try:
                change(current)
            except rules.RuleError as error:
                refused.append(error)
                return None
            return await ephemeral_store.put_account_data(
                conn, user_id=user_id, room_id="", type=push_store.PUSH_RULES_TYPE, content=current
            )

        await self._persister.update(write)
        if refused:
            raise _refusal(refused[0])

    async def notifications(
        self, user_id: str, *, before: int | None, limit: int, only_highlight: bool
    ) -> list[push_store.Notification]:
        return await push_store.notifications(
            self._pool, user_id, before=before, limit=limit, only_highlight=only_highlight
        )

    async def pushers(self, user_id: str) -> list[dict[str, Any]]:
        pushers = []
        for row in await push_store.pushers(self._pool, user_id):
            pusher: dict[str, Any] = {
                "pushkey": row.pushkey,
                "kind": row.kind,
                "app_id": row.app_id,
                "app_display_name": row.app_display_name,
                "device_display_name": row.device_display_name,
                "lang": row.lang,
                "data": row.data,
            }
            if row.profile_tag is not None:
                pusher["profile_tag"] = row.profile_tag
            pushers.append(pusher)
        return pushers

    async def set_pusher(self, user_id: str, body: dict[str, Any]) -> None:
        """POST /pushers/set: kind null removes the pusher; otherwise every
        field of a pusher is needed, and an http pusher needs data.url."""
        if body["kind"] is None:
            await push_store.delete_pusher(self._pool, user_id, body["app_id"], body["pushkey"])
            return
        for name in PUSHER_FIELDS:
            if name not in body:
                raise missing_param(f"Missing field '{name}'")
        if body["kind"] == "http" and not isinstance(body["data"].get("url"), str):
            raise missing_param("An http pusher needs 'data.url'")
        await push_store.set_pusher(self._pool, user_id, body, append=body.get("append", False))


class PushEvaluator:
    """Judges each event as the persister appends it, for every member of
    its room, inside the persister's transaction. What judging needs comes
    with the batch's first query (storage.events.batch_context); only rule
    sets not compiled yet, and an invited user's, are read on their own."""

    def __init__(self) -> None:
        # user id -> (stream of their stored rules, compiled), for users with rules of their own
        self._compiled: OrderedDict[str, tuple[int, rules.Compiled]] = OrderedDict()

    @staticmethod
    def named(events: Sequence[dict[str, Any]]) -> list[str]:
        """The users a batch's events name: the members the batch query must return."""
        return sorted({user for event in events for user in rules.named_users(event)})

    async def __call__(
        self, conn: Database, row: dict[str, Any], state: dict[tuple[str, str], Any], members: tuple[int, list[Any]]
    ) -> dict[str, Any]:
        """The event's outcomes as stored with it: ``default``, [highlight,
        actions] when a member with the default rules whom the event does not
        name is notified (else None), and ``own``, [user id, notify,
        highlight, actions] of each member who fares otherwise."""
        joined, special = members
        stale = [
            m["user_id"]
            for m in special
            if m["rules_stream"] is not None and self._cached_stream(m["user_id"]) != m["rules_stream"]
        ]
        if stale:
            for stored in await push_store.stored_rules(conn, stale):
                owner = stored.user_id
                compiled = rules.compile_rules(owner, rules.ruleset(owner, stored.content))
                self._remember(owner, stored.stream, compiled)
        sender = row["sender"]
        facts = rules.EventFacts(row, member_count=joined, state=state)
        plans = {id(rules.DEFAULT_COMPILED): rules.DEFAULT_COMPILED.plan(facts)}
        baseline = rules.Compiled.evaluate(plans[id(rules.DEFAULT_COMPILED)], facts, rules.NOBODY)
        candidates = [
            (
                rules.Member(m["user_id"], m["display_name"]),
                rules.DEFAULT_COMPILED if m["rules_stream"] is None else self._compiled[m["user_id"]][1],
            )
            for m in special
            if m["user_id"] != sender
        ]
        if row["type"] == "m.room.member" and row["state_key"] in rules.named_users(row):  # an invite
            invitee = row["state_key"]
            if invitee != sender and all(member.user_id != invitee for member, _ in candidates):
                candidates.append((rules.Member(invitee), await self._rules_of(conn, invitee)))
        own = []
        for member, compiled in candidates:
            plan = plans.get(id(compiled))
            if plan is None:
                plan = plans[id(compiled)] = compiled.plan(facts)
            result = compiled.evaluate(plan, facts, member)
            if result != baseline:
                own.append([member.user_id, result.notify, result.highlight, result.actions_json])
        default = [baseline.highlight, baseline.actions_json] if baseline.notify else None
        return {"default": default, "own": own}

    async def _rules_of(self, conn: Database, user_id: str) -> rules.Compiled:
        stored = await push_store.stored_rules(conn, [user_id])
        if not stored:
            return rules.DEFAULT_COMPILED
        compiled = rules.compile_rules(user_id, rules.ruleset(user_id, stored[0].content))
        self._remember(user_id, stored[0].stream, compiled)
        return compiled

    def _cached_stream(self, user_id: str) -> int | None:
        cached = self._compiled.get(user_id)
        if cached is None:
            return None
        self._compiled.move_to_end(user_id)
        return cached[0]

    def _remember(self, user_id: str, stream: int, compiled: rules.Compiled) -> None:
        self._compiled[user_id] = (stream, compiled)
        self._compiled.move_to_end(user_id)
        while len(self._compiled) > COMPILED_CACHE:
            self._compiled.popitem(last=False)
