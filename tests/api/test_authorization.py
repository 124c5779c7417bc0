"""The authorization table: every operation of the OpenAPI document, sent by
each kind of caller against a running server, with the status each must get.

Each row gets a world of its own on the module's server: an owner's private
(invite-only) room with an alias, a message and an /api number, and one
account per caller kind:

    anon     no credentials
    user     an ordinary account, the room's creator (power 100 in it)
    member   joined the room, at power 0
    nonmem   an account the room never saw
    invited  invited to the room, not joined
    banned   was a member, banned by the owner
    mod      a server moderator (the admin role), not in the room
    susp     a member whom a moderator suspended
    locked   a member whom a moderator locked

The federation rows (/_matrix/federation/) are 401 across: their callers
are other servers, with a signed X-Matrix header, and no client credential
of any kind of caller opens them.

Every request is one that would succeed for a caller allowed to make it:
path parameters are the world's real ids and, where a route is about the
caller's own things ({user_id} of a filter, a device, account data, a
profile), the caller's own; bodies are valid. A cell is the status that
caller must get. Within a row the cells run left to right on one world;
where a success would change what the next caller meets (a kick, a leave, a
deletion), the next cell gets a new world.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import string
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from atomchat_server.api.contract import openapi_document
from atomchat_server.app import routes

from ..support.client import DEFAULT_PASSWORD, MATRIX, password_auth
from ..support.room_steps import SERVER
from ..support.threaded_server import ThreadedServer

CALLERS = ("anon", "user", "member", "nonmem", "invited", "banned", "mod", "susp", "locked")
ADMIN = "/_atomchat/admin/v1"

# {v3} is /_matrix/client/v3 and {admin} /_atomchat/admin/v1. 101: the WebSocket opened.
TABLE = """
#                                                                      anon  user  member  nonmem  invited  banned  mod  susp  locked
GET    {admin}/rooms                                                    401   403     403     403      403     403  200   403     401
GET    {admin}/rooms/{room_id}                                          401   403     403     403      403     403  200   403     401
DELETE {admin}/rooms/{room_id}                                          401   403     403     403      403     403  200   403     401
GET    {admin}/rooms/{room_id}/messages                                 401   403     403     403      403     403  200   403     401
GET    {admin}/servers/{server}/ban                                     401   403     403     403      403     403  200   403     401
PUT    {admin}/servers/{server}/ban                                     401   403     403     403      403     403  200   403     401
GET    {admin}/users                                                    401   403     403     403      403     403  200   403     401
GET    {admin}/users/{user_id}                                          401   403     403     403      403     403  200   403     401
PUT    {admin}/users/{user_id}/lock                                     401   403     403     403      403     403  200   403     401
POST   {admin}/users/{user_id}/logout                                   401   403     403     403      403     403  200   403     401
PUT    {admin}/users/{user_id}/moderator                                401   403     403     403      403     403  200   403     401
POST   {admin}/users/{user_id}/redact                                   401   403     403     403      403     403  200   403     401
PUT    {admin}/users/{user_id}/suspend                                  401   403     403     403      403     403  200   403     401
GET    /_atomchat/client/v1/stream                                      101   101     101     101      101     101  101   101     401
GET    /_atomchat/openapi.json                                          200   200     200     200      200     200  200   200     200
GET    /health                                                          200   200     200     200      200     200  200   200     200
GET    /metrics                                                         200   200     200     200      200     200  200   200     200
GET    /ready                                                           200   200     200     200      200     200  200   200     200
GET    /_matrix/client/v1/admin/lock/{user_id}                          401   403     403     403      403     403  200   403     401
PUT    /_matrix/client/v1/admin/lock/{user_id}                          401   403     403     403      403     403  200   403     401
GET    /_matrix/client/v1/admin/suspend/{user_id}                       401   403     403     403      403     403  200   403     401
PUT    /_matrix/client/v1/admin/suspend/{user_id}                       401   403     403     403      403     403  200   403     401
POST   {v3}/account/password                                            401   200     200     200      200     200  200   200     401
GET    {v3}/account/whoami                                              401   200     200     200      200     200  200   200     401
GET    {v3}/capabilities                                                401   200     200     200      200     200  200   200     401
POST   {v3}/createRoom                                                  401   200     200     200      200     200  200   403     401
POST   {v3}/delete_devices                                              401   200     200     200      200     200  200   200     401
GET    {v3}/devices                                                     401   200     200     200      200     200  200   200     401
GET    {v3}/devices/{device_id}                                         401   200     200     200      200     200  200   200     401
PUT    {v3}/devices/{device_id}                                         401   200     200     200      200     200  200   200     401
DELETE {v3}/devices/{device_id}                                         401   200     200     200      200     200  200   200     401
GET    {v3}/directory/list/room/{room_id}                               200   200     200     200      200     200  200   200     200
PUT    {v3}/directory/list/room/{room_id}                               401   200     403     403      403     403  200   403     401
GET    {v3}/directory/room/{alias}                                      200   200     200     200      200     200  200   200     200
PUT    {v3}/directory/room/{alias}                                      401   200     200     403      403     403  403   403     401
DELETE {v3}/directory/room/{alias}                                      401   200     403     403      403     403  403   403     401
POST   {v3}/join/{room_id_or_alias}                                     401   200     200     403      200     403  403   403     401
GET    {v3}/joined_rooms                                                401   200     200     200      200     200  200   200     401
GET    {v3}/login                                                       200   200     200     200      200     200  200   200     200
POST   {v3}/login                                                       200   200     200     200      200     200  200   200     401
POST   {v3}/logout                                                      401   200     200     200      200     200  200   200     200
POST   {v3}/logout/all                                                  401   200     200     200      200     200  200   200     200
GET    {v3}/profile/{user_id}                                           200   200     200     200      200     200  200   200     200
GET    {v3}/profile/{user_id}/avatar_url                                200   200     200     200      200     200  200   200     200
PUT    {v3}/profile/{user_id}/avatar_url                                401   200     200     200      200     200  200   403     401
GET    {v3}/profile/{user_id}/displayname                               200   200     200     200      200     200  200   200     200
PUT    {v3}/profile/{user_id}/displayname                               401   200     200     200      200     200  200   403     401
GET    {v3}/publicRooms                                                 200   200     200     200      200     200  200   200     200
POST   {v3}/publicRooms                                                 401   200     200     200      200     200  200   200     401
POST   {v3}/refresh                                                     200   200     200     200      200     200  200   200     401
POST   {v3}/register                                                    200   200     200     200      200     200  200   200     200
GET    {v3}/register/available                                          200   200     200     200      200     200  200   200     200
POST   {v3}/rooms/{room_id_or_alias}/join                               401   200     200     403      200     403  403   403     401
POST   {v3}/rooms/{room_id}/ban                                         401   200     403     403      403     403  200   403     401
GET    {v3}/rooms/{room_id}/context/{event_id}                          401   200     200     403      403     200  200   200     401
GET    {v3}/rooms/{room_id}/event/{event_id}                            401   200     200     403      403     200  200   200     401
POST   {v3}/rooms/{room_id}/forget                                      401   400     400     404      400     200  404   400     401
POST   {v3}/rooms/{room_id}/invite                                      401   200     200     403      403     403  200   403     401
GET    {v3}/rooms/{room_id}/joined_members                              401   200     200     403      403     403  200   200     401
POST   {v3}/rooms/{room_id}/kick                                        401   200     403     403      403     403  200   403     401
POST   {v3}/rooms/{room_id}/leave                                       401   200     200     403      200     403  403   200     401
GET    {v3}/rooms/{room_id}/members                                     401   200     200     403      403     200  200   200     401
GET    {v3}/rooms/{room_id}/messages                                    401   200     200     403      403     200  200   200     401
POST   {v3}/rooms/{room_id}/read_markers                                401   200     200     403      403     403  403   200     401
POST   {v3}/rooms/{room_id}/receipt/{receipt_type}/{event_id}           401   200     200     403      403     403  403   200     401
PUT    {v3}/rooms/{room_id}/redact/{event_id}/{txn_id}                  401   200     403     403      403     403  200   403     401
PUT    {v3}/rooms/{room_id}/send/{event_type}/{txn_id}                  401   200     200     403      403     403  200   403     401
GET    {v3}/rooms/{room_id}/state                                       401   200     200     403      403     200  200   200     401
GET    {v3}/rooms/{room_id}/state/{event_type}/                         401   200     200     403      403     200  200   200     401
PUT    {v3}/rooms/{room_id}/state/{event_type}/                         401   200     403     403      403     403  403   403     401
GET    {v3}/rooms/{room_id}/state/{event_type}/{state_key}              401   200     200     403      403     200  200   200     401
PUT    {v3}/rooms/{room_id}/state/{event_type}/{state_key}              401   200     403     403      403     403  403   403     401
PUT    {v3}/rooms/{room_id}/typing/{user_id}                            401   200     200     403      403     403  403   200     401
POST   {v3}/rooms/{room_id}/unban                                       401   200     403     403      403     403  200   403     401
GET    {v3}/sync                                                        401   200     200     200      200     200  200   200     401
GET    {v3}/user/{user_id}/account_data/{data_type}                     401   200     200     200      200     200  200   200     401
PUT    {v3}/user/{user_id}/account_data/{data_type}                     401   200     200     200      200     200  200   200     401
POST   {v3}/user/{user_id}/filter                                       401   200     200     200      200     200  200   200     401
GET    {v3}/user/{user_id}/filter/{filter_id}                           401   200     200     200      200     200  200   200     401
GET    {v3}/user/{user_id}/rooms/{room_id}/account_data/{data_type}     401   200     200     200      200     200  200   200     401
PUT    {v3}/user/{user_id}/rooms/{room_id}/account_data/{data_type}     401   200     200     200      200     200  200   200     401
GET    /_matrix/client/versions                                         200   200     200     200      200     200  200   200     200
GET    /_matrix/key/v2/server/                                          200   200     200     200      200     200  200   200     200
GET    /_matrix/federation/v1/version                                   200   200     200     200      200     200  200   200     200
GET    /_matrix/federation/v1/query/directory                           401   401     401     401      401     401  401   401     401
GET    /_matrix/federation/v1/query/profile                             401   401     401     401      401     401  401   401     401
PUT    /_matrix/federation/v1/send/{txn_id}                             401   401     401     401      401     401  401   401     401
GET    /_matrix/federation/v1/make_join/{room_id}/{user_id}             401   401     401     401      401     401  401   401     401
GET    /_matrix/federation/v1/make_leave/{room_id}/{user_id}            401   401     401     401      401     401  401   401     401
PUT    /_matrix/federation/v2/send_join/{room_id}/{event_id}            401   401     401     401      401     401  401   401     401
PUT    /_matrix/federation/v2/send_leave/{room_id}/{event_id}           401   401     401     401      401     401  401   401     401
PUT    /_matrix/federation/v2/invite/{room_id}/{event_id}               401   401     401     401      401     401  401   401     401
GET    /_matrix/federation/v1/event/{event_id}                          401   401     401     401      401     401  401   401     401
GET    /_matrix/federation/v1/state/{room_id}                           401   401     401     401      401     401  401   401     401
GET    /_matrix/federation/v1/state_ids/{room_id}                       401   401     401     401      401     401  401   401     401
GET    /_matrix/federation/v1/event_auth/{room_id}/{event_id}           401   401     401     401      401     401  401   401     401
GET    /_matrix/federation/v1/backfill/{room_id}                        401   401     401     401      401     401  401   401     401
POST   /_matrix/federation/v1/get_missing_events/{room_id}              401   401     401     401      401     401  401   401     401
POST   /api/auth/tokens/                                                200   200     200     200      200     200  200   200     400
POST   /api/messages/                                                   401   201     201     201      201     201  201   403     401
GET    /api/rooms/                                                      401   200     200     200      200     200  200   200     401
POST   /api/rooms/                                                      401   201     201     201      201     201  201   403     401
GET    /api/rooms/{number}/                                             401   200     200     403      403     403  200   200     401
PUT    /api/rooms/{number}/                                             401   200     403     403      403     403  403   403     401
PATCH  /api/rooms/{number}/                                             401   200     403     403      403     403  200   403     401
DELETE /api/rooms/{number}/                                             401   403     403     403      403     403  204   403     401
GET    /api/rooms/{number}/messages/                                    401   200     200     403      403     403  200   200     401
POST   /api/rooms/{number}/messages/                                    401   201     201     403      403     403  201   403     401
POST   /api/users/                                                      201   201     201     201      201     201  201   201     201
GET    /api/users/me/                                                   401   200     200     200      200     200  200   200     401
PUT    /api/users/{number}/block/                                       401   403     403     403      403     403  200   403     401
DELETE {v3}/pushrules/{scope}/{kind}/{rule_id}                          401   200     200     200      200     200  200   200     401
GET    /.well-known/matrix/client                                       200   200     200     200      200     200  200   200     200
GET    {v3}/account/3pid                                                401   200     200     200      200     200  200   200     401
GET    {v3}/notifications                                               401   200     200     200      200     200  200   200     401
GET    {v3}/pushers                                                     401   200     200     200      200     200  200   200     401
GET    {v3}/pushrules/                                                  401   200     200     200      200     200  200   200     401
GET    {v3}/pushrules/{scope}/                                          401   200     200     200      200     200  200   200     401
GET    {v3}/pushrules/{scope}/{kind}/{rule_id}                          401   200     200     200      200     200  200   200     401
GET    {v3}/pushrules/{scope}/{kind}/{rule_id}/actions                  401   200     200     200      200     200  200   200     401
GET    {v3}/pushrules/{scope}/{kind}/{rule_id}/enabled                  401   200     200     200      200     200  200   200     401
GET    {v3}/room_keys/version                                           401   404     404     404      404     404  404   404     401
GET    {v3}/thirdparty/protocols                                        401   200     200     200      200     200  200   200     401
GET    {v3}/voip/turnServer                                             401   200     200     200      200     200  200   200     401
POST   {v3}/pushers/set                                                 401   200     200     200      200     200  200   200     401
PUT    {v3}/pushrules/{scope}/{kind}/{rule_id}                          401   200     200     200      200     200  200   200     401
PUT    {v3}/pushrules/{scope}/{kind}/{rule_id}/actions                  401   200     200     200      200     200  200   200     401
PUT    {v3}/pushrules/{scope}/{kind}/{rule_id}/enabled                  401   200     200     200      200     200  200   200     401
GET    {admin}/reports                                                  401   403     403     403      403     403  200   403     401
GET    {admin}/reports/{report_id}                                      401   403     403     403      403     403  200   403     401
PUT    {admin}/reports/{report_id}                                      401   403     403     403      403     403  200   403     401
GET    /_matrix/client/v1/media/config                                  401   200     200     200      200     200  200   200     401
GET    /_matrix/client/v1/media/download/{server_name}/{media_id}       401   200     200     200      200     200  200   200     401
GET    /_matrix/client/v1/media/download/{server_name}/{media_id}/{filename} 401   200     200     200      200     200  200   200     401
GET    /_matrix/client/v1/media/thumbnail/{server_name}/{media_id}      401   200     200     200      200     200  200   200     401
GET    /_matrix/client/v1/rooms/{room_id}/relations/{event_id}          401   200     200     403      403     200  200   200     401
GET    /_matrix/client/v1/rooms/{room_id}/relations/{event_id}/{rel_type} 401   200     200     403      403     200  200   200     401
GET    /_matrix/client/v1/rooms/{room_id}/relations/{event_id}/{rel_type}/{event_type} 401   200     200     403      403     200  200   200     401
GET    /_matrix/client/v1/rooms/{room_id}/threads                       401   200     200     403      403     200  200   200     401
GET    {v3}/keys/changes                                                401   200     200     200      200     200  200   200     401
POST   {v3}/keys/claim                                                  401   200     200     200      200     200  200   200     401
POST   {v3}/keys/device_signing/upload                                  401   200     200     200      200     200  200   200     401
POST   {v3}/keys/query                                                  401   200     200     200      200     200  200   200     401
POST   {v3}/keys/signatures/upload                                      401   200     200     200      200     200  200   200     401
POST   {v3}/keys/upload                                                 401   200     200     200      200     200  200   200     401
GET    {v3}/presence/{user_id}/status                                   401   200     200     200      200     200  200   200     401
PUT    {v3}/presence/{user_id}/status                                   401   200     200     200      200     200  200   200     401
DELETE {v3}/room_keys/keys                                              401   200     200     200      200     200  200   200     401
GET    {v3}/room_keys/keys                                              401   200     200     200      200     200  200   200     401
PUT    {v3}/room_keys/keys                                              401   200     200     200      200     200  200   200     401
DELETE {v3}/room_keys/keys/{room_id}                                    401   200     200     200      200     200  200   200     401
GET    {v3}/room_keys/keys/{room_id}                                    401   200     200     200      200     200  200   200     401
PUT    {v3}/room_keys/keys/{room_id}                                    401   200     200     200      200     200  200   200     401
DELETE {v3}/room_keys/keys/{room_id}/{session_id}                       401   200     200     200      200     200  200   200     401
GET    {v3}/room_keys/keys/{room_id}/{session_id}                       401   200     200     200      200     200  200   200     401
PUT    {v3}/room_keys/keys/{room_id}/{session_id}                       401   200     200     200      200     200  200   200     401
POST   {v3}/room_keys/version                                           401   200     200     200      200     200  200   200     401
DELETE {v3}/room_keys/version/{version}                                 401   200     200     200      200     200  200   200     401
GET    {v3}/room_keys/version/{version}                                 401   200     200     200      200     200  200   200     401
PUT    {v3}/room_keys/version/{version}                                 401   200     200     200      200     200  200   200     401
POST   {v3}/rooms/{room_id}/report                                      401   200     200     200      200     200  200   200     401
POST   {v3}/rooms/{room_id}/report/{event_id}                           401   200     200     404      404     200  200   200     401
POST   {v3}/search                                                      401   200     200     200      200     200  200   200     401
PUT    {v3}/sendToDevice/{event_type}/{txn_id}                          401   200     200     200      200     200  200   200     401
GET    {v3}/user/{user_id}/rooms/{room_id}/tags                         401   200     200     200      200     200  200   200     401
DELETE {v3}/user/{user_id}/rooms/{room_id}/tags/{tag}                   401   200     200     200      200     200  200   200     401
PUT    {v3}/user/{user_id}/rooms/{room_id}/tags/{tag}                   401   200     200     200      200     200  200   200     401
POST   {v3}/user_directory/search                                       401   200     200     200      200     200  200   200     401
POST   {v3}/users/{user_id}/report                                      401   200     200     200      200     200  200   200     401
POST   /_matrix/media/v1/create                                         401   200     200     200      200     200  200   200     401
GET    /_matrix/media/v3/config                                         401   200     200     200      200     200  200   200     401
GET    /_matrix/media/v3/download/{server_name}/{media_id}              200   200     200     200      200     200  200   200     200
GET    /_matrix/media/v3/download/{server_name}/{media_id}/{filename}   200   200     200     200      200     200  200   200     200
GET    /_matrix/media/v3/thumbnail/{server_name}/{media_id}             200   200     200     200      200     200  200   200     200
POST   /_matrix/media/v3/upload                                         401   200     200     200      200     200  200   200     401
PUT    /_matrix/media/v3/upload/{server_name}/{media_id}                401   200     200     200      200     200  200   200     401
"""  # noqa: E501 (the table reads across: an operation a line, a caller a column)
ABBREVIATIONS = {"{v3}": MATRIX, "{admin}": ADMIN}


def parse_table(text: str) -> dict[tuple[str, str], dict[str, int]]:
    rows = {}
    for line in text.strip().splitlines()[1:]:  # the first names the columns
        method, path, *cells = line.split()
        for short, long in ABBREVIATIONS.items():
            path = path.replace(short, long)
        assert len(cells) == len(CALLERS), line
        assert (method, path) not in rows, f"{method} {path} is in the table twice"
        rows[(method, path)] = dict(zip(CALLERS, map(int, cells), strict=True))
    return rows


ROWS = parse_table(TABLE)
DOCUMENTED = sorted(
    (method.upper(), path) for path, item in openapi_document(routes())["paths"].items() for method in item
)


@dataclass
class Account:
    user_id: str
    access_token: str
    device_id: str

    @property
    def localpart(self) -> str:
        return self.user_id[1:].split(":")[0]


@dataclass
class World:
    base_url: str
    accounts: dict[str, Account]
    target: Account  # a member whom the room's moderation rows act on
    outsider: Account  # an account in no room, whom the invite row invites
    room: str = ""
    alias: str = ""
    event: str = ""
    api_room: int = 0
    target_number: int = 0  # the target's /api id
    filters: dict[str, str] = field(default_factory=dict)
    refresh: dict[str, str] = field(default_factory=dict)
    numbers: dict[str, int] = field(default_factory=dict)  # /api ids
    media: str = ""  # the owner's picture, "server/id"
    report: str = ""  # the id of the owner's report of the room
    backups: dict[str, str] = field(default_factory=dict)  # each caller's key backup version
    reserved: dict[str, str] = field(default_factory=dict)  # each caller's reserved media id

    @property
    def owner(self) -> Account:
        return self.accounts["user"]


async def call(
    base_url: str, method: str, path: str, body: Any = None, token: str | None = None, scheme: str = "Bearer"
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    if isinstance(body, bytes):
        headers["Content-Type"] = "image/png"
    payload: bytes | str | None
    if body is not None:
        payload = body if isinstance(body, bytes) else json.dumps(body)
    else:
        payload = b"" if method in ("POST", "PUT", "PATCH") else None
    response = await AsyncHTTPClient().fetch(
        HTTPRequest(
            base_url + path,
            method=method,
            headers=headers,
            body=payload,
            allow_nonstandard_methods=True,
            request_timeout=30,
        ),
        raise_error=False,
    )
    if not response.body or not response.headers.get("Content-Type", "").startswith("application/json"):
        return response.code, None  # a file downloaded, or nothing
    return response.code, json.loads(response.body)


async def ok(
    base_url: str, method: str, path: str, body: Any = None, token: str | None = None, scheme: str = "Bearer"
) -> Any:
    status, answer = await call(base_url, method, path, body, token, scheme)
    assert status in (200, 201), f"setting up: {method} {path}: {status} {answer}"
    return answer


async def build_world(server: ThreadedServer, number: int, prepare: str) -> World:
    """World ``number`` of the test (its names are its own): see the module's docstring."""
    base_url = server.base_url
    names = (*CALLERS[1:], "target", "outsider")
    answers = await asyncio.gather(
        *(
            ok(
                base_url,
                "POST",
                f"{MATRIX}/register",
                {"username": f"{name}{number}", "password": DEFAULT_PASSWORD, "auth": {"type": "m.login.dummy"}},
            )
            for name in names
        )
    )
    accounts = {
        name: Account(a["user_id"], a["access_token"], a["device_id"]) for name, a in zip(names, answers, strict=True)
    }
    world = World(base_url, accounts, target=accounts.pop("target"), outsider=accounts.pop("outsider"))
    owner = world.owner
    world.room = (
        await ok(
            base_url,
            "POST",
            f"{MATRIX}/createRoom",
            {"name": f"Table {number}", "room_alias_name": f"table{number}"},
            owner.access_token,
        )
    )["room_id"]
    world.alias = f"#table{number}:{SERVER}"
    room = quote(world.room)
    joining = [accounts[n] for n in ("member", "banned", "susp", "locked")] + [world.target]
    await asyncio.gather(
        *(
            ok(base_url, "POST", f"{MATRIX}/rooms/{room}/invite", {"user_id": account.user_id}, owner.access_token)
            for account in (*joining, accounts["invited"])
        )
    )
    await asyncio.gather(
        *(ok(base_url, "POST", f"{MATRIX}/rooms/{room}/join", {}, account.access_token) for account in joining)
    )
    world.event = (
        await ok(
            base_url,
            "PUT",
            f"{MATRIX}/rooms/{room}/send/m.room.message/setup",
            {"msgtype": "m.text", "body": "hello"},
            owner.access_token,
        )
    )["event_id"]
    await asyncio.gather(*(prepare_for(world, prepare, account) for account in accounts.values()))
    await ok(
        base_url, "POST", f"{MATRIX}/rooms/{room}/ban", {"user_id": accounts["banned"].user_id}, owner.access_token
    )
    server.run(server.running.atomchat.ctx.moderation.set_moderator(None, accounts["mod"].user_id, True))
    mod = accounts["mod"].access_token
    await ok(base_url, "PUT", f"{ADMIN}/users/{quote(accounts['susp'].user_id)}/suspend", {"suspended": True}, mod)
    await ok(base_url, "PUT", f"{ADMIN}/users/{quote(accounts['locked'].user_id)}/lock", {"locked": True}, mod)
    if prepare == "media":
        world.media = (await ok(base_url, "POST", "/_matrix/media/v3/upload", PICTURE, owner.access_token))[
            "content_uri"
        ].removeprefix("mxc://")
    elif prepare == "report":
        await ok(base_url, "POST", f"{MATRIX}/rooms/{room}/report", {"reason": "table"}, owner.access_token)
        listed = (await ok(base_url, "GET", f"{ADMIN}/reports?status=all&limit=100", token=mod))["reports"]
        world.report = next(r["report_id"] for r in listed if r.get("room_id") == world.room)
    api_rooms = await ok(base_url, "GET", "/api/rooms/", token=owner.access_token, scheme="Token")
    world.api_room = next(r["id"] for r in api_rooms if r["name"] == f"Table {number}")
    world.target_number = (
        await ok(base_url, "GET", "/api/users/me/", token=world.target.access_token, scheme="Token")
    )["id"]
    return world


