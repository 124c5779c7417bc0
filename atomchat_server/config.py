"""Settings: defaults < TOML config file < environment < command-line flags.

One table, ``OPTIONS``, names every setting once with its type, default,
environment variable and help text; the command line, the config file loader
and the environment loader are all driven by it, so ``atomchat serve --help``
documents exactly what exists.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import ipaddress
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


class ConfigError(Exception):
    """A setting has a value that cannot be used; the message says which."""


# Converters from what a layer gives (TOML values, or text from the
# environment and flags) to a setting's type. They refuse what would only
# convert by accident: a TOML `port = 80.5` or `port = true`.


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("not a boolean (true/false, yes/no, on/off, 1/0)")


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError("not an integer")


def _float(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError("not a number")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError("not a string")


def _networks(value: Any) -> tuple:
    """Networks in CIDR notation (a bare address is a network of one): a
    TOML list, or text with commas between them (environment, flags)."""
    items = value if isinstance(value, list) else _text(value).split(",")
    networks = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError("not a list of networks")
        if item.strip():
            try:
                networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{item.strip()!r} is not an IP network (such as 10.0.0.0/8 or ::1)") from None
    return tuple(networks)


def _web_path(value: Any) -> str:
    """A URL path for the web client: absolute, ending in '/', plain
    characters only, and clear of the API's own prefixes."""
    path = _text(value).strip()
    if not path.startswith("/"):
        raise ValueError("must start with /")
    if not path.endswith("/"):
        path += "/"
    if not re.fullmatch(r"/(?:[A-Za-z0-9._~-]+/)*", path) or "/../" in path or "/./" in path:
        raise ValueError("only letters, digits and . _ ~ - between slashes")
    if path.startswith(("/_matrix/", "/_atomchat/", "/api/", "/.well-known/")):
        raise ValueError("must not lie under the API's paths")
    return path


def _blocklist(value: Any) -> tuple:
    """Networks as _networks reads them, or "none" for no network at all
    (an empty environment variable counts as unset)."""
    if isinstance(value, str) and value.strip().lower() == "none":
        return ()
    return _networks(value)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")


def _log_format(value: Any) -> str:
    form = _text(value).strip().lower()
    if form not in LOG_FORMATS:
        raise ValueError(f"not one of {', '.join(LOG_FORMATS)}")
    return form


def _log_level(value: Any) -> str:
    level = _text(value).strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"not one of {', '.join(LOG_LEVELS)}")
    return level


# Private, loopback, link-local, shared, multicast and reserved ranges: a
# remote server name must not make this server reach into its own network.
FEDERATION_BLOCKLIST = _blocklist(
    [
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "169.254.0.0/16",
        "192.88.99.0/24",
        "198.18.0.0/15",
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "0.0.0.0/8",
        "::1/128",
        "::/128",
        "fe80::/10",
        "fc00::/7",
        "2001:db8::/32",
        "ff00::/8",
        "fec0::/10",
    ]
)


@dataclass(frozen=True)
class Option:
    name: str
    kind: Callable[[Any], Any]
    default: Any
    help: str
    env: str | None = None
    flag: bool = True  # secrets are not offered as flags (they would show in `ps`)
    minimum: float | None = None


