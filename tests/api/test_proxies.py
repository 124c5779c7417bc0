"""Behind a reverse proxy (the ``trusted_proxies`` setting): the client's
address comes from X-Forwarded-For only when the peer is one of the proxies
named, for rate limits, the devices' last-seen address and the request log;
from anyone else the header is ignored, so a client cannot pick the address
it is limited by."""

from __future__ import annotations

import logging
from ipaddress import ip_network

import asyncpg
import pytest

from atomchat_server import config
from atomchat_server.api.base import forwarded_client

from ..support.client import DEFAULT_PASSWORD, MATRIX

PROXIES = (ip_network("10.0.0.0/8"), ip_network("2001:db8::/32"))


@pytest.mark.parametrize(
    "peer, headers, expected",
    [
        # No proxy in between, or a peer that is not a proxy: the header is the client's to write, and ignored.
        ("198.51.100.7", [], "198.51.100.7"),
        ("198.51.100.7", ["203.0.113.9"], "198.51.100.7"),
        # One trusted proxy: the address it appended.
        ("10.0.0.2", ["203.0.113.9"], "203.0.113.9"),
        # What the client wrote itself lies left of what the proxy appended.
        ("10.0.0.2", ["1.2.3.4, 203.0.113.9"], "203.0.113.9"),
        # Two trusted proxies in a row, the header split over two lines.
        ("10.0.0.2", ["203.0.113.9, 10.1.1.1"], "203.0.113.9"),
        ("10.0.0.2", ["1.2.3.4, 203.0.113.9", "10.1.1.1"], "203.0.113.9"),
        # Only trusted proxies: the leftmost is the client.
        ("10.0.0.2", ["10.0.0.3"], "10.0.0.3"),
        # Garbage where an address should be: the last trusted proxy's view.
        ("10.0.0.2", ["not-an-address"], "10.0.0.2"),
        ("10.0.0.2", ["203.0.113.9, junk"], "10.0.0.2"),
        ("10.0.0.2", [""], "10.0.0.2"),
        # IPv6.
        ("2001:db8::1", ["2001:db8:ffff::2, 2606:4700::1"], "2606:4700::1"),
        ("::1", ["2606:4700::1"], "::1"),
    ],
)
def test_the_client_address_is_what_the_trusted_proxies_saw(peer, headers, expected):
    assert forwarded_client(peer, headers, PROXIES) == expected


def test_trusted_proxies_come_as_a_toml_list_or_comma_separated(tmp_path):
    path = tmp_path / "atomchat.toml"
    path.write_text('trusted_proxies = ["10.0.0.0/8", "::1"]\n')
    assert config.load({"config": str(path)}, environ={}).trusted_proxies == (
        ip_network("10.0.0.0/8"),
        ip_network("::1/128"),
    )
    from_env = config.load({}, environ={"ATOMCHAT_TRUSTED_PROXIES": "192.168.1.0/24, 127.0.0.1"})
    assert from_env.trusted_proxies == (ip_network("192.168.1.0/24"), ip_network("127.0.0.1/32"))
    assert config.load({}, environ={}).trusted_proxies == ()
    with pytest.raises(config.ConfigError) as refused:
        config.load({"trusted_proxies": "10.0.0.0/8,example.org"}, environ={})
    assert str(refused.value) == (
        "flag --trusted-proxies: trusted_proxies = '10.0.0.0/8,example.org': "
        "'example.org' is not an IP network (such as 10.0.0.0/8 or ::1)"
    )
    path.write_text("trusted_proxies = [10]\n")
    with pytest.raises(config.ConfigError, match="not a list of networks"):
        config.load({"config": str(path)}, environ={})


async def register_from(api, name: str, address: str, status: int = 200):
    body = {"username": name, "password": DEFAULT_PASSWORD, "auth": {"type": "m.login.dummy"}}
    return await api.request(
        "POST",
        f"{MATRIX}/register",
        body,
        status=status,
        headers={"X-Forwarded-For": address},
        schema="matrix/register.response" if status == 200 else None,
    )


@pytest.mark.settings(trusted_proxies=(ip_network("127.0.0.0/8"),), rc_register_per_second=0.001, rc_register_burst=1)
async def test_behind_a_trusted_proxy_each_client_has_its_own_limits_and_log_lines(api, database_dsn, caplog):
    caplog.set_level(logging.INFO, logger="atomchat.http")
    alice = await register_from(api, "alice", "203.0.113.5")
    await register_from(api, "bob", "1.2.3.4, 203.0.113.6")  # what the client wrote itself is ignored
    limited = await register_from(api, "carol", "203.0.113.5", status=429)
    assert limited["errcode"] == "M_LIMIT_EXCEEDED"
    lines = [r.getMessage().rsplit(" ", 1)[0] for r in caplog.records if r.name == "atomchat.http"]
    assert lines == [
        f"203.0.113.5 POST {MATRIX}/register 200",
        f"203.0.113.6 POST {MATRIX}/register 200",
        f"203.0.113.5 POST {MATRIX}/register 429",
    ]

    await api.request(
        "GET",
        f"{MATRIX}/account/whoami",
        token=alice["access_token"],
        schema="matrix/whoami.response",
        headers={"X-Forwarded-For": "203.0.113.77"},
    )
    conn = await asyncpg.connect(database_dsn)
    try:
        seen = await conn.fetchval("SELECT last_seen_ip FROM devices WHERE user_id = $1", alice["user_id"])
    finally:
        await conn.close()
    assert seen == "203.0.113.77"


@pytest.mark.settings(trusted_proxies=(ip_network("10.0.0.0/8"),), rc_register_per_second=0.001, rc_register_burst=1)
async def test_from_a_peer_that_is_no_trusted_proxy_the_header_is_ignored(api, caplog):
    caplog.set_level(logging.INFO, logger="atomchat.http")
    await register_from(api, "alice", "203.0.113.5")
    limited = await register_from(api, "bob", "203.0.113.6", status=429)  # the same peer: the same limit
    assert limited["errcode"] == "M_LIMIT_EXCEEDED"
    assert [r.getMessage().split(" ", 1)[0] for r in caplog.records if r.name == "atomchat.http"] == ["127.0.0.1"] * 2
