"""Federation between AtomChat and Synapse on loopback, step by step.

Synapse is not a dependency of AtomChat: install it in a venv of its own and
run this script with AtomChat's interpreter (it starts both servers):

    python3 -m venv /tmp/synvenv && /tmp/synvenv/bin/pip install matrix-synapse
    .venv/bin/python interop/synapse_federation.py [--synapse-python PATH] [--keep]

or as a test: ``ATOMCHAT_SYNAPSE_PYTHON=/tmp/synvenv/bin/python .venv/bin/pytest
tests/processes/test_synapse_interop.py`` (skipped when that variable is unset).

``--synapse-python`` (or the ATOMCHAT_SYNAPSE_PYTHON environment variable)
names the interpreter Synapse is installed in; /tmp/synvenv/bin/python when
unset. The script makes a self-signed certificate for 127.0.0.1, starts
Synapse (a ``tls: true`` listener with the federation resource, plain HTTP
for its client API, its own SQLite database, certificate checks off and the
IP blocklists empty so it may reach 127.0.0.1) and an AtomChat server with
its federation listener (embedded PostgreSQL, fresh data directory), each
named by its federation address (``127.0.0.1:PORT``). Then it holds the
conversation both ways:

- a room created on Synapse (its default room version) with an AtomChat
  user invited: the invite, the join, messages both ways, name and topic,
  redactions both ways;
- a room created on AtomChat with a Synapse user invited: the invite, the
  join, messages both ways;
- backfill both ways: a user who joins a room of the other server after
  its first messages pages back through them (/messages), which makes
  their server ask the other one for the history (GET /backfill);
- an outage: AtomChat stops while Synapse's user sends several messages,
  and Synapse restarts meanwhile (so that it no longer holds them queued);
  AtomChat starts again and the gap reaches it (Synapse catches up by
  sending only the newest event; the rest is fetched with
  get_missing_events).

Each step prints PASS or FAIL with what was seen; a step whose premise
failed is skipped. The exit status is 0 when every step passed, 1 when one
failed, 2 when the set-up itself failed. ``--keep`` leaves the servers'
directories (logs, databases) in place and prints where they are.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._server import BenchError, FederatingServer  # noqa: E402
from tests.support.harness import free_port, self_signed_certificate  # noqa: E402

DEFAULT_SYNAPSE_PYTHON = "/tmp/synvenv/bin/python"
CLIENT = "/_matrix/client/v3"
HISTORY = 12  # messages sent before a late join, read back by backfill
STEP_TIMEOUT = 45.0  # seconds a step waits for the other server to show what it expects
START_TIMEOUT = 90.0


class SetupError(Exception):
    """The servers could not be set up; the message says why."""


def synapse_python(explicit: str | None = None) -> str | None:
    """The interpreter Synapse is installed in, or None when there is none."""
    candidate = explicit or os.environ.get("ATOMCHAT_SYNAPSE_PYTHON") or DEFAULT_SYNAPSE_PYTHON
    return candidate if Path(candidate).exists() else None


# -- the two servers ------------------------------------------------------------


class Synapse:
    """Synapse on 127.0.0.1: federation over TLS on ``federation_port`` (also
    its server name's port), its client API over plain HTTP on ``client_port``."""

    def __init__(self, python: str, root: Path, cert: Path, key: Path) -> None:
        self.python = python
        self.root = root
        self.federation_port = free_port()
        self.client_port = free_port()
        self.name = f"127.0.0.1:{self.federation_port}"
        self.base_url = f"http://127.0.0.1:{self.client_port}"
        self.shared_secret = secrets.token_hex(16)
        self.config_path = root / "homeserver.yaml"
        self.log_path = root / "synapse.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        limit = {"per_second": 10000, "burst_count": 10000}
        config = {
            "server_name": self.name,
            "pid_file": str(root / "homeserver.pid"),
            "public_baseurl": self.base_url + "/",
            "report_stats": False,
            "listeners": [
                {
                    "port": self.federation_port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": True,
                    "x_forwarded": False,
                    "resources": [{"names": ["federation"], "compress": False}],
                },
                {
                    "port": self.client_port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                },
            ],
            "tls_certificate_path": str(cert),
            "tls_private_key_path": str(key),
            "database": {"name": "sqlite3", "args": {"database": str(root / "homeserver.db")}},
            "media_store_path": str(root / "media"),
            "signing_key_path": str(root / "signing.key"),
            "registration_shared_secret": self.shared_secret,
            "macaroon_secret_key": secrets.token_hex(16),
            "form_secret": secrets.token_hex(16),
            "federation_verify_certificates": False,
            "ip_range_blacklist": [],
            "federation_ip_range_blacklist": [],
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "enable_metrics": False,
            "presence": {"enabled": False},
            # A destination that failed is retried within seconds, not minutes.
            # A transaction to a server that is down fails after two quick
            # retries (Synapse's default is ten, about ten seconds here); the
            # server is then marked down for a minute (events for it are not
            # queued but caught up later), or until it sends a request itself.
            "federation": {
                "destination_min_retry_interval": "60s",
                "destination_retry_multiplier": 2,
                "destination_max_retry_interval": "120s",
                "max_long_retry_delay": "1s",
                "max_long_retries": 2,
            },
            "rc_message": limit,
            "rc_joins": {"local": limit, "remote": limit},
            "rc_invites": {"per_room": limit, "per_user": limit, "per_issuer": limit},
            "rc_federation": {
                "window_size": 1000,
                "sleep_limit": 10000,
                "sleep_delay": 1,
                "reject_limit": 10000,
                "concurrent": 100,
            },
            "rc_registration": limit,
            "rc_login": {"address": limit, "account": limit},
        }
        # JSON is YAML: no YAML writer needed.
        self.config_path.write_text(json.dumps(config, indent=1))

    def _command(self, *extra: str) -> list[str]:
        return [self.python, "-m", "synapse.app.homeserver", "--config-path", str(self.config_path), *extra]

    async def start(self) -> None:
        subprocess.run(self._command("--generate-keys"), check=True, capture_output=True, timeout=120, cwd=self.root)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
        self._process = subprocess.Popen(
            self._command(), stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.root
        )
        deadline = time.monotonic() + START_TIMEOUT
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while True:
                if self._process.poll() is not None:
                    raise SetupError(f"Synapse exited with status {self._process.returncode}; see {self.log_path}")
                try:
                    async with session.get(self.base_url + "/_matrix/client/versions") as response:
                        if response.status == 200:
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise SetupError(f"Synapse did not answer within {START_TIMEOUT:.0f}s; see {self.log_path}")
                await asyncio.sleep(0.3)

    async def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                await asyncio.get_running_loop().run_in_executor(None, self._process.wait, 30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._log is not None:
            self._log.close()

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    async def logged_since(self, offset: int, text: str) -> bool:
        """``text`` appears in Synapse's log after byte ``offset``."""
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            return text.encode() in log.read()

    async def register(self, session: aiohttp.ClientSession, localpart: str) -> Client:
        """An account made with the registration shared secret (Synapse's admin API)."""
        url = self.base_url + "/_synapse/admin/v1/register"
        async with session.get(url) as response:
            nonce = (await response.json())["nonce"]
        password = secrets.token_urlsafe(12)
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode(), b"notadmin"]))
        async with session.post(
            url,
            json={"nonce": nonce, "username": localpart, "password": password, "admin": False, "mac": mac.hexdigest()},
        ) as response:
            answer = await response.json()
            if response.status != 200:
                raise SetupError(f"Synapse refused to register {localpart}: {answer}")
        return Client(session, self.base_url, answer["user_id"], answer["access_token"])


