"""Media rules, pure: content types, what may be shown inline, the
Content-Disposition of a download, and the thumbnail sizes.

The media service applies them to the bytes it receives and serves; here
they are functions of a few bytes and numbers, table-tested without files.
"""

from __future__ import annotations

import re
from urllib.parse import quote

OCTET_STREAM = "application/octet-stream"

# The image formats the server recognises by their first bytes and makes
# thumbnails of.
THUMBNAILABLE = ("image/png", "image/jpeg", "image/gif", "image/webp")
SNIFF_BYTES = 12  # enough for every signature below

# Types a browser may show inline from the media URL without running
# anything: still images, plain text, audio and video. Everything else (HTML,
# SVG, PDF, JavaScript, unknown) is served as an attachment, and every
# download carries a sandboxing Content-Security-Policy besides.
_INLINE = frozenset(THUMBNAILABLE) | {
    "text/plain",
    "text/csv",
    "application/json",
    "audio/mpeg",
    "audio/ogg",
    "audio/wav",
    "audio/webm",
    "audio/aac",
    "audio/flac",
    "audio/mp4",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "video/quicktime",
}

_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}
_TOKEN = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$")


def normalize_content_type(header: str | None) -> str | None:
    """The media type of a Content-Type header, lower case and without
    parameters (a charset is kept for text types, whose meaning depends on
    it). None when absent or not a well-formed type/subtype."""
    if not header:
        return None
    main, _, params = header.partition(";")
    main = _ALIASES.get(main.strip().lower(), main.strip().lower())
    if not _TOKEN.match(main):
        return None
    if main.startswith("text/"):
        charset = re.search(r"charset\s*=\s*\"?([A-Za-z0-9_.:-]+)", params, re.IGNORECASE)
        if charset:
            return f"{main}; charset={charset.group(1).lower()}"
    return main


def sniff_image(head: bytes) -> str | None:
    """The image type the first bytes of a file announce, if one we know."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def stored_content_type(declared: str | None, head: bytes) -> str:
    """The type to store for an upload, from its declared Content-Type and
    its first bytes. An upload declared as one of the image types the server
    knows must start like one; anything else is stored as declared (or as
    the image its bytes announce, or as octet-stream when undeclared).
    ValueError when the declaration is contradicted."""
    sniffed = sniff_image(head)
    if declared in THUMBNAILABLE and sniffed != declared:
        raise ValueError(f"the content is not {declared}" + (f" (it is {sniffed})" if sniffed else ""))
    return declared or sniffed or OCTET_STREAM


def is_inline(content_type: str) -> bool:
    return content_type.partition(";")[0] in _INLINE


def content_disposition(content_type: str, filename: str | None) -> str:
    """The Content-Disposition of a download: inline only for the safe types,
    the filename as an RFC 6266 ``filename*`` (UTF-8, percent-encoded), so no
    quote, semicolon or line break in a name can add a header parameter."""
    kind = "inline" if is_inline(content_type) else "attachment"
    if not filename:
        return kind
    return f"{kind}; filename*=utf-8''{quote(filename, safe='')}"


def acceptable_filename(name: str) -> bool:
    """A filename the server keeps: short, one path segment, no control characters."""
    return (
        0 < len(name) <= 255
        and "/" not in name
        and "\\" not in name
        and not any(ord(c) < 32 or ord(c) == 127 for c in name)
    )


# -- thumbnails ----------------------------------------------------------------

# The sizes thumbnails are made in: a request is served from the smallest of
# its method that is at least as large as asked (the largest otherwise), so
# the cache holds at most this many thumbnails per image.
THUMBNAIL_SIZES = (
    (32, 32, "crop"),
    (96, 96, "crop"),
    (320, 240, "scale"),
    (640, 480, "scale"),
    (800, 600, "scale"),
)


def thumbnail_class(width: int, height: int, method: str) -> tuple[int, int, str]:
    """The size class that serves a request for a ``width`` x ``height``
    thumbnail made by ``method`` ("scale" or "crop"). A crop request may be
    served by a crop class; a scale request by a scale class, or by a crop
    one if none is large enough for it."""
    ordered = sorted(THUMBNAIL_SIZES, key=lambda s: s[0] * s[1])
    same = [s for s in ordered if s[2] == method] or ordered
    for size in same:
        if size[0] >= width and size[1] >= height:
            return size
    return same[-1]


def scaled_size(source: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The size of an image of size ``source`` scaled to fit inside ``box``,
    keeping its aspect ratio, never enlarged, at least 1 x 1."""
    (sw, sh), (bw, bh) = source, box
    factor = min(1.0, bw / sw, bh / sh)
    return max(1, round(sw * factor)), max(1, round(sh * factor))


def crop_plan(source: tuple[int, int], box: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """How to make a ``box``-sized crop of an image of size ``source``: the
    size to scale it to (covering the box, never enlarged) and the centred
    (left, top, right, bottom) to cut from that. A source smaller than the box
    gives a smaller thumbnail, never an enlarged one."""
    (sw, sh), (bw, bh) = source, box
    factor = min(1.0, max(bw / sw, bh / sh))
    rw, rh = max(1, round(sw * factor)), max(1, round(sh * factor))
    cw, ch = min(bw, rw), min(bh, rh)
    left, top = (rw - cw) // 2, (rh - ch) // 2
    return (rw, rh), (left, top, left + cw, top + ch)
