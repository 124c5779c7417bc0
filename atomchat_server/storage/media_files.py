"""Media files on disk: uploads, written as they arrive, and thumbnails.

Every file operation runs on the media executor, never on the event loop.
An upload is written to a temporary file in ``incoming/`` chunk by chunk
(only the chunk in hand is in memory), flushed to disk, then renamed into
place under ``content/``, so a file under its media id is always complete.
Media ids are checked by the caller to be ``[A-Za-z0-9_-]`` only, so a path
built from one cannot leave the media directory.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

T = TypeVar("T")

READ_CHUNK = 256 * 1024


class MediaFiles:
    def __init__(self, root: Path, executor: Executor) -> None:
        self.root = root
        self._executor = executor

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def _sharded(self, folder: str, media_id: str) -> Path:
        return self.root / folder / media_id[:2] / media_id[2:4] / media_id

    def content_path(self, media_id: str) -> Path:
        return self._sharded("content", media_id)

    def thumbnail_path(self, media_id: str, width: int, height: int, method: str) -> Path:
        return self._sharded("thumbnails", media_id) / f"{width}x{height}-{method}"

    async def start(self) -> None:
        def make() -> None:
            for folder in ("incoming", "content", "thumbnails"):
                (self.root / folder).mkdir(parents=True, exist_ok=True)

        await self._run(make)

    async def new_upload(self) -> Upload:
        def open_temp() -> tuple[int, str]:
            return tempfile.mkstemp(dir=self.root / "incoming", prefix="upload-")

        fd, path = await self._run(open_temp)
        return Upload(self, fd, Path(path))

    async def read_head(self, path: Path, count: int) -> bytes:
        def read() -> bytes:
            with open(path, "rb") as handle:
                return handle.read(count)

        return await self._run(read)

    async def chunks(self, path: Path) -> AsyncGenerator[bytes, None]:
        """The file's bytes, READ_CHUNK at a time."""

        def open_binary() -> BinaryIO:
            return path.open("rb")

        handle = await self._run(open_binary)
        try:
            while True:
                chunk = await self._run(handle.read, READ_CHUNK)
                if not chunk:
                    return
                yield chunk
        finally:
            await self._run(handle.close)

    async def exists(self, path: Path) -> bool:
        return await self._run(path.is_file)

    async def remove(self, path: Path) -> None:
        await self._run(_unlink, path)

    async def put_file(self, source: Path, target: Path) -> None:
        """Moves a finished file into place (atomically: readers see all of it or none)."""

        def move() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)

        await self._run(move)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Runs file or image work (a thumbnail, a check) on the media executor."""
        return await self._run(function, *args)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


class Upload:
    """A file being received: ``write`` each chunk as it comes, then
    ``finish`` (flushed to disk) and ``store`` it under its media id, or
    ``discard`` it."""

    def __init__(self, files: MediaFiles, fd: int, path: Path) -> None:
        self._files = files
        self._fd: int | None = fd
        # Held by each operation on the descriptor: a discard (the client
        # went away) must not close it under a write still running in a
        # thread, which would then write to whatever file reused the number.
        self._lock = asyncio.Lock()
        self.path = path
        self.size = 0
        self.head = b""

    async def write(self, chunk: bytes, head_bytes: int) -> None:
        if len(self.head) < head_bytes:
            self.head += chunk[: head_bytes - len(self.head)]
        self.size += len(chunk)
        async with self._lock:
            if self._fd is not None:
                await self._files.run(_write_all, self._fd, chunk)

    async def finish(self) -> None:
        async with self._lock:
            fd, self._fd = self._fd, None
            if fd is not None:
                await self._files.run(_sync_and_close, fd)

    async def store(self, target: Path) -> None:
        await self._files.put_file(self.path, target)

    async def discard(self) -> None:
        async with self._lock:
            fd, self._fd = self._fd, None
            if fd is not None:
                await self._files.run(os.close, fd)
            await self._files.remove(self.path)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _sync_and_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
