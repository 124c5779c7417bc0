"""Secret keys kept in the data directory: made on first start, readable
by the server's user only (mode 0600), and the same on every later start."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def read_or_create(data_dir: Path, name: str, make: Callable[[], str]) -> str:
    """The file's text, writing ``make()`` first when the file does not
    exist. The exclusive create makes two processes starting together agree
    on one key: the loser reads the winner's file."""
    path = data_dir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text()
    with os.fdopen(fd, "w") as handle:
        handle.write(make())
    return path.read_text()
