"""What operators watch: /health, /ready, /metrics (loopback only by
default, or on a port of its own), request ids in headers and log lines, and
log lines as JSON."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from ipaddress import ip_network

import asyncpg
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from atomchat_server import logs, metrics
from atomchat_server.api.matrix_rooms import routes as room_routes

from ..support.client import MATRIX, ApiClient
from ..support.harness import child_env, free_port
from ..support.processes import Serve
from ..support.room_steps import register, room_of
from ..support.servers import truncate_all
from ..support.waiting import eventually

METRIC_LINE = re.compile(r"^(?P<name>[a-z_]+)(\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


async def fetch(url: str, headers: dict[str, str] | None = None) -> HTTPResponse:
    return await AsyncHTTPClient().fetch(url, headers=headers, raise_error=False)


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """The Prometheus text's samples: (name, labels) -> value."""
    found = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = METRIC_LINE.match(line)
        assert match, line
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"] or ""))
        found[(match["name"], labels)] = float(match["value"])
    return found


def send_route() -> str:
    return next(pattern for pattern, _handler in room_routes() if "/send/" in pattern)


async def test_health_answers_and_ready_checks_the_database_notifier_and_schema(api, database_dsn):
    health = await api.request("GET", "/health", schema="ops/health.response")
    assert health.body == {"status": "ok"}
    ready = await api.request("GET", "/ready", schema="ops/ready.response")
    assert ready.body == {"status": "ready", "checks": {"database": "ok", "notifier": "ok", "migrations": "ok"}}

    conn = await asyncpg.connect(database_dsn)
    try:  # a newer release migrated the database under this process: it serves on
        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'from_the_future')")
        ahead = await api.request("GET", "/ready", schema="ops/ready.response")
        # the database lacks a migration this process expects: not ready
        newest = await conn.fetchrow(
            "DELETE FROM schema_migrations WHERE version < 9999 AND version ="
            " (SELECT max(version) FROM schema_migrations WHERE version < 9999)"
            " RETURNING version, name"
        )
        try:
            behind = await api.request("GET", "/ready", status=503, schema="ops/ready.response")
        finally:
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", newest["version"], newest["name"]
            )
    finally:
        await conn.execute("DELETE FROM schema_migrations WHERE version = 9999")
        await conn.close()
    assert ahead["status"] == "ready"
    lacks = f"the database lacks migrations [{newest['version']}]"
    assert behind.body == {
        "status": "not ready",
        "errcode": "M_UNKNOWN",
        "checks": {"database": "ok", "notifier": "ok", "migrations": lacks},
        "error": f"Not ready: migrations: {lacks}",
    }
    await api.request("GET", "/ready", schema="ops/ready.response")