# One option per line, as README's table: not reformatted.
# fmt: off
OPTIONS: tuple[Option, ...] = (
    Option("data_dir", _text, "./atomchat-data", "directory for the embedded PostgreSQL, the signing keys and the lock file", "ATOMCHAT_DATA_DIR"),
    Option("database_url", _text, None, "PostgreSQL URL; when unset an embedded PostgreSQL runs in the data directory", "DATABASE_URL"),
    Option("host", _text, "127.0.0.1", "address to listen on", "ATOMCHAT_HOST"),
    Option("port", _int, 8008, "port to listen on", "ATOMCHAT_PORT", minimum=1),
    Option("server_name", _text, None, "the server name in user ids (@name:SERVER_NAME); stored in the database at its first start (localhost if unset), after which only that name is accepted", "ATOMCHAT_SERVER_NAME"),
    Option("migrate", _bool, True, "apply pending migrations at start", "ATOMCHAT_MIGRATE"),
    Option("signing_key", _text, None, "secret for signing access tokens; generated into the data directory when unset", "ATOMCHAT_SIGNING_KEY", flag=False),
    Option("log_level", _log_level, "INFO", "logging level (DEBUG, INFO, WARNING, ERROR)", "ATOMCHAT_LOG_LEVEL"),
    Option("max_body_bytes", _int, 65536, "largest accepted JSON request body in bytes", "ATOMCHAT_MAX_BODY_BYTES", minimum=1),
    Option("shutdown_grace_seconds", _float, 5.0, "how long in-flight requests may run on after SIGINT/SIGTERM", "ATOMCHAT_SHUTDOWN_GRACE_SECONDS", minimum=0),
    Option("track_presence", _bool, True, "tell users who is online from their clients' syncing and streaming", "ATOMCHAT_TRACK_PRESENCE"),
    Option("presence_timeout_seconds", _float, 180.0, "a user no client has seen (synced, streamed) for this long goes offline", "ATOMCHAT_PRESENCE_TIMEOUT_SECONDS", minimum=0.3),
    Option("websocket_ping_seconds", _float, 30.0, "interval of WebSocket pings; a peer silent for as long again is dropped", "ATOMCHAT_WEBSOCKET_PING_SECONDS", minimum=1),
    Option("header_timeout_seconds", _float, 10.0, "time a client has to send a request's headers (and how long an idle keep-alive connection stays open)", "ATOMCHAT_HEADER_TIMEOUT_SECONDS", minimum=0.1),
    Option("body_timeout_seconds", _float, 30.0, "time a client has to send a request's body", "ATOMCHAT_BODY_TIMEOUT_SECONDS", minimum=0.1),
    Option("max_header_bytes", _int, 16384, "largest request line plus headers in bytes; larger is answered 414 (a long path) or 431", "ATOMCHAT_MAX_HEADER_BYTES", minimum=1),
    Option("websocket_max_message_bytes", _int, 1048576, "largest WebSocket message a client may send; larger closes the stream with 1009", "ATOMCHAT_WEBSOCKET_MAX_MESSAGE_BYTES", minimum=1),
    Option("max_streams_per_account", _int, 10, "WebSocket streams one account may hold open per server process", "ATOMCHAT_MAX_STREAMS_PER_ACCOUNT", minimum=1),
    Option("max_long_polls_per_account", _int, 10, "/sync long-polls one account may have waiting per server process", "ATOMCHAT_MAX_LONG_POLLS_PER_ACCOUNT", minimum=1),
    Option("pool_min_size", _int, 2, "fewest PostgreSQL connections kept open", "ATOMCHAT_POOL_MIN_SIZE", minimum=1),
    Option("pool_max_size", _int, 20, "most PostgreSQL connections opened for reads (writes and the notifier have one each besides)", "ATOMCHAT_POOL_MAX_SIZE", minimum=1),
    Option("argon2_time_cost", _int, 2, "argon2id iterations", "ATOMCHAT_ARGON2_TIME_COST", minimum=1),
    Option("argon2_memory_kib", _int, 19456, "argon2id memory in KiB", "ATOMCHAT_ARGON2_MEMORY_KIB", minimum=8),
    Option("argon2_parallelism", _int, 1, "argon2id lanes", "ATOMCHAT_ARGON2_PARALLELISM", minimum=1),
    Option("hash_workers", _int, 0, "threads that hash passwords (0: one per CPU)", "ATOMCHAT_HASH_WORKERS", minimum=0),
    Option("access_token_lifetime_seconds", _int, 300, "lifetime of access tokens issued with a refresh token", "ATOMCHAT_ACCESS_TOKEN_LIFETIME_SECONDS", minimum=1),
    Option("rc_register_per_second", _float, 0.17, "registrations allowed per second per client address", "ATOMCHAT_RC_REGISTER_PER_SECOND", minimum=0),
    Option("rc_register_burst", _int, 3, "registrations a client address may make at once", "ATOMCHAT_RC_REGISTER_BURST", minimum=1),
    Option("rc_login_per_second", _float, 0.17, "logins allowed per second per client address", "ATOMCHAT_RC_LOGIN_PER_SECOND", minimum=0),
    Option("rc_login_burst", _int, 3, "logins a client address may make at once", "ATOMCHAT_RC_LOGIN_BURST", minimum=1),
    Option("rc_failed_login_per_second", _float, 0.17, "failed logins allowed per second per account", "ATOMCHAT_RC_FAILED_LOGIN_PER_SECOND", minimum=0),
    Option("rc_failed_login_burst", _int, 3, "failed logins an account may take at once", "ATOMCHAT_RC_FAILED_LOGIN_BURST", minimum=1),
    Option("media_path", _text, None, "directory for uploaded media and thumbnails (default: DATA_DIR/media)", "ATOMCHAT_MEDIA_PATH"),
    Option("max_upload_bytes", _int, 52428800, "largest accepted media upload in bytes", "ATOMCHAT_MAX_UPLOAD_BYTES", minimum=1),
    Option("media_quota_bytes", _int, 1073741824, "total bytes of media one user may have uploaded (0: no limit)", "ATOMCHAT_MEDIA_QUOTA_BYTES", minimum=0),
    Option("log_format", _log_format, "text", "log lines as text, or as one JSON object each (json), with the request id of the request they are about", "ATOMCHAT_LOG_FORMAT"),
    Option("workers", _int, 1, "server processes sharing the port (SO_REUSEPORT), each with its own database connections", "ATOMCHAT_WORKERS", minimum=1),
    Option("metrics_allow", _networks, _networks("127.0.0.0/8,::1"), "client addresses (CIDRs, comma-separated) that may read /metrics", "ATOMCHAT_METRICS_ALLOW"),
    Option("metrics_port", _int, 0, "serve /metrics, /health and /ready on this port instead of the main one (0: the main port); worker i of --workers uses METRICS_PORT + i", "ATOMCHAT_METRICS_PORT", minimum=0),
    Option("federation_port", _int, None, "port of the HTTPS listener other servers reach this one on (/_matrix/federation and /_matrix/key); no listener when unset", "ATOMCHAT_FEDERATION_PORT", minimum=1),
    Option("federation_enabled", _bool, None, "send this server's events and notices to other servers (the outbox, with a database connection of its own); default: on when federation_port is set. Turn it on without a port when a reverse proxy carries federation to the client port, or in a further process of a server whose listener another process holds", "ATOMCHAT_FEDERATION_ENABLED"),
    Option("federation_tls_certificate", _text, None, "PEM file of the federation listener's certificate (chain)", "ATOMCHAT_FEDERATION_TLS_CERTIFICATE"),
    Option("federation_tls_private_key", _text, None, "PEM file of the federation listener's private key", "ATOMCHAT_FEDERATION_TLS_PRIVATE_KEY"),
    Option("federation_verify_certificates", _bool, True, "check other servers' TLS certificates (turn off only for test set-ups with self-signed certificates)", "ATOMCHAT_FEDERATION_VERIFY_CERTIFICATES"),
    Option("federation_ip_range_blocklist", _blocklist, FEDERATION_BLOCKLIST, "addresses (CIDRs, comma-separated) this server never sends federation requests to, against request forgery; 'none' allows every address (loopback test set-ups)", "ATOMCHAT_FEDERATION_IP_RANGE_BLOCKLIST"),
    Option("trusted_proxies", _networks, (), "reverse proxies (CIDRs, comma-separated) whose X-Forwarded-For names the client for rate limits and logs; from any other peer the header is ignored", "ATOMCHAT_TRUSTED_PROXIES"),
    Option("web_client_enabled", _bool, True, "serve the web client (a browser chat app) at web_client_path", "ATOMCHAT_WEB_CLIENT_ENABLED"),
    Option("web_client_path", _web_path, "/", "URL path the web client is served under (starts and ends with /)", "ATOMCHAT_WEB_CLIENT_PATH"),
)
# fmt: on

