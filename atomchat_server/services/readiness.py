"""Whether this process can serve requests now, for load balancers and
orchestrators: its database answers, its notifier listens (so real-time
delivery works), and the database has every migration this code expects.
"""

from __future__ import annotations

import asyncio

import asyncpg

from ..db import migrations
from ..db.pool import UNREACHABLE
from ..notifier import Notifier

OK = "ok"
DATABASE_TIMEOUT_SECONDS = 2.0


class Readiness:
    def __init__(self, pool: asyncpg.Pool, notifier: Notifier) -> None:
        self._pool = pool
        self._notifier = notifier
        self._known = {m.version for m in migrations.available()}

    async def checks(self) -> dict[str, str]:
        """Each check's outcome: "ok", or why not. One database round trip."""
        outcome = {"database": OK, "notifier": self._notifier.problem() or OK, "migrations": OK}
        try:
            done = await asyncio.wait_for(migrations.applied_versions(self._pool), DATABASE_TIMEOUT_SECONDS)
        except asyncio.TimeoutError:
            outcome["database"] = outcome["migrations"] = (
                f"the database did not answer within {DATABASE_TIMEOUT_SECONDS:g}s"
            )
        except (*UNREACHABLE, asyncpg.PostgresError) as exc:
            outcome["database"] = outcome["migrations"] = f"the database is unreachable ({type(exc).__name__})"
        else:
            # A database ahead of this code is a newer release rolling out:
            # its migrations keep the previous release working
            # (docs/deploying.md), so this process serves on until replaced.
            missing = sorted(self._known - set(done))
            if missing:
                outcome["migrations"] = f"the database lacks migrations {missing}"
        return outcome