async def prepare_for(world: World, prepare: str, account: Account) -> None:
    """What a row reads must exist for every caller before some are blocked."""
    base_url, token = world.base_url, account.access_token
    if prepare == "filters":
        world.filters[account.user_id] = (
            await ok(
                base_url,
                "POST",
                f"{MATRIX}/user/{quote(account.user_id)}/filter",
                {"room": {"timeline": {"limit": 1}}},
                token,
            )
        )["filter_id"]
    elif prepare == "account_data":
        user = quote(account.user_id)
        await ok(base_url, "PUT", f"{MATRIX}/user/{user}/account_data/org.example.table", {"value": 1}, token)
        await ok(
            base_url,
            "PUT",
            f"{MATRIX}/user/{user}/rooms/{quote(world.room)}/account_data/org.example.table",
            {"value": 1},
            token,
        )
    elif prepare == "push_rule":
        await ok(base_url, "PUT", f"{MATRIX}/pushrules/global/override/table", {"actions": ["notify"]}, token)
    elif prepare == "backup":
        world.backups[account.user_id] = (
            await ok(base_url, "POST", f"{MATRIX}/room_keys/version", BACKUP_VERSION, token)
        )["version"]
        await ok(
            base_url,
            "PUT",
            f"{MATRIX}/room_keys/keys/{quote(world.room)}/table?version={world.backups[account.user_id]}",
            BACKED_UP_KEY,
            token,
        )
    elif prepare == "reserved":
        world.reserved[account.user_id] = (await ok(base_url, "POST", "/_matrix/media/v1/create", {}, token))[
            "content_uri"
        ].rsplit("/", 1)[1]
    elif prepare == "numbers":
        world.numbers[account.user_id] = (await ok(base_url, "GET", "/api/users/me/", token=token, scheme="Token"))[
            "id"
        ]
    elif prepare == "refresh":
        world.refresh[account.user_id] = (
            await ok(
                base_url,
                "POST",
                f"{MATRIX}/login",
                {
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": account.user_id},
                    "password": DEFAULT_PASSWORD,
                    "refresh_token": True,
                },
            )
        )["refresh_token"]


