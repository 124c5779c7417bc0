"""The AtomChat WebSocket event stream: /_atomchat/client/v1/stream.

One socket per client. The server pushes frames shaped like /sync responses,
each with its ``next_batch``, as soon as something happens; a client that
reconnects with the last ``next_batch`` it received misses nothing. The
client may also send requests ({"id", "method", "params"}) on the socket.
Framing, close codes and resume rules: protocol/stream.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import tornado.httputil
import tornado.iostream
import tornado.websocket

from .. import logs
from ..auth.sessions import Requester
from ..auth.tokens import TokenClaims
from ..clock import REAL, Clock, Timer
from ..db.pool import UNREACHABLE
from ..errors import MatrixError
from ..events.filters import CompiledFilter
from ..sync import tokens
from ..sync.builder import SyncResult
from ..sync.session import SyncSession
from ..validation import load_json, schemas
from .base import (
    BaseHandler,
    authorization_token,
    begin_request,
    client_address,
    database_unavailable,
    request_id,
    spend_request,
)
from .contract import Op, Param
from .matrix_sync import load_filter

if TYPE_CHECKING:
    from ..app import AppContext

log = logging.getLogger("atomchat.stream")

# Close codes (protocol/stream.md).
CLOSE_AUTH_TIMEOUT = 4001
CLOSE_BAD_FRAME = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 4408
CLOSE_TOO_MANY = 4429
CLOSE_GOING_AWAY = 1001
CLOSE_PING_TIMEOUT = 1000
CLOSE_TRY_AGAIN = 1013  # the server cannot serve the stream right now (a 503): reconnect with since

AUTH_TIMEOUT_SECONDS = 10.0
# Bytes written to a socket but not yet taken by the peer, past which the
# client is too slow and is closed (it resumes from its last next_batch).
MAX_PENDING_BYTES = 1 << 20
_FIN = 0x80  # a frame that is a whole message
_TEXT_FRAME = 0x1  # WebSocket opcode
# What an open stream's request and answer headers are replaced with once
# the upgrade is done (StreamHandler.open): one empty copy for all of them,
# which nothing writes to after the 101.
_SPENT_HEADERS = tornado.httputil.HTTPHeaders()


def text_frame(text: str) -> bytes:
    """A WebSocket text frame, as the server sends it: whole, unmasked, and
    uncompressed (get_compression_options() is None: none is negotiated)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", _FIN | _TEXT_FRAME, size)
    elif size <= 0xFFFF:
        header = struct.pack("!BBH", _FIN | _TEXT_FRAME, 126, size)
    else:
        header = struct.pack("!BBQ", _FIN | _TEXT_FRAME, 127, size)
    return header + payload


def sync_frame(answer: str) -> bytes:
    """The "sync" frame of an answer's JSON text."""
    return text_frame('{"type":"sync",' + answer[1:])