async def test_metrics_count_requests_by_route_pattern_and_the_writes_behind_them(api, server):
    alice, bob = await register(api, "alice", "bob")
    room_id = await room_of(alice, bob)
    before = samples((await fetch(server.base_url + "/metrics")).body.decode())
    for n in range(3):
        await alice.say(room_id, f"counted {n}")
    assert await alice.joined_rooms() == [room_id]  # a read
    response = await fetch(server.base_url + "/metrics")
    assert response.code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.body.decode()
    after = samples(text)

    def grew(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after[key] - before.get(key, 0.0)

    assert grew("atomchat_http_request_duration_seconds_count", route=send_route(), method="PUT", status="200") == 3
    assert room_id not in text  # routes by pattern, never by the path with its ids
    assert grew("atomchat_events_persisted_total") >= 3
    assert grew("atomchat_write_batch_size_count") >= 1
    assert grew("atomchat_notifier_lag_seconds_count") >= 1
    assert grew("atomchat_db_query_seconds_count", pool="read") >= 1
    assert grew("atomchat_write_commit_seconds_count") >= 1
    assert after[("atomchat_open_streams", frozenset())] == 0
    assert after[("atomchat_waiting_long_polls", frozenset())] == 0
    assert after[("atomchat_db_pool_connections", frozenset())] >= 1
    assert after[("atomchat_password_hash_queue", frozenset())] == 0
    assert ("process_cpu_seconds_total", frozenset()) in after


def atomchat_samples(text: str) -> list[tuple[str, str, dict[str, str], float]]:
    return [
        (family.name, family.type, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        if family.name.startswith("atomchat_")
        for sample in family.samples
    ]


async def test_the_exposition_reads_as_the_libraries_own(api):
    alice, bob = await register(api, "alice", "bob")
    await room_of(alice, bob)
    await api.request("GET", "/no/such/path", status=404)
    await api.request("GET", "/_atomchat/openapi.json", schema="common/openapi.response")
    ours = metrics.exposition().decode()
    theirs = generate_latest(metrics.REGISTRY).decode()
    assert atomchat_samples(ours) == atomchat_samples(theirs)
    assert len(atomchat_samples(ours)) > 50
    assert 'route="/_atomchat/openapi\\\\.json"' in ours  # the pattern's backslash, escaped


async def test_a_method_nobody_serves_is_counted_as_other(api):
    await api.request("BREW", "/health", status=405)
    assert 'route="/health",method="OTHER",status="405"' in metrics.exposition().decode()


async def test_an_open_long_poll_shows_in_the_metrics(api, server):
    [alice] = await register(api, "alice")
    first = await alice.call("GET", "/sync", schema="matrix/sync.response")
    waiting = asyncio.ensure_future(
        alice.call("GET", f"/sync?since={first['next_batch']}&timeout=3000", schema="matrix/sync.response")
    )

    async def shown():
        text = (await fetch(server.base_url + "/metrics")).body.decode()
        return samples(text)[("atomchat_waiting_long_polls", frozenset())] == 1

    await eventually(shown, timeout=2.5, what="the long-poll in the metrics")
    await waiting


@pytest.mark.settings(metrics_allow=(ip_network("10.0.0.0/8"),))
async def test_metrics_are_refused_to_an_address_not_allowed(api):
    answer = await api.request("GET", "/metrics", status=403)
    assert answer.body == {
        "errcode": "M_FORBIDDEN",
        "error": "Metrics are served to the addresses metrics_allow names only",
    }


@pytest.mark.settings(metrics_allow=(ip_network("10.0.0.0/8"),), trusted_proxies=(ip_network("127.0.0.0/8"),))
async def test_behind_a_trusted_proxy_the_metrics_go_by_the_client_it_names(server):
    allowed = await fetch(server.base_url + "/metrics", {"X-Forwarded-For": "10.1.2.3"})
    refused = await fetch(server.base_url + "/metrics", {"X-Forwarded-For": "203.0.113.9"})
    assert (allowed.code, refused.code) == (200, 403)


async def test_every_answer_names_its_request_and_error_log_lines_carry_it(api, caplog):
    caplog.set_level(logging.INFO, logger="atomchat.http")
    made = await api.request("GET", "/_matrix/client/versions", schema="matrix/versions.response")
    assert re.fullmatch(r"[0-9a-f]{16}", made.headers["X-Request-ID"])
    missing = await api.request("GET", "/no/such/path", status=404, headers={"X-Request-ID": "lb-4711"})
    assert missing.headers["X-Request-ID"] == "lb-4711"
    forged = await api.request("GET", "/no/such/path", status=404, headers={"X-Request-ID": "a b;c"})
    assert re.fullmatch(r"[0-9a-f]{16}", forged.headers["X-Request-ID"])  # not a safe token: replaced
    lines = {r.getMessage().split()[2]: r.request_id for r in caplog.records if r.name == "atomchat.http"}
    assert lines["/no/such/path"] == forged.headers["X-Request-ID"]


async def test_json_logs_and_a_metrics_port_of_its_own(data_dir, database_dsn):
    await truncate_all(database_dsn)
    metrics_port = free_port()
    with Serve(
        data_dir,
        "--database-url",
        database_dsn,
        "--log-format",
        "json",
        "--metrics-port",
        str(metrics_port),
        env=child_env(ATOMCHAT_SIGNING_KEY=secrets.token_hex(32)),
    ) as serve:
        await serve.ready()
        api = ApiClient(serve.base_url)
        await api.request("GET", "/metrics", status=404)  # not on the main port
        own = await fetch(f"http://127.0.0.1:{metrics_port}/metrics")
        assert own.code == 200
        assert b"atomchat_http_request_duration_seconds_count" in own.body
        ready = await ApiClient(f"http://127.0.0.1:{metrics_port}").request(
            "GET", "/ready", schema="ops/ready.response"
        )
        assert ready["status"] == "ready"
        refused = await api.request("GET", f"{MATRIX}/account/whoami", status=401)
        rid = refused.headers["X-Request-ID"]
    entries = [json.loads(line) for line in serve.output.splitlines() if line.startswith("{")]
    assert len(entries) == len(serve.output.splitlines()), serve.output  # every line is JSON
    [logged] = [e for e in entries if e.get("request_id") == rid]
    assert logged["logger"] == "atomchat.http"
    assert logged["message"].startswith(f"127.0.0.1 GET {MATRIX}/account/whoami 401 ")
    assert set(logged) == {"time", "level", "logger", "message", "request_id"}


def test_text_log_lines_name_the_request_in_warnings_and_errors():
    formatter = logs.TextFormatter()

    def line(level: int, message: str) -> str:
        record = logging.LogRecord("atomchat.http", level, __file__, 1, message, None, None)
        record.request_id = "lb-4711"
        return formatter.format(record).split(" ", 2)[2]

    assert (
        line(logging.INFO, "127.0.0.1 GET /health 200 0.4ms") == "INFO atomchat.http: 127.0.0.1 GET /health 200 0.4ms"
    )
    assert (
        line(logging.ERROR, "127.0.0.1 GET /x 500 1.0ms")
        == "ERROR atomchat.http: 127.0.0.1 GET /x 500 1.0ms [request lb-4711]"
    )
