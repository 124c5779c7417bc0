"""Benchmark of media: the server's memory while a 10 MB file is uploaded
and downloaded, and the time to make a thumbnail of a 2,000 x 2,000 JPEG.

    .venv/bin/python bench/media.py [--database-url URL] [--megabytes 10] [--rounds 3] [--thumbnails 10]

Starts `atomchat serve` (fresh data directory, embedded PostgreSQL unless
--database-url names a server to create a scratch database on) with default
settings, and registers one user. Then:

1. **Memory of a transfer**: --rounds times, a file of --megabytes random
   bytes is uploaded (POST /_matrix/media/v3/upload), then downloaded
   (GET /_matrix/client/v1/media/download/...) and compared with what was
   sent. Before each transfer the server process's peak resident set size
   is reset (``/proc/<pid>/clear_refs``); after it, the peak (``VmHWM``)
   less the resident size before is how much the transfer made the server
   grow at most. Target: less than the file's size, i.e. the server never
   held the whole file in memory (a server that buffers a body holds it at
   least once, and usually two or three times).
2. **Thumbnails**: a 2,000 x 2,000 JPEG (a photograph-like image: gradients
   and noise, made with Pillow) is uploaded --thumbnails times, each a new
   media id, and a 320 x 240 thumbnail of each is asked for once: each of
   those requests makes the thumbnail. The same request again is answered
   from the stored thumbnail. Target: making one takes less than 50 ms
   (median of the request latency, which includes it). The CPU time of the
   server's thumbnail function on the same JPEG, run in the benchmark's
   own process, is printed beside it: on a busy machine the latency holds
   waiting for a CPU, the CPU time does not.

Exit status: 0 when every target is met, 1 when one is missed, 2 when the
run itself failed.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _server import (
    BenchError,
    ServerProcess,
    benchmark_parser,
    bounded,
    exit_status,
    load_average,
    machine,
    ms,
    percentile,
    server_and_api,
    verdict,
)
from PIL import Image

from atomchat_server.services.media import make_thumbnail

RUN_DEADLINE = 300.0
REQUEST_TIMEOUT = 120.0
TARGET_THUMBNAIL = 0.050  # seconds, median
UPLOAD = "/_matrix/media/v3/upload"
CLIENT_MEDIA = "/_matrix/client/v1/media"


@dataclass
class Results:
    upload_growth: list[int] = field(default_factory=list)  # bytes
    download_growth: list[int] = field(default_factory=list)
    upload_seconds: list[float] = field(default_factory=list)
    download_seconds: list[float] = field(default_factory=list)
    rss_before: int = 0
    jpeg_bytes: int = 0
    made: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # CPU seconds of make_thumbnail in this process
    cached: list[float] = field(default_factory=list)
    load_at_start: str = ""


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"no {key} in /proc/{pid}/status")


def reset_peak(pid: int) -> int:
    """Resets the process's peak RSS to its current RSS; returns that."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError as exc:
        raise BenchError(f"cannot reset the server's peak RSS (/proc/{pid}/clear_refs): {exc}") from None
    return _status(pid, "VmRSS")