class AtomChat(FederatingServer):
    """`atomchat serve` with its federation listener, and its users' clients."""

    def __init__(self, cert: Path, key: Path) -> None:
        super().__init__(cert, key, rc_register_per_second=1000, rc_register_burst=1000)

    async def register(self, session: aiohttp.ClientSession, localpart: str) -> Client:
        async with session.post(
            self.base_url + CLIENT + "/register",
            json={"username": localpart, "password": secrets.token_urlsafe(12), "auth": {"type": "m.login.dummy"}},
        ) as response:
            answer = await response.json()
            if response.status != 200:
                raise SetupError(f"AtomChat refused to register {localpart}: {answer}")
        return Client(session, self.base_url, answer["user_id"], answer["access_token"])


class Client:
    """One user's client-server API calls; an answer other than 200 raises StepError."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, user_id: str, token: str) -> None:
        self.session = session
        self.base_url = base_url
        self.user_id = user_id
        self.token = token
        self._txn = 0

    async def call(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        async with self.session.request(
            method,
            self.base_url + CLIENT + path,
            json=body,
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as response:
            answer = await response.json(content_type=None)
            if response.status != 200:
                raise StepError(f"{method} {path.split('?')[0]} answered {response.status}: {answer}")
            return answer

    async def send(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        self._txn += 1
        answer = await self.call("PUT", f"/rooms/{quote(room_id)}/send/{event_type}/t{self._txn}{time.time()}", content)
        return str(answer["event_id"])

    async def say(self, room_id: str, text: str) -> str:
        return await self.send(room_id, "m.room.message", {"msgtype": "m.text", "body": text})

    async def state(self, room_id: str, event_type: str, key: str = "") -> Any:
        return await self.call("GET", f"/rooms/{quote(room_id)}/state/{event_type}/{quote(key)}")

    async def messages(self, room_id: str, limit: int = 100) -> list[dict[str, Any]]:
        answer = await self.call("GET", f"/rooms/{quote(room_id)}/messages", params={"dir": "b", "limit": str(limit)})
        return list(answer["chunk"])

    async def bodies(self, room_id: str) -> list[str]:
        return [
            e["content"].get("body", "")
            for e in reversed(await self.messages(room_id))
            if e["type"] == "m.room.message"
        ]

    async def history(self, room_id: str, page: int = 5) -> list[str]:
        """The message bodies of a whole backwards walk of /messages, oldest first."""
        said: list[str] = []
        params = {"dir": "b", "limit": str(page)}
        for _ in range(200):
            answer = await self.call("GET", f"/rooms/{quote(room_id)}/messages", params=params)
            said += [e["content"].get("body", "") for e in answer["chunk"] if e["type"] == "m.room.message"]
            if "end" not in answer or answer["end"] == params.get("from"):
                break
            params["from"] = answer["end"]
        return list(reversed(said))

    async def event(self, room_id: str, event_id: str) -> dict[str, Any]:
        return dict(await self.call("GET", f"/rooms/{quote(room_id)}/event/{quote(event_id)}"))

    async def invited_rooms(self) -> set[str]:
        answer = await self.call("GET", "/sync", params={"timeout": "0"})
        return set(answer.get("rooms", {}).get("invite", {}))

    async def joined_members(self, room_id: str) -> set[str]:
        answer = await self.call("GET", f"/rooms/{quote(room_id)}/joined_members")
        return set(answer["joined"])


# -- the steps ------------------------------------------------------------------


class StepError(Exception):
    """What a step saw instead of what it expected."""


async def until(what: str, probe: Callable[[], Awaitable[Any]], timeout: float = STEP_TIMEOUT) -> Any:
    """Polls ``probe`` until it returns something true (a StepError counts as
    not yet); raises StepError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = "nothing"
    while True:
        try:
            value = await probe()
            if value:
                return value
            last = repr(value)
        except StepError as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            raise StepError(f"{what}: not seen within {timeout:.0f}s (last: {last[:300]})")
        await asyncio.sleep(0.25)


