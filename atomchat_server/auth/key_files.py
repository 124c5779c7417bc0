"""Secret keys kept in the data directory: made on first start, readable
by the server's user only (mode 0600), and the same on every later start."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def read_or_create(data_dir: Path, name: str, make: Callable[[], str]) -> str:
    """The file's text, writing ``make()`` first when the file does not
    exist. The key is written whole to a private temporary file and then
    linked to its name, which fails if the name exists: two processes
    starting together (``serve --workers``) agree on one key, and neither
    can read the other's file half-written."""
    path = data_dir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return path.read_text()
    fd, temporary = tempfile.mkstemp(dir=data_dir, prefix=f".{name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(make())
            handle.flush()
            os.fsync(handle.fileno())
        # If another process won, its key is whole: read that one.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return path.read_text()
