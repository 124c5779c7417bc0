"""Settings: defaults < TOML config file < environment < flags, clear errors,
and ``atomchat serve --help`` documenting every setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from atomchat_server import config
from atomchat_server.cli import build_parser

from ..support.processes import run_atomchat


def flags(*argv: str) -> dict:
    """What the command line gives config.load, parsed as ``atomchat serve`` does."""
    return vars(build_parser().parse_args(["serve", *argv]))


@pytest.fixture
def config_file(tmp_path):
    def write(text: str):
        path = tmp_path / "atomchat.toml"
        path.write_text(text)
        return str(path)

    return write


async def test_defaults():
    settings = config.load({}, environ={})
    assert (settings.host, settings.port) == ("127.0.0.1", 8008)
    assert settings.server_name is None  # the database's (services/server_name.py)
    assert settings.data_dir == "./atomchat-data"
    assert settings.database_url is None and settings.signing_key is None
    assert settings.migrate is True
    assert settings.log_level == "INFO"


async def test_each_layer_overrides_the_one_below(config_file):
    path = config_file(
        "port = 9001\n"
        'server_name = "file.example"\n'
        'log_level = "debug"\n'
        "max_body_bytes = 1000\n"
        "migrate = false\n"
        'signing_key = "from-the-file"\n'
    )
    environ = {
        "ATOMCHAT_CONFIG": path,
        "ATOMCHAT_PORT": "9002",
        "ATOMCHAT_SERVER_NAME": "env.example",
        "ATOMCHAT_SIGNING_KEY": "from-the-environment",
        "ATOMCHAT_HOST": "",
    }
    settings = config.load(flags("--port", "9003", "--migrate"), environ=environ)
    assert settings.port == 9003  # flag over environment over file
    assert settings.server_name == "env.example"  # environment over file
    assert settings.signing_key == "from-the-environment"  # secrets: environment over file, never a flag
    assert settings.migrate is True  # flag over file
    assert settings.log_level == "DEBUG"  # file over default
    assert settings.max_body_bytes == 1000
    assert settings.host == "127.0.0.1"  # an empty variable counts as unset

    without_flags = config.load(flags(), environ=environ)
    assert (without_flags.port, without_flags.migrate) == (9002, False)
    only_file = config.load(flags("--config", path), environ={})
    assert (only_file.port, only_file.server_name, only_file.migrate) == (9001, "file.example", False)


# A value of each kind of setting that no setting has as its default.
SAMPLES = {
    config._int: "16",
    config._float: "16.5",
    config._bool: "no",
    config._text: "text",
    config._log_level: "warning",
    config._log_format: "json",
}
SAMPLES[config._networks] = "10.0.0.0/8"
SAMPLES[config._web_path] = "/chat/"
SAMPLES[config._blocklist] = "none"


@pytest.mark.parametrize("option", config.OPTIONS, ids=lambda option: option.name)
async def test_every_setting_has_an_environment_variable(option):
    sample = SAMPLES[option.kind]
    settings = config.load({}, environ={option.env: sample})
    assert getattr(settings, option.name) == option.kind(sample) != option.default


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"ATOMCHAT_PORT": "eighty"}, "environment ATOMCHAT_PORT: port = 'eighty': not an integer"),
        ({"ATOMCHAT_PORT": "70000"}, "port 70000 is out of range"),
        ({"ATOMCHAT_MIGRATE": "maybe"}, "ATOMCHAT_MIGRATE: migrate = 'maybe': not a boolean"),
        ({"ATOMCHAT_LOG_LEVEL": "loud"}, "log_level = 'loud': not one of DEBUG, INFO, WARNING, ERROR"),
        ({"ATOMCHAT_LOG_FORMAT": "xml"}, "log_format = 'xml': not one of text, json"),
        (
            {"ATOMCHAT_METRICS_PORT": "8007", "ATOMCHAT_WORKERS": "2"},
            "metrics_port 8007 (one per worker) overlaps port 8008",
        ),
        ({"ATOMCHAT_SHUTDOWN_GRACE_SECONDS": "-1"}, "shutdown_grace_seconds = '-1': must be at least 0"),
        (
            {"ATOMCHAT_POOL_MIN_SIZE": "5", "ATOMCHAT_POOL_MAX_SIZE": "4"},
            "pool_min_size (5) is larger than pool_max_size (4)",
        ),
        (
            {"ATOMCHAT_ARGON2_PARALLELISM": "4", "ATOMCHAT_ARGON2_MEMORY_KIB": "16"},
            "argon2_memory_kib (16) must be at least 8 KiB per lane",
        ),
    ],
)
async def test_bad_environment_values_are_refused_by_name(environ, message):
    with pytest.raises(config.ConfigError) as refused:
        config.load({}, environ=environ)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    "toml, message",
    [
        ("port = 80.5", "port = 80.5: not an integer"),
        ("port = true", "port = True: not an integer"),
        ("server_name = 5", "server_name = 5: not a string"),
        ("rc_login_burst = 0", "rc_login_burst = 0: must be at least 1"),
        ("prot = 8008", "unknown setting 'prot' (did you mean 'port'?)"),
        ('data-dir = "/srv"', "unknown setting 'data-dir' (did you mean 'data_dir'?)"),
        ("port = ", "is not valid TOML"),
    ],
)
async def test_bad_config_files_are_refused_with_the_reason(config_file, toml, message):
    path = config_file(toml)
    with pytest.raises(config.ConfigError) as refused:
        config.load({"config": path}, environ={})
    assert f"config file {path}" in str(refused.value)
    assert message in str(refused.value)


async def test_a_missing_config_file_is_refused(tmp_path):
    with pytest.raises(config.ConfigError, match="cannot read config file .*missing.toml: No such file"):
        config.load({}, environ={"ATOMCHAT_CONFIG": str(tmp_path / "missing.toml")})


async def test_serve_help_documents_every_setting():
    result = run_atomchat("serve", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps lines anywhere
    assert "--config FILE" in text and "ATOMCHAT_CONFIG" in text
    for option in config.OPTIONS:
        flag = "--" + option.name.replace("_", "-")
        assert (flag in text) == option.flag, option.name
        assert option.env is not None and option.env in text, option.name
    assert "--no-migrate" in text


async def test_the_readme_documents_every_setting():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line for line in readme.splitlines() if line.startswith("| `")}
    assert set(rows) == {option.name for option in config.OPTIONS}
    for option in config.OPTIONS:
        assert f"`{option.env}`" in rows[option.name]
        assert (f"`--{option.name.replace('_', '-')}`" in rows[option.name]) == option.flag


async def test_a_bad_flag_stops_the_command_with_status_2():
    result = run_atomchat("serve", "--port", "eighty")
    assert result.returncode == 2
    assert result.stderr == "atomchat: flag --port: port = 'eighty': not an integer\n"
