"""For operators and their tools: ``/health`` (the process answers),
``/ready`` (it can serve: database, notifier, schema) and ``/metrics``
(Prometheus), the last to allowed addresses only (``metrics_allow``), and on
a port of its own when ``metrics_port`` is set."""

from __future__ import annotations

from .. import metrics
from ..errors import MatrixError, forbidden
from .base import BaseHandler, client_address, within
from .contract import Op

READY_SCHEMA = "ops/ready.response"


class HealthHandler(BaseHandler):
    contract = {"get": Op("Whether the process is alive", {200: "ops/health.response"}, auth="none")}

    def get(self) -> None:
        self.send_json({"status": "ok"})


class ReadyHandler(BaseHandler):
    contract = {
        "get": Op(
            "Whether the process can serve requests now",
            {200: READY_SCHEMA, 503: (READY_SCHEMA, "common/error")},
            auth="none",
            description="Ready when the database answers, the notifier listens and the schema is current; "
            "else 503, naming what failed.",
        )
    }

    async def get(self) -> None:
        checks = await self.ctx.readiness.checks()
        failed = [f"{name}: {outcome}" for name, outcome in checks.items() if outcome != "ok"]
        if not failed:
            self.send_json({"status": "ready", "checks": checks})
            return
        self.send_json(
            {
                "status": "not ready",
                "checks": checks,
                "errcode": "M_UNKNOWN",
                "error": "Not ready: " + "; ".join(failed),
            },
            status=503,
        )


class MetricsHandler(BaseHandler):
    contract = {
        "get": Op(
            "The server's metrics in the Prometheus text format",
            {200: None},
            auth="none",
            errors=(403, 404),
            description="To clients whose address is in metrics_allow (loopback by default); "
            "404 here when metrics_port moves the metrics to a port of their own.",
        )
    }
    on_own_port = False  # the handler of the metrics port's application

    def get(self) -> None:
        if self.ctx.settings.metrics_port and not self.on_own_port:
            raise MatrixError(404, "M_UNRECOGNIZED", "Unrecognized request")
        allowed = self.ctx.settings.metrics_allow
        if not allowed or not within(client_address(self), allowed):
            raise forbidden("Metrics are served to the addresses metrics_allow names only")
        self.set_header("Content-Type", metrics.CONTENT_TYPE)
        self.finish(metrics.exposition())


class OwnPortMetricsHandler(MetricsHandler):
    on_own_port = True


def routes() -> list[tuple[str, type]]:
    return [(r"/health", HealthHandler), (r"/ready", ReadyHandler), (r"/metrics", MetricsHandler)]


def own_port_routes() -> list[tuple[str, type]]:
    """The metrics port's: the metrics, and the health checks beside them."""
    return [(r"/health", HealthHandler), (r"/ready", ReadyHandler), (r"/metrics", OwnPortMetricsHandler)]