# -- what each row sends ------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """How a row's request is made for a caller: path parameters beyond the
    defaults, a body (or a function of the world and the caller), a query,
    and whether a cell after a success needs a world of its own because
    that success changes what the next caller would meet."""

    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    query: Any = ""
    fresh: bool = False  # after a success (a refusal changes nothing: test_fuzz checks it)
    prepare: str = ""  # "filters", "account_data", "refresh", "numbers", "push_rule", "backup", "reserved":
    # per caller, before blocks; "media", "report": once, by the owner


def own(world: World, caller: Account | None) -> Account:
    """The account a route about one's own things names: the caller's, the
    owner's for an anonymous caller."""
    return caller or world.owner


# Worlds share the module's server: names are numbered across all of them.
NUMBERS = itertools.count()


def unique(world: World, prefix: str) -> str:
    return f"{prefix}{next(NUMBERS)}"


TARGET = {"user_id": lambda w, c: w.target.user_id}
PICTURE = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS"
    b"\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)  # one red pixel
BACKUP_VERSION = {"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": {"public_key": "dGFibGU"}}
BACKED_UP_KEY = {
    "first_message_index": 0,
    "forwarded_count": 0,
    "is_verified": False,
    "session_data": {"ciphertext": "dGFibGU"},
}
BACKUP: dict[str, Any] = {"prepare": "backup", "query": lambda w, c: f"version={w.backups[own(w, c).user_id]}"}
MEDIA: dict[str, Any] = {"prepare": "media", "query": "width=32&height=32"}
NEW_PASSWORD = "another long password 43"

