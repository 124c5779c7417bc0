"""X-Matrix request signing: the header this server sends, the lenient
parsing the specification asks for, and the checks on a received request."""

from __future__ import annotations

import pytest

from atomchat_server.events import signing
from atomchat_server.federation.x_matrix import (
    XMatrixAuth,
    XMatrixError,
    authorization_header,
    parse_authorization,
    request_json,
    verify_request,
)

KEY = signing.signing_key_from_seed("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1", "1")
OTHER = signing.signing_key_from_seed("A" * 43, "1")
KEYS = {"ed25519:1": signing.verify_key_of(KEY)}
URI = "/_matrix/federation/v1/send/txn1?x=1"
BODY = {"pdus": [], "edus": [{"edu_type": "m.typing"}]}


def test_header_is_the_strict_form_with_the_signature_of_the_request_json():
    header = authorization_header("origin.example", "dest.example", KEY, "PUT", URI, BODY)
    expected = signing.sign_json(
        request_json("PUT", URI, "origin.example", "dest.example", BODY), "origin.example", KEY
    )["signatures"]["origin.example"]["ed25519:1"]
    assert header == (f'X-Matrix origin="origin.example",destination="dest.example",key="ed25519:1",sig="{expected}"')


def test_request_json_leaves_out_absent_content():
    assert request_json("GET", "/p", "a", "b") == {"method": "GET", "uri": "/p", "origin": "a", "destination": "b"}
    assert request_json("PUT", "/p", "a", "b", {}) == {
        "method": "PUT",
        "uri": "/p",
        "origin": "a",
        "destination": "b",
        "content": {},
    }


@pytest.mark.parametrize(
    "header, expected",
    [
        (
            'X-Matrix origin="o.example",destination="d.example",key="ed25519:1",sig="c2ln"',
            XMatrixAuth("o.example", "ed25519:1", "c2ln", "d.example"),
        ),
        (
            'X-Matrix   origin="o.example" ,\tkey="ed25519:1" , sig="c2ln"',
            XMatrixAuth("o.example", "ed25519:1", "c2ln", None),
        ),
        (
            'x-matrix ORIGIN="o.example",Key="ed25519:1",SIG="c2ln",Destination="d.example"',
            XMatrixAuth("o.example", "ed25519:1", "c2ln", "d.example"),
        ),
        (
            "X-Matrix origin=o.example:8448,key=ed25519:1,sig=c2ln",
            XMatrixAuth("o.example:8448", "ed25519:1", "c2ln", None),
        ),
        (
            r'X-Matrix origin="o\.example",key="ed25519:1",sig="a\"b\\c"',
            XMatrixAuth("o.example", "ed25519:1", 'a"b\\c', None),
        ),
        (
            'X-Matrix sig="c2ln",future="x, y",key="ed25519:1",origin="o.example"',
            XMatrixAuth("o.example", "ed25519:1", "c2ln", None),
        ),
    ],
    ids=["strict", "spaces-and-tabs", "case-insensitive", "unquoted-with-colons", "escapes", "unknown-and-order"],
)
def test_parse_authorization(header, expected):
    assert parse_authorization(header) == expected


@pytest.mark.parametrize(
    "header, reason",
    [
        ("Bearer abc", "not of the X-Matrix scheme"),
        ('X-Matrixorigin="o"', "not of the X-Matrix scheme"),
        ("X-Matrix", "lacks origin, key, sig"),
        ('X-Matrix origin="o.example",key="ed25519:1"', "lacks sig"),
        ('X-Matrix origin="",key="ed25519:1",sig="s"', "lacks origin"),
        ('X-Matrix origin="o.example",key="ed25519:1",sig="s', "malformed"),
        ('X-Matrix origin="o.example";key="ed25519:1",sig="s"', "malformed"),
        ('X-Matrix origin,key="ed25519:1",sig="s"', "malformed"),
        ('X-Matrix origin="a",origin="b",key="ed25519:1",sig="s"', "given twice"),
        ('X-Matrix origin=o example,key="ed25519:1",sig="s"', "malformed"),
    ],
    ids=[
        "other-scheme",
        "no-space",
        "no-parameters",
        "no-sig",
        "empty-origin",
        "unterminated-quote",
        "semicolon",
        "name-without-value",
        "duplicate",
        "space-in-token",
    ],
)
def test_parse_authorization_refuses(header, reason):
    with pytest.raises(XMatrixError, match=reason):
        parse_authorization(header)


def _signed(method="PUT", uri=URI, content=BODY, destination="dest.example", key=KEY) -> XMatrixAuth:
    return parse_authorization(authorization_header("origin.example", destination, key, method, uri, content))


@pytest.mark.parametrize(
    "auth, method, uri, content, keys, reason",
    [
        (_signed(), "PUT", URI, BODY, KEYS, None),
        (_signed(method="GET", content=None), "GET", URI, None, KEYS, None),
        (_signed(), "POST", URI, BODY, KEYS, "does not match"),
        (_signed(), "PUT", URI + "&y=2", BODY, KEYS, "does not match"),
        (_signed(), "PUT", URI, {**BODY, "pdus": [{}]}, KEYS, "does not match"),
        (_signed(content=None), "PUT", URI, {}, KEYS, "does not match"),
        (_signed(destination="elsewhere.example"), "PUT", URI, BODY, KEYS, "addressed to elsewhere.example"),
        (_signed(key=OTHER), "PUT", URI, BODY, KEYS, "does not match"),
        (_signed(), "PUT", URI, BODY, {}, "no key ed25519:1"),
    ],
    ids=[
        "genuine",
        "genuine-without-body",
        "other-method",
        "other-uri",
        "other-body",
        "body-added",
        "other-destination",
        "other-key",
        "unknown-key",
    ],
)
def test_verify_request(auth, method, uri, content, keys, reason):
    if reason is None:
        verify_request(auth, method, uri, content, "dest.example", keys)
    else:
        with pytest.raises(XMatrixError, match=reason):
            verify_request(auth, method, uri, content, "dest.example", keys)


def test_older_servers_without_destination_parameter_are_accepted():
    """The destination is still in the signed JSON; only the header lacks it."""
    strict = _signed()
    legacy = XMatrixAuth(strict.origin, strict.key, strict.sig, None)
    verify_request(legacy, "PUT", URI, BODY, "dest.example", KEYS)
    with pytest.raises(XMatrixError, match="does not match"):
        verify_request(legacy, "PUT", URI, BODY, "other.example", KEYS)
