"""The OpenAPI document: served, valid OpenAPI 3.1, and one-to-one with the
route table (every route's methods documented, every documented operation
served by the route Tornado would pick), every reference resolving."""

from __future__ import annotations

import json
import re

import pytest
from openapi_spec_validator import validate
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from atomchat_server.api.base import BaseHandler, handler_methods
from atomchat_server.api.contract import ContractError, Op, expand, openapi_document
from atomchat_server.app import routes

from ..support.client import ApiClient, check_schema

OPENAPI = "/_atomchat/openapi.json"


@pytest.fixture(scope="module")
def document():
    return openapi_document(routes())


def concrete(path: str) -> str:
    """A request path for a documented one: each parameter a sample value."""
    return re.sub(r"\{[^}]+\}", "sample", path)


def served_by(path: str) -> type | None:
    """The handler Tornado picks for a path: the first route that matches it whole."""
    for pattern, handler in routes():
        if re.fullmatch(pattern, path):
            return handler
    return None


async def test_the_document_is_served_and_is_valid_openapi_3_1(server, document):
    response = await ApiClient(server.base_url).request("GET", OPENAPI, schema="common/openapi.response")
    assert response.body == document
    assert document["openapi"] == "3.1.0"
    validate(response.body)  # raises on any violation of the OpenAPI 3.1 schema


async def test_every_path_answers_a_cors_preflight(server, document):
    """Found by fuzzing: OPTIONS on the account data routes, whose groups are
    named, was a 500."""
    for path in document["paths"]:
        if path == "/_atomchat/client/v1/stream":
            continue  # a WebSocket: no preflight
        response = await AsyncHTTPClient().fetch(
            HTTPRequest(server.base_url + concrete(path), method="OPTIONS"), raise_error=False
        )
        assert response.code == 204, f"OPTIONS {path}: {response.code}"
        assert response.headers["Access-Control-Allow-Origin"] == "*"


async def test_a_method_a_path_does_not_serve_is_405_naming_those_it_does(server, document):
    """Found by fuzzing: the 405 had no Allow header (RFC 9110 requires
    one), and the stream answered any method as a failed WebSocket upgrade,
    or (TRACE) with Tornado's HTML page."""
    for path, item in document["paths"].items():
        served = sorted(method.upper() for method in item)
        stream = path == "/_atomchat/client/v1/stream"
        allowed = set(served) | (set() if stream else {"OPTIONS"})
        for method in {"GET", "PUT", "POST", "DELETE", "PATCH", "TRACE"} - set(served):
            response = await AsyncHTTPClient().fetch(
                HTTPRequest(
                    server.base_url + concrete(path),
                    method=method,
                    body=None if method in ("GET", "DELETE", "TRACE") else b"{}",
                    allow_nonstandard_methods=True,
                ),
                raise_error=False,
            )
            assert response.code == 405, f"{method} {path}: {response.code}"
            assert set(response.headers["Allow"].split(", ")) == allowed, f"{method} {path}"
            check_schema("api/error" if path.startswith("/api/") else "common/error", json.loads(response.body))


def test_every_route_method_has_an_operation(document):
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    for pattern, handler in routes():
        for method in handler_methods(handler):
            matching = [path for path, m in documented if m == method and re.fullmatch(pattern, concrete(path))]
            assert matching, f"{method.upper()} {pattern} ({handler.__name__}) has no entry in the document"


def test_every_operation_is_served_by_its_route(document):
    count = 0
    for path, item in document["paths"].items():
        handler = served_by(concrete(path))
        assert handler is not None, f"{path} is documented but no route serves it"
        for method in item:
            assert method in handler_methods(handler), f"{method.upper()} {path}: {handler.__name__} has no {method}"
            count += 1
    assert count >= 90  # the table as it stood when the document was written; it only grows


def test_every_path_parameter_is_declared_and_every_declared_one_is_in_the_path(document):
    for path, item in document["paths"].items():
        in_path = set(re.findall(r"\{([^}]+)\}", path))
        for method, operation in item.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == in_path, f"{method.upper()} {path}"


def resolve(document, ref: str):
    assert ref.startswith("#/"), ref
    node = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolved $ref {ref}"
        node = node[part]
    return node


def test_every_reference_resolves(document):
    refs = []
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    assert len(refs) > 300
    for ref in refs:
        resolve(document, ref)


def test_every_operation_has_security_and_errors_in_the_surface_schema(document):
    for path, item in document["paths"].items():
        error = "#/components/schemas/" + ("api.error" if path.startswith("/api/") else "common.error")
        for method, operation in item.items():
            schemes = {name for requirement in operation["security"] for name in requirement}
            if path.startswith("/api/"):
                assert schemes <= {"token"}, f"{method.upper()} {path}"
            elif path.startswith("/_matrix/federation/"):
                assert schemes <= {"x_matrix"}, f"{method.upper()} {path}"
            else:
                assert schemes <= {"bearer", "access_token"}, f"{method.upper()} {path}"
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and response.get("content"):
                    schema = response["content"]["application/json"]["schema"]
                    refs = [schema["$ref"]] if "$ref" in schema else [s["$ref"] for s in schema["anyOf"]]
                    assert error in refs or status == "401", f"{method.upper()} {path} {status}"


def test_literal_groups_become_paths_and_parameters_take_the_method_names():
    assert expand(r"/a/([^/]+)/(lock|suspend)/?", ["user_id", "kind"]) == [
        ("/a/{user_id}/lock/", {"kind": "lock"}, ["user_id"]),
        ("/a/{user_id}/suspend/", {"kind": "suspend"}, ["user_id"]),
    ]
    assert expand(r"/x/(?P<room>[^/]+)/\.well", []) == [("/x/{room}/.well", {}, ["room"])]
    with pytest.raises(ContractError):
        expand(r"/api(?:/.*)?", [])
    with pytest.raises(ContractError):
        expand(r"/a/(\d+)", ["n"])


def test_a_method_without_a_contract_or_a_contract_without_a_method_is_refused():
    class Undeclared(BaseHandler):
        def get(self) -> None: ...

    class Declared(BaseHandler):
        contract = {"get": Op("x", {200: None})}

        def get(self) -> None: ...

    class Overdeclared(Declared):
        contract = {"get": Op("x", {200: None}), "post": Op("y", {200: None})}

    assert list(openapi_document([(r"/x", Declared)])["paths"]) == ["/x"]
    tables: list[list[tuple[str, type]]] = [
        [(r"/x", Undeclared)],
        [(r"/x", Overdeclared)],
        [(r"/x", Declared), (r"/x", Declared)],
    ]
    for table in tables:
        with pytest.raises(ContractError):
            openapi_document(table)
