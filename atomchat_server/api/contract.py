"""The HTTP contract: each handler declares, beside its code, what each of
its methods takes and answers; ``openapi_document`` turns the route table and
those declarations into the OpenAPI 3.1 document served at
``/_atomchat/openapi.json``.

A handler's ``contract`` maps a method (``"get"``, ``"put"``, ...) to an
``Op``. Schemas are named as in ``schemas/`` (``matrix/login.request``); a
route's path parameters are its regex groups, named by the handler method's
arguments (or by the group's name). A group that is an alternation of
literals (``(lock|suspend)``) becomes one path per literal, and the ``Op``'s
strings may name it (``"admin/{kind}.request"``); an entry may also be a
function of those literals returning the ``Op``. Errors are the surface's
error schema (``error_schema`` on the handler class) for every status the
``Op`` lists, plus 400 for input, 401 for authentication, 413 for a body
too large, 414 / 431 for a request line or headers too large and 503 for a
server that cannot serve it right now (its database unreachable, say),
which every operation of that kind can answer.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urljoin

from ..validation import BASE_URI, schemas
from .base import BaseHandler, handler_methods

# Security schemes, by the name operations refer to them with.
SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An access token from login or registration: `Authorization: Bearer <token>`.",
    },
    "access_token": {
        "type": "apiKey",
        "in": "query",
        "name": "access_token",
        "description": "The access token as a query parameter (deprecated by Matrix; prefer the header).",
    },
    "x_matrix": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "Another server's signature of the request: `Authorization: X-Matrix origin=...,"
        "destination=...,key=...,sig=...` (Matrix server-server API). No client "
        "credential is accepted.",
    },
    "token": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "The /api key from POST /api/auth/tokens/: `Authorization: Token <key>` "
        "(`Bearer <key>` is accepted too).",
    },
}


@dataclass(frozen=True)
class Param:
    """A query parameter."""

    name: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Op:
    """One operation: ``responses`` maps each success status to the schema
    of its body (``None``: no body; a tuple: any of these), and may give an
    error status a body other than the error schema (user-interactive
    authentication's 401); ``errors`` lists the error statuses
    beyond those every operation of its kind may answer. ``request`` names
    the body's schema (``OBJECT``: any JSON object). ``auth`` is ``"token"``
    (required), ``"none"`` or ``"optional"``."""

    summary: str
    responses: Mapping[int, str | tuple[str, ...] | None]
    request: str | None = None
    query: tuple[Param, ...] = ()
    auth: str = "token"
    errors: tuple[int, ...] = ()
    description: str = ""


OBJECT = "common/object"
Contract = Mapping[str, "Op | Callable[..., Op]"]

_GROUP = re.compile(r"\((\?P<(?P<name>\w+)>)?(?P<body>[^()]*)\)")
_LITERALS = re.compile(r"[\w.-]+(\|[\w.-]+)*")


class ContractError(Exception):
    """A route the document cannot describe: a missing declaration or a
    pattern it cannot read. Raised when the document is built, so the tests
    (and the first request for it) fail rather than serve a partial one."""


def _argument_names(handler: type, method: str) -> list[str]:
    signature = inspect.signature(getattr(handler, method))
    return [
        p.name
        for p in list(signature.parameters.values())[1:]
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def expand(pattern: str, names: list[str]) -> list[tuple[str, dict[str, str], list[str]]]:
    """The OpenAPI paths of a route pattern: ``(path, literals, parameters)``
    for each combination of literal alternatives."""
    if pattern.endswith("/?"):
        pattern = pattern[:-1]  # documented with the slash; either form is served
    results: list[tuple[str, dict[str, str], list[str]]] = [("", {}, [])]
    position = 0
    for index, match in enumerate(_GROUP.finditer(pattern)):
        text = _literal(pattern, pattern[position : match.start()])
        name = match["name"] or (names[index] if index < len(names) else None)
        if name is None:
            raise ContractError(f"route {pattern!r}: group {index + 1} has no name")
        body = match["body"]
        if body == "[^/]+":
            results = [(path + text + "{" + name + "}", lits, params + [name]) for path, lits, params in results]
        elif _LITERALS.fullmatch(body):
            results = [
                (path + text + value, {**lits, name: value}, params)
                for path, lits, params in results
                for value in body.split("|")
            ]
        else:
            raise ContractError(f"route {pattern!r}: cannot describe group {body!r}")
        position = match.end()
    tail = _literal(pattern, pattern[position:])
    return [(path + tail, lits, params) for path, lits, params in results]


def _literal(pattern: str, text: str) -> str:
    """A stretch of a pattern between groups as the text it matches: escaped
    characters (``\\.``) stand for themselves; any other special character
    makes the route one the document cannot describe."""
    unescaped = re.sub(r"\\([.\-/])", "", text)
    if re.search(r"[\\^$.*+?\[\]{}|()]", unescaped):
        raise ContractError(f"cannot describe route {pattern!r}")
    return re.sub(r"\\(.)", r"\1", text)


def _component(name: str) -> str:
    return name.replace("/", ".")


def _schema_ref(name: str) -> dict[str, str]:
    return {"$ref": "#/components/schemas/" + _component(name)}


def _rewrite_refs(node: Any, base: str) -> Any:
    """A schema with its ``$ref``s pointing into the document's components
    rather than at the files they name."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("$id", "$schema"):
                continue
            if key == "$ref" and isinstance(value, str):
                target = urljoin(base, value)
                document, _, pointer = target.partition("#")
                if not document.startswith(BASE_URI) or not document.endswith(".json"):
                    raise ContractError(f"{base}: $ref {value!r} leaves schemas/")
                out[key] = "#/components/schemas/" + _component(document[len(BASE_URI) : -5]) + pointer
            else:
                out[key] = _rewrite_refs(value, base)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, base) for item in node]
    return node