class Report:
    def __init__(self) -> None:
        self.results: list[tuple[str, bool, str]] = []

    async def step(self, name: str, action: Callable[[], Awaitable[str | None]]) -> bool:
        started = time.monotonic()
        try:
            detail = await action() or ""
            ok = True
        except (StepError, aiohttp.ClientError, asyncio.TimeoutError, KeyError) as exc:
            detail, ok = f"{type(exc).__name__}: {exc}", False
        took = time.monotonic() - started
        self.results.append((name, ok, detail))
        print(f"{'PASS' if ok else 'FAIL'}  {name} ({took:.1f}s){'  ' + detail if detail else ''}", flush=True)
        return ok

    def skip(self, name: str, why: str) -> None:
        self.results.append((name, False, "skipped: " + why))
        print(f"SKIP  {name}  ({why})", flush=True)

    @property
    def passed(self) -> bool:
        return all(ok for _, ok, _ in self.results)


async def conversation(atomchat: AtomChat, synapse: Synapse, session: aiohttp.ClientSession, report: Report) -> None:
    alice = await atomchat.register(session, "alice")
    sam = await synapse.register(session, "sam")
    print(f"AtomChat {atomchat.name} ({alice.user_id}), Synapse {synapse.name} ({sam.user_id})", flush=True)
    room: dict[str, str] = {}

    # -- a room created on Synapse ------------------------------------------------
    async def synapse_room_invite() -> str:
        room["s"] = (await sam.call("POST", "/createRoom", {"preset": "private_chat", "name": "On Synapse"}))["room_id"]
        version = (await sam.state(room["s"], "m.room.create")).get("room_version", "1")
        await sam.call("POST", f"/rooms/{quote(room['s'])}/invite", {"user_id": alice.user_id})
        await until("the invite on AtomChat", lambda: _contains(alice.invited_rooms(), room["s"]))
        return f"room {room['s']} (version {version})"

    if not await report.step(
        "Synapse room: Synapse user invites the AtomChat user; AtomChat sees the invite", synapse_room_invite
    ):
        report.skip("Synapse room: the rest", "no invite")
    else:

        async def synapse_room_join() -> str:
            await alice.call("POST", f"/join/{quote(room['s'])}", {}, params={"server_name": synapse.name})
            await until(
                "the AtomChat user joined on Synapse", lambda: _contains(sam.joined_members(room["s"]), alice.user_id)
            )
            return ""

        if await report.step("Synapse room: the AtomChat user joins (make_join/send_join)", synapse_room_join):

            async def synapse_to_atomchat() -> str:
                await sam.say(room["s"], "hello from Synapse")
                await until(
                    "Synapse's message on AtomChat", lambda: _contains(alice.bodies(room["s"]), "hello from Synapse")
                )
                return ""

            async def atomchat_to_synapse() -> str:
                await alice.say(room["s"], "hello from AtomChat")
                await until(
                    "AtomChat's message on Synapse", lambda: _contains(sam.bodies(room["s"]), "hello from AtomChat")
                )
                return ""

            async def name_and_topic() -> str:
                await sam.call("PUT", f"/rooms/{quote(room['s'])}/state/m.room.name/", {"name": "Renamed on Synapse"})
                await sam.call("PUT", f"/rooms/{quote(room['s'])}/state/m.room.topic/", {"topic": "Synapse topic"})
                await until(
                    "the name on AtomChat",
                    lambda: _equals(_field(alice.state(room["s"], "m.room.name"), "name"), "Renamed on Synapse"),
                )
                await until(
                    "the topic on AtomChat",
                    lambda: _equals(_field(alice.state(room["s"], "m.room.topic"), "topic"), "Synapse topic"),
                )
                return ""

            async def redactions() -> str:
                from_sam = await sam.say(room["s"], "Synapse will redact this")
                from_alice = await alice.say(room["s"], "AtomChat will redact this")
                await until(
                    "both messages on both sides",
                    lambda: _all_in([alice, sam], room["s"], ["Synapse will redact this", "AtomChat will redact this"]),
                )
                await sam.call("PUT", f"/rooms/{quote(room['s'])}/redact/{quote(from_sam)}/r1", {})
                await alice.call("PUT", f"/rooms/{quote(room['s'])}/redact/{quote(from_alice)}/r2", {})
                await until("Synapse's redaction on AtomChat", lambda: _redacted(alice.event(room["s"], from_sam)))
                await until("AtomChat's redaction on Synapse", lambda: _redacted(sam.event(room["s"], from_alice)))
                return ""

            await report.step("Synapse room: a message from Synapse reaches AtomChat", synapse_to_atomchat)
            await report.step("Synapse room: a message from AtomChat reaches Synapse", atomchat_to_synapse)
            await report.step("Synapse room: name and topic set on Synapse reach AtomChat", name_and_topic)
            await report.step("Synapse room: redactions both ways", redactions)
        else:
            report.skip("Synapse room: messages, name/topic, redactions", "the join failed")

    # -- a room created on AtomChat -------------------------------------------------
    async def atomchat_room_invite() -> str:
        room["a"] = (await alice.call("POST", "/createRoom", {"preset": "private_chat", "name": "On AtomChat"}))[
            "room_id"
        ]
        await alice.call("POST", f"/rooms/{quote(room['a'])}/invite", {"user_id": sam.user_id})
        await until("the invite on Synapse", lambda: _contains(sam.invited_rooms(), room["a"]))
        return f"room {room['a']}"

    if await report.step(
        "AtomChat room: the AtomChat user invites the Synapse user; Synapse sees the invite", atomchat_room_invite
    ):

        async def atomchat_room_join() -> str:
            await sam.call("POST", f"/join/{quote(room['a'])}", {}, params={"server_name": atomchat.name})
            await until(
                "the Synapse user joined on AtomChat", lambda: _contains(alice.joined_members(room["a"]), sam.user_id)
            )
            return ""

        if await report.step("AtomChat room: the Synapse user joins", atomchat_room_join):

            async def both_ways() -> str:
                await alice.say(room["a"], "welcome from AtomChat")
                await until(
                    "AtomChat's message on Synapse", lambda: _contains(sam.bodies(room["a"]), "welcome from AtomChat")
                )
                await sam.say(room["a"], "thanks from Synapse")
                await until(
                    "Synapse's message on AtomChat", lambda: _contains(alice.bodies(room["a"]), "thanks from Synapse")
                )
                return ""

            await report.step("AtomChat room: messages both ways", both_ways)
        else:
            report.skip("AtomChat room: messages both ways", "the join failed")
    else:
        report.skip("AtomChat room: join and messages", "no invite")

    # -- history from before a join (backfill), both ways ------------------------------
    async def backfill_from_synapse() -> str:
        room_id = (await sam.call("POST", "/createRoom", {"preset": "public_chat"}))["room_id"]
        said = [f"before the AtomChat join {n}" for n in range(HISTORY)]
        for text in said:
            await sam.say(room_id, text)
        bob = await atomchat.register(session, "bob")
        await bob.call("POST", f"/join/{quote(room_id)}", {}, params={"server_name": synapse.name})
        mark = synapse.log_size()
        seen = await bob.history(room_id)
        if seen != said:
            raise StepError(f"AtomChat's walk read {seen}")
        if not await synapse.logged_since(mark, "/_matrix/federation/v1/backfill/"):
            raise StepError("the history arrived, but not through /backfill")
        return f"{HISTORY} messages, in order, in pages of 5"

    async def backfill_from_atomchat() -> str:
        room_id = (await alice.call("POST", "/createRoom", {"preset": "public_chat"}))["room_id"]
        said = [f"before the Synapse join {n}" for n in range(HISTORY)]
        for text in said:
            await alice.say(room_id, text)
        tess = await synapse.register(session, "tess")
        await tess.call("POST", f"/join/{quote(room_id)}", {}, params={"server_name": atomchat.name})
        mark = atomchat.log_path.stat().st_size
        seen = await until("the history on Synapse", lambda: _history_is(tess, room_id, said), timeout=STEP_TIMEOUT)
        served = atomchat.log_path.read_text(errors="replace")[mark:]
        if "/_matrix/federation/v1/backfill/" not in served:
            raise StepError("the history arrived, but not through AtomChat's /backfill")
        return f"{HISTORY} messages, in order ({seen})"

    await report.step(
        "Backfill: an AtomChat user who joins a Synapse room late reads its earlier messages", backfill_from_synapse
    )
    await report.step(
        "Backfill: a Synapse user who joins an AtomChat room late reads its earlier messages", backfill_from_atomchat
    )

    # -- an outage of AtomChat --------------------------------------------------------
    if "s" not in room or not await _joined(sam, room["s"], alice.user_id):
        report.skip("Outage: the gap is fetched", "no shared Synapse room")
        return

    async def outage() -> str:
        await atomchat.halt()
        mark = synapse.log_size()
        missed = [f"sent while AtomChat was down {n}" for n in range(5)]
        await sam.say(room["s"], missed[0])
        # Synapse gives up on the transaction and marks AtomChat down: from
        # then on it only remembers which rooms need catching up.
        await until(
            "Synapse marking AtomChat down",
            lambda: synapse.logged_since(mark, f"TX [{atomchat.name}] Failed to send transaction"),
            timeout=60,
        )
        for text in missed[1:]:
            await sam.say(room["s"], text)
        # Synapse keeps what it could not send in memory only: restarted, it
        # knows just that the room needs catching up, and sends its newest
        # event alone.
        await synapse.stop()
        await synapse.start()
        await atomchat.start()
        mark = synapse.log_size()
        # A request from AtomChat tells Synapse that it is back.
        await alice.say(room["s"], "AtomChat is back")
        await until("every missed message on AtomChat", lambda: _all_in([alice], room["s"], missed))
        fetched = await synapse.logged_since(mark, "/_matrix/federation/v1/get_missing_events/")
        if not fetched:
            raise StepError("the messages arrived, but not through get_missing_events")
        return "5 messages; AtomChat asked Synapse for the gap with get_missing_events"

    await report.step(
        "Outage: Synapse's messages sent while AtomChat was down reach it afterwards (get_missing_events)", outage
    )


