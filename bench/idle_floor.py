"""The floor under bench/idle.py: what Tornado itself keeps per idle
connection, with handlers that do nothing.

    .venv/bin/python bench/idle_floor.py [--connections 2000]

Starts, in a subprocess on uvloop as `atomchat serve` runs, a bare Tornado
application with two handlers: a WebSocket that sends one frame when it
opens, and a GET that waits a minute before answering (a long-poll with
nothing behind it). Opens C WebSockets (each reading its frame), then C
long-polls, and prints the server's RSS growth per connection of each kind,
measured as bench/idle.py measures AtomChat's. The difference between the
two benchmarks is what AtomChat adds per connection.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

import aiohttp
import tornado
from _server import BenchError, bounded, free_port, raise_fd_limit

SETTLE_SECONDS = 3.0
OPEN_CONCURRENCY = 32

BARE_SERVER = """
import asyncio, sys
import tornado.httpserver, tornado.web, tornado.websocket, uvloop

class Stream(tornado.websocket.WebSocketHandler):
    def open(self):
        self.write_message('{}')

class Poll(tornado.web.RequestHandler):
    async def get(self):
        await asyncio.sleep(60)
        self.finish('{}')

async def main():
    app = tornado.web.Application([(r"/stream", Stream), (r"/poll", Poll)])
    tornado.httpserver.HTTPServer(app).listen(int(sys.argv[1]), "127.0.0.1")
    print("ready", flush=True)
    await asyncio.Event().wait()

uvloop.run(main())
"""


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError("no VmRSS in /proc/<pid>/status")


async def measure(base_url: str, pid: int, connections: int) -> tuple[float, float]:
    slots = asyncio.Semaphore(OPEN_CONCURRENCY)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=120)
    ) as session:
        before = rss_kib(pid)

        async def open_stream():
            async with slots:
                socket = await session.ws_connect(base_url + "/stream", heartbeat=None)
                await socket.receive()
                return socket

        sockets = await asyncio.gather(*(open_stream() for _ in range(connections)))
        await asyncio.sleep(SETTLE_SECONDS)
        with_streams = rss_kib(pid)
        polls = [asyncio.ensure_future(session.get(base_url + "/poll")) for _ in range(connections)]
        await asyncio.sleep(SETTLE_SECONDS + connections / 1000)
        with_polls = rss_kib(pid)
        for poll in polls:
            poll.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
        for socket in sockets:
            await socket.close()
    return (with_streams - before) / connections, (with_polls - with_streams) / connections


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--connections",
        type=bounded(10, 10_000),
        default=2000,
        help="WebSockets, and as many long-polls, to hold (default 2000)",
    )
    args = parser.parse_args()
    try:
        raise_fd_limit(4 * args.connections + 100)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        if server.stdout is None or server.stdout.readline().strip() != "ready":
            print("bench: the bare server did not start", file=sys.stderr)
            return 2
        started = time.monotonic()
        per_stream, per_poll = asyncio.run(measure(f"http://127.0.0.1:{port}", server.pid, args.connections))
    finally:
        server.terminate()
        server.wait(10)
    print(f"Bare Tornado {tornado.version} on uvloop, {args.connections} of each, {time.monotonic() - started:.0f}s:")
    print(
        f"  {per_stream:.1f} KiB per WebSocket, {per_poll:.1f} KiB per long-poll"
        f" ({(per_stream + per_poll) / 2:.1f} KiB per connection)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