def _components() -> dict[str, Any]:
    """Every schema in ``schemas/``, so that references between them resolve."""
    registry = schemas()
    out: dict[str, Any] = {}
    for name in registry.names:
        document = registry.document(name)
        component = _component(name)
        if component in out:
            raise ContractError(f"two schemas are named {component!r} in the document")
        out[component] = _rewrite_refs(document, document["$id"])
    return out


def _format(value: str, literals: dict[str, str]) -> str:
    return value.format(**literals) if literals else value


def _operation(
    path: str, handler: type, method: str, op: Op, literals: dict[str, str], path_params: list[str]
) -> dict[str, Any]:
    error = _schema_ref(getattr(handler, "error_schema", "common/error"))
    responses: dict[str, Any] = {}
    for status, schema in sorted(op.responses.items()):
        response: dict[str, Any] = {"description": _describe(status)}
        if schema is not None:
            names = [_format(name, literals) for name in ((schema,) if isinstance(schema, str) else schema)]
            body = _schema_ref(names[0]) if len(names) == 1 else {"anyOf": [_schema_ref(n) for n in names]}
            response["content"] = {"application/json": {"schema": body}}
        responses[str(status)] = response
    errors = set(op.errors) | {413, 414, 431, 503}
    if op.request is not None or op.query or path_params:
        errors.add(400)
    if op.auth != "none":
        errors.add(401)
    for status in sorted(errors - set(op.responses)):
        responses[str(status)] = {"description": _describe(status), "content": {"application/json": {"schema": error}}}
    operation: dict[str, Any] = {
        "operationId": f"{method.upper()} {path}",
        "summary": op.summary.format(**literals) if literals else op.summary,
        "tags": [handler.__module__.rsplit(".", 1)[-1]],
        "responses": responses,
    }
    if op.description:
        operation["description"] = op.description
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in path_params]
    parameters += [
        {
            "name": p.name,
            "in": "query",
            "required": p.required,
            "schema": dict(p.schema),
            **({"description": p.description} if p.description else {}),
        }
        for p in op.query
    ]
    if parameters:
        operation["parameters"] = parameters
    if op.request is not None:
        name = _format(op.request, literals)
        # An empty body reads as {}: the body is optional when {} is valid.
        operation["requestBody"] = {
            "required": not schemas().validator(name).is_valid({}),
            "content": {"application/json": {"schema": _schema_ref(name)}},
        }
    schemes = getattr(handler, "security", ("bearer", "access_token"))
    if op.auth == "none":
        operation["security"] = []
    else:
        operation["security"] = [{scheme: []} for scheme in schemes] + ([{}] if op.auth == "optional" else [])
    return operation


_REASONS = {
    101: "Switching to the WebSocket protocol",
    200: "Success",
    201: "Created",
    204: "Done, no body",
    400: "Bad input: nothing changed",
    401: "Missing, unknown or expired credentials",
    403: "Refused",
    404: "Not found",
    409: "Conflict",
    413: "Body too large",
    414: "Request line too long",
    429: "Rate limited, or too many open: retry later",
    431: "Headers too large",
    502: "Another server (federation) could not answer",
    503: "Unavailable for now (database unreachable, real-time delivery not current, shutting down): retry later",
}


def _describe(status: int) -> str:
    return _REASONS.get(status, str(status))


def operations(routes: list[tuple[str, type]]) -> Iterator[tuple[str, str, type, str, Op, dict[str, str], list[str]]]:
    """Every documented operation: ``(path, method, handler, pattern, op,
    literals, path parameters)``. Raises ContractError for a method that
    has no declaration, a declaration without its method, or two routes
    documenting the same path and method."""
    seen: set[tuple[str, str]] = set()
    for pattern, handler in routes:
        methods = handler_methods(handler)
        contract: Contract = getattr(handler, "contract", {})
        for method in contract:
            if method not in methods:
                raise ContractError(f"{handler.__name__} declares {method.upper()} but does not implement it")
        for method in methods:
            if method not in contract:
                raise ContractError(f"{handler.__name__}.{method} ({pattern}) has no contract")
            for path, literals, params in expand(pattern, _argument_names(handler, method)):
                if (path, method) in seen:
                    raise ContractError(f"{method.upper()} {path} is documented twice")
                seen.add((path, method))
                entry = contract[method]
                op = entry if isinstance(entry, Op) else entry(**literals)
                yield path, method, handler, pattern, op, literals, params


def openapi_document(routes: list[tuple[str, type]]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for path, method, handler, _, op, literals, params in operations(routes):
        paths.setdefault(path, {})[method] = _operation(path, handler, method, op, literals, params)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "AtomChat",
            "version": "1",
            "description": "Every HTTP endpoint of an AtomChat server: the Matrix client-server API "
            "subset, the AtomChat extensions and admin API, and the original /api. "
            "The written specification is protocol/ in the AtomChat repository.",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": {"schemas": _components(), "securitySchemes": SECURITY_SCHEMES},
    }


@lru_cache(maxsize=4)
def document_json(routes: tuple[tuple[str, type], ...]) -> str:
    """The document as served, built once per route table."""
    return json.dumps(openapi_document(list(routes)), ensure_ascii=False, separators=(",", ":"))


class OpenApiHandler(BaseHandler):
    """The contract itself, for client authors and for fuzzers."""

    contract = {"get": Op("This OpenAPI 3.1 document", {200: "common/openapi.response"}, auth="none")}

    def get(self) -> None:
        self.finish(self.ctx.openapi)


OPENAPI_PATH = r"/_atomchat/openapi\.json"
