"""Benchmark of end-to-end encryption's server side: to-device messages sent
and delivered to long-polling devices, and a device list change reaching
everyone in a room.

    .venv/bin/python bench/e2ee_sync.py [--database-url URL] [--receivers 50] [--senders 4] [--seconds 10]

Starts `atomchat serve` (fresh data directory, embedded PostgreSQL unless
--database-url names a server), registers the receivers, each a device
following its /sync tokens in a long-poll loop, and the senders. For a fixed
time each sender sends to-device messages (PUT /sendToDevice) one after
another, each to one receiver's device, as soon as the previous one is
acknowledged. Reported: acknowledged messages per second, send latency, and
delivery latency (from the start of the send to the receiver's long-poll
answer that carries the message); every message must arrive exactly once.
Then all receivers join one room, one member uploads new device keys, and
the time until every receiver's sync shows the change is reported.

Exit status: 0 when every message arrived exactly once and the change
reached every member, 1 when not, 2 when the run failed.
"""

from __future__ import annotations

import asyncio
import datetime
import sys
import time
import uuid

import aiohttp
from _server import (
    RATE_LIMITS_RAISED,
    Api,
    BenchError,
    ServerProcess,
    User,
    benchmark_parser,
    bounded,
    exit_status,
    load_average,
    machine,
    ms,
    percentile,
)

RUN_DEADLINE = 240.0
REQUEST_TIMEOUT = 60.0


class Receiver:
    """A device in a long-poll loop, noting when each message and each device list change arrived."""

    def __init__(self, api: Api, user: User) -> None:
        self.api = api
        self.user = user
        self.arrived: dict[str, float] = {}
        self.repeats = 0
        self.changed_at: float | None = None
        self.since: str | None = None

    async def initial(self) -> None:
        self.since = (await self.api.call("GET", "/sync", user=self.user))["next_batch"]

    async def follow(self, stop: asyncio.Event) -> None:
        if self.since is None:
            raise BenchError("a receiver follows from its initial sync")
        while not stop.is_set():
            answer = await self.api.call(
                "GET", "/sync", user=self.user, params={"since": self.since, "timeout": "1000"}
            )
            now = time.monotonic()
            self.since = answer["next_batch"]
            for message in answer["to_device"]["events"]:
                key = message["content"]["id"]
                if key in self.arrived:
                    self.repeats += 1
                self.arrived.setdefault(key, now)
            if answer["device_lists"]["changed"] and self.changed_at is None:
                self.changed_at = now


