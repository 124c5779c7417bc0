"""Text for SQL LIKE patterns, escaped in one place.

Pure text, no I/O, so that both storage/ (searches by a term) and events/
(Matrix type globs) use it. PostgreSQL's LIKE and ILIKE take a backslash as
the escape character unless told otherwise."""

from __future__ import annotations


def like_escape(text: str) -> str:
    """``text`` for a LIKE pattern, its wildcards (% and _) and the escape
    character taken literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_search(term: str | None) -> str | None:
    """The pattern of a search term, matching it anywhere in a value; None
    for no term (or an empty one), which the queries read as "no search"."""
    return "%" + like_escape(term) + "%" if term else None
