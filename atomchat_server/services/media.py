"""The media repository: uploads (direct, or reserved first and sent
later), downloads and thumbnails of this server's media.

Uploads are streamed to disk as they arrive (``storage.media_files``);
their metadata and each user's quota are kept in PostgreSQL. Images are
checked and thumbnailed with Pillow on the media executor, never on the
event loop. Media of other servers is not fetched: it is unknown here.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from PIL import Image, ImageOps

from ..auth.sessions import Requester
from ..errors import MatrixError, forbidden, invalid_param, not_found
from ..events import media as rules
from ..storage import media as media_store
from ..storage.media_files import MediaFiles, Upload

log = logging.getLogger("atomchat.media")

MEDIA_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
PENDING_LIFETIME_SECONDS = 24 * 3600  # a reserved id unused for a day is void
MOST_PENDING = 50  # reserved ids one user may hold at once
WAIT_POLL_SECONDS = 0.25  # how often a download waiting for reserved content looks again
DEFAULT_WAIT_MS = 20_000
MOST_WAIT_MS = 60_000
# Images larger than this are stored but not decoded for thumbnails: it
# bounds the memory a thumbnail takes (a decompression bomb is refused).
MAX_IMAGE_PIXELS = 40_000_000
MEDIA_WORKERS = 4


@dataclass(frozen=True)
class Served:
    """A file to send: where it is, its type, length and Content-Disposition."""

    path: Path
    content_type: str
    size: int
    disposition: str


def _too_large(limit: int) -> MatrixError:
    return MatrixError(413, "M_TOO_LARGE", f"Uploads are limited to {limit} bytes")


class Media:
    def __init__(
        self, *, pool: asyncpg.Pool, server_name: str, root: Path, max_upload_bytes: int, quota_bytes: int
    ) -> None:
        self._pool = pool
        self.server_name = server_name
        self.max_upload_bytes = max_upload_bytes
        self.quota_bytes = quota_bytes
        self._executor = ThreadPoolExecutor(max_workers=MEDIA_WORKERS, thread_name_prefix="media")
        self.files = MediaFiles(root, self._executor)

    async def start(self) -> None:
        await self.files.start()

    def stop(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def config(self) -> dict[str, int]:
        return {"m.upload.size": self.max_upload_bytes}

    def _mxc(self, media_id: str) -> str:
        return f"mxc://{self.server_name}/{media_id}"

    # -- uploading ---------------------------------------------------------------

    async def create(self, requester: Requester) -> dict[str, object]:
        """Reserves a media id whose content the requester PUTs later."""
        media_id = secrets.token_urlsafe(18)
        expires = await media_store.create_pending(
            self._pool, media_id, requester.user_id, PENDING_LIFETIME_SECONDS, MOST_PENDING
        )
        if expires is None:
            raise MatrixError(
                429,
                "M_LIMIT_EXCEEDED",
                f"You already have {MOST_PENDING} media ids awaiting content",
                retry_after_ms=60_000,
            )
        return {"content_uri": self._mxc(media_id), "unused_expires_at": int(expires.timestamp() * 1000)}

    async def begin_upload(
        self, requester: Requester, content_length: int | None, target: tuple[str, str] | None = None
    ) -> tuple[Upload, str | None]:
        """Checks an upload before its body is read: its declared length
        against the limit and the requester's quota, and (``target``: the
        server name and media id of a PUT) that the id is the requester's and
        still awaits content. Returns the file to write and the target id."""
        if content_length is not None and content_length > self.max_upload_bytes:
            raise _too_large(self.max_upload_bytes)
        media_id = None
        if target is not None:
            media_id = self._local_id(*target)
            row = await media_store.get(self._pool, media_id)
            if row is None or (
                not row.uploaded and row.expires_at is not None and row.expires_at.timestamp() <= time.time()
            ):
                raise not_found("Unknown media id")
            if row.uploader != requester.user_id:
                raise forbidden("This media id was created by someone else")
            if row.uploaded:
                raise MatrixError(409, "M_CANNOT_OVERWRITE_MEDIA", "This media id already has content")
        if self.quota_bytes and content_length is not None:
            used = await media_store.used_bytes(self._pool, requester.user_id)
            if used + content_length > self.quota_bytes:
                raise forbidden("This upload would exceed your media quota")
        return await self.files.new_upload(), media_id

    async def finish_upload(
        self,
        requester: Requester,
        upload: Upload,
        *,
        declared_type: str | None,
        filename: str | None,
        media_id: str | None,
    ) -> str:
        """Stores a fully received upload; returns its mxc URI. The upload's
        file is either stored under its id or discarded."""
        try:
            if filename is not None and not rules.acceptable_filename(filename):
                raise invalid_param("The filename must be 1 to 255 characters, without '/' or control characters")
            if upload.size > self.max_upload_bytes:
                raise _too_large(self.max_upload_bytes)
            await upload.finish()
            try:
                content_type = rules.stored_content_type(rules.normalize_content_type(declared_type), upload.head)
            except ValueError as exc:
                raise invalid_param(f"Refused: {exc}") from None
            if content_type in rules.THUMBNAILABLE:
                problem = await self.files.run(_check_image, upload.path)
                if problem:
                    raise invalid_param(f"Refused: the content is not a valid image ({problem})")
            pending = media_id is not None
            media_id = media_id or secrets.token_urlsafe(18)
            # Into place first: a row never names a file that is not there.
            await upload.store(self.files.content_path(media_id))
            outcome = await media_store.record_upload(
                self._pool,
                media_id=media_id,
                uploader=requester.user_id,
                content_type=content_type,
                upload_name=filename,
                size=upload.size,
                quota=self.quota_bytes,
                pending=pending,
            )
            if outcome != "stored":
                if not pending:
                    await self.files.remove(self.files.content_path(media_id))
                if outcome == "quota":
                    raise forbidden("This upload would exceed your media quota")
                raise not_found("Unknown media id")
            return self._mxc(media_id)
        except BaseException:
            await upload.discard()
            raise

    # -- serving -------------------------------------------------------------------

    def _local_id(self, server_name: str, media_id: str) -> str:
        if server_name != self.server_name or not MEDIA_ID.match(media_id):
            raise not_found("Unknown media")
        return media_id

    async def _uploaded(self, server_name: str, media_id: str, timeout_ms: int | None) -> media_store.MediaRow:
        """The row of uploaded media, waiting up to ``timeout_ms`` for the
        content of a reserved id to arrive."""
        media_id = self._local_id(server_name, media_id)
        wait = DEFAULT_WAIT_MS if timeout_ms is None else max(0, min(timeout_ms, MOST_WAIT_MS))
        deadline = time.monotonic() + wait / 1000
        while True:
            row = await media_store.get(self._pool, media_id)
            if row is None:
                raise not_found("Unknown media")
            if row.uploaded:
                return row
            if time.monotonic() >= deadline:
                raise MatrixError(504, "M_NOT_YET_UPLOADED", "The content of this media id has not arrived yet")
            await asyncio.sleep(WAIT_POLL_SECONDS)

    async def download(
        self, server_name: str, media_id: str, *, filename: str | None, timeout_ms: int | None
    ) -> Served:
        row = await self._uploaded(server_name, media_id, timeout_ms)
        assert row.content_type is not None and row.size is not None, "uploaded media has both"
        name = filename if filename is not None else row.upload_name
        return Served(
            self.files.content_path(row.media_id),
            row.content_type,
            row.size,
            rules.content_disposition(row.content_type, name),
        )

    async def thumbnail(
        self, server_name: str, media_id: str, *, width: int, height: int, method: str, timeout_ms: int | None
    ) -> Served:
        """A thumbnail of an image, made in the size class that serves the
        request and kept for the next request of that class."""
        if width < 1 or height < 1:
            raise invalid_param("width and height must be positive")
        if method not in ("scale", "crop"):
            raise invalid_param("method must be 'scale' or 'crop'")
        row = await self._uploaded(server_name, media_id, timeout_ms)
        if row.content_type not in rules.THUMBNAILABLE:
            raise MatrixError(400, "M_UNKNOWN", "No thumbnail can be made of this media")
        w, h, method = rules.thumbnail_class(width, height, method)
        path = self.files.thumbnail_path(row.media_id, w, h, method)
        content_type = await media_store.thumbnail(self._pool, row.media_id, w, h, method)
        if content_type is None or not await self.files.exists(path):
            try:
                made = await self.files.run(make_thumbnail, self.files.content_path(row.media_id), path, (w, h), method)
            except (OSError, ValueError, *_TOO_LARGE) as exc:
                log.info("no thumbnail of %s: %s", row.media_id, exc)
                raise MatrixError(400, "M_UNKNOWN", "No thumbnail can be made of this media") from None
            content_type, size = made
            await media_store.add_thumbnail(self._pool, row.media_id, w, h, method, content_type, size)
        size = (await self.files.run(path.stat)).st_size
        return Served(path, content_type, size, rules.content_disposition(content_type, f"thumbnail-{w}x{h}"))


# -- image work (on the media executor) --------------------------------------------


class ImageTooLarge(ValueError):
    """An image with more pixels than MAX_IMAGE_PIXELS."""


_TOO_LARGE = (ImageTooLarge, Image.DecompressionBombError, Image.DecompressionBombWarning)


def _open_image(path: Path) -> Image.Image:
    """Opens an image, refusing one whose pixel count would make decoding it
    a memory hazard (Pillow only warns below twice its own limit)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = Image.open(path)
    if image.width * image.height > MAX_IMAGE_PIXELS:
        image.close()
        raise ImageTooLarge(f"{image.width} x {image.height} pixels is too large")
    return image


