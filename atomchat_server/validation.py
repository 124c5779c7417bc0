"""JSON Schemas from ``schemas/``, compiled once, used to check request bodies.

A schema is named by its path under ``schemas/`` without ``.json``
(``matrix/login.request``). Schemas refer to each other with relative
``$ref``s; each file is registered under a base URI so those resolve offline.
The tests use the same registry to check every response they receive.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from .errors import MatrixError
from .resources import Traversable, schemas_dir

BASE_URI = "https://atomchat.invalid/schemas/"


def _walk(folder: Traversable, prefix: str = ""):
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
            document.setdefault("$id", BASE_URI + name + ".json")
            Draft202012Validator.check_schema(document)
            self._documents[name] = document
            resources.append((document["$id"], Resource.from_contents(document)))
        self._registry = Registry().with_resources(resources)
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
        for the event types that have one; other types are free-form objects."""
        name = f"events/{event_type}"
        if name not in self._documents:
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
        missing = [f for f in error.validator_value if isinstance(error.instance, dict) and f not in error.instance]
        where = _field_path(error.absolute_path, missing[0] if missing else None)
        return MatrixError(400, "M_MISSING_PARAM", f"Missing field '{where}'")
    where = _field_path(error.absolute_path, None) or "body"
    return MatrixError(400, "M_BAD_JSON", f"Invalid field '{where}': {error.message}")


def _field_path(path, leaf: str | None) -> str:
    parts = [str(p) for p in path]
    if leaf is not None:
        parts.append(leaf)
    return ".".join(parts)


def holds_nul(value: Any) -> bool:
    """Whether a decoded JSON value has a NUL character in any string, keys
    included (PostgreSQL text and jsonb cannot store one). Walks with a stack,
    so however deep the JSON, this cannot overflow Python's."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


@lru_cache(maxsize=1)
def schemas() -> Schemas:
    return Schemas()
