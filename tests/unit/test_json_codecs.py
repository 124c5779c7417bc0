"""The JSON the server reads from PostgreSQL (db/pool.py's decode_json, the
codec of json and jsonb columns) and the JSON it writes sync answers with
(sync/response.py's dumps): both go through orjson for speed, and must mean
exactly what the json module reads and writes, including where orjson alone
would not (integers beyond 64 bits, lone surrogates)."""

from __future__ import annotations

import json

import pytest

from atomchat_server.db.pool import decode_json
from atomchat_server.sync import response

TEXTS = [
    '{"body": "message 1", "msgtype": "m.text"}',
    '{"a": [1, -2, 1.5, null, true, false, "\\u00e9t\\u00e9", "日本"], "b": {"c": {}}}',
    '{"membership": "join", "displayname": "Zoë"}',
    "{}",
    "[]",
    '"text"',
    "0",
    '{"n": 18446744073709551616}',  # 2**64: a float to orjson
    '{"n": -9223372036854775809}',  # below the 64-bit range
    '{"deep": [{"n": 123456789012345678901234567890}]}',
    '{"n": 9223372036854775807, "m": -9223372036854775808}',
    '{"s": "\\ud800"}',  # a lone surrogate, which orjson refuses
    '{"f": 1e400}',  # infinity to the json module, refused by orjson
]


@pytest.mark.parametrize("text", TEXTS)
def test_a_column_is_read_as_the_json_module_reads_it(text: str) -> None:
    assert repr(decode_json(text)) == repr(json.loads(text))


def test_each_empty_object_read_is_a_new_one() -> None:
    first = decode_json("{}")
    first["age"] = 5
    assert decode_json("{}") == {}


def json_module(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize(
    "value",
    [
        {"next_batch": "s12_3", "rooms": {"join": {"!r:x": {"timeline": {"events": [], "limited": False}}}}},
        {"content": {"body": 'été 日本 \n "quoted" \\ \u2028', "n": [0, -1, 2**63 - 1, -(2**63), 1.5, None]}},
        [True, False, None, "", 0],
        {"n": 2**70},  # beyond 64 bits: orjson refuses it, the json module writes it
        {"deep": [{"s": "\ud800"}]},  # a lone surrogate: likewise
    ],
)
def test_an_answer_is_written_as_the_json_module_writes_it(value: object) -> None:
    assert response.dumps(value) == json_module(value)
