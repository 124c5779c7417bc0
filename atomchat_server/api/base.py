"""What every handler shares: JSON in and out, errors as data, authentication,
CORS, body limits and the count of requests in flight (for graceful shutdown)."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from asyncio import Future
from collections.abc import Awaitable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import tornado.web
from tornado.log import app_log, gen_log

from .. import logs, metrics
from ..auth.sessions import Requester
from ..auth.tokens import TokenClaims
from ..db.pool import UNREACHABLE
from ..errors import MatrixError, bad_json, invalid_param, unavailable
from ..validation import int64, load_json, schemas

if TYPE_CHECKING:
    from ..app import AppContext

log = logging.getLogger("atomchat.http")

# What may carry a credential in text Tornado logs about a request it could
# not parse (a header, a query): token parameters, Authorization values,
# JWTs (access tokens) and refresh tokens.
_SECRET = re.compile(
    r"(?i)((?:access_token|refresh_token|password)=|authorization['\":\s]+\w+\s+)[^&;\s'\",]+"
    r"|eyJ[\w-]+\.[\w-]+\.[\w-]+|atomchat_rt_[\w-]+"
)


class RedactSecrets(logging.Filter):
    """Rewrites a record's message with every credential replaced by
    "[redacted]". On Tornado's own loggers, whose messages can quote a
    malformed request; the server's handlers never log a query or a body."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = _SECRET.sub(lambda match: (match.group(1) or "") + "[redacted]", message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def redact_tornado_logs() -> None:
    """Installs RedactSecrets on Tornado's loggers, once per process."""
    for name in ("tornado.general", "tornado.application", "tornado.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())


CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
}


HTTP_METHODS = ("get", "put", "post", "delete", "patch")


def handler_methods(handler: type) -> list[str]:
    """The HTTP methods a handler class implements itself, rather than
    inheriting Tornado's 405 (OPTIONS, the CORS preflight, is not counted)."""
    return [m for m in HTTP_METHODS if getattr(handler, m, None) is not getattr(tornado.web.RequestHandler, m, None)]


def forwarded_client(peer: str, forwarded: Iterable[str], trusted: tuple) -> str:
    """The client's address as the trusted proxies saw it: starting from the
    peer, each address that is a trusted proxy is replaced by the one it
    forwarded for (X-Forwarded-For, read from the right, as each proxy
    appends its own peer). Whatever a client wrote into the header itself
    lies further left, and is never reached past an untrusted address."""
    hops = [hop.strip() for header in forwarded for hop in header.split(",")]
    address = peer
    while hops and within(address, trusted):
        hop = hops.pop()
        if not within(hop, ()):
            break  # not an address: keep what the last trusted proxy saw
        address = hop
    return address