def photo_like_jpeg(side: int) -> bytes:
    """A side x side JPEG that compresses like a photograph."""
    gradient = Image.linear_gradient("L").resize((side, side))
    noise = Image.effect_noise((side, side), 40)
    image = Image.merge("RGB", (gradient, noise, gradient.rotate(90)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def thumbnail_cpu(jpeg: bytes, count: int) -> list[float]:
    """The CPU time the server's thumbnail function takes for this JPEG, run
    here ``count`` times: what a request costs whatever else the machine runs."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "source"
        source.write_bytes(jpeg)
        times = []
        for number in range(count):
            started = time.process_time()
            make_thumbnail(source, Path(folder) / f"thumbnail-{number}", (320, 240), "scale")
            times.append(time.process_time() - started)
    return times


async def run(args: argparse.Namespace, results: Results) -> ServerProcess:
    results.load_at_start = load_average()
    async with server_and_api(args, RUN_DEADLINE, REQUEST_TIMEOUT) as (server, api):
        session = api.session
        user = await api.register("uploader")
        auth = {"Authorization": f"Bearer {user.access_token}"}

        async def upload(data: bytes, content_type: str) -> str:
            async with session.post(
                server.base_url + UPLOAD, data=data, headers={**auth, "Content-Type": content_type}
            ) as response:
                answer = await response.json(content_type=None)
                if response.status != 200:
                    raise BenchError(f"an upload answered {response.status}: {answer}")
            return answer["content_uri"].removeprefix("mxc://")

        async def get(path: str) -> tuple[float, bytes]:
            started = time.perf_counter()
            async with session.get(server.base_url + path, headers=auth) as response:
                body = await response.read()
                if response.status != 200:
                    raise BenchError(f"GET {path} answered {response.status}: {body[:200]!r}")
            return time.perf_counter() - started, body

        await upload(b"warm-up", "text/plain")
        await get(f"{CLIENT_MEDIA}/config")
        size = args.megabytes * 1_000_000
        for round_number in range(args.rounds):
            print(f"round {round_number + 1}: upload and download of {args.megabytes} MB ...", flush=True)
            data = os.urandom(size)
            before = reset_peak(server.pid)
            results.rss_before = before
            started = time.perf_counter()
            where = await upload(data, "application/octet-stream")
            results.upload_seconds.append(time.perf_counter() - started)
            results.upload_growth.append(_status(server.pid, "VmHWM") - before)
            before = reset_peak(server.pid)
            seconds, body = await get(f"{CLIENT_MEDIA}/download/{where}")
            results.download_growth.append(_status(server.pid, "VmHWM") - before)
            results.download_seconds.append(seconds)
            if hashlib.sha256(body).digest() != hashlib.sha256(data).digest():
                raise BenchError("the download differs from the upload")
            del data, body

        jpeg = photo_like_jpeg(2000)
        results.jpeg_bytes = len(jpeg)
        results.cpu = thumbnail_cpu(jpeg, args.thumbnails)
        print(f"{args.thumbnails} thumbnails of a 2,000 x 2,000 JPEG ({len(jpeg) / 1e6:.1f} MB) ...", flush=True)
        for _ in range(args.thumbnails):
            where = await upload(jpeg, "image/jpeg")
            path = f"{CLIENT_MEDIA}/thumbnail/{where}?width=320&height=240&method=scale"
            seconds, body = await get(path)
            results.made.append(seconds)
            with Image.open(io.BytesIO(body)) as thumbnail:
                if thumbnail.size != (240, 240):
                    raise BenchError(f"the thumbnail is {thumbnail.size}, not 240 x 240")
            results.cached.append((await get(path))[0])
    return server


def report(args: argparse.Namespace, results: Results, server: ServerProcess) -> bool:
    size = args.megabytes * 1_000_000
    mb = lambda n: f"{n / 1e6:.1f} MB"  # noqa: E731
    print()
    print(f"AtomChat media benchmark, {datetime.date.today().isoformat()}")
    print(f"  machine:   {machine()}, load average {results.load_at_start} at start, {load_average()} at end")
    print(
        f"  server:    atomchat serve, {server.database_kind}, default settings, rate limits raised;"
        f" resident {mb(results.rss_before)} before the last transfer"
    )
    print()
    upload_ok = max(results.upload_growth) < size
    download_ok = max(results.download_growth) < size
    print(
        f"  upload of {args.megabytes} MB ({args.rounds} rounds): peak RSS growth "
        + ", ".join(mb(g) for g in results.upload_growth)
        + f"; {ms(min(results.upload_seconds))} at best   target < {mb(size)}: {verdict(upload_ok)}"
    )
    print(
        f"  download of {args.megabytes} MB ({args.rounds} rounds): peak RSS growth "
        + ", ".join(mb(g) for g in results.download_growth)
        + f"; {ms(min(results.download_seconds))} at best   target < {mb(size)}: {verdict(download_ok)}"
    )
    median = percentile(results.made, 50)
    thumbnail_ok = median < TARGET_THUMBNAIL
    print(
        f"  thumbnail 320x240 of a 2,000 x 2,000 JPEG ({mb(results.jpeg_bytes)}), made: median {ms(median)},"
        f" max {ms(max(results.made))}   target median < {TARGET_THUMBNAIL * 1000:.0f} ms: {verdict(thumbnail_ok)}"
    )
    print(f"  the same thumbnail again, stored: median {ms(percentile(results.cached, 50))}")
    print(
        f"  CPU time of making one (the server's function, run in the benchmark's process):"
        f" median {ms(percentile(results.cpu, 50))}"
    )
    print(f"  server stopped by SIGTERM, exit status {server.exit_status}")
    return upload_ok and download_ok and thumbnail_ok


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--megabytes", type=bounded(1, 40), default=10, help="size of the file moved (default 10)")
    parser.add_argument("--rounds", type=bounded(1, 10), default=3, help="uploads and downloads (default 3)")
    parser.add_argument("--thumbnails", type=bounded(3, 50), default=10, help="thumbnails made (default 10)")
    args = parser.parse_args()
    return exit_status(run, report, args, Results())


if __name__ == "__main__":
    sys.exit(main())
