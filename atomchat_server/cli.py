"""The ``atomchat`` command: serve, migrate, and user management."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import gc
import getpass
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import asyncpg
import uvloop
from tornado.netutil import bind_sockets

from . import __version__, config, logs
from .app import AtomChat, ListenerError, http_server
from .auth import policy
from .auth.passwords import Passwords
from .db import migrations
from .db.embedded import EmbeddedPostgres
from .db.pool import create_pool
from .errors import MatrixError
from .events import ids
from .federation.keys import load_or_create_server_key
from .services.accounts import create_user
from .services.moderation import SYSTEM_LOCALPART, Blocks, Moderation
from .services.persister import Persister, Signer
from .services.push import PushEvaluator
from .services.server_name import ServerNameMismatch, settle_server_name
from .storage import users as user_store
from .supervisor import Supervisor

log = logging.getLogger("atomchat")
LOCK_FILE = "serve.lock"


class CommandError(Exception):
    """Ends the command with this message and exit status 1."""


# -- database access shared by every command --------------------------------


@contextmanager
def database(settings: config.Settings) -> Iterator[Callable[[], Awaitable[str]]]:
    """Yields a function giving the DSN: the configured server's, or the
    embedded one's (started, or joined if a server already runs it)."""
    if settings.database_url:

        async def configured() -> str:
            return settings.database_url

        yield configured
        return
    embedded = EmbeddedPostgres(settings.data_path)
    try:
        embedded.start()
    except Exception as exc:  # pgserver raises several kinds; all mean the same here
        raise CommandError(f"cannot start the embedded PostgreSQL in {embedded.pgdata}: {exc}") from exc
    try:
        yield embedded.ensure_database
    finally:
        embedded.stop()


@asynccontextmanager
async def pool_for(settings: config.Settings, dsn: str) -> AsyncIterator[tuple[asyncpg.Pool, config.Settings]]:
    """A small pool on the migrated database, and the settings with the
    database's server name (refused if another was given)."""
    if settings.migrate:
        await migrations.migrate(dsn)
    else:
        await migrations.check_current(dsn)
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        try:
            server_name = await settle_server_name(pool, settings.server_name)
        except ServerNameMismatch as exc:
            raise CommandError(str(exc)) from None
        yield pool, settings.replace(server_name=server_name)
    finally:
        await pool.close()


@contextmanager
def serve_lock(settings: config.Settings) -> Iterator[None]:
    """Holds an exclusive lock on the data directory while serving."""
    data = settings.data_path
    data.mkdir(parents=True, exist_ok=True)
    with open(data / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise CommandError(
                f"the data directory {data} is in use by another `atomchat serve` ({holder}); "
                "stop it first or choose another --data-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        yield


# -- commands ----------------------------------------------------------------


def cmd_serve(settings: config.Settings, args: argparse.Namespace) -> None:
    with serve_lock(settings), database(settings) as get_dsn:
        if settings.workers > 1:
            _serve_group(settings, get_dsn)
        else:
            # uvloop: the same asyncio, with the loop and its sockets in C (a
            # third more requests per second on the same CPU).
            uvloop.run(_serve(settings, get_dsn))
    # Last, once the embedded PostgreSQL (if any) is down too: after this
    # line nothing of the server runs.
    log.info("AtomChat stopped")


def _serve_group(settings: config.Settings, get_dsn: Callable[[], Awaitable[str]]) -> None:
    """``--workers N``: N server processes forked from this one, each with
    its own socket on the one port (SO_REUSEPORT: the kernel spreads new
    connections over them), its own pool and notifier, as N servers behind a
    balancer would be. This process holds the data directory's lock and the
    embedded PostgreSQL for the group, applies the migrations once, passes
    SIGTERM and SIGINT on to every worker, and, should one worker end, stops
    the others: the group runs whole or not at all."""

    async def settle() -> str:
        return await get_dsn()

    dsn = asyncio.run(settle())
    if settings.migrate:
        asyncio.run(migrations.migrate(dsn))
    # Fail here, once, if the port is taken by something outside the group.
    for sock in bind_sockets(settings.port, settings.host, reuse_port=True):
        sock.close()

    async def fixed_dsn() -> str:
        return dsn

    children: dict[int, int] = {}  # pid -> worker index
    for index in range(settings.workers):
        pid = os.fork()
        if pid == 0:
            _run_worker(settings.replace(migrate=False), fixed_dsn, index)  # never returns
        children[pid] = index
    log.info(
        "started %d workers on %s:%d (pids %s)",
        len(children),
        settings.host,
        settings.port,
        " ".join(map(str, children)),
    )

    stopping: list[int] = []

    def stop_all(signum: int, _frame: object) -> None:
        stopping.append(signum)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop_all) for sig in (signal.SIGINT, signal.SIGTERM)}
    failed: list[str] = []
    try:
        while children:
            pid, status = os.wait()
            if pid not in children:
                continue
            index = children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if not stopping:
                failed.append(f"worker {index} (pid {pid}) ended with status {code}")
                log.error("worker %d (pid %d) ended with status %d; stopping the others", index, pid, code)
                stop_all(signal.SIGTERM, None)
            elif code != 0:
                failed.append(f"worker {index} (pid {pid}) stopped with status {code}")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed:
        raise CommandError("; ".join(failed))


