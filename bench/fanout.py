"""Benchmark of delivery: R receivers in one room, one sender at a fixed
rate; how long from send to receipt, and whether every receiver gets every
message exactly once.

    .venv/bin/python bench/fanout.py --mode longpoll [--receivers 50 --rate 20] [--filter inline]
    .venv/bin/python bench/fanout.py --mode websocket [--receivers 200 --rate 50] [--filter inline]
    .venv/bin/python bench/fanout.py --mode longpoll --send typing [--rate 5]

Starts `atomchat serve` (fresh data directory, embedded PostgreSQL unless
--database-url names a server to create a scratch database on) with the rate
limits raised and password hashing cheapened (registration is not what is
measured here), registers a sender and R receivers and puts them in one room.

The receivers run in client processes of their own (two by default, the
receivers dealt among them), so that what limits delivery is the server and
not one client event loop. Each receiver makes its initial sync, then
follows the room as a real client does:

- longpoll: GET /_matrix/client/v3/sync?since=<next_batch>&timeout=30000 in
  a loop, each request with the next_batch of the previous answer;
- websocket: one /_atomchat/client/v1/stream socket, reading the "sync"
  frames it pushes (reconnecting with since=<last next_batch> if the server
  closes it).

The sender, in the main process, sends m.text messages at a fixed rate,
each on time whether or not earlier ones were acknowledged; the body carries
a sequence number and the time.monotonic() at which the request was made
(one clock for all processes of a Linux machine). A receiver's latency for a
message is its time of receipt minus that. After a warm-up (sent, checked
for loss and duplicates, but not in the latency figures) the measured
period runs for a fixed time. Then the receivers catch up (until each has
every message, or nothing new has arrived for 5 seconds) and are checked: a
message acknowledged to the sender and missing at a receiver is a loss, one
received twice a duplicate. A sync answer whose timeline is marked
`limited` (the server left events out, for the client to fetch with
/messages) is counted as a gap; the events it left out count as lost.

With --filter, every receiver asks with the filter real clients send:

- none: no filter;
- inline: {"room":{"timeline":{"limit":1000}},"presence":{"not_types":["*"]}}
  in each request's query (as matrix-nio and many bots send it);
- stored: that filter uploaded once per receiver (POST .../filter), each
  request naming its id (as Element and mautrix do);
- lazy: the inline filter with "state":{"lazy_load_members":true} added.

With --send typing, the sender sends typing notices instead of messages,
alternately starting (timeout 30 s) and stopping, at the rate; a receiver's
latency for a change is when the m.typing event showing it arrives minus when
the request was made. A sync tells who types now, not each change: two
changes made before a receiver's answer is made come as one event, their
outcome (coalesced, counted apart, each with its latency until then); an
event telling a receiver what it already knew is a duplicate; a change whose
outcome never arrives is lost.

Exit status: 0 when every target is met, 1 when one is missed, 2 when the
run itself failed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
from _server import (
    CHEAP_HASHING,
    MATRIX,
    RATE_LIMITS_RAISED,
    Api,
    BenchError,
    ServerProcess,
    Usage,
    User,
    Workers,
    benchmark_parser,
    bounded,
    exit_status,
    load_average,
    machine,
    ms,
    percentile,
    split,
    verdict,
)

RUN_DEADLINE = 300.0
REQUEST_TIMEOUT = 30.0
POLL_TIMEOUT_MS = 30_000
STREAM_PATH = "/_atomchat/client/v1/stream"
# After the last send, receivers catch up until they have everything, or
# until nothing new arrived for QUIET_SECONDS, or for DRAIN_SECONDS at most.
QUIET_SECONDS = 5.0
DRAIN_SECONDS = 60.0
SETUP_CONCURRENCY = 16  # initial syncs and connections opened at once per client process

TARGETS = {  # mode: (receivers, messages/s, p99 seconds)
    "longpoll": (50, 20.0, 0.050),
    "websocket": (200, 50.0, 0.030),
}
TYPING_TARGET = (50, 5.0, 0.030)  # typing notices: receivers, changes/s, p99 seconds
INLINE_FILTER = {"room": {"timeline": {"limit": 1000}}, "presence": {"not_types": ["*"]}}
LAZY_FILTER = {
    "room": {"timeline": {"limit": 1000}, "state": {"lazy_load_members": True}},
    "presence": {"not_types": ["*"]},
}
FILTERS = ("none", "inline", "stored", "lazy")


class Receiver:
    """One client following the room: what it got, and when."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        user: User,
        room_id: str,
        filter_param: str | None,
        typing: bool,
    ) -> None:
        self.session = session
        self.base_url = base_url
        self.user = user
        self.filter_param = filter_param  # the filter each request sends: inline JSON or an id
        self.typing = typing  # following typing changes (their times of receipt) rather than messages
        self.typing_next = 0  # the sequence number of the next typing change
        self.room_id = room_id
        self.next_batch: str | None = None
        self.latencies: dict[int, float] = {}  # sequence number -> seconds, first receipt
        self.typers_seen: list[tuple[float, bool]] = []  # each m.typing event: time of receipt, someone typing
        self.duplicates = 0
        self.gaps = 0  # timelines marked limited: events left out, to be fetched with /messages
        self.errors = 0
        self.reconnects = 0
        self.socket: aiohttp.ClientWebSocketResponse[bool] | None = None
        self.poll: LongPoll | None = None

    def take(self, body: dict, now: float) -> None:
        """Records the benchmark's messages in a sync-shaped body received at ``now``."""
        room = body.get("rooms", {}).get("join", {}).get(self.room_id)
        if room is None:
            return
        if self.typing:
            self.take_typing(room, now)
            return
        if room["timeline"].get("limited") and self.next_batch is not None:
            self.gaps += 1
        for event in room["timeline"]["events"]:
            if event["type"] != "m.room.message":
                continue
            words = event["content"].get("body", "").split()
            if len(words) != 3 or words[0] != "fanout":
                continue
            sequence = int(words[1])
            if sequence in self.latencies:
                self.duplicates += 1
            else:
                self.latencies[sequence] = now - float(words[2])

    def take_typing(self, room: dict, now: float) -> None:
        """Records each m.typing event: when it came and whether it shows the
        sender typing (tally() matches them with the changes sent)."""
        for event in room.get("ephemeral", {}).get("events", []):
            if event["type"] == "m.typing":
                self.typers_seen.append((now, bool(event["content"]["user_ids"])))

    # -- long-poll -----------------------------------------------------------

    async def sync(self, timeout_ms: int) -> None:
        params = {"timeout": str(timeout_ms)}
        if self.filter_param is not None:
            params["filter"] = self.filter_param
        if self.next_batch is not None:
            params["since"] = self.next_batch
        if self.poll is None:
            self.poll = LongPoll(self.base_url, self.user.access_token)
        status, body, received_at = await self.poll.get(MATRIX + "/sync?" + urlencode(params))
        if status != 200:
            raise BenchError(f"GET /sync answered {status}: {body}")
        self.take(body, received_at)
        self.next_batch = body["next_batch"]

    async def poll_forever(self) -> None:
        while True:
            try:
                await self.sync(POLL_TIMEOUT_MS)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, BenchError, ValueError):
                self.errors += 1
                if self.poll is not None:
                    self.poll.close()
                    self.poll = None
                await asyncio.sleep(0.5)

    # -- WebSocket -----------------------------------------------------------

    async def connect(self) -> None:
        """Opens the stream and reads its first frame (the initial sync, or
        what was missed since next_batch)."""
        params = {"access_token": self.user.access_token}
        if self.filter_param is not None:
            params["filter"] = self.filter_param
        if self.next_batch is not None:
            params["since"] = self.next_batch
        self.socket = await self.session.ws_connect(
            self.base_url + STREAM_PATH, params=params, heartbeat=None, max_msg_size=0
        )
        await self.read_frame()

    async def read_frame(self) -> bool:
        """Reads one frame; False when the socket closed."""
        assert self.socket is not None, "connect() first"
        message = await self.socket.receive()
        if message.type != aiohttp.WSMsgType.TEXT:
            return False
        received_at = time.monotonic()
        frame = json.loads(message.data)
        if frame.get("type") == "sync":
            self.take(frame, received_at)
            self.next_batch = frame["next_batch"]
        return True

    async def stream_forever(self) -> None:
        while True:
            try:
                while await self.read_frame():
                    pass
                self.reconnects += 1
                await self.connect()
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                self.errors += 1
                await asyncio.sleep(0.5)


