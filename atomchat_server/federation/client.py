"""The outgoing side of federation: signed requests to other servers.

``FederationClient.request`` finds where a server name is served, signs the
request with this server's key (``Authorization: X-Matrix``), sends it over
HTTPS and returns the parsed JSON answer. Finding the server follows the
server-server discovery rules this server implements:

1. an IP literal (``127.0.0.1:8448``, ``[::1]``): that address, the port
   given or 8448;
2. a host name with an explicit port: that host and port;
3. otherwise ``https://<host>/.well-known/matrix/server`` may delegate to
   another name (``{"m.server": "name[:port]"}``), itself taken as in 1 and
   2, with 8448 when it gives no port;
4. otherwise the host on port 8448.

Connections are kept alive and reused per destination (aiohttp's pool):
a federation request on a warm connection costs one round trip, not a TCP
and TLS handshake, which is most of a message's delivery time between
nearby servers. A kept connection the other side has closed meanwhile is
noticed when it is reused: the request is sent once more on a new
connection. That is safe for every federation request: transactions are
deduplicated by their id, and the others read or are keyed by event id.

Every address a name resolves to is checked against the IP range blocklist
(``federation_ip_range_blocklist``) when a connection is made, so a name
cannot smuggle a request into this server's own network, whatever its DNS
answers. Any failure to reach a server (DNS, connection, TLS, timeout, a
blocked address) is ``Unreachable``; an answer that is an error is
``RemoteError`` with the remote's status and Matrix error code.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from signedjson.types import SigningKey

from .remote import (
    BlockedAddress,
    Endpoint,
    RemoteError,
    Unreachable,
    delegated_endpoint,
    direct_endpoint,
)
from .x_matrix import authorization_header

__all__ = ["FederationClient", "RemoteError", "Unreachable"]

log = logging.getLogger("atomchat.federation")

WELL_KNOWN_PATH = "/.well-known/matrix/server"
WELL_KNOWN_TIMEOUT = 10.0
WELL_KNOWN_TTL = 3600.0  # seconds a delegation (or its absence) is remembered
WELL_KNOWN_MAX_BYTES = 64 * 1024
WELL_KNOWN_REDIRECTS = 3
REDIRECTS = (301, 302, 303, 307, 308)
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# An idle connection is kept this long for the next request to its
# destination; past it the pool closes it (servers time idle ones out too).
KEEPALIVE_SECONDS = 30.0
# Connections at once, in all and to one destination: the outbox keeps one
# transaction in flight per destination; room requests (joins, backfill,
# missing events) may add a few.
MAX_CONNECTIONS = 256
MAX_PER_DESTINATION = 8
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def blocked(blocklist: tuple[Network, ...], address: str) -> bool:
    """Whether an IP address lies in the blocklist (ValueError: not an address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone index is not part of the address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in blocklist)


class BlocklistResolver(AbstractResolver):
    """The system resolver, keeping only addresses outside the blocklist."""

    def __init__(self, blocklist: tuple[Network, ...] = ()) -> None:
        self._resolver = aiohttp.ThreadedResolver()
        self._blocklist = blocklist

    async def close(self) -> None:
        await self._resolver.close()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self._resolver.resolve(host, port, family)
        allowed = [entry for entry in addresses if not blocked(self._blocklist, entry["host"])]
        if not allowed:
            raise BlockedAddress(f"{host} resolves only to addresses this server does not contact")
        return allowed


def _error_of(status: int, body: bytes) -> RemoteError:
    answer: Any = None
    if body:
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
    if isinstance(answer, dict) and isinstance(answer.get("errcode"), str):
        return RemoteError(status, answer["errcode"], str(answer.get("error", "")))
    return RemoteError(status, "M_UNKNOWN", f"the server answered {status} without a Matrix error")


