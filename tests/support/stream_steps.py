"""A client of the WebSocket event stream (/_atomchat/client/v1/stream,
protocol/stream.md) for the tests: it opens a socket, checks every frame
against its schema, keeps the last next_batch and sets aside the frames a
caller was not waiting for."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from .client import check_schema

STREAM = "/_atomchat/client/v1/stream"
METHODS = ("send", "typing", "receipt", "ping")  # each with its result schema, stream/<method>.result
WAIT = 5.0  # seconds a test waits for a frame that must come


class Closed(Exception):
    """The server closed the socket while a frame was expected."""


def check_frame(frame: Any) -> None:
    check_schema("stream/sync.frame" if isinstance(frame, dict) and "type" in frame else "stream/reply.frame", frame)


def stream_url(base_url: str, **query: str) -> str:
    url = "ws" + base_url[len("http") :] + STREAM
    return url + ("?" + urlencode(query) if query else "")


def room_events(frame: dict[str, Any], room_id: str, section: str = "timeline") -> list[dict[str, Any]]:
    room = frame.get("rooms", {}).get("join", {}).get(room_id)
    return room[section]["events"] if room else []


class Stream:
    """A stream client: reads and checks frames, keeps the last next_batch,
    and sets aside the frames a caller was not waiting for."""

    def __init__(self, conn: WebSocketClientConnection) -> None:
        self.conn = conn
        self.next_batch: str | None = None
        self.unread: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, base_url: str, *, token: str | None = None, header: bool = True, **query: str) -> Stream:
        headers = {}
        if token is not None and header:
            headers["Authorization"] = f"Bearer {token}"
        elif token is not None:
            query["access_token"] = token
        conn = await websocket_connect(
            HTTPRequest(stream_url(base_url, **query), headers=headers, connect_timeout=WAIT, request_timeout=WAIT)
        )
        return cls(conn)

    async def frame(self, timeout: float = WAIT) -> dict[str, Any]:
        if self.unread:
            return self.unread.pop(0)
        return await self._receive(timeout)

    async def _receive(self, timeout: float) -> dict[str, Any]:
        message = await asyncio.wait_for(self.conn.read_message(), timeout)
        if message is None:
            raise Closed(self.conn.close_code, self.conn.close_reason)
        frame = json.loads(message)
        check_frame(frame)
        if frame.get("type") == "sync":
            self.next_batch = frame["next_batch"]
        return frame

    async def authenticate(self, token: str) -> None:
        """Sends the auth frame (the way to authenticate without a token on the upgrade)."""
        frame = {"type": "auth", "access_token": token}
        check_schema("stream/auth.frame", frame)
        await self.conn.write_message(json.dumps(frame))

    async def sync_until(
        self, done: Callable[[list[dict[str, Any]]], bool], timeout: float = WAIT
    ) -> list[dict[str, Any]]:
        """Sync frames until ``done`` holds for all received so far; replies are set aside."""
        deadline = time.monotonic() + timeout
        frames: list[dict[str, Any]] = []
        kept: list[dict[str, Any]] = []
        pending, self.unread = self.unread, []
        while not done(frames):
            frame = pending.pop(0) if pending else await self._receive(deadline - time.monotonic())
            (frames if frame.get("type") == "sync" else kept).append(frame)
        self.unread = kept + pending
        return frames

    async def messages(self, room_id: str, count: int, timeout: float = WAIT) -> list[dict[str, Any]]:
        """The next ``count`` message events of the room, from as many sync frames as it takes."""
        events: list[dict[str, Any]] = []

        def enough(frames):
            events[:] = [e for f in frames for e in room_events(f, room_id) if e["type"] == "m.room.message"]
            return len(events) >= count

        await self.sync_until(enough, timeout)
        return events

    async def request(
        self, method: str, params: dict[str, Any] | None = None, *, request_id: Any = None
    ) -> dict[str, Any]:
        """Sends a request and returns its reply; sync frames meanwhile are set aside."""
        request_id = request_id if request_id is not None else uuid.uuid4().hex
        frame = {"id": request_id, "method": method}
        if params is not None:
            frame["params"] = params
        await self.conn.write_message(json.dumps(frame))
        deadline = time.monotonic() + WAIT
        kept: list[dict[str, Any]] = []
        while True:
            reply = await self._receive(deadline - time.monotonic())
            if "type" not in reply and reply["id"] == request_id:
                self.unread += kept
                if "result" in reply and method in METHODS:
                    check_schema(f"stream/{method}.result", reply["result"])
                return reply
            kept.append(reply)

    async def closed(self, timeout: float = WAIT) -> tuple[int, str]:
        """Reads until the server closes; returns its close code and reason."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self._receive(deadline - time.monotonic())
            except Closed as closed:
                return closed.args

    async def close(self) -> None:
        """Closes from the client side and waits for the server's answer."""
        self.conn.close()
        while await asyncio.wait_for(self.conn.read_message(), WAIT) is not None:
            pass
