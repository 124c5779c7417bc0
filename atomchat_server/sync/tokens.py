"""Stream tokens: opaque to clients, a position in the global event stream to us.

A token names the point just after the event at that position: "everything
up to and including N". They stay valid forever (positions never change).
"""

from __future__ import annotations

from ..errors import MatrixError

PREFIX = "s"


def make(position: int) -> str:
    return f"{PREFIX}{position}"


def parse(token: str, name: str = "from") -> int:
    if token.startswith(PREFIX) and token[1:].isdigit() and len(token) < 20:
        return int(token[1:])
    raise MatrixError(400, "M_INVALID_PARAM", f"Invalid '{name}' token")
