"""Locates the data that ships with the server: JSON Schemas and SQL migrations.

Both live at the top of the repository (beside the package) and a normal
install puts them inside the package as ``atomchat_server.schemas`` and
``atomchat_server.migrations`` (see setup.cfg). An editable install or a
plain checkout has no such subpackages, so the folders beside the package
serve instead.
"""

import sys
from importlib import resources
from pathlib import Path

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:  # pragma: no cover - exercised on Python 3.10 only
    from importlib.abc import Traversable

__all__ = ["Traversable", "migrations_dir", "schemas_dir"]


def _data(name: str) -> Traversable:
    try:
        return resources.files(f"atomchat_server.{name}")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / name


def schemas_dir() -> Traversable:
    return _data("schemas")


def migrations_dir() -> Traversable:
    return _data("migrations")
