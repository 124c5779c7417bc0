"""Log lines as text or as JSON, each naming the request it is about.

Every HTTP request gets an id (the ``X-Request-ID`` a proxy sent, when it is
a plain token, else a new one), returned in the response's ``X-Request-ID``
header and attached to the lines logged while the request is handled: in
JSON every line (the request line included), in text every warning and
error (a failed request's line, a traceback). An operator given the
header's value by a user finds the lines about that request.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
from datetime import datetime, timezone

# The id of the request being handled in this task (None outside requests).
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("atomchat_request_id", default=None)
HEADER = "X-Request-ID"
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{1,64}")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def request_id(offered: str | None) -> str:
    """The id of a new request: the one offered (by a proxy) if it is a
    plain token that cannot forge a log line, else a new random one."""
    if offered is not None and _ACCEPTED.fullmatch(offered):
        return offered
    return secrets.token_hex(8)


def _record_request_id(record: logging.LogRecord) -> str | None:
    """The record's own (``extra={"request_id": ...}``), else the current request's."""
    return getattr(record, "request_id", None) or REQUEST_ID.get()


class TextFormatter(logging.Formatter):
    """The classic line; a warning or error logged within a request ends
    with `` [request ID]`` (the request log lines of successes keep their
    fixed fields, for the tools that read them)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        rid = _record_request_id(record) if record.levelno >= logging.WARNING else None
        if rid is None:
            return text
        first, newline, rest = text.partition("\n")  # after the message, before a traceback
        return f"{first} [request {rid}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message,
    request_id when there is one, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = _record_request_id(record)
        if rid is not None:
            entry["request_id"] = rid
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, form: str) -> None:
    """Sends the process's log lines to standard error, in ``form``."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if form == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler])
