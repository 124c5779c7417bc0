"""The media repository over real HTTP with real files: uploads of several
image formats and other types, downloads and their headers, thumbnails and
their sizes, refusals (too large, malformed, contradicted types, quota,
foreign ids), the reserved-id flow of /create, and authentication."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from urllib.parse import quote

import asyncpg
import pytest
from PIL import Image
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from ..support.client import ERROR_SCHEMA, check_schema
from ..support.room_steps import SERVER, register
from ..support.waiting import eventually

UPLOAD = "/_matrix/media/v3/upload"
CREATE = "/_matrix/media/v1/create"
CLIENT_MEDIA = "/_matrix/client/v1/media"
LEGACY = "/_matrix/media/v3"


def image_bytes(fmt: str, size: tuple[int, int] = (400, 300), mode: str = "RGB") -> bytes:
    """A real image in format ``fmt``: a gradient, so it compresses like a picture."""
    image = Image.new(mode, size)
    image.putdata(
        [
            ((x * 255) // size[0], (y * 255) // size[1], 128) + ((200,) if mode == "RGBA" else ())
            for y in range(size[1])
            for x in range(size[0])
        ]
    )
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


class Answer:
    def __init__(self, code: int, headers, body: bytes) -> None:
        self.status = code
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


async def fetch(
    api,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    status: int = 200,
    schema: str | None = None,
) -> Answer:
    """A raw request: media bodies are bytes, not JSON. Error bodies are
    checked against the error schema, JSON success bodies against ``schema``."""
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    if body is None and method in ("POST", "PUT"):
        body = b""
    response = await AsyncHTTPClient().fetch(
        HTTPRequest(
            api.base_url + path,
            method=method,
            headers=all_headers,
            body=body,
            request_timeout=60,
            allow_nonstandard_methods=True,
        ),
        raise_error=False,
    )
    answer = Answer(response.code, response.headers, response.body or b"")
    assert response.code == status, f"{method} {path}: expected {status}, got {response.code}: {answer.body[:300]!r}"
    if status >= 400:
        check_schema(ERROR_SCHEMA, answer.json())
    elif schema is not None:
        check_schema(schema, answer.json())
    return answer


async def upload(
    api, user, data: bytes, content_type: str | None, *, filename: str | None = None, status: int = 200
) -> Answer:
    path = UPLOAD + (f"?filename={quote(filename)}" if filename is not None else "")
    headers = {"Content-Type": content_type} if content_type is not None else {}
    return await fetch(
        api,
        "POST",
        path,
        token=user.access_token,
        body=data,
        headers=headers,
        status=status,
        schema="matrix/media_upload.response",
    )


async def upload_untyped(api, user, data: bytes) -> str:
    """Uploads without a Content-Type header (Tornado's client always adds
    one to a POST, so this speaks HTTP itself); returns the mxc URI."""
    host, port = api.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            f"POST {UPLOAD} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {user.access_token}\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
            + data
        )
        head, _, body = (await reader.read()).partition(b"\r\n\r\n")
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 200"), head
    answer = json.loads(body)
    check_schema("matrix/media_upload.response", answer)
    return answer["content_uri"]


def media_path(content_uri: str) -> str:
    assert content_uri.startswith(f"mxc://{SERVER}/")
    return content_uri[len("mxc://") :]


async def download(api, user, content_uri: str, *, suffix: str = "", status: int = 200) -> Answer:
    return await fetch(
        api, "GET", f"{CLIENT_MEDIA}/download/{media_path(content_uri)}{suffix}", token=user.access_token, status=status
    )


async def thumbnail(
    api, user, content_uri: str, width: int, height: int, method: str = "scale", *, status: int = 200
) -> Answer:
    return await fetch(
        api,
        "GET",
        f"{CLIENT_MEDIA}/thumbnail/{media_path(content_uri)}?width={width}&height={height}&method={method}",
        token=user.access_token,
        status=status,
    )


def picture(answer: Answer) -> Image.Image:
    image = Image.open(io.BytesIO(answer.body))
    image.load()
    return image


@pytest.mark.parametrize(
    "fmt,content_type", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")]
)
async def test_images_round_trip_with_thumbnails(api, fmt, content_type):
    (alice,) = await register(api, "alice")
    data = image_bytes(fmt)
    uri = (await upload(api, alice, data, content_type, filename="holiday photo.img")).json()["content_uri"]
    got = await download(api, alice, uri)
    assert got.body == data
    assert got.headers["Content-Type"] == content_type
    assert got.headers["Content-Length"] == str(len(data))
    assert got.headers["Content-Disposition"] == "inline; filename*=utf-8''holiday%20photo.img"
    assert got.headers["Content-Security-Policy"].startswith("sandbox;")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    # Scale fits inside the size class that covers the request, keeping the 4:3 ratio.
    scaled = await thumbnail(api, alice, uri, 300, 200)
    assert picture(scaled).size == (320, 240)
    assert scaled.headers["Content-Type"] == ("image/jpeg" if fmt == "JPEG" else "image/png")
    # Crop fills the class exactly.
    assert picture(await thumbnail(api, alice, uri, 90, 90, "crop")).size == (96, 96)
    assert picture(await thumbnail(api, alice, uri, 20, 30, "crop")).size == (32, 32)
    # A class larger than the image is not enlarged.
    assert picture(await thumbnail(api, alice, uri, 800, 600)).size == (400, 300)


async def test_thumbnail_of_a_tall_image_and_the_cache(api, server, database_dsn):
    (alice,) = await register(api, "alice")
    uri = (await upload(api, alice, image_bytes("PNG", (300, 1200)), "image/png")).json()["content_uri"]
    first = await thumbnail(api, alice, uri, 640, 480)
    assert picture(first).size == (120, 480)
    # Served again from the file made the first time.
    again = await thumbnail(api, alice, uri, 600, 400)
    assert again.body == first.body
    conn = await asyncpg.connect(database_dsn)
    try:
        rows = await conn.fetch("SELECT width, height, method FROM media_thumbnails ORDER BY width")
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [(640, 480, "scale")]


async def test_other_types_are_attachments_and_names_are_escaped(api):
    (alice,) = await register(api, "alice")
    page = b"<html><script>alert(1)</script></html>"
    uri = (await upload(api, alice, page, "text/html", filename='evil"; name=x.html')).json()["content_uri"]
    got = await download(api, alice, uri)
    assert got.body == page
    assert got.headers["Content-Type"] == "text/html"
    assert got.headers["Content-Disposition"] == "attachment; filename*=utf-8''evil%22%3B%20name%3Dx.html"
    assert "sandbox" in got.headers["Content-Security-Policy"]
    # The name in the path replaces the uploaded one.
    renamed = await download(api, alice, uri, suffix="/report.txt")
    assert renamed.headers["Content-Disposition"] == "attachment; filename*=utf-8''report.txt"
    # Without a type, an image is recognised by its bytes; anything else is octet-stream.
    png = await upload_untyped(api, alice, image_bytes("PNG", (10, 10)))
    assert (await download(api, alice, png)).headers["Content-Type"] == "image/png"
    blob = await upload_untyped(api, alice, b"\x00\x01\x02")
    blob_answer = await download(api, alice, blob)
    assert blob_answer.headers["Content-Type"] == "application/octet-stream"
    assert blob_answer.headers["Content-Disposition"] == "attachment"
    # No thumbnail of what is not an image.
    assert (await thumbnail(api, alice, uri, 32, 32, status=400)).json()["errcode"] == "M_UNKNOWN"
    # An empty file is a file.
    empty = (await upload(api, alice, b"", "text/plain")).json()["content_uri"]
    assert (await download(api, alice, empty)).body == b""


async def test_malformed_and_contradicted_images_are_refused(api, server, settings):
    (alice,) = await register(api, "alice")
    jpeg = image_bytes("JPEG")
    # Declared PNG, but the bytes are a JPEG.
    answer = await upload(api, alice, jpeg, "image/png", status=400)
    assert answer.json() == {
        "errcode": "M_INVALID_PARAM",
        "error": "Refused: the content is not image/png (it is image/jpeg)",
    }
    # Declared JPEG, not an image at all.
    assert (await upload(api, alice, b"hello", "image/jpeg", status=400)).json()["errcode"] == "M_INVALID_PARAM"
    # A PNG signature followed by garbage.
    broken = image_bytes("PNG")[:8] + b"\x00" * 200
    answer = await upload(api, alice, broken, "image/png", status=400)
    assert answer.json()["error"].startswith("Refused: the content is not a valid image")
    # A truncated PNG.
    await upload(api, alice, image_bytes("PNG")[:100], "image/png", status=400)
    # A filename with a slash.
    await upload(api, alice, b"x", "text/plain", filename="a/b", status=400)
    # Nothing refused was kept: no rows, no files.
    root = Path(settings.data_dir) / "media"
    assert [p for p in root.rglob("*") if p.is_file()] == []


@pytest.mark.settings(max_upload_bytes=1000)
async def test_oversized_uploads_are_refused(api, settings):
    (alice,) = await register(api, "alice")
    assert (
        await fetch(
            api, "GET", f"{CLIENT_MEDIA}/config", token=alice.access_token, schema="matrix/media_config.response"
        )
    ).json() == {"m.upload.size": 1000}
    answer = await upload(api, alice, b"x" * 1001, "text/plain", status=413)
    assert answer.json() == {"errcode": "M_TOO_LARGE", "error": "Uploads are limited to 1000 bytes"}
    await upload(api, alice, b"x" * 1000, "text/plain")
    root = Path(settings.data_dir) / "media"
    assert [p.stat().st_size for p in root.rglob("*") if p.is_file()] == [1000]


@pytest.mark.settings(media_quota_bytes=2500)
async def test_quota_per_user(api):
    alice, bob = await register(api, "alice", "bob")
    await upload(api, alice, b"a" * 1000, "text/plain")
    await upload(api, alice, b"a" * 1000, "text/plain")
    answer = await upload(api, alice, b"a" * 1000, "text/plain", status=403)
    assert answer.json() == {"errcode": "M_FORBIDDEN", "error": "This upload would exceed your media quota"}
    await upload(api, alice, b"a" * 500, "text/plain")
    await upload(api, alice, b"a", "text/plain", status=403)
    # Bob's quota is his own.
    await upload(api, bob, b"b" * 2500, "text/plain")


@pytest.mark.settings(media_quota_bytes=2500)
async def test_quota_holds_under_concurrent_uploads(api):
    (alice,) = await register(api, "alice")
    codes = await asyncio.gather(*(_raw_upload(api, alice, b"q" * 1000) for _ in range(5)))
    assert sorted(codes) == [200, 200, 403, 403, 403]


async def _raw_upload(api, user, data: bytes) -> int:
    """The status of an upload (the concurrent ones do not know which of them will be refused)."""
    response = await AsyncHTTPClient().fetch(
        HTTPRequest(
            api.base_url + UPLOAD,
            method="POST",
            body=data,
            headers={"Authorization": f"Bearer {user.access_token}", "Content-Type": "text/plain"},
        ),
        raise_error=False,
    )
    return response.code


async def test_authentication_and_foreign_media(api):
    (alice,) = await register(api, "alice")
    uri = (await upload(api, alice, b"secret plans", "text/plain")).json()["content_uri"]
    where = media_path(uri)
    for path in (
        f"{CLIENT_MEDIA}/download/{where}",
        f"{CLIENT_MEDIA}/thumbnail/{where}?width=32&height=32",
        f"{CLIENT_MEDIA}/config",
        f"{LEGACY}/config",
    ):
        assert (await fetch(api, "GET", path, status=401)).json()["errcode"] == "M_MISSING_TOKEN"
    assert (await fetch(api, "POST", UPLOAD, body=b"x", status=401)).json()["errcode"] == "M_MISSING_TOKEN"
    assert (await fetch(api, "POST", CREATE, status=401)).json()["errcode"] == "M_MISSING_TOKEN"
    # A garbled token in the query is an unknown token, not a bad argument.
    answer = await fetch(api, "POST", UPLOAD + "?access_token=%00", body=b"x", status=401)
    assert answer.json()["errcode"] == "M_UNKNOWN_TOKEN"
    # The legacy download needs no token.
    assert (await fetch(api, "GET", f"{LEGACY}/download/{where}")).body == b"secret plans"
    # Other servers' media, unknown ids and ids that are not ids: 404.
    media_id = where.split("/")[1]
    for path in (f"other.example/{media_id}", f"{SERVER}/nope", f"{SERVER}/..%2F..%2Fetc"):
        answer = await fetch(api, "GET", f"{CLIENT_MEDIA}/download/{path}", token=alice.access_token, status=404)
        assert answer.json()["errcode"] == "M_NOT_FOUND"
    await fetch(api, "GET", f"{CLIENT_MEDIA}/thumbnail/{where}?width=x&height=3", token=alice.access_token, status=400)
    await fetch(api, "GET", f"{CLIENT_MEDIA}/thumbnail/{where}?width=3", token=alice.access_token, status=400)


async def test_create_then_upload(api):
    alice, bob = await register(api, "alice", "bob")
    created = (await fetch(api, "POST", CREATE, token=alice.access_token, schema="matrix/media_create.response")).json()
    where = media_path(created["content_uri"])
    # Not there yet: a download that will not wait is told so.
    answer = await fetch(
        api, "GET", f"{CLIENT_MEDIA}/download/{where}?timeout_ms=0", token=bob.access_token, status=504
    )
    assert answer.json()["errcode"] == "M_NOT_YET_UPLOADED"
    # A download that waits gets the content once it arrives.
    waiting = asyncio.ensure_future(
        fetch(api, "GET", f"{CLIENT_MEDIA}/download/{where}?timeout_ms=10000", token=bob.access_token)
    )
    await asyncio.sleep(0.3)  # kept: no count of waiting downloads to poll; the download must wait first
    # Only the creator may send the content, and only once.
    png = image_bytes("PNG", (50, 40))
    await fetch(
        api,
        "PUT",
        f"{UPLOAD}/{where}",
        token=bob.access_token,
        body=png,
        headers={"Content-Type": "image/png"},
        status=403,
    )
    await fetch(
        api,
        "PUT",
        f"{UPLOAD}/{where}",
        token=alice.access_token,
        body=png,
        headers={"Content-Type": "image/png"},
        schema="matrix/empty.response",
    )
    assert (await waiting).body == png
    answer = await fetch(
        api,
        "PUT",
        f"{UPLOAD}/{where}",
        token=alice.access_token,
        body=png,
        headers={"Content-Type": "image/png"},
        status=409,
    )
    assert answer.json()["errcode"] == "M_CANNOT_OVERWRITE_MEDIA"
    assert picture(await thumbnail(api, bob, created["content_uri"], 32, 32, "crop")).size == (32, 32)
    await fetch(api, "PUT", f"{UPLOAD}/{SERVER}/unknownid", token=alice.access_token, body=b"x", status=404)


async def test_images_too_large_to_decode_are_kept_without_thumbnails(api, monkeypatch):
    from atomchat_server.services import media as media_service

    monkeypatch.setattr(media_service, "MAX_IMAGE_PIXELS", 10_000)
    (alice,) = await register(api, "alice")
    data = image_bytes("PNG", (200, 100))
    uri = (await upload(api, alice, data, "image/png")).json()["content_uri"]
    assert (await download(api, alice, uri)).body == data
    assert (await thumbnail(api, alice, uri, 32, 32, status=400)).json()["errcode"] == "M_UNKNOWN"
    # A small one still gets its thumbnail.
    small = (await upload(api, alice, image_bytes("PNG", (100, 50)), "image/png")).json()["content_uri"]
    assert picture(await thumbnail(api, alice, small, 32, 32, "crop")).size == (32, 32)


async def test_transfers_cut_off_leave_nothing_behind(api, settings):
    """A client that goes away in the middle of an upload leaves no file and
    no row; one that goes away in the middle of a download leaves the server
    serving others."""
    (alice,) = await register(api, "alice")
    host, port = api.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST {UPLOAD} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {alice.access_token}\r\n"
        f"Content-Type: text/plain\r\nContent-Length: 5000000\r\n\r\n".encode()
        + b"x" * 300_000
    )
    await writer.drain()
    root = Path(settings.data_dir) / "media"

    def stored():
        return [p for p in root.rglob("*") if p.is_file()]

    await eventually(stored, 5, "the partial upload being written")
    writer.close()
    await eventually(lambda: not stored(), 2.5, "the partial upload removed")
    data = b"y" * 3_000_000
    uri = (await upload(api, alice, data, "text/plain")).json()["content_uri"]
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"GET {CLIENT_MEDIA}/download/{media_path(uri)} HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {alice.access_token}\r\n\r\n".encode()
    )
    await reader.readexactly(1000)
    writer.close()
    assert (await download(api, alice, uri)).body == data


@pytest.mark.settings(body_timeout_seconds=0.3, max_upload_bytes=65536)
async def test_an_upload_may_take_longer_than_a_json_body(api):
    """The body timeout of an upload is stretched by a second per 64 KiB of
    the limit (here 0.3 + 1 s): a body sent over 0.8 s is taken, one still
    coming after that is cut off."""
    (alice,) = await register(api, "alice")
    host, port = api.base_url.removeprefix("http://").split(":")

    async def slow_upload(pause: float) -> bytes:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(
                f"POST {UPLOAD} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {alice.access_token}\r\n"
                f"Content-Type: text/plain\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n".encode()
                + b"s" * 500
            )
            await writer.drain()
            await asyncio.sleep(pause)  # kept: a real client's pause against the real body timeout
            writer.write(b"s" * 500)
            await writer.drain()
            return await reader.read()
        except ConnectionError:
            return b""
        finally:
            writer.close()

    assert (await slow_upload(0.8)).startswith(b"HTTP/1.1 200")
    assert not (await slow_upload(2.0)).startswith(b"HTTP/1.1 200")
