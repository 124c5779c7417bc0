"""Hostile input is a 400, never a 500, and no credential reaches the log.

Every body, query parameter and WebSocket frame that holds JSON is read by
one function (validation.load_json), which refuses lone surrogates, NUL,
NaN/Infinity and nesting deeper than MAX_JSON_DEPTH; integer arguments are
read as 64-bit. The autouse ``log_scan`` fixture (conftest) fails any test
whose server logged a token or the test password; the tests here also check
that the lines which used to leak are still written, without the secret.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

import pytest

from atomchat_server.errors import MatrixError
from atomchat_server.validation import MAX_JSON_DEPTH, int64, load_json

from ..support.client import MATRIX
from ..support.room_steps import register, room_of
from ..support.stream_steps import Stream

SURROGATE_CONTENT = '{"msgtype": "m.text", "body": "\\ud800"}'
SURROGATE_KEY = '{"msgtype": "m.text", "body": "x", "\\udfff": 1}'


def nested(depth: int) -> str:
    """A filter whose timeline holds lists nested ``depth`` deep."""
    return '{"room": {"timeline": ' + "[" * depth + "]" * depth + "}}"


# -- the one reader --------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, errcode, words",
    [
        ('{"a": "\\ud800"}', "M_BAD_JSON", "lone surrogates"),
        ('{"\\udc00": 1}', "M_BAD_JSON", "lone surrogates"),
        ('"\\ud800"'.encode("utf-8", "surrogatepass"), "M_BAD_JSON", "lone surrogates"),
        ('{"a": "\\u0000"}', "M_BAD_JSON", "NUL"),
        ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), "M_BAD_JSON", "nested more than"),
        ("[" * 100_000 + "]" * 100_000, "M_BAD_JSON", "nested more than"),
        ('{"a": NaN}', "M_NOT_JSON", "not valid JSON"),
        ('{"a": -Infinity}', "M_NOT_JSON", "not valid JSON"),
        ('{"a": 1e400}', "M_BAD_JSON", "out of range"),
        ('{"a": ', "M_NOT_JSON", "not valid JSON"),
    ],
)
def test_load_json_refuses(raw, errcode, words):
    with pytest.raises(MatrixError) as refused:
        load_json(raw)
    assert (refused.value.status, refused.value.errcode) == (400, errcode)
    assert words in refused.value.error


def test_load_json_takes_what_clients_send():
    deepest = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert load_json(deepest) is not None
    assert load_json('{"a": "\\ud83d\\ude00", "b": 1.5, "c": null}') == {"a": "\U0001f600", "b": 1.5, "c": None}


@pytest.mark.parametrize(
    "text, value", [("0", 0), ("-9223372036854775808", -(2**63)), ("9223372036854775807", 2**63 - 1)]
)
def test_int64_reads_a_bigint(text, value):
    assert int64(text, "from") == value


@pytest.mark.parametrize("text", ["9223372036854775808", "99999999999999999999999", "", " 1", "1_0", "١٢", "0x10"])
def test_int64_refuses_the_rest(text):
    with pytest.raises(MatrixError) as refused:
        int64(text, "from")
    assert refused.value.errcode == "M_INVALID_PARAM" and "'from'" in refused.value.error


# -- over HTTP and the stream ------------------------------------------------------------


async def test_a_lone_surrogate_in_event_content_or_key_is_400(server, api):
    (alice,) = await register(api, "alice")
    room_id = await room_of(alice)
    for raw in (SURROGATE_CONTENT, SURROGATE_KEY):
        for path in (f"/rooms/{room_id}/send/m.room.message/t{len(raw)}", f"/rooms/{room_id}/state/m.room.topic/"):
            error = (await alice.call("PUT", path, raw=raw, status=400)).body
            assert error["errcode"] == "M_BAD_JSON" and "surrogate" in error["error"]
    assert (
        await alice.call(
            "PUT",
            f"/rooms/{room_id}/send/m.room.message/ok",
            {"msgtype": "m.text", "body": "ok"},
            schema="matrix/event_id.response",
        )
    ).status == 200


@pytest.mark.settings(max_header_bytes=65536)  # room in the request line for the 3,000-deep filter
async def test_deep_filters_on_sync_and_messages_are_400_and_keep_the_token_out_of_the_log(server, api, log_scan):
    (alice,) = await register(api, "alice")
    room_id = await room_of(alice)
    deep = quote(nested(3000))
    for path in (f"/sync?filter={deep}", f"/rooms/{room_id}/messages?filter={deep}"):
        error = await api.request("GET", f"{MATRIX}{path}&access_token={alice.access_token}", status=400)
        assert error["errcode"] == "M_INVALID_PARAM" and "nested" in error["error"]
    assert any("GET /_matrix/client/v3/sync 400" in line for line in log_scan.lines)


async def test_an_unhandled_error_is_logged_by_path_without_the_query(server, api, log_scan, monkeypatch):
    """Tornado's own exception log wrote the whole URI, ?access_token=
    included; the server's names the path alone (any handler failure)."""
    (alice,) = await register(api, "alice")

    async def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(server.atomchat.ctx.accounts, "record_last_seen", broken)
    error = await api.request("GET", f"{MATRIX}/account/whoami?access_token={alice.access_token}", status=500)
    assert error.body == {"errcode": "M_UNKNOWN", "error": "Internal server error"}
    logged = [line for line in log_scan.lines if "Uncaught exception GET /_matrix/client/v3/account/whoami" in line]
    assert len(logged) == 1 and "RuntimeError: a bug" in logged[0]