async def _read(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, refused (Unreachable) past ``limit`` bytes."""
    if response.content_length is not None and response.content_length > limit:
        raise Unreachable(f"an answer of {response.content_length} bytes is past the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise Unreachable(f"an answer past the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class FederationClient:
    def __init__(
        self,
        server_name: str,
        key: SigningKey,
        *,
        verify_certificates: bool = True,
        blocklist: tuple[Network, ...] = (),
    ) -> None:
        self.server_name = server_name
        self._key = key
        self._verify = verify_certificates
        self._blocklist = blocklist
        # Made on first use, on the running loop; the connector leaves the
        # resolver it is given to its owner to close.
        self._session: aiohttp.ClientSession | None = None
        self._resolver: BlocklistResolver | None = None
        self._endpoints: dict[str, tuple[Endpoint, float]] = {}

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._resolver = BlocklistResolver(self._blocklist)
            connector = aiohttp.TCPConnector(
                resolver=self._resolver,
                limit=MAX_CONNECTIONS,
                limit_per_host=MAX_PER_DESTINATION,
                keepalive_timeout=KEEPALIVE_SECONDS,
                ssl=self._verify,
            )
            # No cookies, no proxy settings from the environment: a request
            # goes to the address the destination resolved to and nowhere else.
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False, auto_decompress=True
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
        if self._resolver is not None:
            resolver, self._resolver = self._resolver, None
            await resolver.close()

    def _check_literal(self, host: str) -> None:
        """Refuses an IP literal in the blocklist (the connector takes an
        address as it is, without asking the resolver)."""
        try:
            refused = blocked(self._blocklist, host)
        except ValueError:  # a name: the resolver checks its addresses
            return
        if refused:
            raise BlockedAddress(f"{host} is an address this server does not contact")

    async def endpoint(self, destination: str) -> Endpoint:
        try:
            direct = direct_endpoint(destination)
        except ValueError as exc:
            raise Unreachable(str(exc)) from None
        if direct is not None:
            self._check_literal(direct.host)
            return direct
        cached = self._endpoints.get(destination)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        found = delegated_endpoint(destination, await self._well_known(destination))
        self._check_literal(found.host)
        self._endpoints[destination] = (found, time.monotonic() + WELL_KNOWN_TTL)
        return found

    async def _well_known(self, destination: str) -> Any:
        """The delegation document, following up to three redirects, each
        checked against the blocklist as the first address was."""
        timeout = aiohttp.ClientTimeout(total=WELL_KNOWN_TIMEOUT)
        url = yarl.URL(f"https://{destination}{WELL_KNOWN_PATH}")
        try:
            for _ in range(1 + WELL_KNOWN_REDIRECTS):
                async with self._http().get(url, timeout=timeout, allow_redirects=False) as response:
                    location = response.headers.get("Location")
                    if response.status in REDIRECTS and location:
                        url = url.join(yarl.URL(location))
                        if url.scheme != "https" or url.host is None:
                            return None
                        self._check_literal(url.host)
                        continue
                    if response.status != 200:
                        return None
                    body = await _read(response, WELL_KNOWN_MAX_BYTES)
                    break
            else:
                return None
        except (OSError, aiohttp.ClientError, asyncio.TimeoutError, Unreachable) as exc:
            log.info("no delegation for %s: %s", destination, exc)
            return None
        try:
            return json.loads(body)
        except ValueError:
            return None

    async def request(
        self,
        destination: str,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | Sequence[str]] | None = None,
        body: Any = None,
        timeout: float = 30.0,
        signed: bool = True,
    ) -> Any:
        """Sends a request to ``destination`` and returns its JSON answer.
        ``path`` is already quoted (``/_matrix/federation/v1/send/t1``)."""
        uri = path + ("?" + urlencode(query, doseq=True) if query else "")
        endpoint = await self.endpoint(destination)
        headers = {"Host": endpoint.host_header, "Accept": "application/json"}
        if signed:
            headers["Authorization"] = authorization_header(self.server_name, destination, self._key, method, uri, body)
        payload: bytes | None = None
        if body is not None:
            payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        elif method in ("PUT", "POST"):
            payload = b""
        limits = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 10.0))
        for attempt in (1, 2):
            try:
                # encoded=True: the path is sent as given, byte for byte as signed.
                async with self._http().request(
                    method,
                    yarl.URL(endpoint.base_url + uri, encoded=True),
                    headers=headers,
                    data=payload,
                    timeout=limits,
                    allow_redirects=False,
                ) as response:
                    status, answer = response.status, await _read(response, MAX_RESPONSE_BYTES)
                break
            except aiohttp.ServerDisconnectedError as exc:
                # A kept connection the other side had closed: once more, on a new one.
                if attempt == 2:
                    raise Unreachable(f"{destination}: {exc}") from None
            except (OSError, asyncio.TimeoutError, aiohttp.ClientError) as exc:  # DNS, connection, TLS, timeout
                raise Unreachable(f"{destination}: {exc or type(exc).__name__}") from None
        if status != 200:
            raise _error_of(status, answer)
        try:
            return json.loads(answer)
        except ValueError:
            raise RemoteError(status, "M_NOT_JSON", "the answer is not JSON") from None