_BY_NAME = {option.name: option for option in OPTIONS}


def _data_path(self: Settings) -> Path:
    return Path(self.data_dir).expanduser().resolve()


def _media_root(self: Settings) -> Path:
    return Path(self.media_path).expanduser().resolve() if self.media_path else self.data_path / "media"


def _federating(self: Settings) -> bool:
    """Whether this process sends to other servers (federation_enabled,
    by default whether it has a federation listener)."""
    return bool(self.federation_port is not None if self.federation_enabled is None else self.federation_enabled)


def _replace(self: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(self, **changes)


if TYPE_CHECKING:

    class Settings:
        """What the type checker knows of the settings object: an attribute
        per option (of the option's kind, so typed Any here), plus these."""

        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]  # it is a dataclass
        data_path: Path
        media_root: Path
        federating: bool

        def __init__(self, **values: Any) -> None: ...

        def __getattr__(self, name: str) -> Any: ...

        def replace(self, **changes: Any) -> Settings: ...
else:
    # The settings object, with one field per option and that option's default.
    Settings = dataclasses.make_dataclass(
        "Settings",
        [(option.name, Any, field(default=option.default)) for option in OPTIONS],
        frozen=True,
        namespace={
            "data_path": property(_data_path),
            "media_root": property(_media_root),
            "federating": property(_federating),
            "replace": _replace,
        },
    )


