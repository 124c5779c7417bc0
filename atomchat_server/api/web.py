"""The web client: static files from ``atomchat_server/web/`` served under
``web_client_path``.

The page (``index.html``) is never cached, so a browser always learns the
current version; every other file is served under
``<path>assets/<version>/`` where the version is a hash of all the files, so
those can be cached for a year and a new release is fetched afresh. Every
answer carries a strict Content-Security-Policy: scripts, styles and
connections from this origin only, nothing inline.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import logs
from ..errors import not_found
from .base import BaseHandler, request_id

if TYPE_CHECKING:
    from ..app import AppContext

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

IMMUTABLE = "public, max-age=31536000, immutable"
_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9]+)+")


@dataclass(frozen=True)
class WebFiles:
    """The client's files, read once at start: their bytes by name, and the
    version (a hash of them all) under which they are served."""

    files: dict[str, bytes]
    version: str

    @classmethod
    def load(cls, root: Path = WEB_ROOT) -> WebFiles:
        files = {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file() and path.suffix in TYPES
        }
        if "index.html" not in files:
            raise RuntimeError(f"the web client's index.html is missing from {root}")
        digest = hashlib.sha256()
        for name, data in files.items():
            digest.update(name.encode() + b"\0" + data + b"\0")
        return cls(files, digest.hexdigest()[:16])

    def page(self, base: str) -> bytes:
        """index.html with its asset links pointing at this version."""
        return self.files["index.html"].replace(b"{{ASSETS}}", f"{base}assets/{self.version}/".encode())


class WebHandler(BaseHandler):
    """Base of the two: security headers on every answer, errors in JSON."""

    def initialize(self, ctx: AppContext, web: WebFiles | None = None) -> None:
        super().initialize(ctx)
        assert web is not None, "the routes pass the files"
        self.web = web

    def set_default_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)

    def answer_headers(self) -> None:
        """The request's id, and no CORS: the pages are for browsers on this origin."""
        self.set_header(logs.HEADER, request_id(self))

    def serve(self, body: bytes, content_type: str, cache: str) -> None:
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", cache)
        if self.request.method == "HEAD":
            self.set_header("Content-Length", str(len(body)))
            self.finish()
        else:
            self.finish(body)


class PageHandler(WebHandler):
    """The page at the client's path (and at the path without its final slash)."""

    def get(self) -> None:
        base = self.ctx.settings.web_client_path
        if self.request.path != base:
            self.redirect(base)
            return
        self.serve(self.web.page(base), TYPES[".html"], "no-cache")

    head = get


class AssetHandler(WebHandler):
    """A file of the client, under the current version only."""

    def get(self, version: str, name: str) -> None:
        data = self.web.files.get(name)
        if version != self.web.version or data is None or not all(_NAME.fullmatch(p) for p in name.split("/")):
            raise not_found("No such file")
        self.serve(data, TYPES[Path(name).suffix], IMMUTABLE)

    head = get


def routes(path: str, web: WebFiles) -> list[tuple[str, type, dict[str, Any]]]:
    """The client's routes under ``path`` (which starts and ends with '/')."""
    prefix = re.escape(path)
    page = rf"{prefix}?" if path != "/" else "/"
    return [
        (page, PageHandler, {"web": web}),
        (rf"{prefix}assets/([0-9a-f]+)/([a-z0-9_./-]+)", AssetHandler, {"web": web}),
    ]