def _run_worker(settings: config.Settings, get_dsn: Callable[[], Awaitable[str]], index: int) -> None:
    """A forked worker: serves until told to stop, then ends the process
    without running the parent's clean-up (its lock, its PostgreSQL)."""
    code = 0
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)  # until the worker's loop installs its own
        uvloop.run(_serve(settings, get_dsn, worker=index))
    except CommandError as exc:
        print(f"atomchat: worker {index}: {exc}", file=sys.stderr)
        code = 1
    except BaseException:
        log.exception("worker %d failed", index)
        code = 1
    finally:
        logging.shutdown()
        os._exit(code)


async def _serve(settings: config.Settings, get_dsn: Callable[[], Awaitable[str]], worker: int | None = None) -> None:
    dsn = await get_dsn()
    stopping = asyncio.Event()
    fatal: list[str] = []

    def give_up(reason: str) -> None:
        """A task the server cannot run without keeps failing: stop, loudly."""
        fatal.append(reason)
        stopping.set()

    server = AtomChat(settings, dsn, on_fatal=give_up)
    try:
        app = await server.start()
    except (migrations.MigrationError, ServerNameMismatch, ListenerError) as exc:
        await server.stop()
        raise CommandError(str(exc)) from None
    assert server.ctx is not None, "start() built it"
    # What start-up made (modules, schemas, routes) lives as long as the
    # process: out of the collector's reach, a full collection walks only
    # what serving allocates, and stops the event loop for that long only.
    gc.collect()
    gc.freeze()
    # Serving allocates many short-lived containers (a future per socket
    # write, say) that reference counting frees; collecting every 700
    # allocations, as by default, ran the youngest generation 150 times a
    # second under WebSocket fan-out and a full collection every second.
    gc.set_threshold(10_000, 10, 10)
    http = http_server(app, settings)
    listening = [http]
    try:
        # A worker of a group shares the port with the others (SO_REUSEPORT).
        http.add_sockets(bind_sockets(settings.port, settings.host, reuse_port=worker is not None))
        if settings.metrics_port:
            metrics_http = http_server(server.metrics_application(), settings)
            listening.append(metrics_http)
            metrics_port = settings.metrics_port + (worker or 0)
            metrics_http.add_sockets(bind_sockets(metrics_port, settings.host))
            log.info("metrics on http://%s:%d/metrics", settings.host, metrics_port)
    except OSError as exc:
        for listener in listening:
            listener.stop()
        await server.stop()
        ports = f"{settings.port}" + (f" and {settings.metrics_port + (worker or 0)}" if settings.metrics_port else "")
        raise CommandError(f"cannot listen on {settings.host}:{ports}: {exc.strerror}") from None
    log.info(
        "AtomChat %s listening on http://%s:%d (server name %s, database %s%s)",
        __version__,
        settings.host,
        settings.port,
        server.settings.server_name,
        "embedded" if not settings.database_url else "external",
        "" if worker is None else f", worker {worker} pid {os.getpid()}",
    )
    if settings.web_client_enabled and not worker:
        log.info("web client: open http://%s:%d%s in a browser", settings.host, settings.port, settings.web_client_path)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()

    log.info(
        "shutting down: no new connections; waiting up to %.0fs for %d request(s) in flight",
        settings.shutdown_grace_seconds,
        server.ctx.in_flight,
    )
    for listener in listening:
        listener.stop()
    server.begin_shutdown()
    deadline = loop.time() + settings.shutdown_grace_seconds
    while server.ctx.in_flight > 0 and loop.time() < deadline:
        await asyncio.sleep(0.05)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(http.close_all_connections(), timeout=1.0)
    await server.stop()
    if fatal:
        raise CommandError(f"stopped because {fatal[0]}")


def cmd_migrate(settings: config.Settings, args: argparse.Namespace) -> None:
    with database(settings) as get_dsn:

        async def run() -> list[int]:
            return await migrations.migrate(await get_dsn())

        applied = asyncio.run(run())
    print(f"applied migrations: {', '.join(f'{v:04d}' for v in applied)}" if applied else "the database is up to date")


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != password:
            raise CommandError("the passwords differ")
    else:
        raise CommandError("give the password on standard input with --password-stdin")
    if not password:
        raise CommandError("the password is empty")
    return password


def cmd_user_create(settings: config.Settings, args: argparse.Namespace) -> None:
    localpart = args.name.lower()
    try:
        policy.check_matrix_localpart(localpart)
    except policy.PolicyViolation as exc:
        raise CommandError(str(exc)) from None
    password = _read_password(args)
    passwords = Passwords(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        workers=1,
    )

    async def run() -> str:
        async with pool_for(settings, await get_dsn()) as (pool, known):
            user_id = await create_user(
                pool, passwords, known.server_name, localpart, password, is_moderator=args.moderator
            )
            if args.moderator:
                # Every moderator is a member of the policy room; starting
                # the moderation service makes each one that is not yet.
                async with moderation_for(known, pool):
                    pass
            return user_id

    with database(settings) as get_dsn:
        try:
            user_id = asyncio.run(run())
        except MatrixError as exc:
            raise CommandError(exc.error) from None
        finally:
            passwords.close()
    print(f"created {user_id}{' (moderator)' if args.moderator else ''}")


