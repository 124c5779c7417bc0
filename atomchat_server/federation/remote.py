"""What the rest of the server knows of talking to other servers, without
the HTTP: the errors a request can end in, the client's interface (the
services and the outbox take any object with its ``request``), and the
server-name rules discovery starts from (all pure)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

DEFAULT_PORT = 8448
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# A DNS name (labels of letters, digits and hyphens, dot-separated) or an IPv4 address.
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")


class Remote(Protocol):
    """The outgoing federation client, as its users see it (client.FederationClient)."""

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
    ) -> Any: ...


class RemoteError(Exception):
    """The remote server answered with an error (its status and Matrix error code)."""

    def __init__(self, status: int, errcode: str, message: str) -> None:
        super().__init__(f"{status} {errcode}: {message}")
        self.status = status
        self.errcode = errcode
        self.message = message


class Unreachable(Exception):
    """The remote server could not be reached: DNS, connection, TLS, timeout,
    a blocked address, or an answer that is not HTTP."""


class BlockedAddress(Unreachable):
    """Every address of the name lies in the IP range blocklist."""


@dataclass(frozen=True)
class ServerName:
    host: str  # a DNS name, an IPv4 address, or an IPv6 address without brackets
    port: int | None

    @property
    def is_ip_literal(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    @property
    def url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host


def parse_server_name(name: str) -> ServerName:
    """Splits a server name into host and optional port; ValueError for
    anything that is not a server name (the grammar of the appendix)."""
    if not name or len(name) > 255:
        raise ValueError("a server name has 1 to 255 characters")
    if name.startswith("["):
        literal, bracket, rest = name[1:].partition("]")
        if not bracket:
            raise ValueError(f"{name!r}: unclosed IPv6 literal")
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            raise ValueError(f"{name!r}: not an IPv6 literal") from None
        host, port_text = literal, rest
        if port_text and not port_text.startswith(":"):
            raise ValueError(f"{name!r}: junk after the IPv6 literal")
        port_text = port_text[1:] if port_text else ""
        has_port = bool(rest)
    else:
        host, colon, port_text = name.partition(":")
        has_port = bool(colon)
        if not _HOSTNAME.fullmatch(host):
            raise ValueError(f"{name!r}: not a host name or IPv4 address")
    port: int | None = None
    if has_port:
        if not port_text.isdigit() or len(port_text) > 5 or not 0 < int(port_text) < 65536:
            raise ValueError(f"{name!r}: bad port")
        port = int(port_text)
    return ServerName(host, port)


@dataclass(frozen=True)
class Endpoint:
    """Where a server name is served: the URL's host and port, and the Host header to send."""

    host: str
    port: int
    host_header: str

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"


def direct_endpoint(name: str) -> Endpoint | None:
    """The endpoint of a name that needs no delegation lookup (an IP
    literal, or a name with an explicit port); None when the well-known
    document must be asked first."""
    parsed = parse_server_name(name)
    if parsed.is_ip_literal or parsed.port is not None:
        return Endpoint(parsed.host, parsed.port or DEFAULT_PORT, name)
    return None


def delegated_endpoint(name: str, well_known: Any) -> Endpoint:
    """The endpoint for ``name`` given its well-known document (None or
    junk: no delegation)."""
    delegated = well_known.get("m.server") if isinstance(well_known, Mapping) else None
    if isinstance(delegated, str):
        try:
            parsed = parse_server_name(delegated)
        except ValueError:
            parsed = None
        if parsed is not None:
            return Endpoint(parsed.host, parsed.port or DEFAULT_PORT, delegated)
    return Endpoint(parse_server_name(name).host, DEFAULT_PORT, name)
