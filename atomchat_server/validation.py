"""JSON Schemas from ``schemas/``, compiled once, used to check request bodies.

A schema is named by its path under ``schemas/`` without ``.json``
(``matrix/login.request``). Each file declares its ``$id``, ``BASE_URI``
followed by its path (schemas/README.md); schemas refer to each other with
``$ref``s relative to that ``$id``, so a registry built from the files by
their own ``$id`` (any JSON Schema library's) resolves every reference
offline. The tests use the same registry to check every response they receive.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any, cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from .errors import MatrixError, bad_json, invalid_param, missing_param
from .resources import Traversable, schemas_dir

BASE_URI = "https://atomchat.invalid/schemas/"


def schema_id(name: str) -> str:
    """The ``$id`` of the schema named ``name`` (``matrix/login.request``)."""
    return f"{BASE_URI}{name}.json"


def _walk(folder: Traversable, prefix: str = "") -> Iterator[tuple[str, Traversable]]:
    for entry in folder.iterdir():
        if entry.is_dir():
            yield from _walk(entry, f"{prefix}{entry.name}/")
        elif entry.name.endswith(".json"):
            yield f"{prefix}{entry.name[:-5]}", entry


class Schemas:
    def __init__(self) -> None:
        self._documents: dict[str, dict[str, Any]] = {}
        resources = []
        for name, entry in _walk(schemas_dir()):
            document = json.loads(entry.read_text(encoding="utf-8"))
            # A file without an $id gets the one it should declare (which
            # tests/test_schemas.py insists on); a different one is an error.
            if document.setdefault("$id", schema_id(name)) != schema_id(name):
                raise ValueError(f"schemas/{name}.json: its $id must be {schema_id(name)!r}")
            Draft202012Validator.check_schema(document)
            self._documents[name] = document
            resources.append(Resource.from_contents(document))
        self._registry: Registry[Any] = resources @ Registry()
        self._validators: dict[str, Draft202012Validator] = {}

    @property
    def names(self) -> list[str]:
        return sorted(self._documents)

    def document(self, name: str) -> dict[str, Any]:
        return self._documents[name]

    def validator(self, name: str) -> Draft202012Validator:
        validator = self._validators.get(name)
        if validator is None:
            validator = Draft202012Validator(self._documents[name], registry=self._registry)
            self._validators[name] = validator
        return validator

    def check_content(self, event_type: str, content: Any) -> None:
        """Checks an event's content against ``events/<type>``'s content schema,
        for the event types that have one; other types are free-form objects.
        The folder's shared schemas (``core``, ``state``, ``event``) are not
        per-type: a schema counts only if its ``type`` is that constant."""
        name = f"events/{event_type}"
        document = self._documents.get(name)
        if document is None or document.get("properties", {}).get("type", {}).get("const") != event_type:
            return
        key = name + "#content"
        validator = self._validators.get(key)
        if validator is None:
            ref = {"$ref": self._documents[name]["$id"] + "#/properties/content"}
            validator = Draft202012Validator(ref, registry=self._registry)
            self._validators[key] = validator
        error = best_match(validator.iter_errors(content))
        if error is not None:
            raise request_error(error)

    def check_request(self, name: str, body: Any) -> None:
        """Raises a Matrix error naming the first field that breaks the schema."""
        error = best_match(self.validator(name).iter_errors(body))
        if error is not None:
            raise request_error(error)


def request_error(error: ValidationError) -> MatrixError:
    if error.validator == "required":
        required = cast("list[str]", error.validator_value)  # what "required" names
        missing = [f for f in required if isinstance(error.instance, dict) and f not in error.instance]
        where = _field_path(error.absolute_path, missing[0] if missing else None)
        return missing_param(f"Missing field '{where}'")
    where = _field_path(error.absolute_path, None) or "body"
    return bad_json(f"Invalid field '{where}': {error.message}")


def _field_path(path: Iterable[str | int], leaf: str | None) -> str:
    parts = [str(p) for p in path]
    if leaf is not None:
        parts.append(leaf)
    return ".".join(parts)


# Deeper JSON than any event, filter or request needs; deeper input would
# only make the rules, the schema checks and PostgreSQL recurse.
MAX_JSON_DEPTH = 64
INT64 = (-(2**63), 2**63 - 1)  # what a PostgreSQL bigint holds
_INTEGER = re.compile(r"-?[0-9]{1,19}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _not_json(constant: str) -> Any:
    """Python reads NaN and Infinity, which JSON does not have."""
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise OverflowError(text)
    return value


def load_json(raw: str | bytes, what: str = "The body", errcode: str | None = None) -> Any:
    """The one reader of JSON from clients (bodies, query parameters,
    WebSocket frames). Refuses, as a 400, what would otherwise fail later
    as a 500: invalid JSON, NaN and Infinity (M_NOT_JSON); numbers out of
    a float's range; strings or keys
    with NUL (PostgreSQL cannot store it) or a lone UTF-16 surrogate (not
    text: it cannot be encoded); nesting deeper than MAX_JSON_DEPTH.
    ``errcode`` replaces both codes (a query parameter's is M_INVALID_PARAM)."""
    problem: str | None
    try:
        value = json.loads(raw, parse_constant=_not_json, parse_float=_finite)
    except RecursionError:
        problem, code = f"is nested more than {MAX_JSON_DEPTH} deep", "M_BAD_JSON"
    except OverflowError:
        problem, code = "has a number out of range", "M_BAD_JSON"
    except (ValueError, UnicodeDecodeError):
        problem, code = "is not valid JSON", "M_NOT_JSON"
    else:
        problem, code = json_problem(value), "M_BAD_JSON"
        if problem is None:
            return value
    raise MatrixError(400, errcode or code, f"{what} {problem}")


def json_problem(value: Any) -> str | None:
    """What makes a decoded JSON value unfit to store, or None. Walks with
    a stack, so however deep the value, this cannot overflow Python's."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "cannot contain NUL characters"
            if _SURROGATE.search(item):
                return "cannot contain lone surrogates (\\ud800-\\udfff)"
        elif isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                return f"is nested more than {MAX_JSON_DEPTH} deep"
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
    return None


def int64(text: str, name: str) -> int:
    """A query or path argument that is an integer a bigint holds (ASCII
    digits only); anything else is a 400 naming the argument."""
    if _INTEGER.fullmatch(text):
        value = int(text)
        if INT64[0] <= value <= INT64[1]:
            return value
    raise invalid_param(f"'{name}' must be an integer between -2^63 and 2^63-1")


@lru_cache(maxsize=1)
def schemas() -> Schemas:
    return Schemas()
