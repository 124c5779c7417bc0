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

Every address a name resolves to is checked against the IP range blocklist
(``federation_ip_range_blocklist``) when the connection is made, so a name
cannot smuggle a request into this server's own network, whatever its DNS
answers. Any failure to reach a server (DNS, connection, TLS, timeout, a
blocked address) is ``Unreachable``; an answer that is an error is
``RemoteError`` with the remote's status and Matrix error code.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import tornado.netutil
from signedjson.types import SigningKey
from tornado.httpclient import HTTPClientError, HTTPRequest, HTTPResponse
from tornado.simple_httpclient import SimpleAsyncHTTPClient

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
MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class BlocklistResolver(tornado.netutil.Resolver):
    """The system resolver, keeping only addresses outside the blocklist."""

    def initialize(self, blocklist: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()) -> None:
        self._resolver = tornado.netutil.DefaultLoopResolver()
        self._blocklist = blocklist

    def close(self) -> None:
        self._resolver.close()

    def blocked(self, address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone index is not part of the address
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self._blocklist)

    async def resolve(self, host: str, port: int,
                      family: socket.AddressFamily = socket.AF_UNSPEC) -> list[tuple[int, Any]]:
        addresses = await self._resolver.resolve(host, port, family)
        allowed = [entry for entry in addresses if not self.blocked(entry[1][0])]
        if not allowed:
            raise BlockedAddress(f"{host} resolves only to addresses this server does not contact")
        return allowed


def _error_of(response: HTTPResponse | None, status: int) -> RemoteError:
    body: Any = None
    if response is not None and response.body:
        try:
            body = json.loads(response.body)
        except ValueError:
            body = None
    if isinstance(body, dict) and isinstance(body.get("errcode"), str):
        return RemoteError(status, body["errcode"], str(body.get("error", "")))
    return RemoteError(status, "M_UNKNOWN", f"the server answered {status} without a Matrix error")


class FederationClient:
    def __init__(self, server_name: str, key: SigningKey, *, verify_certificates: bool = True,
                 blocklist: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()) -> None:
        self.server_name = server_name
        self._key = key
        self._verify = verify_certificates
        self._resolver = BlocklistResolver(blocklist=blocklist)
        # One client with its own connection slots: a slow destination holds
        # one slot per request in flight (the outbox sends one at a time).
        self._http = SimpleAsyncHTTPClient(force_instance=True, max_clients=256, resolver=self._resolver,
                                           max_body_size=MAX_RESPONSE_BYTES)
        self._endpoints: dict[str, tuple[Endpoint, float]] = {}

    def close(self) -> None:
        self._http.close()
        self._resolver.close()

    async def endpoint(self, destination: str) -> Endpoint:
        try:
            direct = direct_endpoint(destination)
        except ValueError as exc:
            raise Unreachable(str(exc)) from None
        if direct is not None:
            return direct
        cached = self._endpoints.get(destination)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        found = delegated_endpoint(destination, await self._well_known(destination))
        self._endpoints[destination] = (found, time.monotonic() + WELL_KNOWN_TTL)
        return found

    async def _well_known(self, destination: str) -> Any:
        request = HTTPRequest(f"https://{destination}{WELL_KNOWN_PATH}", method="GET",
                              request_timeout=WELL_KNOWN_TIMEOUT, connect_timeout=WELL_KNOWN_TIMEOUT,
                              validate_cert=self._verify, follow_redirects=True, max_redirects=3)
        try:
            response = await self._http.fetch(request, raise_error=False)
        except (OSError, HTTPClientError, Unreachable) as exc:
            log.info("no delegation for %s: %s", destination, exc)
            return None
        if response.code != 200 or response.body is None or len(response.body) > WELL_KNOWN_MAX_BYTES:
            return None
        try:
            return json.loads(response.body)
        except ValueError:
            return None

    async def request(self, destination: str, method: str, path: str, *,
                      query: Mapping[str, str | Sequence[str]] | None = None,
                      body: Any = None, timeout: float = 30.0, signed: bool = True) -> Any:
        """Sends a request to ``destination`` and returns its JSON answer.
        ``path`` is already quoted (``/_matrix/federation/v1/send/t1``)."""
        uri = path + ("?" + urlencode(query, doseq=True) if query else "")
        endpoint = await self.endpoint(destination)
        headers = {"Host": endpoint.host_header, "Accept": "application/json"}
        if signed:
            headers["Authorization"] = authorization_header(self.server_name, destination, self._key,
                                                            method, uri, body)
        payload: bytes | None = None
        if body is not None:
            payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        elif method in ("PUT", "POST"):
            payload = b""
        request = HTTPRequest(endpoint.base_url + uri, method=method, headers=headers, body=payload,
                              request_timeout=timeout, connect_timeout=min(timeout, 10.0),
                              validate_cert=self._verify, follow_redirects=False,
                              allow_nonstandard_methods=True)
        try:
            response = await self._http.fetch(request, raise_error=False)
        except HTTPClientError as exc:  # a timeout or a closed stream (599); answers come back as responses
            if exc.code == 599 or exc.response is None:
                raise Unreachable(f"{destination}: {exc}") from None
            raise _error_of(exc.response, exc.code) from None
        except (OSError, Unreachable) as exc:  # OSError: DNS, connection, TLS
            raise Unreachable(f"{destination}: {exc}") from None
        if response.code != 200:
            raise _error_of(response, response.code)
        try:
            return json.loads(response.body)
        except ValueError:
            raise RemoteError(response.code, "M_NOT_JSON", "the answer is not JSON") from None
