"""Matrix client-server API: push rules, notifications and pushers."""

from __future__ import annotations

from functools import partial
from typing import Any

from ..errors import invalid_param
from ..events import push_rules as rules
from ..events.format import client_event
from .base import BaseHandler
from .contract import Op, Param
from .matrix_account import PREFIX

MAX_NOTIFICATIONS = 100
DEFAULT_NOTIFICATIONS = 20


def _scope_and_kind(scope: str, kind: str | None = None) -> None:
    if scope != "global":
        raise invalid_param("Push rules have one scope: 'global'")
    if kind is not None and kind not in rules.KINDS:
        raise invalid_param(f"Unknown push rule kind {kind!r}")


class PushRulesHandler(BaseHandler):
    contract = {"get": Op("Read the caller's push rules, every scope", {200: "matrix/pushrules.response"})}

    async def get(self) -> None:
        requester = await self.authenticate()
        self.send_json(await self.ctx.push.ruleset(requester.user_id))


class PushRuleSetHandler(BaseHandler):
    contract = {"get": Op("Read the caller's push rules of one scope", {200: "matrix/push_ruleset"})}

    async def get(self, scope: str) -> None:
        requester = await self.authenticate()
        _scope_and_kind(scope)
        self.send_json((await self.ctx.push.ruleset(requester.user_id))["global"])


_PLACE = (
    Param("before", description="Put the rule before this rule of the caller's"),
    Param("after", description="Put the rule after this rule of the caller's"),
)


class PushRuleHandler(BaseHandler):
    contract = {
        "get": Op("Read one push rule", {200: "matrix/push_rule"}, errors=(404,)),
        "put": Op(
            "Add or replace a push rule of the caller's",
            {200: "matrix/empty.response"},
            request="matrix/push_rule.request",
            query=_PLACE,
            errors=(404,),
        ),
        "delete": Op("Remove a push rule of the caller's", {200: "matrix/empty.response"}, errors=(404,)),
    }

    async def get(self, scope: str, kind: str, rule_id: str) -> None:
        requester = await self.authenticate()
        _scope_and_kind(scope, kind)
        self.send_json(await self.ctx.push.rule(requester.user_id, kind, rule_id))

    async def put(self, scope: str, kind: str, rule_id: str) -> None:
        requester = await self.authenticate()
        _scope_and_kind(scope, kind)
        body = self.json_body("matrix/push_rule.request")
        before = self.get_query_argument("before", None)
        after = self.get_query_argument("after", None)
        await self.ctx.push.edit(
            requester.user_id,
            partial(rules.put_rule, kind=kind, rule_id=rule_id, body=body, before=before, after=after),
        )
        self.send_json({})

    async def delete(self, scope: str, kind: str, rule_id: str) -> None:
        requester = await self.authenticate()
        _scope_and_kind(scope, kind)
        await self.ctx.push.edit(requester.user_id, partial(rules.delete_rule, kind=kind, rule_id=rule_id))
        self.send_json({})


class PushRuleAttributeHandler(BaseHandler):
    """GET/PUT .../{ruleId}/enabled and .../{ruleId}/actions."""

    contract = {
        "get": Op(
            "Read whether a push rule is enabled, or its actions", {200: "matrix/push_rule_{attribute}"}, errors=(404,)
        ),
        "put": Op(
            "Enable or disable a push rule, or set its actions",
            {200: "matrix/empty.response"},
            request="matrix/push_rule_{attribute}",
            errors=(404,),
        ),
    }

    async def get(self, scope: str, kind: str, rule_id: str, attribute: str) -> None:
        requester = await self.authenticate()
        _scope_and_kind(scope, kind)
        rule = await self.ctx.push.rule(requester.user_id, kind, rule_id)
        self.send_json({attribute: rule[attribute]})

    async def put(self, scope: str, kind: str, rule_id: str, attribute: str) -> None:
        requester = await self.authenticate()
        _scope_and_kind(scope, kind)
        body = self.json_body(f"matrix/push_rule_{attribute}")
        edit = rules.set_enabled if attribute == "enabled" else rules.set_actions
        await self.ctx.push.edit(requester.user_id, partial(edit, kind=kind, rule_id=rule_id, value=body[attribute]))
        self.send_json({})


class NotificationsHandler(BaseHandler):
    contract = {
        "get": Op(
            "List the caller's notifications, newest first",
            {200: "matrix/notifications.response"},
            query=(
                Param("from", description="The next_token of the previous page"),
                Param("limit", {"type": "integer"}, f"Notifications per page, 1 to {MAX_NOTIFICATIONS} (default 20)"),
                Param("only", description="'highlight': highlighted notifications only"),
            ),
        )
    }

    async def get(self) -> None:
        requester = await self.authenticate()
        token = self.get_query_argument("from", None)
        if token is not None and (not token.isdigit() or len(token) > 18):
            raise invalid_param("'from' must be a token from an earlier page")
        limit = max(1, min(self.int_argument("limit", DEFAULT_NOTIFICATIONS), MAX_NOTIFICATIONS))
        rows = await self.ctx.push.notifications(
            requester.user_id,
            before=int(token) if token is not None else None,
            limit=limit,
            only_highlight=self.get_query_argument("only", None) == "highlight",
        )
        device = (requester.user_id, requester.device_id)
        body: dict[str, Any] = {
            "notifications": [
                {
                    "actions": row.actions,
                    "event": client_event(row.event, device=device),
                    "read": row.read,
                    "room_id": row.event.room_id,
                    "ts": row.event.origin_server_ts,
                }
                for row in rows
            ]
        }
        if len(rows) == limit:
            body["next_token"] = str(rows[-1].event.stream)
        self.send_json(body)


class PushersHandler(BaseHandler):
    contract = {"get": Op("List the caller's pushers", {200: "matrix/pushers.response"})}

    async def get(self) -> None:
        requester = await self.authenticate()
        self.send_json({"pushers": await self.ctx.push.pushers(requester.user_id)})


class PushersSetHandler(BaseHandler):
    contract = {
        "post": Op(
            "Add, replace or remove a pusher", {200: "matrix/empty.response"}, request="matrix/pushers_set.request"
        )
    }

    async def post(self) -> None:
        requester = await self.authenticate()
        await self.ctx.push.set_pusher(requester.user_id, self.json_body("matrix/pushers_set.request"))
        self.send_json({})


def routes() -> list[tuple[str, type]]:
    rule = PREFIX + r"/pushrules/([^/]+)/([^/]+)/([^/]+)"
    return [
        (PREFIX + r"/pushrules/?", PushRulesHandler),
        (PREFIX + r"/pushrules/([^/]+)/?", PushRuleSetHandler),
        (rule, PushRuleHandler),
        (rule + r"/(enabled|actions)", PushRuleAttributeHandler),
        (PREFIX + r"/notifications", NotificationsHandler),
        (PREFIX + r"/pushers", PushersHandler),
        (PREFIX + r"/pushers/set", PushersSetHandler),
    ]
