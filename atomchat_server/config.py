"""Settings: defaults < TOML config file < environment < command-line flags.

One table, ``OPTIONS``, names every setting once with its type, default,
environment variable and help text; the command line, the config file loader
and the environment loader are all driven by it, so ``atomchat serve --help``
documents exactly what exists.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


class ConfigError(Exception):
    """A setting has a value that cannot be used; the message says which."""


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


@dataclass(frozen=True)
class Option:
    name: str
    kind: Callable[[Any], Any]
    default: Any
    help: str
    env: str | None = None
    flag: bool = True  # secrets are not offered as flags (they would show in `ps`)


OPTIONS: tuple[Option, ...] = (
    Option("data_dir", str, "./atomchat-data", "directory for the embedded PostgreSQL, the signing key and the lock file", "ATOMCHAT_DATA_DIR"),
    Option("database_url", str, None, "PostgreSQL URL; when unset an embedded PostgreSQL runs in the data directory", "DATABASE_URL"),
    Option("host", str, "127.0.0.1", "address to listen on", "ATOMCHAT_HOST"),
    Option("port", int, 8008, "port to listen on", "ATOMCHAT_PORT"),
    Option("server_name", str, "localhost", "the server name in user ids (@name:SERVER_NAME)", "ATOMCHAT_SERVER_NAME"),
    Option("migrate", _bool, True, "apply pending migrations at start", "ATOMCHAT_MIGRATE"),
    Option("signing_key", str, None, "secret for signing access tokens; generated into the data directory when unset", "ATOMCHAT_SIGNING_KEY", flag=False),
    Option("log_level", str, "INFO", "logging level (DEBUG, INFO, WARNING, ERROR)", "ATOMCHAT_LOG_LEVEL"),
    Option("max_body_bytes", int, 65536, "largest accepted JSON request body in bytes", "ATOMCHAT_MAX_BODY_BYTES"),
    Option("shutdown_grace_seconds", float, 5.0, "how long in-flight requests may run on after SIGINT/SIGTERM", "ATOMCHAT_SHUTDOWN_GRACE_SECONDS"),
    Option("pool_min_size", int, 2, "fewest PostgreSQL connections kept open", "ATOMCHAT_POOL_MIN_SIZE"),
    Option("pool_max_size", int, 20, "most PostgreSQL connections opened", "ATOMCHAT_POOL_MAX_SIZE"),
    Option("argon2_time_cost", int, 2, "argon2id iterations", "ATOMCHAT_ARGON2_TIME_COST"),
    Option("argon2_memory_kib", int, 19456, "argon2id memory in KiB", "ATOMCHAT_ARGON2_MEMORY_KIB"),
    Option("argon2_parallelism", int, 1, "argon2id lanes", "ATOMCHAT_ARGON2_PARALLELISM"),
    Option("hash_workers", int, 0, "threads that hash passwords (0: one per CPU)", "ATOMCHAT_HASH_WORKERS"),
    Option("access_token_lifetime_seconds", int, 300, "lifetime of access tokens issued with a refresh token", "ATOMCHAT_ACCESS_TOKEN_LIFETIME_SECONDS"),
    Option("rc_register_per_second", float, 0.17, "registrations allowed per second per client address", "ATOMCHAT_RC_REGISTER_PER_SECOND"),
    Option("rc_register_burst", int, 3, "registrations a client address may make at once", "ATOMCHAT_RC_REGISTER_BURST"),
    Option("rc_login_per_second", float, 0.17, "logins allowed per second per client address", "ATOMCHAT_RC_LOGIN_PER_SECOND"),
    Option("rc_login_burst", int, 3, "logins a client address may make at once", "ATOMCHAT_RC_LOGIN_BURST"),
    Option("rc_failed_login_per_second", float, 0.17, "failed logins allowed per second per account", "ATOMCHAT_RC_FAILED_LOGIN_PER_SECOND"),
    Option("rc_failed_login_burst", int, 3, "failed logins an account may take at once", "ATOMCHAT_RC_FAILED_LOGIN_BURST"),
)

_BY_NAME = {option.name: option for option in OPTIONS}


def _data_path(self) -> Path:
    return Path(self.data_dir).expanduser().resolve()


def _replace(self, **changes: Any):
    return dataclasses.replace(self, **changes)


# The settings object, with one field per option and that option's default.
Settings = dataclasses.make_dataclass(
    "Settings",
    [(option.name, Any, field(default=option.default)) for option in OPTIONS],
    frozen=True,
    namespace={"data_path": property(_data_path), "replace": _replace},
)


def _coerce(option: Option, value: Any, source: str) -> Any:
    if value is None:
        return None
    try:
        return option.kind(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {option.name} = {value!r}: {exc}") from None


def add_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None) -> None:
    """Adds a flag for each option (all, or those named), defaulting to None
    so that an absent flag leaves lower layers in force."""
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="TOML config file (env ATOMCHAT_CONFIG); keys are the option names below with '_'")
    for option in OPTIONS:
        if not option.flag or (names is not None and option.name not in names):
            continue
        flag = "--" + option.name.replace("_", "-")
        help_text = f"{option.help} (env {option.env}; default {option.default})"
        if option.kind is _bool:
            parser.add_argument(flag, dest=option.name, action="store_true", default=None, help=help_text)
            parser.add_argument("--no-" + option.name.replace("_", "-"), dest=option.name,
                                action="store_false", help=f"do not {option.name.replace('_', ' ')}")
        else:
            parser.add_argument(flag, dest=option.name, default=None, metavar=option.name.upper(), help=help_text)


def load(flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> "Settings":
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
                raise ConfigError(f"config file {config_path}: unknown setting {key!r}")
            values[key] = _coerce(option, value, f"config file {config_path}")

    for option in OPTIONS:
        if option.env and environ.get(option.env) not in (None, ""):
            values[option.name] = _coerce(option, environ[option.env], f"environment {option.env}")

    for option in OPTIONS:
        if flags.get(option.name) is not None:
            values[option.name] = _coerce(option, flags[option.name], f"flag --{option.name.replace('_', '-')}")

    if not 0 < values["port"] < 65536:
        raise ConfigError(f"port {values['port']} is out of range")
    return Settings(**values)
