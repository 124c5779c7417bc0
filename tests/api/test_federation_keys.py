"""The server's federation signing key: made on first start, kept in the
data directory with mode 0600, and published signed at
GET /_matrix/key/v2/server (tested over real HTTP)."""

from __future__ import annotations

import stat
import time

import pytest

from atomchat_server.events import signing
from atomchat_server.federation.keys import KEY_FILE, KEY_VALIDITY_MS, key_document, load_or_create_server_key

from ..support.client import ApiClient

KEYS = "/_matrix/key/v2/server"
SCHEMA = "federation/server_key.response"


def _published_key(document):
    ((key_id, entry),) = document["verify_keys"].items()
    return signing.verify_key_from_base64(key_id, entry["key"])


async def test_key_endpoint_serves_the_data_directory_key_signed(server, api, settings):
    before = int(time.time() * 1000)
    document = (await api.request("GET", KEYS, schema=SCHEMA)).body
    after = int(time.time() * 1000)
    stored = load_or_create_server_key(settings.data_path)
    key_id = signing.key_id(stored)
    assert document["server_name"] == "test.local"
    assert document["verify_keys"] == {key_id: {"key": signing.verify_key_base64(signing.verify_key_of(stored))}}
    assert document["old_verify_keys"] == {}
    assert before + KEY_VALIDITY_MS <= document["valid_until_ts"] <= after + KEY_VALIDITY_MS
    assert list(document["signatures"]) == ["test.local"]
    assert list(document["signatures"]["test.local"]) == [key_id]
    # Signed by the key it publishes: what another server checks first.
    signing.verify_json(document, "test.local", _published_key(document))
    with pytest.raises(signing.SignatureError):
        signing.verify_json(
            {**document, "valid_until_ts": document["valid_until_ts"] + 1}, "test.local", _published_key(document)
        )
    mode = stat.S_IMODE((settings.data_path / KEY_FILE).stat().st_mode)
    assert mode == 0o600


async def test_key_survives_a_restart_and_the_slash_form_is_served(server, api, more_servers):
    first = (await api.request("GET", KEYS, schema=SCHEMA)).body
    restarted = await more_servers()  # same settings, so the same data directory
    again = (await ApiClient(restarted.base_url).request("GET", KEYS + "/", schema=SCHEMA)).body
    assert again["verify_keys"] == first["verify_keys"]
    signing.verify_json(again, "test.local", _published_key(first))


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_key_endpoint_is_read_only(server, api, method):
    error = await api.request(method, KEYS, {} if method != "DELETE" else None, status=405)
    assert error["errcode"] == "M_UNRECOGNIZED"


def test_key_file_is_made_once_in_the_shared_format(tmp_path):
    data = tmp_path / "data"
    key = load_or_create_server_key(data)
    line = (data / KEY_FILE).read_text()
    algorithm, version, seed = line.split()
    assert (algorithm, key.version, key.alg) == ("ed25519", version, "ed25519")
    assert version.startswith("a_") and len(version) == 6 and len(seed) == 43
    assert stat.S_IMODE((data / KEY_FILE).stat().st_mode) == 0o600
    again = load_or_create_server_key(data)
    assert signing.verify_key_base64(signing.verify_key_of(again)) == signing.verify_key_base64(
        signing.verify_key_of(key)
    )
    assert load_or_create_server_key(tmp_path / "other").encode() != key.encode()


def test_key_document_with_the_specification_seed():
    key = signing.signing_key_from_seed("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1", "1")
    document = key_document("domain", key, now_ms=1_000)
    signature = document.pop("signatures")
    assert document == {
        "server_name": "domain",
        "valid_until_ts": 1_000 + KEY_VALIDITY_MS,
        "verify_keys": {"ed25519:1": {"key": "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI"}},
        "old_verify_keys": {},
    }
    assert list(signature) == ["domain"] and list(signature["domain"]) == ["ed25519:1"]
    signing.verify_json({**document, "signatures": signature}, "domain", signing.verify_key_of(key))
