"""Stream tokens: opaque to clients, a position in the global event stream to us.

A token names the point just after the event at that position: "everything
up to and including N". They stay valid forever (positions never change).
History taken from other servers (backfill) lies before the stream's start,
at negative positions, so a history token (/messages, /context,
/relations) may be negative: ``s-42``. A sync token never is: sync reads
forward from the stream's start.

A sync token (next_batch) may also carry where its answer left the typing
notices, which have a position of their own in one server process's memory
(notifier.TypingNotices): ``s<position>_<typing mark>``. Every reader of a
token accepts both forms; the typing mark matters only to /sync and the
stream, and only on the process that made it.
"""

from __future__ import annotations

import re

from ..errors import MatrixError

PREFIX = "s"
_TOKEN = re.compile(r"s(-?[0-9]{1,18})(?:_([0-9a-f]{6}\.[0-9]{1,18}))?")


def make(position: int) -> str:
    return f"{PREFIX}{position}"


def make_sync(position: int, typing_mark: str | None) -> str:
    """A sync answer's next_batch: the position, and the typing mark if any."""
    return make(position) if typing_mark is None else f"{PREFIX}{position}_{typing_mark}"


def _parse(token: str, name: str) -> tuple[int, str | None]:
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise MatrixError(400, "M_INVALID_PARAM", f"Invalid '{name}' token")
    return int(match.group(1)), match.group(2)


def parse_sync(token: str, name: str = "since") -> tuple[int, str | None]:
    """The position and typing mark (None if absent) of a sync token."""
    position, mark = _parse(token, name)
    if position < 0:
        raise MatrixError(400, "M_INVALID_PARAM", f"Invalid '{name}' token")
    return position, mark


def parse(token: str, name: str = "from") -> int:
    """The position of a history token (negative in backfilled history)."""
    return _parse(token, name)[0]