def cmd_user_list(settings: config.Settings, args: argparse.Namespace) -> None:
    async def run() -> list[user_store.User]:
        async with pool_for(settings, await get_dsn()) as (pool, _known):
            return await user_store.list_users(pool)

    with database(settings) as get_dsn:
        users = asyncio.run(run())
    for user in users:
        if user.localpart == SYSTEM_LOCALPART:
            continue  # the server's own account is nobody's to manage
        role = "moderator" if user.is_moderator else "user"
        print(f"{user.id}\t{user.user_id}\t{role}\t{user.created_at.isoformat()}")


@asynccontextmanager
async def moderation_for(settings: config.Settings, pool: asyncpg.Pool) -> AsyncIterator[Moderation]:
    """The moderation service as the operator: acts as the server's own
    account, through a persister of its own (its writes reach running
    servers through the database, like any other process's)."""
    signer = Signer(settings.server_name, load_or_create_server_key(settings.data_path))
    persister = Persister(pool, Supervisor(), signer, judge=PushEvaluator())
    persister.start()
    try:
        moderation = Moderation(pool=pool, persister=persister, blocks=Blocks(), server_name=settings.server_name)
        await moderation.start()
        yield moderation
    finally:
        await persister.stop()


def _moderation_command(
    action: Callable[[Moderation, str, argparse.Namespace], Awaitable[None]],
) -> Callable[[config.Settings, argparse.Namespace], None]:
    """A `user` subcommand that applies ``action(moderation, user_id, args)``."""

    def command(settings: config.Settings, args: argparse.Namespace) -> None:
        async def run() -> str:
            async with pool_for(settings, await get_dsn()) as (pool, known), moderation_for(known, pool) as moderation:
                user_id = ids.user_id(args.name.lower(), known.server_name)
                await action(moderation, user_id, args)
                return user_id

        with database(settings) as get_dsn:
            try:
                user_id = asyncio.run(run())
            except MatrixError as exc:
                raise CommandError(exc.error) from None
        print(f"{args.command_word} {user_id}")

    return command


cmd_user_lock = _moderation_command(lambda m, user_id, args: m.set_block(m.system_user, user_id, "locked", args.reason))
cmd_user_unlock = _moderation_command(lambda m, user_id, args: m.set_block(m.system_user, user_id, None))
cmd_user_promote = _moderation_command(lambda m, user_id, args: m.set_moderator(None, user_id, True))
cmd_user_demote = _moderation_command(lambda m, user_id, args: m.set_moderator(None, user_id, False))


# -- argument parsing --------------------------------------------------------

DATABASE_OPTIONS = ("data_dir", "database_url", "migrate", "server_name", "log_level")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atomchat", description="AtomChat chat server")
    parser.add_argument("--version", action="version", version=f"atomchat {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the server",
        description="Run the AtomChat server. Settings come from defaults, then the "
        "config file, then the environment, then these flags.",
        epilog=config.unflagged_help(),
    )
    config.add_arguments(serve)
    serve.set_defaults(func=cmd_serve)

    migrate = commands.add_parser("migrate", help="apply pending database migrations")
    config.add_arguments(migrate, DATABASE_OPTIONS)
    migrate.set_defaults(func=cmd_migrate)

    user = commands.add_parser("user", help="manage accounts").add_subparsers(dest="user_command", required=True)
    create = user.add_parser("create", help="create an account")
    create.add_argument("name", help="the username (Matrix localpart)")
    create.add_argument("--moderator", action="store_true", help="make the account a moderator")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    config.add_arguments(create, DATABASE_OPTIONS)
    create.set_defaults(func=cmd_user_create)
    listing = user.add_parser("list", help="list accounts")
    config.add_arguments(listing, DATABASE_OPTIONS)
    listing.set_defaults(func=cmd_user_list)
    for word, func, text in (
        ("lock", cmd_user_lock, "lock an account: its tokens and logins are refused"),
        ("unlock", cmd_user_unlock, "lift a lock"),
        ("promote", cmd_user_promote, "make an account a moderator"),
        ("demote", cmd_user_demote, "take the moderator role away"),
    ):
        sub = user.add_parser(word, help=text)
        sub.add_argument("name", help="the username (Matrix localpart)")
        if word == "lock":
            sub.add_argument("--reason", default="", help="why, for the audit log")
        config.add_arguments(sub, DATABASE_OPTIONS)
        sub.set_defaults(func=func, command_word=word + ("ed" if word.endswith("k") else "d"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = config.load(vars(args))
    except config.ConfigError as exc:
        print(f"atomchat: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    try:
        args.func(settings, args)
    except (CommandError, migrations.MigrationError) as exc:
        print(f"atomchat: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Ctrl-C before the server installed its own handler (or in another
        # command): the context managers have already let go of everything.
        print("atomchat: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