def _check_image(path: Path) -> str | None:
    """Why the file is not a readable image, or None when it is. An image
    too large to decode safely is stored unverified (it gets no thumbnail)."""
    try:
        with _open_image(path) as image:
            image.verify()
    except _TOO_LARGE:
        return None
    except (OSError, ValueError, SyntaxError) as exc:
        return str(exc) or type(exc).__name__
    return None


def make_thumbnail(source: Path, target: Path, box: tuple[int, int], method: str) -> tuple[str, int]:
    """Writes a thumbnail of ``source`` to ``target``: JPEG for a JPEG, PNG
    otherwise (keeping transparency). A JPEG is decoded at a reduced scale
    (``draft``) when that still covers the box, which makes large photos
    cheap. Returns the thumbnail's content type and size."""
    with _open_image(source) as image:
        # Decoding at a reduced scale must still cover the box whichever way
        # the EXIF orientation turns the image: ask for the square of its side.
        side = max(box)
        image.draft("RGB", rules.crop_plan(image.size, (side, side))[0])
        upright = ImageOps.exif_transpose(image)
        if upright.mode in ("1", "P", "PA"):
            upright = upright.convert("RGBA")
        if method == "scale":
            resized = upright.resize(rules.scaled_size(upright.size, box), Image.Resampling.LANCZOS)
        else:
            size, crop = rules.crop_plan(upright.size, box)
            resized = upright.resize(size, Image.Resampling.LANCZOS).crop(crop)
        is_jpeg = image.format == "JPEG"
        if is_jpeg:
            out_type, out_format, options = "image/jpeg", "JPEG", {"quality": 80}
            resized = resized.convert("RGB")
        else:
            out_type, out_format, options = "image/png", "PNG", {}
            if resized.mode not in ("RGB", "RGBA", "L", "LA"):
                resized = resized.convert("RGBA")
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + f".{secrets.token_hex(4)}.tmp")
        resized.save(temporary, out_format, **options)
        temporary.replace(target)
        return out_type, target.stat().st_size