# A membership event as another server signs it (the federation rows are 401 before it is read).
SIGNED_MEMBERSHIP = {
    "type": "m.room.member",
    "sender": "@x:other.example",
    "state_key": "@x:other.example",
    "content": {"membership": "join"},
}

RECIPES: dict[tuple[str, str], Recipe] = {
    ("POST", f"{MATRIX}/register"): Recipe(
        body=lambda w, c: {
            "username": unique(w, "new"),
            "password": DEFAULT_PASSWORD,
            "auth": {"type": "m.login.dummy"},
        }
    ),
    ("GET", f"{MATRIX}/register/available"): Recipe(query=lambda w, c: f"username={unique(w, 'free')}"),
    ("POST", f"{MATRIX}/login"): Recipe(
        body=lambda w, c: {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": own(w, c).user_id},
            "password": DEFAULT_PASSWORD,
        }
    ),
    ("POST", f"{MATRIX}/refresh"): Recipe(
        fresh=True, prepare="refresh", body=lambda w, c: {"refresh_token": w.refresh[own(w, c).user_id]}
    ),
    ("POST", f"{MATRIX}/account/password"): Recipe(
        body=lambda w, c: {
            "new_password": NEW_PASSWORD,
            "logout_devices": False,
            "auth": password_auth(own(w, c).user_id),
        }
    ),
    ("PUT", f"{MATRIX}/devices/{{device_id}}"): Recipe(body={"display_name": "renamed"}),
    ("DELETE", f"{MATRIX}/devices/{{device_id}}"): Recipe(body=lambda w, c: {"auth": password_auth(own(w, c).user_id)}),
    ("POST", f"{MATRIX}/delete_devices"): Recipe(
        body=lambda w, c: {"devices": [own(w, c).device_id], "auth": password_auth(own(w, c).user_id)}
    ),
    ("POST", f"{MATRIX}/createRoom"): Recipe(body={"name": "another"}),
    ("POST", f"{MATRIX}/rooms/{{room_id}}/invite"): Recipe(
        fresh=True, body=lambda w, c: {"user_id": w.outsider.user_id}
    ),
    ("POST", f"{MATRIX}/rooms/{{room_id}}/kick"): Recipe(fresh=True, body=lambda w, c: {"user_id": w.target.user_id}),
    ("POST", f"{MATRIX}/rooms/{{room_id}}/ban"): Recipe(fresh=True, body=lambda w, c: {"user_id": w.target.user_id}),
    ("POST", f"{MATRIX}/rooms/{{room_id}}/unban"): Recipe(
        fresh=True, body=lambda w, c: {"user_id": w.accounts["banned"].user_id}
    ),
    ("POST", f"{MATRIX}/rooms/{{room_id}}/leave"): Recipe(fresh=True),
    ("POST", f"{MATRIX}/rooms/{{room_id}}/forget"): Recipe(fresh=True),
    ("PUT", f"{MATRIX}/rooms/{{room_id}}/send/{{event_type}}/{{txn_id}}"): Recipe(
        body={"msgtype": "m.text", "body": "from the table"}
    ),
    ("GET", f"{MATRIX}/rooms/{{room_id}}/state/{{event_type}}/"): Recipe(params={"event_type": "m.room.name"}),
    ("PUT", f"{MATRIX}/rooms/{{room_id}}/state/{{event_type}}/"): Recipe(
        params={"event_type": "m.room.topic"}, body={"topic": "from the table"}
    ),
    ("GET", f"{MATRIX}/rooms/{{room_id}}/state/{{event_type}}/{{state_key}}"): Recipe(
        params={"event_type": "m.room.member", "state_key": lambda w, c: w.owner.user_id}
    ),
    ("PUT", f"{MATRIX}/rooms/{{room_id}}/state/{{event_type}}/{{state_key}}"): Recipe(
        params={"event_type": "org.example.table", "state_key": "k"}, body={"value": 1}
    ),
    ("PUT", f"{MATRIX}/rooms/{{room_id}}/redact/{{event_id}}/{{txn_id}}"): Recipe(body={"reason": "table"}),
    ("PUT", f"{MATRIX}/directory/room/{{alias}}"): Recipe(
        params={"alias": lambda w, c: f"#{unique(w, 'a')}:{SERVER}"}, body=lambda w, c: {"room_id": w.room}
    ),
    ("DELETE", f"{MATRIX}/directory/room/{{alias}}"): Recipe(fresh=True),
    ("PUT", f"{MATRIX}/directory/list/room/{{room_id}}"): Recipe(body={"visibility": "public"}),
    ("POST", f"{MATRIX}/publicRooms"): Recipe(body={"limit": 10}),
    ("PUT", f"{MATRIX}/profile/{{user_id}}/displayname"): Recipe(body={"displayname": "Renamed"}),
    ("PUT", f"{MATRIX}/profile/{{user_id}}/avatar_url"): Recipe(body={"avatar_url": "mxc://example.org/table"}),
    ("GET", f"{MATRIX}/sync"): Recipe(query="timeout=0"),
    ("POST", f"{MATRIX}/user/{{user_id}}/filter"): Recipe(body={"room": {"timeline": {"limit": 1}}}),
    ("GET", f"{MATRIX}/user/{{user_id}}/filter/{{filter_id}}"): Recipe(prepare="filters"),
    ("PUT", f"{MATRIX}/rooms/{{room_id}}/typing/{{user_id}}"): Recipe(body={"typing": True, "timeout": 1000}),
    ("POST", f"{MATRIX}/rooms/{{room_id}}/read_markers"): Recipe(body=lambda w, c: {"m.fully_read": w.event}),
    ("GET", f"{MATRIX}/user/{{user_id}}/account_data/{{data_type}}"): Recipe(prepare="account_data"),
    ("PUT", f"{MATRIX}/user/{{user_id}}/account_data/{{data_type}}"): Recipe(body={"value": 1}),
    ("GET", f"{MATRIX}/user/{{user_id}}/rooms/{{room_id}}/account_data/{{data_type}}"): Recipe(prepare="account_data"),
    ("PUT", f"{MATRIX}/user/{{user_id}}/rooms/{{room_id}}/account_data/{{data_type}}"): Recipe(body={"value": 1}),
    ("PUT", f"{MATRIX}/pushrules/{{scope}}/{{kind}}/{{rule_id}}"): Recipe(
        params={"rule_id": "table"}, body={"actions": ["notify"], "conditions": []}
    ),
    ("DELETE", f"{MATRIX}/pushrules/{{scope}}/{{kind}}/{{rule_id}}"): Recipe(
        params={"rule_id": "table"}, prepare="push_rule"
    ),
    ("PUT", f"{MATRIX}/pushrules/{{scope}}/{{kind}}/{{rule_id}}/actions"): Recipe(body={"actions": ["notify"]}),
    ("PUT", f"{MATRIX}/pushrules/{{scope}}/{{kind}}/{{rule_id}}/enabled"): Recipe(body={"enabled": True}),
    ("POST", f"{MATRIX}/pushers/set"): Recipe(
        body={
            "pushkey": "table",
            "kind": "http",
            "app_id": "org.example.table",
            "app_display_name": "Table",
            "device_display_name": "Table",
            "lang": "en",
            "data": {"url": "https://push.example.org/_matrix/push/v1/notify"},
        }
    ),
    ("GET", f"{ADMIN}/reports/{{report_id}}"): Recipe(prepare="report"),
    ("PUT", f"{ADMIN}/reports/{{report_id}}"): Recipe(prepare="report", body={"status": "resolved", "note": "table"}),
    ("GET", f"{ADMIN}/servers/{{server}}/ban"): Recipe(params={"server": "banned.example"}),
    ("PUT", f"{ADMIN}/servers/{{server}}/ban"): Recipe(params={"server": "banned.example"}, body={"banned": True}),
    ("GET", f"{ADMIN}/users/{{user_id}}"): Recipe(params=TARGET),
    ("PUT", f"{ADMIN}/users/{{user_id}}/lock"): Recipe(params=TARGET, body={"locked": True}),
    ("PUT", f"{ADMIN}/users/{{user_id}}/suspend"): Recipe(params=TARGET, body={"suspended": True}),
    ("PUT", f"{ADMIN}/users/{{user_id}}/moderator"): Recipe(params=TARGET, body={"moderator": True}),
    ("POST", f"{ADMIN}/users/{{user_id}}/redact"): Recipe(params=TARGET, body={"reason": "table"}),
    ("POST", f"{ADMIN}/users/{{user_id}}/logout"): Recipe(params=TARGET, body={}),
    ("DELETE", f"{ADMIN}/rooms/{{room_id}}"): Recipe(fresh=True, body={"reason": "table"}),
    ("GET", "/_matrix/client/v1/admin/lock/{user_id}"): Recipe(params=TARGET),
    **{
        ("GET", f"{prefix}/{route}"): Recipe(**MEDIA)
        for prefix in ("/_matrix/client/v1/media", "/_matrix/media/v3")
        for route in (
            "download/{server_name}/{media_id}",
            "download/{server_name}/{media_id}/{filename}",
            "thumbnail/{server_name}/{media_id}",
        )
    },
    ("POST", "/_matrix/media/v3/upload"): Recipe(body=PICTURE),
    ("PUT", "/_matrix/media/v3/upload/{server_name}/{media_id}"): Recipe(
        prepare="reserved", params={"media_id": lambda w, c: w.reserved[own(w, c).user_id]}, body=PICTURE
    ),
    ("POST", "/_matrix/media/v1/create"): Recipe(body={}),
    ("GET", f"{MATRIX}/keys/changes"): Recipe(query="from=s0&to=s1"),
    ("POST", f"{MATRIX}/keys/claim"): Recipe(
        body=lambda w, c: {"one_time_keys": {w.owner.user_id: {w.owner.device_id: "signed_curve25519"}}}
    ),
    ("POST", f"{MATRIX}/keys/query"): Recipe(body=lambda w, c: {"device_keys": {w.owner.user_id: []}}),
    ("POST", f"{MATRIX}/keys/upload"): Recipe(body={"one_time_keys": {}}),
    ("POST", f"{MATRIX}/keys/signatures/upload"): Recipe(body={}),
    ("POST", f"{MATRIX}/keys/device_signing/upload"): Recipe(
        body=lambda w, c: {
            "master_key": {"user_id": own(w, c).user_id, "usage": ["master"], "keys": {"ed25519:dGFibGU": "dGFibGU"}}
        }
    ),
    ("PUT", f"{MATRIX}/presence/{{user_id}}/status"): Recipe(body={"presence": "online"}),
    ("POST", f"{MATRIX}/room_keys/version"): Recipe(body=BACKUP_VERSION),
    ("GET", f"{MATRIX}/room_keys/version/{{version}}"): Recipe(prepare="backup"),
    ("DELETE", f"{MATRIX}/room_keys/version/{{version}}"): Recipe(prepare="backup"),
    ("PUT", f"{MATRIX}/room_keys/version/{{version}}"): Recipe(
        prepare="backup", body=lambda w, c: {**BACKUP_VERSION, "version": w.backups[own(w, c).user_id]}
    ),
    ("GET", f"{MATRIX}/room_keys/keys"): Recipe(**BACKUP),
    ("DELETE", f"{MATRIX}/room_keys/keys"): Recipe(**BACKUP),
    ("PUT", f"{MATRIX}/room_keys/keys"): Recipe(
        **BACKUP, body=lambda w, c: {"rooms": {w.room: {"sessions": {"table": BACKED_UP_KEY}}}}
    ),
    ("GET", f"{MATRIX}/room_keys/keys/{{room_id}}"): Recipe(**BACKUP),
    ("DELETE", f"{MATRIX}/room_keys/keys/{{room_id}}"): Recipe(**BACKUP),
    ("PUT", f"{MATRIX}/room_keys/keys/{{room_id}}"): Recipe(**BACKUP, body={"sessions": {"table": BACKED_UP_KEY}}),
    ("GET", f"{MATRIX}/room_keys/keys/{{room_id}}/{{session_id}}"): Recipe(**BACKUP),
    ("DELETE", f"{MATRIX}/room_keys/keys/{{room_id}}/{{session_id}}"): Recipe(**BACKUP),
    ("PUT", f"{MATRIX}/room_keys/keys/{{room_id}}/{{session_id}}"): Recipe(**BACKUP, body=BACKED_UP_KEY),
    ("POST", f"{MATRIX}/rooms/{{room_id}}/report"): Recipe(body={"reason": "table"}),
    ("POST", f"{MATRIX}/rooms/{{room_id}}/report/{{event_id}}"): Recipe(body={"reason": "table", "score": -50}),
    ("POST", f"{MATRIX}/users/{{user_id}}/report"): Recipe(params=TARGET, body={"reason": "table"}),
    ("POST", f"{MATRIX}/search"): Recipe(body={"search_categories": {"room_events": {"search_term": "hello"}}}),
    ("PUT", f"{MATRIX}/sendToDevice/{{event_type}}/{{txn_id}}"): Recipe(
        params={"event_type": "org.example.table"},
        body=lambda w, c: {"messages": {w.owner.user_id: {w.owner.device_id: {"value": 1}}}},
    ),
    ("PUT", f"{MATRIX}/user/{{user_id}}/rooms/{{room_id}}/tags/{{tag}}"): Recipe(body={"order": 0.5}),
    ("POST", f"{MATRIX}/user_directory/search"): Recipe(body={"search_term": "user"}),
    ("PUT", "/_matrix/client/v1/admin/lock/{user_id}"): Recipe(params=TARGET, body={"locked": True}),
    ("GET", "/_matrix/client/v1/admin/suspend/{user_id}"): Recipe(params=TARGET),
    ("PUT", "/_matrix/client/v1/admin/suspend/{user_id}"): Recipe(params=TARGET, body={"suspended": True}),
    ("GET", "/_matrix/federation/v1/query/directory"): Recipe(query=lambda w, c: f"room_alias={quote(w.alias)}"),
    ("GET", "/_matrix/federation/v1/query/profile"): Recipe(query=lambda w, c: f"user_id={quote(w.owner.user_id)}"),
    ("PUT", "/_matrix/federation/v2/send_join/{room_id}/{event_id}"): Recipe(body=SIGNED_MEMBERSHIP),
    ("PUT", "/_matrix/federation/v2/send_leave/{room_id}/{event_id}"): Recipe(body=SIGNED_MEMBERSHIP),
    ("PUT", "/_matrix/federation/v2/invite/{room_id}/{event_id}"): Recipe(
        body={"room_version": "12", "event": SIGNED_MEMBERSHIP, "invite_room_state": []}
    ),
    ("GET", "/_matrix/federation/v1/state/{room_id}"): Recipe(query=lambda w, c: f"event_id={quote(w.event)}"),
    ("GET", "/_matrix/federation/v1/state_ids/{room_id}"): Recipe(query=lambda w, c: f"event_id={quote(w.event)}"),
    ("GET", "/_matrix/federation/v1/backfill/{room_id}"): Recipe(query=lambda w, c: f"v={quote(w.event)}&limit=5"),
    ("POST", "/_matrix/federation/v1/get_missing_events/{room_id}"): Recipe(
        body=lambda w, c: {"earliest_events": [], "latest_events": [w.event], "limit": 5}
    ),
    ("PUT", "/_matrix/federation/v1/send/{txn_id}"): Recipe(
        body={"origin": "other.example", "origin_server_ts": 1, "pdus": [], "edus": []}
    ),
    ("POST", "/api/users/"): Recipe(body=lambda w, c: {"username": unique(w, "api"), "password": DEFAULT_PASSWORD}),
    ("PUT", "/api/users/{number}/block/"): Recipe(
        params={"number": lambda w, c: w.target_number}, body={"is_active": False}
    ),
    ("POST", "/api/auth/tokens/"): Recipe(
        body=lambda w, c: {"username": own(w, c).localpart, "password": DEFAULT_PASSWORD}
    ),
    ("POST", "/api/rooms/"): Recipe(body=lambda w, c: {"name": unique(w, "api room ")}),
    ("PUT", "/api/rooms/{number}/"): Recipe(body=lambda w, c: {"name": unique(w, "renamed ")}),
    # PATCH edits the member list instead: everyone joined but the target.
    ("PATCH", "/api/rooms/{number}/"): Recipe(
        fresh=True,
        prepare="numbers",
        body=lambda w, c: {
            "users": [w.numbers[w.accounts[name].user_id] for name in ("user", "member", "susp", "locked")]
        },
    ),
    ("DELETE", "/api/rooms/{number}/"): Recipe(fresh=True),
    ("POST", "/api/rooms/{number}/messages/"): Recipe(body={"text": "from the table"}),
    ("POST", "/api/messages/"): Recipe(body=lambda w, c: {"text": "from the table", "user_to": w.target_number}),
}


