"""Builds the running server: its services, its routes and their lifecycle.

``AtomChat`` owns everything that lives as long as the server: the pool, the
notifier, the password hasher, the services. ``start()`` brings them up in
order and returns the Tornado application; ``stop()`` takes them down in
reverse. Tests build one per test against a fresh database; ``atomchat
serve`` builds one and adds the HTTP listener and signal handling.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import tornado.httpserver
import tornado.httputil
import tornado.web
from signedjson.types import SigningKey

from . import metrics
from .api import (
    admin,
    federation,
    matrix_account,
    matrix_conversations,
    matrix_ephemeral,
    matrix_keys,
    matrix_media,
    matrix_profile,
    matrix_push,
    matrix_rooms,
    matrix_search,
    matrix_services,
    matrix_sync,
    operations,
    stream,
    web,
)
from .api.base import ROUTE, HeadersTooLargeHandler, NotFoundHandler, log_request, redact_tornado_logs
from .api.contract import OPENAPI_PATH, OpenApiHandler, document_json
from .auth import policy
from .auth.passwords import Passwords
from .auth.sessions import SessionCache
from .auth.tokens import TokenCodec, load_or_create_signing_key
from .clock import REAL, Clock
from .compat import handlers as compat
from .compat.service import Compat
from .config import Settings
from .db import migrations
from .db.pool import create_pool
from .federation.client import FederationClient
from .federation.keyring import KeyRing
from .federation.keys import load_or_create_server_key
from .federation.outbox import Outbox
from .notifier import Notifier
from .ratelimit import OpenPerAccount
from .services.accounts import Accounts, RateLimits
from .services.backfill import Backfill
from .services.ephemeral import Ephemeral
from .services.federation import Queries, Transactions
from .services.federation_events import FederationEvents
from .services.federation_join import RemoteMembership
from .services.federation_rooms import FederationRooms
from .services.federation_send import PduSender
from .services.key_backup import KeyBackup
from .services.keys import Keys, device_list_changes, key_state
from .services.media import Media
from .services.moderation import AdminQueries, Blocks, Moderation
from .services.persister import Persister, Signer
from .services.presence import Presence
from .services.profiles import Profiles
from .services.push import PushEvaluator, PushRules
from .services.readiness import Readiness
from .services.relations import Relations, bundle
from .services.reports import Reports
from .services.rooms import Rooms
from .services.search import Search
from .services.server_name import settle_server_name
from .supervisor import Supervisor
from .sync.answer import ServiceReads
from .sync.builder import SyncBuilder
from .sync.event_cache import EventCache
from .sync.filters import Filters
from .sync.session import SyncSessions
from .validation import schemas

log = logging.getLogger("atomchat")


@dataclass
class AppContext:
    """What handlers reach through ``self.ctx``."""

    settings: Settings
    pool: asyncpg.Pool
    accounts: Accounts
    rooms: Rooms
    profiles: Profiles
    notifier: Notifier
    event_cache: EventCache  # what sync keeps of the dispatched events (sync/event_cache.py)
    sync: SyncBuilder
    filters: Filters  # sync filters, compiled once
    ephemeral: Ephemeral
    moderation: Moderation
    admin: AdminQueries
    compat: Compat
    relations: Relations
    reports: Reports
    presence: Presence
    keys: Keys
    key_backup: KeyBackup
    media: Media
    search: Search
    push: PushRules
    open_streams: OpenPerAccount  # per account, WebSocket streams
    long_polls: OpenPerAccount  # per account, /sync requests waiting
    streams: stream.OpenStreams
    server_key: SigningKey  # the ed25519 key other servers know this one by (federation/keys.py)
    readiness: Readiness
    federation_client: FederationClient  # signed requests to other servers
    keyring: KeyRing  # other servers' keys
    outbox: Outbox  # the durable queue of PDUs and EDUs for other servers
    federation_events: FederationEvents  # the PDUs other servers send
    federation_rooms: FederationRooms  # the room protocol other servers speak to this one
    federation_transactions: Transactions  # PUT /send: PDUs to federation_events, EDUs applied
    federation_queries: Queries  # profiles and aliases, asked by and of other servers
    clock: Clock  # the time and timers of expiries and timeouts (clock.py)
    sync_sessions: SyncSessions  # parked between a client's long-polls
    in_flight: int = 0
    openapi: str = ""  # the OpenAPI document of routes(), as served


def routes() -> list[tuple[str, type]]:
    """The one route table: the application serves it and the OpenAPI
    document (api/contract.py) describes it, from each handler's contract."""
    return (
        matrix_account.routes()
        + matrix_rooms.routes()
        + matrix_profile.routes()
        + matrix_sync.routes()
        + matrix_ephemeral.routes()
        + matrix_conversations.routes()
        + matrix_keys.routes()
        + matrix_media.routes()
        + matrix_search.routes()
        + matrix_push.routes()
        + matrix_services.routes()
        + stream.routes()
        + admin.routes()
        + compat.routes()
        + federation.routes()
        + operations.routes()
        + [(OPENAPI_PATH, OpenApiHandler)]
    )