def _coerce(option: Option, value: Any, source: str) -> Any:
    if value is None:
        return None
    try:
        converted = option.kind(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {option.name} = {value!r}: {exc}") from None
    if option.minimum is not None and converted < option.minimum:
        raise ConfigError(f"{source}: {option.name} = {value!r}: must be at least {option.minimum}")
    return converted


def _shown_default(option: Option) -> str:
    if option.default in (None, ()):
        return "unset"
    if isinstance(option.default, tuple):
        return ",".join(str(item) for item in option.default)
    return str(option.default)


def unflagged_help() -> str:
    """Documents the settings that have no flag, for the end of ``--help``."""
    return "settings without a flag (environment or config file only): " + "; ".join(
        f"{option.env} / {option.name}: {option.help} (default {_shown_default(option)})"
        for option in OPTIONS
        if not option.flag
    )


def add_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None) -> None:
    """Adds a flag for each option (all, or those named), defaulting to None
    so that an absent flag leaves lower layers in force."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="TOML config file (env ATOMCHAT_CONFIG); keys are the option names below with '_'",
    )
    for option in OPTIONS:
        if not option.flag or (names is not None and option.name not in names):
            continue
        flag = "--" + option.name.replace("_", "-")
        help_text = f"{option.help} (env {option.env}; default {_shown_default(option)})"
        if option.kind is _bool:
            parser.add_argument(flag, dest=option.name, action="store_true", default=None, help=help_text)
            parser.add_argument(
                "--no-" + option.name.replace("_", "-"),
                dest=option.name,
                action="store_false",
                help=f"do not {option.name.replace('_', ' ')}",
            )
        else:
            parser.add_argument(flag, dest=option.name, default=None, metavar=option.name.upper(), help=help_text)


def load(flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Builds Settings from the layers, lowest first."""
    flags = dict(flags or {})
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {option.name: option.default for option in OPTIONS}

    config_path = flags.get("config") or environ.get("ATOMCHAT_CONFIG")
    if config_path:
        try:
            with open(config_path, "rb") as handle:
                document = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_path} is not valid TOML: {exc}") from None
        for key, value in document.items():
            option = _BY_NAME.get(key)
            if option is None:
                close = difflib.get_close_matches(key.replace("-", "_"), _BY_NAME, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"config file {config_path}: unknown setting {key!r}{hint}")
            values[key] = _coerce(option, value, f"config file {config_path}")

    for option in OPTIONS:
        if option.env and environ.get(option.env) not in (None, ""):
            values[option.name] = _coerce(option, environ[option.env], f"environment {option.env}")

    for option in OPTIONS:
        if flags.get(option.name) is not None:
            values[option.name] = _coerce(option, flags[option.name], f"flag --{option.name.replace('_', '-')}")

    if not 0 < values["port"] < 65536:
        raise ConfigError(f"port {values['port']} is out of range (1-65535)")
    if not 0 <= values["metrics_port"] + values["workers"] - 1 < 65536:
        raise ConfigError(f"metrics_port {values['metrics_port']} is out of range (0-65535)")
    if (
        values["metrics_port"]
        and values["port"] <= values["metrics_port"] + values["workers"] - 1
        and values["metrics_port"] <= values["port"]
    ):
        raise ConfigError(f"metrics_port {values['metrics_port']} (one per worker) overlaps port {values['port']}")
    if values["federation_port"] is not None and not 0 < values["federation_port"] < 65536:
        raise ConfigError(f"federation_port {values['federation_port']} is out of range (1-65535)")
    if values["pool_min_size"] > values["pool_max_size"]:
        raise ConfigError(
            f"pool_min_size ({values['pool_min_size']}) is larger than pool_max_size ({values['pool_max_size']})"
        )
    if values["argon2_memory_kib"] < 8 * values["argon2_parallelism"]:
        raise ConfigError(
            f"argon2_memory_kib ({values['argon2_memory_kib']}) must be at least 8 KiB per lane "
            f"(argon2_parallelism {values['argon2_parallelism']})"
        )
    return Settings(**values)