def default_param(world: World, caller: Account | None, name: str) -> str:
    """A path parameter no recipe names: the world's room, event, alias,
    /api room, or the caller's own account, device and filter."""
    me = own(world, caller)
    values = {
        "room_id": world.room,
        "room_id_or_alias": world.room,
        "alias": world.alias,
        "event_id": world.event,
        "user_id": me.user_id,
        "device_id": me.device_id,
        "filter_id": world.filters.get(me.user_id, "0"),
        "number": str(world.api_room),
        "event_type": "m.room.message",
        "state_key": "",
        "receipt_type": "m.read",
        "data_type": "org.example.table",
        "scope": "global",
        "kind": "override",
        "rule_id": ".m.rule.master",
        "txn_id": unique(world, "t"),
        "server_name": world.media.split("/")[0] or SERVER,
        "media_id": world.media.split("/")[-1],
        "filename": "table.png",
        "rel_type": "m.thread",
        "report_id": world.report,
        "version": world.backups.get(me.user_id, "0"),
        "session_id": "table",
        "tag": "u.work",
    }
    return values[name]


def resolve(value: Any, world: World, caller: Account | None) -> Any:
    return value(world, caller) if callable(value) else value


async def send(world: World, method: str, path: str, caller: Account | None) -> int:
    """What ``caller`` (None: anonymous) gets for the row's request."""
    recipe = RECIPES.get((method, path), Recipe())
    params = {
        name: resolve(recipe.params.get(name), world, caller)
        if name in recipe.params
        else default_param(world, caller, name)
        for name in _names(path)
    }
    concrete = path.format(**{name: quote(str(value), safe="") for name, value in params.items()})
    query = resolve(recipe.query, world, caller)
    if query:
        concrete += "?" + query
    token = caller.access_token if caller else None
    if path == "/_atomchat/client/v1/stream":
        return await stream_status(world.base_url + concrete, token)
    status, _ = await call(
        world.base_url,
        method,
        concrete,
        resolve(recipe.body, world, caller),
        token,
        "Token" if path.startswith("/api/") else "Bearer",
    )
    return status