class LongPoll:
    """A receiver's keep-alive HTTP/1.1 connection for its /sync requests,
    as bare as send.py's senders (_server.Sender): the request written as
    bytes, the answer read by its Content-Length, and the time of receipt
    taken as soon as its last byte is read, before it is decoded. aiohttp
    spends several times the CPU per answer, which with fifty answers at
    once in a client process showed in the latencies as the client's own
    queueing (and was taken from the server being measured)."""

    def __init__(self, base_url: str, access_token: str) -> None:
        address = urlsplit(base_url)
        self.host, self.port = address.hostname, address.port
        self.head = f"Host: {address.netloc}\r\nAuthorization: Bearer {access_token}\r\n\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, dict, float]:
        """The status, the decoded JSON body and the time of receipt of a GET."""
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), REQUEST_TIMEOUT
            )
        reader, writer = self.reader, self.writer
        assert reader is not None and writer is not None, "connected above"
        writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self.head)
        wait = POLL_TIMEOUT_MS / 1000 + REQUEST_TIMEOUT
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), wait)
        length = next(
            (int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), None
        )
        if length is None:
            raise BenchError(f"an answer without Content-Length: {head!r}")
        data = await asyncio.wait_for(reader.readexactly(length), REQUEST_TIMEOUT)
        received_at = time.monotonic()
        return int(head[9:12]), json.loads(data), received_at

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def receiver_process(
    control, mode: str, base_url: str, users: list[tuple[User, str | None]], room_id: str, typing: bool
) -> tuple[float, list[tuple]]:
    """Follows the room as ``users`` (each with the filter it sends); on the main process's word (the
    acknowledged sequence numbers), waits until each receiver has them all
    (or until delivery stops, see QUIET_SECONDS), and returns how long that
    took and per receiver (latencies by sequence number, duplicates, gaps,
    errors, reconnects)."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=REQUEST_TIMEOUT, sock_read=POLL_TIMEOUT_MS / 1000 + REQUEST_TIMEOUT
    )
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        receivers = [Receiver(session, base_url, user, room_id, filter_param, typing) for user, filter_param in users]
        slots = asyncio.Semaphore(SETUP_CONCURRENCY)

        async def start(receiver: Receiver) -> None:
            async with slots:
                if mode == "longpoll":
                    await receiver.sync(0)
                else:
                    await receiver.connect()

        await asyncio.gather(*(start(receiver) for receiver in receivers))
        follow = Receiver.poll_forever if mode == "longpoll" else Receiver.stream_forever
        tasks = [asyncio.ensure_future(follow(receiver)) for receiver in receivers]
        control.ready()
        told, started_at = await control.message()
        acknowledged = set(told)

        def caught_up(receiver: Receiver) -> bool:
            if typing:
                return acknowledged <= typing_latencies(started_at, receiver.typers_seen)[0].keys()
            return acknowledged <= receiver.latencies.keys()

        started = time.monotonic()
        progress, progress_at = -1, started
        while time.monotonic() < started + DRAIN_SECONDS:
            if all(caught_up(receiver) for receiver in receivers):
                break
            delivered = sum(len(receiver.latencies) + len(receiver.typers_seen) for receiver in receivers)
            if delivered != progress:
                progress, progress_at = delivered, time.monotonic()
            elif time.monotonic() > progress_at + QUIET_SECONDS:
                break
            await asyncio.sleep(0.1)
        drained = time.monotonic() - started
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for receiver in receivers:
            if receiver.socket is not None:
                await receiver.socket.close()
            if receiver.poll is not None:
                receiver.poll.close()
        return drained, [
            (
                receiver.typers_seen if typing else receiver.latencies,
                receiver.duplicates,
                receiver.gaps,
                receiver.errors,
                receiver.reconnects,
            )
            for receiver in receivers
        ]


@dataclass
class Results:
    sent: dict[int, float] = field(default_factory=dict)  # acknowledged: sequence number -> send latency
    started: dict[int, float] = field(default_factory=dict)  # sequence number -> when its request was made
    send_errors: int = 0
    measured_from: int = 0  # first sequence number of the measured period
    behind: list[float] = field(default_factory=list)  # how late each send started, seconds
    deliveries: list[float] = field(default_factory=list)  # latencies of measured messages, all receivers
    lost: int = 0
    coalesced: int = 0  # typing changes a receiver saw only as the outcome of a later one
    lost_in_gaps: int = 0  # of those, at receivers that were sent a limited timeline
    duplicates: int = 0
    gaps: int = 0
    unacknowledged_delivered: int = 0
    drained: float = 0.0  # seconds the receivers took to catch up after the last send
    receiver_errors: int = 0
    reconnects: int = 0
    usage: Usage | None = None
    load_at_start: str = ""


async def send_at_rate(
    api: Api, sender: User, room_id: str, rate: float, seconds: float, first: int, results: Results, typing: bool
) -> int:
    """Sends rate * seconds messages, the n-th at start + n / rate; returns
    the next sequence number."""
    count = round(rate * seconds)
    start = time.monotonic()
    pending: list[asyncio.Task] = []

    async def one(sequence: int) -> None:
        sent_at = results.started[sequence] = time.monotonic()
        try:
            if typing:
                await api.call(
                    "PUT",
                    f"/rooms/{room_id}/typing/{quote(sender.user_id)}",
                    user=sender,
                    body={"typing": sequence % 2 == 0, "timeout": 30_000},
                )
            else:
                await api.send_text(sender, room_id, f"fanout {sequence} {sent_at:.6f}", f"t{sequence}")
        except (aiohttp.ClientError, asyncio.TimeoutError, BenchError):
            results.send_errors += 1
            return
        results.sent[sequence] = time.monotonic() - sent_at

    for number in range(count):
        due = start + number / rate
        now = time.monotonic()
        if due > now:
            await asyncio.sleep(due - now)
        results.behind.append(max(0.0, time.monotonic() - due))
        pending.append(asyncio.ensure_future(one(first + number)))
    await asyncio.gather(*pending)
    return first + count


async def receiver_filters(api: Api, receivers: list[User], kind: str) -> list[str | None]:
    """The filter parameter each receiver sends (see --filter)."""
    if kind == "none":
        return [None] * len(receivers)
    if kind != "stored":
        return [json.dumps(LAZY_FILTER if kind == "lazy" else INLINE_FILTER, separators=(",", ":"))] * len(receivers)
    slots = asyncio.Semaphore(8)

    async def upload(user: User) -> str:
        async with slots:
            answer = await api.call("POST", f"/user/{quote(user.user_id)}/filter", user=user, body=INLINE_FILTER)
            return str(answer["filter_id"])

    return list(await asyncio.gather(*(upload(user) for user in receivers)))


async def run(args: argparse.Namespace, results: Results) -> ServerProcess:
    deadline = time.monotonic() + RUN_DEADLINE
    results.load_at_start = load_average()
    server = ServerProcess(database_url=args.database_url, **RATE_LIMITS_RAISED, **CHEAP_HASHING)
    async with server:
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        ) as session:
            api = Api(session, server.base_url, deadline)
            print(f"registering {args.receivers} receivers and a sender, joining them to one room ...", flush=True)
            sender = await api.register("sender")
            receivers = await api.register_many("receiver", args.receivers)
            room_id = await api.create_room(sender, preset="public_chat", name="Fan-out benchmark")
            slots = asyncio.Semaphore(8)

            async def join(user: User) -> None:
                async with slots:
                    await api.join(user, room_id)

            await asyncio.gather(*(join(user) for user in receivers))
            filters = await receiver_filters(api, receivers, args.filter)
            processes = min(args.processes, args.receivers)
            typing = args.send == "typing"
            arguments = [
                (args.mode, server.base_url, group, room_id, typing)
                for group in split(list(zip(receivers, filters, strict=True)), processes)
            ]
            async with Workers(receiver_process, arguments) as workers:
                print(
                    f"{args.receivers} receivers ({args.mode}) in {processes} client process(es): initial syncs ...",
                    flush=True,
                )
                await workers.wait_ready(timeout=120)
                print(f"warm-up: {args.warmup:.0f}s at {args.rate:g} messages/s ...", flush=True)
                results.measured_from = await send_at_rate(
                    api, sender, room_id, args.rate, args.warmup, 0, results, typing
                )
                results.usage = Usage(server, clients=workers.pids)
                results.usage.start()
                before_sender = time.process_time()
                print(f"measuring: {args.seconds:.0f}s at {args.rate:g} messages/s ...", flush=True)
                await send_at_rate(
                    api, sender, room_id, args.rate, args.seconds, results.measured_from, results, typing
                )
                results.usage.stop(extra={"clients": time.process_time() - before_sender})  # and the sender
                workers.tell(told(results))
                received = await workers.results(timeout=DRAIN_SECONDS + 60)
    tally(results, received, typing=args.send == "typing")
    return server


def told(results: Results) -> tuple[list[int], dict[int, float]]:
    """What the receiver processes are told once the sender is done: the
    acknowledged sequence numbers, and when each request was made."""
    return sorted(results.sent), results.started


def typing_latencies(started: dict[int, float], seen: list[tuple[float, bool]]) -> tuple[dict[int, float], int, int]:
    """Matches one receiver's m.typing events (time of receipt, someone
    typing) with the changes sent, in order (change n starts the notice
    when n is even, stops it when odd). An event shows the earliest change
    not yet shown that has its state and was made before it arrived; the
    changes it passes over were coalesced with it (both happened before the
    receiver's answer was made, and a sync tells the typers as they are, not
    each change): their latency is until this event, when the receiver saw
    their outcome. An event matching no such change tells the receiver what
    it knew already: a duplicate. Returns the latency of each change shown,
    coalesced or not, the count of coalesced changes and of duplicates."""
    latencies: dict[int, float] = {}
    changes = sorted(started)
    coalesced = duplicates = 0
    following = 0  # index in ``changes`` of the first change not shown yet
    for at, typing_now in seen:
        shown = next(
            (
                index
                for index in range(following, len(changes))
                if started[changes[index]] <= at and (changes[index] % 2 == 0) == typing_now
            ),
            None,
        )
        if shown is None:
            duplicates += 1
            continue
        for index in range(following, shown + 1):
            latencies[changes[index]] = at - started[changes[index]]
        coalesced += shown - following
        following = shown + 1
    return latencies, coalesced, duplicates


def tally(results: Results, received: list, *, typing: bool) -> None:
    """Adds up what the receiver processes returned (receiver_process):
    deliveries of the measured period, losses, duplicates, gaps."""
    acknowledged = set(results.sent)
    results.drained = max(drained for drained, _ in received)
    for _, process in received:
        for latencies, duplicates, gaps, errors, reconnects in process:
            if typing:  # the m.typing events seen: matched with the changes sent
                latencies, coalesced, duplicates = typing_latencies(results.started, latencies)
                results.coalesced += coalesced
            results.deliveries.extend(
                latency for sequence, latency in latencies.items() if sequence >= results.measured_from
            )
            missing = len(acknowledged - latencies.keys())
            results.lost += missing
            if gaps:
                results.lost_in_gaps += missing
            results.unacknowledged_delivered += len(latencies.keys() - acknowledged)
            results.duplicates += duplicates
            results.gaps += gaps
            results.receiver_errors += errors
            results.reconnects += reconnects
    if not results.deliveries:
        raise BenchError("no message was delivered in the measured period")


def report(args: argparse.Namespace, results: Results, server: ServerProcess) -> bool:
    target_receivers, target_rate, target_p99 = TYPING_TARGET if args.send == "typing" else TARGETS[args.mode]
    p99 = percentile(results.deliveries, 99)
    expected = round(args.rate * args.seconds) * args.receivers
    send_latencies = list(results.sent.values())
    print()
    print(f"AtomChat fan-out benchmark ({args.mode}), {datetime.date.today().isoformat()}")
    print(f"  machine:   {machine()}, load average {results.load_at_start} at start, {load_average()} at end")
    print(
        f"  server:    atomchat serve, {server.database_kind}, default settings, rate limits raised,"
        " password hashing cheapened"
    )
    print(
        f"  load:      {args.receivers} receivers ({args.mode}, filter: {args.filter}) in"
        f" {min(args.processes, args.receivers)} client"
        f" process(es), 1 sender at {args.rate:g} {'typing changes' if args.send == 'typing' else 'messages'}/s;"
        f" {args.warmup:.0f}s warm-up,"
        f" {args.seconds:.0f}s measured"
    )
    print()
    print(
        f"  delivery latency, {len(results.deliveries)} deliveries (expected {expected}):"
        f" p50 {ms(percentile(results.deliveries, 50))}, p99 {ms(p99)}, max {ms(max(results.deliveries))}"
    )
    print(
        f"  send latency ({len(send_latencies)} acknowledged, {results.send_errors} failed):"
        f" p50 {ms(percentile(send_latencies, 50))}, p99 {ms(percentile(send_latencies, 99))};"
        f" sends started late by up to {ms(max(results.behind))}"
    )
    print(
        f"  lost {results.lost} ({results.lost_in_gaps} at receivers sent limited timelines, {results.gaps}"
        f" of them), duplicates {results.duplicates}, delivered without acknowledgement"
        f" {results.unacknowledged_delivered}"
    )
    if args.send == "typing":
        print(
            f"  typing changes coalesced with the next one (told as their outcome, latency until then):"
            f" {results.coalesced}"
        )
    print(
        f"  receiver errors {results.receiver_errors}, reconnects {results.reconnects}; receivers caught up"
        f" {results.drained:.1f}s after the last send"
    )
    print(f"  in the measured period: {results.usage.summary() if results.usage else 'not measured'}")
    print()
    at_target_load = args.receivers >= target_receivers and args.rate >= target_rate
    latency_ok = p99 < target_p99
    clean = results.lost == 0 and results.duplicates == 0 and results.send_errors == 0
    print(
        f"  target: {target_receivers} receivers at {target_rate:g} messages/s, p99 < {target_p99 * 1000:.0f} ms:"
        f" p99 {ms(p99)} with {args.receivers} at {args.rate:g}/s  "
        + (verdict(latency_ok) if at_target_load else f"({verdict(latency_ok)} at a smaller load)")
    )
    print(f"  target: no loss, no duplicates, no failed send: {verdict(clean)}")
    print(f"  server stopped by SIGTERM, exit status {server.exit_status}")
    return latency_ok and clean


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument(
        "--mode",
        choices=sorted(TARGETS),
        required=True,
        help="how receivers follow the room: long-polling /sync or the WebSocket stream",
    )
    parser.add_argument(
        "--send",
        choices=("messages", "typing"),
        default="messages",
        help="what the sender sends: messages, or typing notices alternately started and stopped",
    )
    parser.add_argument(
        "--filter", choices=FILTERS, default="none", help="the filter each receiver's requests carry (default none)"
    )
    parser.add_argument(
        "--receivers",
        type=bounded(1, 1000),
        default=None,
        help="receivers in the room (default: the mode's target, 50 or 200)",
    )
    parser.add_argument(
        "--rate",
        type=bounded(0.1, 1000, float),
        default=None,
        help="messages sent per second (default: the mode's target, 20 or 50)",
    )
    parser.add_argument(
        "--seconds", type=bounded(1, 120, float), default=20.0, help="length of the measured period (default 20)"
    )
    parser.add_argument(
        "--warmup", type=bounded(0, 30, float), default=3.0, help="sending before the measured period (default 3)"
    )
    parser.add_argument(
        "--processes",
        type=bounded(1, 8),
        default=2,
        help="client processes the receivers are divided among (default 2)",
    )
    args = parser.parse_args()
    target_receivers, target_rate, _ = TYPING_TARGET if args.send == "typing" else TARGETS[args.mode]
    args.receivers = args.receivers or target_receivers
    args.rate = args.rate or target_rate
    return exit_status(run, report, args, Results())


if __name__ == "__main__":
    sys.exit(main())