def test_tornado_lines_that_quote_a_request_are_redacted(server, log_scan):
    """Tornado quotes a malformed header or query in its own log lines."""
    logging.getLogger("tornado.general").info(
        "Malformed HTTP message from 127.0.0.1: Invalid header value %r",
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln; atomchat_rt_abc x?access_token=tok",
    )
    assert log_scan.lines[-1] == (
        "INFO tornado.general: Malformed HTTP message from 127.0.0.1: Invalid header value "
        "'Authorization: Bearer [redacted]; [redacted] x?access_token=[redacted]'"
    )


@pytest.mark.parametrize(
    "query", ["from=99999999999999999999999", "from=-1x", "limit=1e3", "limit=99999999999999999999999"]
)
async def test_admin_int_arguments_above_64_bits_are_400(server, api, query):
    (mod,) = await register(api, "mod")
    await server.atomchat.ctx.moderation.set_moderator(None, mod.user_id, True)
    error = await api.request("GET", f"/_atomchat/admin/v1/users?{query}", token=mod.access_token, status=400)
    assert error["errcode"] == "M_INVALID_PARAM"


async def test_huge_integer_arguments_on_the_client_api_are_400(server, api):
    (alice,) = await register(api, "alice")
    room_id = await room_of(alice)
    for path in ("/sync?timeout=99999999999999999999999", f"/rooms/{room_id}/messages?limit=99999999999999999999"):
        error = await api.request("GET", MATRIX + path, token=alice.access_token, status=400)
        assert error["errcode"] == "M_INVALID_PARAM"


async def test_a_stream_send_with_a_lone_surrogate_closes_with_4400_and_a_reason(server, api):
    (alice,) = await register(api, "alice")
    room_id = await room_of(alice)
    stream = await Stream.open(server.base_url, token=alice.access_token)
    await stream.frame()
    frame = (
        f'{{"id": 1, "method": "send", "params": {{"room_id": {json.dumps(room_id)}, "type": "m.room.message", '
        f'"txn_id": "s", "content": {SURROGATE_CONTENT}}}}}'
    )
    await stream.conn.write_message(frame)
    code, reason = await stream.closed()
    assert code == 4400 and "surrogate" in reason
