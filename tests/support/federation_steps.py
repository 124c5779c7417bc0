"""Two AtomChat servers federating over HTTPS on 127.0.0.1, in the test's
process and loop.

Each server is named by its federation listener's address
(``127.0.0.1:PORT``), has a data directory (and so a signing key) and a
database of its own, and a self-signed certificate that the other one
accepts (``federation_verify_certificates`` off, blocklist "none"). A
server can be stopped and started again on the same port, data directory
and database, as a restart would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from atomchat_server.auth.passwords import Passwords
from atomchat_server.clock import REAL, Clock
from atomchat_server.config import Settings

from .client import ApiClient
from .harness import free_port
from .servers import RunningServer, start_server, truncate_all


@dataclass
class FederatedServer:
    name: str  # the server name, 127.0.0.1:PORT
    settings: Settings
    dsn: str
    passwords: Passwords
    running: RunningServer | None = None
    clock: Clock = REAL  # what it reads the time from, from its next start

    @property
    def port(self) -> int:
        return int(self.name.rsplit(":", 1)[1])

    @property
    def api(self) -> ApiClient:
        assert self.running is not None, f"{self.name} is stopped"
        return ApiClient(self.running.base_url)

    @property
    def ctx(self):
        assert self.running is not None, f"{self.name} is stopped"
        return self.running.atomchat.ctx

    @property
    def federation_url(self) -> str:
        return f"https://{self.name}"

    def user(self, localpart: str) -> str:
        return f"@{localpart}:{self.name}"

    async def start(self) -> FederatedServer:
        assert self.running is None, f"{self.name} runs already"
        self.running = await start_server(self.settings, self.dsn, self.passwords, self.clock)
        return self

    async def stop(self) -> None:
        if self.running is not None:
            running, self.running = self.running, None
            await running.stop()


@dataclass
class Federation:
    settings: Settings
    tls: tuple[str, str]
    passwords: Passwords
    root: Path
    servers: list[FederatedServer] = field(default_factory=list)

    def server(self, dsn: str, **overrides) -> FederatedServer:
        """A server (not started yet) on the database ``dsn`` (emptied by the caller)."""
        port = free_port()
        name = f"127.0.0.1:{port}"
        settings = self.settings.replace(
            data_dir=str(self.root / f"server{len(self.servers)}"),
            server_name=name,
            federation_port=port,
            federation_tls_certificate=self.tls[0],
            federation_tls_private_key=self.tls[1],
            federation_verify_certificates=False,
            federation_ip_range_blocklist=(),
            **overrides,
        )
        server = FederatedServer(name, settings, dsn, self.passwords)
        self.servers.append(server)
        return server


def federating_servers(io_loop, federation: Federation, database_dsn: str, *dsns: str):
    """Servers on the run's database (emptied) and on ``dsns``, started;
    all stopped after the test (the body of the federation fixtures)."""

    async def start():
        await truncate_all(database_dsn)
        servers = [federation.server(dsn) for dsn in (database_dsn, *dsns)]
        for server in servers:
            await server.start()
        return tuple(servers)

    yield io_loop.run_sync(start)

    async def stop_all():
        for server in reversed(federation.servers):
            await server.stop()

    io_loop.run_sync(stop_all)
