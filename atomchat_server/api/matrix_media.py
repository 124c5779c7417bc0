"""Matrix media repository: uploads, downloads, thumbnails and the config.

Bodies are streamed: an upload is written to disk chunk by chunk as it
arrives (``stream_request_body``) and a download is sent chunk by chunk,
each waiting until the previous one has left, so neither direction holds a
file in memory. The authenticated endpoints live under
``/_matrix/client/v1/media``; the older ``/_matrix/media/v3`` downloads and
thumbnails are served too, without a token, for clients that predate them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import tornado.http1connection
import tornado.ioloop
import tornado.iostream
import tornado.web

from ..errors import invalid_param, missing_param
from ..services.media import Served
from .base import BaseHandler, handler_methods
from .contract import OBJECT, Op, Param

if TYPE_CHECKING:
    # The file being received, as the media service hands it out.
    from ..storage.media_files import Upload

MEDIA_V3 = r"/_matrix/media/v3"
MEDIA_V1 = r"/_matrix/media/v1"
CLIENT_MEDIA = r"/_matrix/client/v1/media"
MEDIA = r"/([^/]+)/([^/]+)"  # {serverName}/{mediaId}

# Sent with every file: a browser that opens a media URL runs nothing in it
# and does not second-guess its type.
FILE_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf;"
    " style-src 'unsafe-inline'; media-src 'self'; object-src 'self';",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "Cache-Control": "private, max-age=86400, immutable",
}


UPLOAD_RATE = 64 * 1024  # bytes per second an upload is allowed to be as slow as
FILENAME = Param("filename", description="the file's name, offered on download")


@tornado.web.stream_request_body
class StreamedUpload(BaseHandler):
    """An upload's body, written to disk as it arrives: checked before it is
    read (``target`` names the reserved id of a PUT), stored once complete."""

    upload: Upload | None = None
    _media_id: str | None = None

    def target(self) -> tuple[str, str] | None:
        return None

    async def prepare(self) -> None:
        super().prepare()
        if self.request.method == "OPTIONS":
            return
        if self.request.method.lower() not in handler_methods(type(self)):
            # Tornado answers an unserved method only after prepare: without
            # this, a GET of the upload path would be refused as unauthenticated.
            raise tornado.web.HTTPError(405)
        requester = await self.authenticate()
        media = self.ctx.media
        length = self.request.headers.get("Content-Length")
        try:
            declared = int(length) if length is not None else None
        except ValueError:
            raise invalid_param("Content-Length must be an integer") from None
        self.upload, self._media_id = await media.begin_upload(requester, declared, self.target())
        connection = self.request.connection
        assert isinstance(connection, tornado.http1connection.HTTP1Connection), "Tornado's HTTP/1 server called"
        # Past the limit the connection is cut (a body without a length can
        # only be refused that way); the limit of JSON bodies does not apply.
        connection.set_max_body_size(media.max_upload_bytes)
        # A file takes longer to send than a JSON body: the body timeout is
        # stretched by a second per UPLOAD_RATE bytes the limit allows (an
        # authenticated client only; the headers came in within their limit).
        connection.set_body_timeout(self.ctx.settings.body_timeout_seconds + media.max_upload_bytes / UPLOAD_RATE)

    async def data_received(self, chunk: bytes) -> None:
        if self.upload is not None:
            await self.upload.write(chunk, head_bytes=16)

    async def finish_upload(self) -> str:
        upload, self.upload = self.upload, None
        assert self.requester is not None and upload is not None, "prepare() authenticated and began it"
        return await self.ctx.media.finish_upload(
            self.requester,
            upload,
            declared_type=self.request.headers.get("Content-Type"),
            filename=self.get_query_argument("filename", None),
            media_id=self._media_id,
        )

    def on_connection_close(self) -> None:
        self._drop_upload()

    def on_finish(self) -> None:
        self._drop_upload()
        super().on_finish()

    def _drop_upload(self) -> None:
        """An upload refused or cut off before it was stored leaves no file behind."""
        upload, self.upload = self.upload, None
        if upload is not None:
            tornado.ioloop.IOLoop.current().add_callback(upload.discard)


class UploadHandler(StreamedUpload):
    """POST /_matrix/media/v3/upload."""

    contract = {
        "post": Op(
            "Upload a file (the body, of its Content-Type)",
            {200: "matrix/media_upload.response"},
            query=(FILENAME,),
            errors=(403, 413),
        )
    }

    async def post(self) -> None:
        self.send_json({"content_uri": await self.finish_upload()})


class ReservedUploadHandler(StreamedUpload):
    """PUT /_matrix/media/v3/upload/{serverName}/{mediaId}."""

    contract = {
        "put": Op(
            "Send the content of a media id reserved with /create",
            {200: "matrix/empty.response"},
            query=(FILENAME,),
            errors=(403, 404, 409, 413),
        )
    }

    def target(self) -> tuple[str, str] | None:
        return self.path_args[0], self.path_args[1]

    async def put(self, server_name: str, media_id: str) -> None:
        await self.finish_upload()
        self.send_json({})


class CreateHandler(BaseHandler):
    contract = {
        "post": Op(
            "Reserve a media id whose content is sent later",
            {200: "matrix/media_create.response"},
            request=OBJECT,
            errors=(429,),
        )
    }

    async def post(self) -> None:
        requester = await self.authenticate()
        self.json_body()
        self.send_json(await self.ctx.media.create(requester))


class ConfigHandler(BaseHandler):
    contract = {"get": Op("The largest upload accepted", {200: "matrix/media_config.response"})}

    async def get(self) -> None:
        await self.authenticate()
        self.send_json(self.ctx.media.config())


class FileHandler(BaseHandler):
    """Sends a stored file, chunk by chunk."""

    authenticated = True

    async def prepare(self) -> None:
        super().prepare()
        if self.authenticated and self.request.method == "GET":
            await self.authenticate()

    def timeout_ms(self) -> int | None:
        """How long the client will wait for content still to be uploaded (None: the default)."""
        if self.get_query_argument("timeout_ms", None) is None:
            return None
        return self.int_argument("timeout_ms", 0)

    async def send_file(self, served: Served) -> None:
        self.set_header("Content-Type", served.content_type)
        self.set_header("Content-Disposition", served.disposition)
        self.set_header("Content-Length", str(served.size))
        for name, value in FILE_HEADERS.items():
            self.set_header(name, value)
        chunks = self.ctx.media.files.chunks(served.path)
        try:
            async for chunk in chunks:
                self.write(chunk)
                await self.flush()  # the next chunk is read once this one has left
        except tornado.iostream.StreamClosedError:
            return  # the client went away
        finally:
            await chunks.aclose()
        self.finish()


TIMEOUT = Param("timeout_ms", {"type": "integer"}, "how long to wait for content still to be uploaded")


def _file_op(summary: str, query: tuple[Param, ...], auth: str) -> Op:
    """A download's contract: the file's bytes (of its own type) on success."""
    return Op(summary, {200: None}, query=query + (TIMEOUT,), auth=auth, errors=(404, 504))


_THUMBNAIL_QUERY = (
    Param("width", {"type": "integer", "minimum": 1}, required=True),
    Param("height", {"type": "integer", "minimum": 1}, required=True),
    Param("method", {"enum": ["scale", "crop"]}),
    Param("animated", {"type": "boolean"}),
)


class DownloadHandler(FileHandler):
    contract = {"get": _file_op("Download a file", (), "token")}

    async def get(self, server_name: str, media_id: str, filename: str | None = None) -> None:
        await self.send_file(
            await self.ctx.media.download(server_name, media_id, filename=filename, timeout_ms=self.timeout_ms())
        )


class ThumbnailHandler(FileHandler):
    contract = {"get": _file_op("A thumbnail of an image", _THUMBNAIL_QUERY, "token")}

    async def get(self, server_name: str, media_id: str) -> None:
        for name in ("width", "height"):
            if self.get_query_argument(name, None) is None:
                raise missing_param(f"'{name}' is required")
        await self.send_file(
            await self.ctx.media.thumbnail(
                server_name,
                media_id,
                width=self.int_argument("width", 0),
                height=self.int_argument("height", 0),
                method=self.get_query_argument("method", "scale"),
                timeout_ms=self.timeout_ms(),
            )
        )


class LegacyDownloadHandler(DownloadHandler):
    authenticated = False
    contract = {"get": _file_op("Download a file (older path, no token needed)", (), "none")}


class LegacyThumbnailHandler(ThumbnailHandler):
    authenticated = False
    contract = {"get": _file_op("A thumbnail of an image (older path, no token needed)", _THUMBNAIL_QUERY, "none")}


def routes() -> list[tuple[str, Any]]:
    return [
        (MEDIA_V3 + r"/upload", UploadHandler),
        (MEDIA_V3 + r"/upload" + MEDIA, ReservedUploadHandler),
        (MEDIA_V1 + r"/create", CreateHandler),
        (MEDIA_V3 + r"/config", ConfigHandler),
        (CLIENT_MEDIA + r"/config", ConfigHandler),
        (CLIENT_MEDIA + r"/download" + MEDIA, DownloadHandler),
        (CLIENT_MEDIA + r"/download" + MEDIA + r"/([^/]+)", DownloadHandler),
        (CLIENT_MEDIA + r"/thumbnail" + MEDIA, ThumbnailHandler),
        (MEDIA_V3 + r"/download" + MEDIA, LegacyDownloadHandler),
        (MEDIA_V3 + r"/download" + MEDIA + r"/([^/]+)", LegacyDownloadHandler),
        (MEDIA_V3 + r"/thumbnail" + MEDIA, LegacyThumbnailHandler),
    ]
