"""Errors as data: every failure a client can see is a MatrixError.

Services raise these; the HTTP layer turns them into
``{"errcode": ..., "error": ...}`` with the right status. They carry no HTTP
objects, so the same errors serve the WebSocket stream and the /api surface.
"""

from __future__ import annotations

from typing import Any


class MatrixError(Exception):
    def __init__(self, status: int, errcode: str, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status = status
        self.errcode = errcode
        self.error = error
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "error": self.error, **self.extra}


class AuthRequired(MatrixError):
    """401 of user-interactive authentication: the flows that would complete
    the request. As in the spec, it carries an errcode only when an attempted
    stage failed."""

    def __init__(self, flows: list[dict[str, Any]], session: str, failed: str | None = None) -> None:
        super().__init__(
            401,
            "M_FORBIDDEN" if failed else "",
            failed or "Authentication required",
            flows=flows,
            params={},
            session=session,
        )

    def to_json(self) -> dict[str, Any]:
        return super().to_json() if self.errcode else dict(self.extra)


def unavailable(error: str) -> MatrixError:
    """503: the server cannot serve the request right now (its database is
    unreachable, say); the same request may succeed when retried shortly."""
    return MatrixError(503, "M_UNKNOWN", error)


def forbidden(error: str = "You are not allowed to do that") -> MatrixError:
    return MatrixError(403, "M_FORBIDDEN", error)


def not_found(error: str = "Not found") -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", error)


def bad_json(error: str) -> MatrixError:
    return MatrixError(400, "M_BAD_JSON", error)


def missing_param(error: str) -> MatrixError:
    return MatrixError(400, "M_MISSING_PARAM", error)


def invalid_param(error: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", error)


def unknown_token(error: str = "Unknown access token", *, soft_logout: bool = False) -> MatrixError:
    return MatrixError(401, "M_UNKNOWN_TOKEN", error, soft_logout=soft_logout)


def limit_exceeded(retry_after_ms: int) -> MatrixError:
    return MatrixError(429, "M_LIMIT_EXCEEDED", "Too many requests", retry_after_ms=retry_after_ms)