async def run(args, results: dict) -> ServerProcess:
    deadline = time.monotonic() + RUN_DEADLINE
    results["load_at_start"] = load_average()
    server = ServerProcess(database_url=args.database_url, **RATE_LIMITS_RAISED)
    async with server:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT), connector=connector
        ) as session:
            api = Api(session, server.base_url, deadline)
            users = await api.register_many("receiver", args.receivers)
            senders = await api.register_many("sender", args.senders)
            devices = {
                user.user_id: (await api.call("GET", "/account/whoami", user=user))["device_id"] for user in users
            }
            receivers = [Receiver(api, user) for user in users]
            await asyncio.gather(*(receiver.initial() for receiver in receivers))
            stop = asyncio.Event()
            followers = [asyncio.ensure_future(receiver.follow(stop)) for receiver in receivers]
            sent: dict[str, float] = {}
            send_latencies: list[float] = []
            print(
                f"{args.senders} sender(s) to {args.receivers} long-polling receivers for {args.seconds:.0f}s ...",
                flush=True,
            )
            end = time.monotonic() + args.seconds

            async def send_loop(number: int, sender: User) -> None:
                count = 0
                while time.monotonic() < end:
                    target = users[(number + count * len(senders)) % len(users)]
                    key = f"{number}-{count}"
                    started = time.monotonic()
                    sent[key] = started
                    await api.call(
                        "PUT",
                        f"/sendToDevice/org.example.bench/{uuid.uuid4().hex}",
                        user=sender,
                        body={"messages": {target.user_id: {devices[target.user_id]: {"id": key}}}},
                    )
                    send_latencies.append(time.monotonic() - started)
                    count += 1

            wall_start = time.monotonic()
            await asyncio.gather(*(send_loop(number, sender) for number, sender in enumerate(senders)))
            results["wall"] = time.monotonic() - wall_start
            settle = time.monotonic() + 10
            while sum(len(r.arrived) for r in receivers) < len(sent) and time.monotonic() < settle:
                await asyncio.sleep(0.05)
            arrived = {key: at for receiver in receivers for key, at in receiver.arrived.items()}
            results["sent"] = len(sent)
            results["arrived"] = len(arrived)
            results["repeats"] = sum(receiver.repeats for receiver in receivers)
            results["send"] = send_latencies
            results["delivery"] = [arrived[key] - started for key, started in sent.items() if key in arrived]

            print("device list change to every member of one room ...", flush=True)
            room_id = await api.create_room(users[0], preset="public_chat")
            for user in users[1:]:
                await api.join(user, room_id)
            await asyncio.sleep(2.0)  # the joins' own device list changes are delivered first
            for receiver in receivers:
                receiver.changed_at = None
            changed = time.monotonic()
            owner = users[0]
            device = devices[owner.user_id]
            await api.call(
                "POST",
                "/keys/upload",
                user=owner,
                body={
                    "device_keys": {
                        "user_id": owner.user_id,
                        "device_id": device,
                        "algorithms": ["m.megolm.v1.aes-sha2"],
                        "keys": {f"ed25519:{device}": "bench"},
                        "signatures": {},
                    }
                },
            )
            settle = time.monotonic() + 10
            while any(r.changed_at is None for r in receivers) and time.monotonic() < settle:
                await asyncio.sleep(0.01)
            results["fanout"] = [r.changed_at - changed for r in receivers if r.changed_at is not None]
            stop.set()
            await asyncio.gather(*followers)
    return server


def report(args, results: dict, server: ServerProcess) -> bool:
    send, delivery, fanout = results["send"], results["delivery"], results["fanout"]
    print()
    print(f"AtomChat to-device and device list benchmark, {datetime.date.today().isoformat()}")
    print(f"  machine:   {machine()}, load average {results['load_at_start']} at start, {load_average()} at end")
    print(f"  server:    atomchat serve, {server.database_kind}, default settings, rate limits raised")
    print(
        f"  to-device: {results['sent'] / results['wall']:.0f} messages/s acknowledged ({results['sent']} in"
        f" {results['wall']:.1f}s, {args.senders} senders); send median {ms(percentile(send, 50))},"
        f" p95 {ms(percentile(send, 95))}"
    )
    print(
        f"             delivery to the long-poll median {ms(percentile(delivery, 50))},"
        f" p95 {ms(percentile(delivery, 95))}, max {ms(max(delivery))}"
    )
    exact = results["arrived"] == results["sent"] and results["repeats"] == 0
    print(
        f"             arrived {results['arrived']} of {results['sent']}, repeated {results['repeats']}:"
        f" {'each exactly once' if exact else 'NOT EXACTLY ONCE'}"
    )
    print(
        f"  device list change to {len(fanout)} of {args.receivers} room members:"
        f" median {ms(percentile(fanout, 50))}, max {ms(max(fanout))}"
    )
    return exact and len(fanout) == args.receivers


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--receivers", type=bounded(2, 500), default=50, help="long-polling devices (default 50)")
    parser.add_argument("--senders", type=bounded(1, 50), default=4, help="senders at once (default 4)")
    parser.add_argument("--seconds", type=bounded(1, 30, float), default=10.0, help="how long they send (default 10)")
    args = parser.parse_args()
    return exit_status(run, report, args, {})


if __name__ == "__main__":
    sys.exit(main())