class Application(tornado.web.Application):
    """Tornado's, answering a request whose request line and headers exceed
    max_header_bytes with 414 (the path alone does) or 431, in JSON, instead
    of closing the connection without a word at Tornado's own limit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Each route's kwargs (by id): the kwargs, its pattern, the kwargs without it.
        self._routes_kwargs: dict[int, tuple[dict[str, Any], str, dict[str, Any]]] = {}
        super().__init__(*args, **kwargs)

    def find_handler(self, request: tornado.httputil.HTTPServerRequest, **kwargs: Any) -> tornado.web._HandlerDelegate:
        limit = self.settings["max_header_bytes"]
        line = len(request.method or "") + len(request.uri or "") + len(request.version or "") + 4
        size = line + sum(len(name) + len(value) + 4 for name, value in request.headers.get_all())
        if size > limit:
            answer = compat.HeadersTooLargeHandler if request.path.startswith("/api/") else HeadersTooLargeHandler
            return self.get_handler_delegate(
                request, answer, {"ctx": self.settings["ctx"], "status": 414 if line > limit else 431}
            )
        return super().find_handler(request, **kwargs)

    def get_handler_delegate(
        self,
        request: tornado.httputil.HTTPServerRequest,
        target_class: type[tornado.web.RequestHandler],
        target_kwargs: dict[str, Any] | None = None,
        path_args: list[bytes] | None = None,
        path_kwargs: dict[str, bytes] | None = None,
    ) -> tornado.web._HandlerDelegate:
        """Notes on the request the route pattern it matched, for the
        metrics (each route's kwargs carry it, and the handler never sees it)."""
        if target_kwargs is not None and ROUTE in target_kwargs:
            route, target_kwargs = self._without_route(target_kwargs)
            setattr(request, ROUTE, route)
        return super().get_handler_delegate(request, target_class, target_kwargs, path_args, path_kwargs)

    def _without_route(self, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """A route's pattern, and its kwargs without it: worked out once per
        route (its kwargs live as long as the application), not copied per request."""
        known = self._routes_kwargs.get(id(kwargs))
        if known is None or known[0] is not kwargs:
            rest = dict(kwargs)
            known = self._routes_kwargs[id(kwargs)] = (kwargs, rest.pop(ROUTE), rest)
        return known[1], known[2]


def federation_routes() -> list[tuple[str, type]]:
    """What the federation listener serves: the server-server API (the key
    document included); the client port serves these too, in routes()."""
    return federation.routes()


# The federation listener's hard cap on a body: a full transaction fits.
FEDERATION_MAX_BODY_SIZE = 16 << 20


def federation_server(app: tornado.web.Application, settings: Settings) -> tornado.httpserver.HTTPServer:
    """The HTTPS server other servers reach this one on."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(settings.federation_tls_certificate, settings.federation_tls_private_key)
    return tornado.httpserver.HTTPServer(
        app,
        ssl_options=tls,
        max_body_size=FEDERATION_MAX_BODY_SIZE,
        max_header_size=max(1 << 20, 4 * settings.max_header_bytes),
        idle_connection_timeout=settings.header_timeout_seconds,
        body_timeout=settings.body_timeout_seconds,
    )


def http_server(app: tornado.web.Application, settings: Settings) -> tornado.httpserver.HTTPServer:
    """The HTTP server for the application, with the limits that keep slow
    or oversized clients from holding connections and memory. The hard caps
    sit above the limits the handlers enforce, so that a request over a
    limit still gets a JSON answer: only past them is it cut off."""
    return tornado.httpserver.HTTPServer(
        app,
        max_body_size=max(1 << 20, 4 * settings.max_body_bytes),
        max_header_size=max(1 << 20, 4 * settings.max_header_bytes),
        # Tornado's header timeout is its idle-connection timeout: both
        # are the wait for the next request's headers.
        idle_connection_timeout=settings.header_timeout_seconds,
        body_timeout=settings.body_timeout_seconds,
    )


class ListenerError(Exception):
    """A listener the settings ask for cannot be started; the message says why."""


WRITER_NAME = "atomchat-writer"  # the persister's connection, in pg_stat_activity


def signing_key(settings: Settings) -> bytes:
    if settings.signing_key:
        return settings.signing_key.encode()
    return load_or_create_signing_key(settings.data_path)


class AtomChat:
    def __init__(
        self,
        settings: Settings,
        dsn: str,
        passwords: Passwords | None = None,
        on_fatal: Callable[[str], None] | None = None,
        clock: Clock = REAL,
    ) -> None:
        self.settings = settings
        self.clock = clock  # the time expiries, timeouts and rate limits read (clock.py)
        self.dsn = dsn
        self.passwords = passwords
        # Keeps the notifier's and the persister's tasks running; ``on_fatal``
        # (atomchat serve: stop the process) is called if one cannot be kept.
        self.supervisor = Supervisor(on_fatal)
        self.ctx: AppContext | None = None
        self._pool: asyncpg.Pool | None = None
        self._write_pool: asyncpg.Pool | None = None
        self._notifier: Notifier | None = None
        self._persister: Persister | None = None
        self._own_passwords = passwords is None
        self._unsample: list[Callable[[], None]] = []
        self._federation_http: tornado.httpserver.HTTPServer | None = None

    async def start(self) -> tornado.web.Application:
        settings = self.settings
        redact_tornado_logs()
        schemas()  # compile every schema now: a broken one fails the start, not a request
        policy.common_passwords()  # load the list now, not during someone's registration
        if settings.migrate:
            applied = await migrations.migrate(self.dsn)
            if applied:
                log.info("applied migrations %s", applied)
        else:
            await migrations.check_current(self.dsn)
        self._pool = await create_pool(self.dsn, min_size=settings.pool_min_size, max_size=settings.pool_max_size)
        settings = self.settings = settings.replace(
            server_name=await settle_server_name(self._pool, settings.server_name)
        )
        if self.passwords is None:
            self.passwords = Passwords(
                time_cost=settings.argon2_time_cost,
                memory_kib=settings.argon2_memory_kib,
                parallelism=settings.argon2_parallelism,
                workers=settings.hash_workers,
            )
        codec = TokenCodec(signing_key(settings), settings.server_name, self.clock)
        sessions = SessionCache(self._pool, codec)
        self._notifier = Notifier(self.dsn, self._pool, sessions, self.supervisor, self.clock)
        await self._notifier.start()
        blocks = Blocks()
        accounts = Accounts(
            pool=self._pool,
            server_name=settings.server_name,
            passwords=self.passwords,
            codec=codec,
            sessions=sessions,
            limits=RateLimits.from_settings(settings, self.clock),
            access_token_lifetime=settings.access_token_lifetime_seconds,
            blocks=blocks,
            catch_up=self._notifier.caught_up,
        )
        notifier = self._notifier
        # The writer has a connection of its own: sends must not queue for
        # one behind a burst of reads (hundreds of initial syncs, say).
        self._write_pool = await create_pool(self.dsn, min_size=1, max_size=1, name=WRITER_NAME, time_queries=False)
        server_key = load_or_create_server_key(settings.data_path)
        self._persister = Persister(
            self._write_pool,
            self.supervisor,
            Signer(settings.server_name, server_key),
            on_commit=notifier.committed,
            judge=PushEvaluator(),
        )
        notifier.writer_settled = self._persister.settled
        self._persister.start()
        keys = Keys(pool=self._pool, persister=self._persister, server_name=settings.server_name)
        accounts.devices_changed = keys.devices_changed
        moderation = Moderation(
            pool=self._pool, persister=self._persister, blocks=blocks, server_name=settings.server_name
        )
        notifier.observers.append(moderation.observe)  # before loading, so no rule slips between
        await moderation.start()
        rooms = Rooms(
            pool=self._pool, persister=self._persister, signer=Signer(settings.server_name, server_key), blocks=blocks
        )
        profiles = Profiles(pool=self._pool, rooms=rooms, blocks=blocks)
        presence = Presence(
            pool=self._pool,
            persister=self._persister,
            timeout_seconds=settings.presence_timeout_seconds,
            tracking=settings.track_presence,
            clock=self.clock,
        )
        presence.start()
        media = Media(
            pool=self._pool,
            server_name=settings.server_name,
            root=settings.media_root,
            max_upload_bytes=settings.max_upload_bytes,
            quota_bytes=settings.media_quota_bytes,
        )
        await media.start()
        federation_client = FederationClient(
            settings.server_name,
            server_key,
            verify_certificates=settings.federation_verify_certificates,
            blocklist=settings.federation_ip_range_blocklist,
        )
        outbox = Outbox(self._pool, federation_client, settings.server_name, dsn=self.dsn)
        ephemeral = Ephemeral(
            pool=self._pool,
            persister=self._persister,
            notifier=notifier,
            outbox=outbox if settings.federating else None,
            server_name=settings.server_name,
            clock=self.clock,
        )
        keyring = KeyRing(self._pool, federation_client, settings.server_name, server_key)
        signer = Signer(settings.server_name, server_key)
        federation_events = FederationEvents(
            pool=self._pool, persister=self._persister, keyring=keyring, client=federation_client, policy=blocks
        )
        rooms.remote = RemoteMembership(
            pool=self._pool,
            persister=self._persister,
            signer=signer,
            events=federation_events,
            client=federation_client,
        )
        rooms.history = Backfill(
            pool=self._pool,
            client=federation_client,
            events=federation_events,
            server_name=settings.server_name,
            clock=self.clock,
        )
        if settings.federating:
            sender = PduSender(outbox=outbox, server_name=settings.server_name, position=lambda: notifier.position)
            notifier.observers.append(sender.observe)  # before loading, so no member event slips between
            await sender.load(self._pool)
            self._persister.commit_hooks.append(sender.queue)
        self.ctx = AppContext(
            settings=settings,
            pool=self._pool,
            accounts=accounts,
            rooms=rooms,
            profiles=profiles,
            notifier=notifier,
            event_cache=EventCache(notifier, self.clock),
            filters=Filters(self._pool),
            sync=SyncBuilder(
                self._pool, ServiceReads(presence, bundle, key_state, device_list_changes), notifier.typing
            ),
            ephemeral=ephemeral,
            moderation=moderation,
            admin=AdminQueries(
                pool=self._pool, blocks=blocks, system_user=moderation.system_user, log_out=accounts.logout_all
            ),
            compat=Compat(
                pool=self._pool, persister=self._persister, accounts=accounts, rooms=rooms, moderation=moderation
            ),
            relations=Relations(pool=self._pool, rooms=rooms),
            reports=Reports(pool=self._pool, rooms=rooms),
            presence=presence,
            keys=keys,
            key_backup=KeyBackup(pool=self._pool),
            media=media,
            search=Search(pool=self._pool, rooms=rooms),
            push=PushRules(pool=self._pool, persister=self._persister),
            streams=stream.OpenStreams(settings.websocket_ping_seconds, self.clock),
            clock=self.clock,
            sync_sessions=SyncSessions(self.clock),
            open_streams=OpenPerAccount(settings.max_streams_per_account, "streams"),
            long_polls=OpenPerAccount(settings.max_long_polls_per_account, "long-polls"),
            server_key=server_key,
            federation_client=federation_client,
            keyring=keyring,
            federation_rooms=FederationRooms(
                pool=self._pool,
                persister=self._persister,
                signer=signer,
                events=federation_events,
                outbox=outbox if settings.federating else None,
            ),
            outbox=outbox,
            federation_events=federation_events,
            federation_transactions=Transactions(pool=self._pool, ephemeral=ephemeral, events=federation_events),
            federation_queries=Queries(
                pool=self._pool,
                rooms=rooms,
                profiles=profiles,
                client=federation_client,
                server_name=settings.server_name,
            ),
            readiness=Readiness(self._pool, notifier),
        )
        if settings.federating:
            rooms.remote_aliases = self.ctx.federation_queries.alias
        self.ctx.streams.start()
        assert self.passwords is not None, "made above"
        self._sample(self.ctx, self._pool, self.passwords)
        await self.ctx.compat.upgrade_old_api_rooms()
        if settings.federating:  # else no connection, no sweep: nothing is queued for other servers
            await outbox.start()
        application = self.application()
        if settings.federation_port is not None:
            if not settings.federation_tls_certificate or not settings.federation_tls_private_key:
                raise ListenerError(
                    "federation_port needs federation_tls_certificate and "
                    "federation_tls_private_key: the federation listener speaks HTTPS only"
                )
            try:
                self._federation_http = federation_server(self.federation_application(), settings)
                # With --workers, every worker listens on the one port (SO_REUSEPORT).
                self._federation_http.listen(settings.federation_port, settings.host, reuse_port=settings.workers > 1)
            except OSError as exc:  # ssl.SSLError is one: a certificate or key that cannot be used
                raise ListenerError(
                    f"cannot start the federation listener on {settings.host}:{settings.federation_port}: {exc}"
                ) from None
            log.info("federation listening on https://%s:%d", settings.host, settings.federation_port)
        return application

    def application(self) -> tornado.web.Application:
        table = routes()
        assert self.ctx is not None, "start() builds the context first"
        self.ctx.openapi = document_json(tuple(table))  # built now: a route without a contract fails the start
        handlers = [(pattern, handler, {"ctx": self.ctx, ROUTE: pattern}) for pattern, handler in table]
        if self.settings.web_client_enabled:
            # Not API routes (no contract): the static web client, which talks to the routes above.
            handlers += [
                (pattern, handler, {"ctx": self.ctx, ROUTE: pattern, **extra})
                for pattern, handler, extra in web.routes(self.settings.web_client_path, web.WebFiles.load())
            ]
        return self._application(handlers)

    def metrics_application(self) -> tornado.web.Application:
        """What the metrics port serves (metrics_port): /metrics, /health, /ready."""
        assert self.ctx is not None, "start() builds the context first"
        return self._application(
            [(pattern, handler, {"ctx": self.ctx, ROUTE: pattern}) for pattern, handler in operations.own_port_routes()]
        )

    def _application(self, handlers: list[tuple[str, type, dict[str, Any]]]) -> tornado.web.Application:
        assert self.ctx is not None, "start() builds the context first"
        return Application(
            handlers,
            default_handler_class=NotFoundHandler,
            default_handler_args={"ctx": self.ctx},
            log_function=log_request,
            ctx=self.ctx,
            max_header_bytes=self.settings.max_header_bytes,
            websocket_max_message_size=self.settings.websocket_max_message_bytes,
        )

    def _sample(self, ctx: AppContext, pool: asyncpg.Pool, passwords: Passwords) -> None:
        """Adds this server's sources of the metrics read at scrape time."""
        self._unsample = [
            metrics.OPEN_STREAMS.add(lambda: len(ctx.streams)),
            metrics.LONG_POLLS.add(ctx.long_polls.total),
            metrics.POOL_SIZE.add(pool.get_size),
            metrics.POOL_IN_USE.add(lambda: pool.get_size() - pool.get_idle_size()),
            metrics.HASH_QUEUE.add(lambda: passwords.queued),
        ]

    def federation_application(self) -> tornado.web.Application:
        assert self.ctx is not None, "start() builds the context first"
        return Application(
            [(pattern, handler, {"ctx": self.ctx, ROUTE: pattern}) for pattern, handler in federation_routes()],
            default_handler_class=NotFoundHandler,
            default_handler_args={"ctx": self.ctx},
            log_function=log_request,
            ctx=self.ctx,
            max_header_bytes=self.settings.max_header_bytes,
        )

    def begin_shutdown(self) -> None:
        """Answers every long-poll and closes every stream, so that in-flight
        requests can finish within the grace period."""
        if self.ctx is not None:
            for handler in self.ctx.streams:
                handler.shutdown()
            self.ctx.notifier.release_all()

    async def stop(self) -> None:
        for unsample in self._unsample:
            unsample()
        self._unsample = []
        if self._federation_http is not None:
            self._federation_http.stop()
            await self._federation_http.close_all_connections()
            self._federation_http = None
        if self.ctx is not None:
            await self.ctx.outbox.stop()
            await self.ctx.federation_client.close()
            self.ctx.streams.stop()
            await self.ctx.presence.stop()
            self.ctx.media.stop()
            self.ctx.sync_sessions.close_all()
        if self._persister is not None:
            await self._persister.stop()
        if self._notifier is not None:
            await self._notifier.stop()
        for pool in (self._write_pool, self._pool):
            if pool is not None:
                await pool.close()
        if self.passwords is not None and self._own_passwords:
            self.passwords.close()