class OpenStreams:
    """The open streams, and their heartbeat: one timer for all of them
    rather than a task per socket (which cost 1.6 KB a socket, idle or not).
    Each beat closes the streams that did not answer the previous beat's
    ping and pings the others, so a dead peer is dropped within two beats
    (protocol/stream.md, Heartbeats)."""

    def __init__(self, ping_seconds: float, clock: Clock = REAL) -> None:
        self._streams: set[StreamHandler] = set()
        self._ping_seconds = ping_seconds
        self._clock = clock
        self._beat: Timer | None = None
        # The last answer pushed, and its frame (pushed_frame).
        self._last_answer: str | None = None
        self._last_frame = b""

    def start(self) -> None:
        self._beat = self._clock.call_later(self._ping_seconds, self._ping_all)

    def stop(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None

    def add(self, stream: StreamHandler) -> None:
        self._streams.add(stream)

    def discard(self, stream: StreamHandler) -> None:
        self._streams.discard(stream)

    def __len__(self) -> int:
        return len(self._streams)

    def pushed_frame(self, answer: str) -> bytes:
        """The "sync" frame of an answer the notifier pushes (its JSON text).
        The streams it pushes the same text to (the event cache shares it
        among readers to whom the events look the same) write the frame
        made for the first of them."""
        if answer is not self._last_answer:
            self._last_answer = answer
            self._last_frame = sync_frame(answer)
        return self._last_frame

    def __iter__(self) -> Iterator[StreamHandler]:
        """Over a copy: a stream may close, and leave the set, meanwhile."""
        return iter(list(self._streams))

    def _ping_all(self) -> None:
        self.start()  # the next beat
        for stream in self:
            try:
                stream.heartbeat()
            except Exception:  # one broken socket must not leave the others unpinged
                log.exception("heartbeat of a stream failed")


class StreamHandler(tornado.websocket.WebSocketHandler):
    contract = {
        "get": Op(
            "Open the WebSocket event stream",
            {101: None},
            auth="optional",
            errors=(404, 429),
            description="A WebSocket upgrade (protocol/stream.md); without a token, authenticate with the first frame.",
            query=(
                Param("since", description="The next_batch of the last frame received"),
                Param("filter", description="A filter id or a filter as JSON"),
                Param(
                    "set_presence",
                    {"type": "string", "enum": ["online", "unavailable", "offline"]},
                    "What the open stream says about its user's presence (default online)",
                ),
            ),
        )
    }

    # Thousands of streams stay open for days: AtomChat's fields live in
    # slots, leaving the instance dict to Tornado's own (as many as a bare
    # WebSocketHandler has), which our dozen more made twice its size.
    __slots__ = (
        "ctx",
        "requester",
        "_claims",
        "_since",
        "_typing_mark",
        "_filter",
        "_filter_param",
        "_set_presence",
        "_task",
        "_session",
        "_pending",
        "_closing",
        "_answered",
        "_ping_position",
        "_counted",
        "_request_id",  # api/base.py's request_id() and client_address() keep theirs here
        "_client_address",
    )

    def initialize(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.requester: Requester | None = None
        self._claims: TokenClaims | None = None  # of the access token, which is not kept (see TokenCodec)
        self._since: int | None = None
        self._typing_mark: str | None = None
        self._filter: CompiledFilter | None = None
        self._filter_param: str | None = None
        self._set_presence = "online"
        self._task: asyncio.Task | None = None
        self._session: SyncSession | None = None
        self._pending = 0
        self._closing = False
        self._answered = True  # the peer answered the last heartbeat ping
        self._ping_position: int | None = None  # the stream position its frames had reached at that ping
        self._counted: str | None = None  # the account whose open streams count this one

    # Errors before the upgrade are JSON, as on every other path (Tornado's
    # own 405, for a method it does not know, included).
    write_error = BaseHandler.write_error
    failure = staticmethod(BaseHandler.failure)

    def set_default_headers(self) -> None:
        self.set_header(logs.HEADER, request_id(self))

    def allow(self) -> None:
        """The stream is a GET that upgrades; nothing else, not even a preflight."""
        self.set_header("Allow", "GET")

    def check_origin(self, origin: str) -> bool:
        return True  # authentication is by token, never by cookie: any origin may connect

    async def prepare(self) -> None:
        """Checks what can be checked before the upgrade, answering in JSON."""
        begin_request(self)
        client_address(self)  # worked out now: open() drops the headers it comes from
        try:
            if self.request.method != "GET":
                self.allow()
                raise MatrixError(405, "M_UNRECOGNIZED", "Unrecognized request")
            if self.request.headers.get("Upgrade", "").lower() != "websocket":
                raise MatrixError(
                    400, "M_UNRECOGNIZED", "This endpoint is a WebSocket: connect with an Upgrade request"
                )
            since = self.get_query_argument("since", None)
            self._since, self._typing_mark = tokens.parse_sync(since) if since else (None, None)
            self._set_presence = self.get_query_argument("set_presence", "online")
            if self._set_presence not in ("online", "unavailable", "offline"):
                raise MatrixError(400, "M_INVALID_PARAM", "'set_presence' is one of online, unavailable, offline")
            token = self._header_or_query_token()
            if token is not None:
                self._claims = self.ctx.accounts.token_claims(token)
                self.requester = await self.ctx.accounts.authenticate(self._claims)
            self._filter_param = self.get_query_argument("filter", None)
            user = self.requester.user_id if self.requester else None
            if user is not None:
                self._filter = await load_filter(self.ctx, user, self._filter_param)
                self._count(user)
        except MatrixError as error:
            self.set_status(error.status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(error.to_json()))

    def _header_or_query_token(self) -> str | None:
        token = authorization_token(
            self,
            ("bearer", "token"),
            MatrixError(401, "M_MISSING_TOKEN", "The Authorization header must be 'Bearer <token>' or 'Token <token>'"),
        )
        if token is not None:
            return token
        return self.get_query_argument("access_token", None)

    def open(self) -> None:
        # Everything wanted from the upgrade request has been read, and the
        # 101 answer written; a socket may stay open for days, and the parsed
        # headers of both and the query (the token among them) are kilobytes.
        spend_request(self)
        self.request.headers = self._headers = _SPENT_HEADERS
        # The HTTP/1 connection the upgrade came on has handed its socket to
        # the WebSocket protocol (detach) and serves nothing more, but it
        # keeps the request line (the token in its query) and the original
        # headers for as long as it is referenced, by the request alone.
        self.request.connection = None
        # Frames are small and pushed as things happen: each goes out at
        # once, not held back by Nagle's algorithm until the peer
        # acknowledges the one before (Tornado turns it back on after the 101).
        self.set_nodelay(True)
        self.ctx.streams.add(self)
        if self.requester is not None:
            self._start()
        else:
            self.ctx.clock.call_later(AUTH_TIMEOUT_SECONDS, self._auth_deadline)

    def _auth_deadline(self) -> None:
        if self.requester is None:
            self._close(CLOSE_AUTH_TIMEOUT, "no auth frame within 10 seconds")

    def _start(self) -> None:
        assert self.requester is not None and self._claims is not None and self._filter is not None, (
            "started once authenticated"
        )
        self.ctx.presence.seen_soon(self.requester.user_id, self._set_presence)  # an open stream keeps its user present
        session = self._session = SyncSession(
            self.ctx,
            self.requester,
            self._claims,
            self._filter,
            self._since,
            typing_mark=self._typing_mark,
            limit_timeline=False,
        )
        session.push_to(self)
        session.listener.woken = self._woken
        self._task = asyncio.ensure_future(self._answer(session, first=True))

    # -- pushing sync frames -----------------------------------------------------

    def _woken(self) -> None:
        """Something the notifier could not answer itself arrived for an idle
        stream: a task makes the frames, and ends when there is nothing more
        to say. An idle stream holds no task (one cost 2 KB a socket)."""
        if self._task is None and not self._closing and self._session is not None:
            self._task = asyncio.ensure_future(self._answer(self._session, first=False))

    async def _answer(self, session: SyncSession, *, first: bool) -> None:
        """Sends frames while there is something to say (the first: the
        initial sync, or what happened since the client's token)."""
        try:
            if first and self._since is not None:
                await session.acknowledge(self._since)
            while not self._closing:
                result = await session.frame(new_request=first)
                first = False
                if session.listener.revoked:
                    self._close(CLOSE_GOING_AWAY, "server shutting down")
                    return
                if result is None:
                    return
                self._send_frame(sync_frame(result.json()))
                # Not kept while waiting for the next: a first frame holds
                # the whole initial sync, thousands of objects per socket.
                result = None
        except MatrixError as error:  # the token was revoked, or the server is unavailable
            self._close_for(error)
        except tornado.websocket.WebSocketClosedError:
            self._closing = True
        except Exception:
            log.exception("stream of %s failed", session.requester.user_id)
            self._close(1011, "internal error")
        finally:
            self._task = None
            if self._closing:
                session.close()

    def pushed(self, result: SyncResult) -> None:
        """The notifier's writer (SyncSession.push). A socket found closing
        as the notifier writes to it ends its stream, as its close callback
        soon will; the notifier goes on to the others."""
        try:
            self._send_frame(self.ctx.streams.pushed_frame(result.json()))
        except tornado.websocket.WebSocketClosedError:
            self._closing = True
            if self._session is not None:
                self._session.client_gone()

    def _close_for(self, error: MatrixError) -> None:
        """Ends the stream over a refusal: 1013 when the server is briefly
        unable to serve (the client reconnects with its last token), else 4401."""
        self._close(CLOSE_TRY_AGAIN if error.status == 503 else CLOSE_UNAUTHORIZED, error.error[:100])

    def _send(self, frame: dict[str, Any]) -> None:
        self._send_frame(text_frame(json.dumps(frame, ensure_ascii=False, separators=(",", ":"))))

    def _send_frame(self, frame: bytes) -> None:
        """Writes a frame (text_frame), or closes the socket if the peer is too far behind."""
        if self._closing:
            return
        if self._pending > MAX_PENDING_BYTES:
            self._close(CLOSE_TOO_SLOW, "too slow: reconnect with since=<the last next_batch you received>")
            return
        connection = self.ws_connection
        if connection is None or connection.is_closing():
            raise tornado.websocket.WebSocketClosedError()
        # Straight to the socket while nothing waits to be written before
        # it: write_message() would wrap the write in a Task, and the
        # stream's write() in a Future and its buffer, which with hundreds
        # of sockets per event were most of the fan-out's CPU. What the
        # socket does not take now goes through the stream.
        stream = cast(tornado.websocket.WebSocketProtocol13, connection).stream
        sent = 0
        if type(stream) is tornado.iostream.IOStream and not stream.writing():
            # A failed send leaves the frame to the stream's write, which
            # meets the same error and closes the stream.
            with contextlib.suppress(OSError):
                sent = stream.socket.send(frame)
        if sent == len(frame):
            return
        try:
            future = stream.write(memoryview(frame)[sent:])
        except tornado.iostream.StreamClosedError:
            raise tornado.websocket.WebSocketClosedError() from None
        # The peer is behind: counted until the stream has written it all.
        size = len(frame) - sent
        self._pending += size

        def written(future: asyncio.Future[None]) -> None:
            self._pending -= size
            if not future.cancelled():
                future.exception()  # a lost connection is handled by on_close

        future.add_done_callback(written)

    def _close(self, code: int, reason: str) -> None:
        if not self._closing:
            self._closing = True
            self.close(code, reason)

    # -- requests from the client ---------------------------------------------------

    async def on_message(self, message: str | bytes) -> None:
        try:
            frame = load_json(message, "A frame")
        except MatrixError as error:
            self._close(CLOSE_BAD_FRAME, error.error[:120])
            return
        if self.requester is None:
            await self._authenticate_frame(frame)
            return
        request_id = frame.get("id") if isinstance(frame, dict) else None
        if not _is_request_id(request_id):
            # A reply could not carry it, and the client could not match it.
            self._close(CLOSE_BAD_FRAME, "requests need an id, a string or an integer")
            return
        try:
            method = frame.get("method")
            if isinstance(method, str) and method not in _methods():
                raise MatrixError(400, "M_UNRECOGNIZED", f"Unknown method {method!r}")
            schemas().check_request("stream/request", frame)
            result = await self._call(frame["method"], frame.get("params", {}))
            reply = {"id": request_id, "result": result}
        except MatrixError as error:
            reply = {"id": request_id, "error": error.to_json()}
        except UNREACHABLE:
            reply = {"id": request_id, "error": database_unavailable().to_json()}
        self._send(reply)

    async def _authenticate_frame(self, frame: Any) -> None:
        if not isinstance(frame, dict) or frame.get("type") != "auth" or not isinstance(frame.get("access_token"), str):
            self._close(CLOSE_UNAUTHORIZED, 'the first frame must be {"type": "auth", "access_token": ...}')
            return
        try:
            claims = self.ctx.accounts.token_claims(frame["access_token"])
            self.requester = await self.ctx.accounts.authenticate(claims)
            self._filter = await load_filter(self.ctx, self.requester.user_id, self._filter_param)
        except MatrixError as error:
            self._close_for(error)
            return
        try:
            self._count(self.requester.user_id)
        except MatrixError as error:
            self._close(CLOSE_TOO_MANY, error.error[:120])
            return
        self._claims = claims
        self._start()

    async def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        requester = self.requester
        assert requester is not None, "on_message authenticates first"
        if method == "ping":
            return {}
        if method == "send":
            schemas().check_request("stream/send.params", params)
            schemas().check_content(params["type"], params["content"])
            event_id = await self.ctx.rooms.send(
                requester, params["room_id"], params["type"], params["content"], params["txn_id"]
            )
            return {"event_id": event_id}
        if method == "typing":
            schemas().check_request("stream/typing.params", params)
            await self.ctx.ephemeral.typing(
                requester, params["room_id"], requester.user_id, params["typing"], params.get("timeout", 30_000)
            )
            return {}
        # "receipt": on_message lets only the methods stream/request names through.
        schemas().check_request("stream/receipt.params", params)
        await self.ctx.ephemeral.receipt(
            requester, params["room_id"], params.get("receipt_type", "m.read"), params["event_id"]
        )
        return {}

    def _count(self, user_id: str) -> None:
        """Counts this stream among the account's open ones (refused past
        the limit); on_close gives the place back."""
        if self._counted is None:
            self.ctx.open_streams.take(user_id)
            self._counted = user_id

    def on_finish(self) -> None:
        """A request refused before the upgrade gives back its place."""
        if self.get_status() != 101:
            self._uncount()

    def _uncount(self) -> None:
        if self._counted is not None:
            self.ctx.open_streams.give_back(self._counted)
            self._counted = None

    def on_close(self) -> None:
        self._uncount()
        self._closing = True
        if self._session is not None:
            self._session.client_gone()
            if self._task is None:  # else the task closes it as it ends
                self._session.close()
        self.ctx.streams.discard(self)

    def heartbeat(self) -> None:
        """Pings the peer; closes the socket if the previous ping went unanswered."""
        if self._closing:
            return
        if not self._answered:
            self._close(CLOSE_PING_TIMEOUT, "ping timed out")
            return
        self._answered = False
        self._ping_position = self._session.since if self._session is not None else None
        with contextlib.suppress(tornado.websocket.WebSocketClosedError):
            self.ping()

    def on_pong(self, data: bytes) -> None:
        """The peer has read every frame written before the ping: the to-device
        messages in them are acknowledged, as a long-poll's next since would."""
        self._answered = True
        if self.requester is not None:
            self.ctx.presence.seen_soon(self.requester.user_id, self._set_presence)
        position, self._ping_position = self._ping_position, None
        session = self._session
        # A task only when messages may be waiting: every stream pongs each
        # beat, and thousands of tasks at once for nothing cost memory and CPU.
        if position is not None and session is not None and session.unacknowledged and not self._closing:
            asyncio.ensure_future(self._acknowledge(session, position))

    async def _acknowledge(self, session: SyncSession, position: int) -> None:
        try:
            await session.acknowledge(position)
        except Exception:  # a lost database connection: the next pong acknowledges again
            log.warning("could not acknowledge to-device messages of %s", session.requester.user_id, exc_info=True)

    def shutdown(self) -> None:
        """Server shutdown: tell the client to come back later."""
        self._close(CLOSE_GOING_AWAY, "server shutting down")


def _is_request_id(value: Any) -> bool:
    """A string or an integer (as JSON Schema counts them: 7 and 7.0, never
    true), which a reply can echo (schemas/stream/request.json)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, (str, int)) or (isinstance(value, float) and value.is_integer())


def _methods() -> list[str]:
    """The request methods, as schemas/stream/request.json lists them."""
    return schemas().document("stream/request")["properties"]["method"]["enum"]


def routes() -> list[tuple[str, type]]:
    return [(r"/_atomchat/client/v1/stream", StreamHandler)]