async def _history_is(client: Client, room_id: str, said: list[str]) -> str:
    seen = [body for body in await client.history(room_id) if body.startswith("before the")]
    if seen != said:
        raise StepError(f"the walk read {seen}")
    return f"{len(seen)} read"


async def _contains(values: Awaitable[Any], item: Any) -> bool:
    return item in await values


async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    return bool(await value == expected)


async def _field(answer: Awaitable[Any], key: str) -> Any:
    return (await answer).get(key)


async def _all_in(clients: list[Client], room_id: str, items: list[str]) -> bool:
    """Every one of ``items`` is a message body each client sees in the room."""
    for client in clients:
        seen = await client.bodies(room_id)
        if not all(item in seen for item in items):
            return False
    return True


async def _redacted(event: Awaitable[dict[str, Any]]) -> bool:
    seen = await event
    return "body" not in seen.get("content", {}) and bool(seen.get("unsigned", {}).get("redacted_because"))


async def _joined(client: Client, room_id: str, user_id: str) -> bool:
    try:
        return user_id in await client.joined_members(room_id)
    except StepError:
        return False


async def run(python: str, keep: bool) -> int:
    root = Path(tempfile.mkdtemp(prefix="atomchat-synapse-"))
    (root / "synapse").mkdir()
    cert, key = self_signed_certificate(root)
    synapse = Synapse(python, root / "synapse", cert, key)
    atomchat = AtomChat(cert, key)
    report = Report()
    try:
        print("starting Synapse and AtomChat ...", flush=True)
        await synapse.start()
        await atomchat.start()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            await conversation(atomchat, synapse, session, report)
    except (SetupError, BenchError, StepError, subprocess.SubprocessError, OSError) as exc:
        print(f"SET-UP FAILED: {exc}", flush=True)
        return 2
    finally:
        if keep:
            keep_at = root / "atomchat"
            shutil.copytree(atomchat.root, keep_at, dirs_exist_ok=True, ignore=shutil.ignore_patterns("postgres"))
            print(f"kept: {root} (synapse/synapse.log, atomchat/server.log)", flush=True)
        await atomchat.stop()
        await synapse.stop()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    passed = sum(ok for _, ok, _ in report.results)
    print(f"{passed} of {len(report.results)} steps passed", flush=True)
    return 0 if report.passed else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synapse-python", help="the interpreter Synapse is installed in")
    parser.add_argument("--keep", action="store_true", help="keep the servers' logs and databases")
    args = parser.parse_args()
    python = synapse_python(args.synapse_python)
    if python is None:
        print("Synapse is not installed: see this script's docstring", file=sys.stderr)
        return 2
    return asyncio.run(run(python, args.keep))


if __name__ == "__main__":
    sys.exit(main())