def within(address: str, networks: tuple) -> bool:
    """Whether ``address`` lies in one of ``networks``; with none, whether it is an IP address at all."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return not networks or any(ip in network for network in networks)


def client_address(handler: tornado.web.RequestHandler) -> str:
    """The address of the client a request came from (for rate limits, the
    devices' last-seen address and the request log), worked out once."""
    address: str | None = getattr(handler, "_client_address", None)
    if address is None:
        request = handler.request
        ctx = getattr(handler, "ctx", None)
        trusted = ctx.settings.trusted_proxies if ctx is not None else ()
        address = request.remote_ip or "0.0.0.0"  # Tornado's server always sets it: 0.0.0.0 for a non-IP peer
        if trusted:
            address = forwarded_client(address, request.headers.get_list("X-Forwarded-For"), trusted)
        handler._client_address = address  # type: ignore[attr-defined]
    return address


def authorization_token(
    handler: tornado.web.RequestHandler, schemes: tuple[str, ...], refusal: MatrixError
) -> str | None:
    """The token of the request's ``Authorization: <scheme> <token>``
    header; None without the header, ``refusal`` raised when its scheme
    (any case) is not one of ``schemes`` or it carries no token. Each
    surface names its schemes (Matrix: bearer; /api: token and bearer; the
    WebSocket stream: both) and its own refusal."""
    header = handler.request.headers.get("Authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() not in schemes or not token.strip():
        raise refusal
    return token.strip()


# What a spent request's query arguments are replaced with (spend_request):
# one empty copy for all of them, which nothing writes to.
_SPENT_ARGUMENTS: dict[str, list[bytes]] = {}


def spend_request(handler: tornado.web.RequestHandler) -> None:
    """Drops what a request that stays open (a long-poll, a WebSocket
    stream) has read and no longer needs: its query (the sync token among
    it) and its credential. With thousands open, they are most of what a
    request holds beyond a bare one's; the request line logged is the path."""
    request = handler.request
    request.arguments = request.query_arguments = _SPENT_ARGUMENTS
    request.uri, request.query = request.path, ""
    request.headers.pop("Authorization", None)


def database_unavailable() -> MatrixError:
    return unavailable("The server cannot reach its database; try again shortly")


def request_id(handler: tornado.web.RequestHandler) -> str:
    """The request's id (logs.py), made once, and returned in a header of
    every answer, error or not (see BaseHandler.flush)."""
    rid: str | None = getattr(handler, "_request_id", None)
    if rid is None:
        rid = handler._request_id = logs.request_id(handler.request.headers.get(logs.HEADER))  # type: ignore[attr-defined]
    return rid


def begin_request(handler: tornado.web.RequestHandler) -> None:
    """Names the request in every line logged while it is handled."""
    logs.REQUEST_ID.set(request_id(handler))


class BaseHandler(tornado.web.RequestHandler):
    """Base of every handler. ``self.ctx`` is the running server's AppContext."""

    def initialize(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.requester: Requester | None = None
        # The access token's claims once authenticate() has read them: what
        # a sync session keeps rather than the token.
        self.claims: TokenClaims | None = None

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")

    def answer_headers(self) -> None:
        """The headers every answer carries, error or not: CORS and the
        request's id. Added as the answer is written, so that a request
        that waits (a long-poll) does not hold them meanwhile."""
        for name, value in CORS_HEADERS.items():
            self.set_header(name, value)
        self.set_header(logs.HEADER, request_id(self))

    def flush(self, include_footers: bool = False) -> Future[None]:
        if not self._headers_written:
            self.answer_headers()
        return super().flush(include_footers)

    def body_limit(self) -> int:
        """The largest request body this handler reads, in bytes."""
        limit: int = self.ctx.settings.max_body_bytes
        return limit

    def prepare(self) -> Awaitable[None] | None:
        # Typed as Tornado's: a subclass may make its prepare a coroutine.
        begin_request(self)
        self.ctx.in_flight += 1
        self._counted = True
        if len(self.request.body) > self.body_limit():
            raise MatrixError(413, "M_TOO_LARGE", f"The request body is larger than {self.body_limit()} bytes")
        return None

    def on_finish(self) -> None:
        if getattr(self, "_counted", False):
            self.ctx.in_flight -= 1
            self._counted = False

    def options(self, *args: Any, **kwargs: Any) -> None:
        """CORS preflight: the default headers say everything. (Routes with
        named groups pass their arguments by name.)"""
        self.set_status(204)
        self.clear_header("Content-Type")
        self.finish()

    # -- input ------------------------------------------------------------

    def json_body(self, schema: str | None = None) -> dict[str, Any]:
        """The request body as a JSON object (an empty body reads as {}),
        checked against the named schema."""
        raw = self.request.body
        body = load_json(raw) if raw.strip() else {}
        if not isinstance(body, dict):
            raise bad_json("The body must be a JSON object")
        if schema is not None:
            schemas().check_request(schema, body)
        return body

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        """Path and query arguments as text. PostgreSQL text cannot hold NUL,
        so an argument with one is refused here rather than failing a query."""
        decoded = super().decode_argument(value, name)
        if "\x00" in decoded:
            raise invalid_param("Arguments cannot contain NUL characters")
        return decoded

    def int_argument(self, name: str, default: int) -> int:
        value = self.get_query_argument(name, None)
        return default if value is None else int64(value, name)

    def bool_argument(self, name: str, default: bool) -> bool:
        value = self.get_query_argument(name, None)
        if value is None:
            return default
        if value not in ("true", "false"):
            raise invalid_param(f"'{name}' must be 'true' or 'false'")
        return value == "true"

    def access_token(self) -> str | None:
        token = authorization_token(
            self, ("bearer",), MatrixError(401, "M_MISSING_TOKEN", "The Authorization header must be 'Bearer <token>'")
        )
        if token is not None:
            return token
        # Read raw: a token that is not text (or holds a NUL) is an unknown
        # token, 401, not a bad argument.
        values = self.request.query_arguments.get("access_token")
        return values[-1].decode("utf-8", "replace") if values else None

    async def authenticate(self, *, allow_locked: bool = False) -> Requester:
        token = self.access_token()
        if token is None:
            raise MatrixError(401, "M_MISSING_TOKEN", "Missing access token")
        self.claims = self.ctx.accounts.token_claims(token)
        self.requester = await self.ctx.accounts.authenticate(self.claims, allow_locked=allow_locked)
        await self.ctx.accounts.record_last_seen(self.requester, client_address(self))
        return self.requester

    # -- output -----------------------------------------------------------

    def send_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(body, ensure_ascii=False, separators=(",", ":")))

    def allow(self) -> None:
        """A 405 names the methods the path serves (RFC 9110's Allow)."""
        self.set_header("Allow", ", ".join([m.upper() for m in handler_methods(type(self))] + ["OPTIONS"]))

    @staticmethod
    def failure(kwargs: dict[str, Any]) -> BaseException | None:
        """The exception a request failed with (from write_error's arguments);
        an unreachable database is a 503 to retry, not a server bug."""
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, UNREACHABLE):
            return database_unavailable()
        return error

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = self.failure(kwargs)
        if status_code == 405:
            self.allow()
        if isinstance(error, MatrixError):
            self.set_status(error.status)
            body = error.to_json()
        elif isinstance(error, tornado.web.HTTPError) and status_code in (404, 405):
            body = {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}
        elif status_code < 500:
            body = {"errcode": "M_UNKNOWN", "error": self._reason}
        else:
            body = {"errcode": "M_UNKNOWN", "error": "Internal server error"}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def log_exception(
        self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Tornado's, but naming the request by its path alone: Tornado's
        writes the whole URI, whose query may hold ?access_token=."""
        if isinstance(value, MatrixError):
            return  # an expected refusal, already in the request log line
        if isinstance(value, UNREACHABLE):
            log.warning(
                "%s: the database is unreachable (%s: %s)", self._request_summary(), type(value).__name__, value
            )
        elif isinstance(value, tornado.web.HTTPError):
            gen_log.warning("%d %s", value.status_code, self._request_summary())
        else:
            app_log.error("Uncaught exception %s", self._request_summary(), exc_info=value)

    def _request_summary(self) -> str:
        return f"{self.request.method} {self.request.path} ({client_address(self)})"


class HeadersTooLargeHandler(BaseHandler):
    """Any request whose request line and headers are over the limit (see
    app.Application): 414 when the request line alone is, else 431."""

    def initialize(self, ctx: AppContext, status: int = 431) -> None:
        super().initialize(ctx)
        self._too_large = status

    def prepare(self) -> None:
        super().prepare()
        what = "request line" if self._too_large == 414 else "request line and headers"
        limit = self.ctx.settings.max_header_bytes
        raise MatrixError(
            self._too_large,
            "M_TOO_LARGE",
            f"The {what} are larger than {limit} bytes"
            if self._too_large == 431
            else f"The {what} is larger than {limit} bytes",
        )


class NotFoundHandler(BaseHandler):
    """Any path no route matches."""

    def prepare(self) -> None:
        super().prepare()
        if self.request.method != "OPTIONS":
            raise MatrixError(404, "M_UNRECOGNIZED", "Unrecognized request")


ROUTE = "atomchat_route"  # the request attribute naming the route pattern it matched (app.Application)
UNMATCHED = "unmatched"
# Methods counted by name; any other (a client may send any token) counts as
# OTHER, so that no client can make the metrics grow without bound.
COUNTED_METHODS = frozenset(m.upper() for m in (*HTTP_METHODS, "options", "head"))


def log_request(handler: tornado.web.RequestHandler) -> None:
    """One line per request: client address, method, path (never the query,
    which may hold a token), status and milliseconds, with the request's id;
    and the request counted in the metrics by its route's pattern."""
    status = handler.get_status()
    request = handler.request
    seconds = request.request_time()
    method = request.method if request.method in COUNTED_METHODS else "OTHER"
    metrics.REQUESTS.labels(getattr(request, ROUTE, UNMATCHED), method, status).observe(seconds)
    level = logging.INFO if status < 500 else logging.ERROR
    log.log(
        level,
        "%s %s %s %d %.1fms",
        client_address(handler),
        request.method,
        request.path,
        status,
        1000.0 * seconds,
        extra={"request_id": getattr(handler, "_request_id", None)},
    )