def _names(path: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(path) if name]


async def stream_status(url: str, token: str | None) -> int:
    """101 when the WebSocket opens (closed again at once), else the refusal's status."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        connection = await websocket_connect(HTTPRequest(url.replace("http", "ws", 1), headers=headers))
    except HTTPClientError as error:
        return error.code
    connection.close()
    return 101


# -- the table's tests --------------------------------------------------------------------


def test_the_table_has_a_row_for_every_operation_and_no_other():
    assert sorted(ROWS) == DOCUMENTED
    assert set(RECIPES) <= set(ROWS)


@pytest.mark.parametrize(("method", "path"), DOCUMENTED, ids=[f"{m} {p}" for m, p in DOCUMENTED])
async def test_authorization(threaded_server, method, path):
    recipe = RECIPES.get((method, path), Recipe())
    world = None
    got: dict[str, int] = {}
    for name in CALLERS:
        if world is None or (recipe.fresh and list(got.values())[-1] < 300):
            world = await build_world(threaded_server, next(NUMBERS), recipe.prepare)
        got[name] = await send(world, method, path, None if name == "anon" else world.accounts[name])
    expected = ROWS.get((method, path))
    assert expected is not None and got == expected, "\n".join(
        f"{name}: expected {expected.get(name) if expected else None}, got {got[name]}"
        for name in CALLERS
        if not expected or got[name] != expected[name]
    )
