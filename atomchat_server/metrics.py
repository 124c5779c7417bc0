"""The server's Prometheus metrics, in one registry served at ``/metrics``.

A module that has something to count declares its metric once, at import,
with one line:

    SENT = metrics.counter("atomchat_federation_sent_total", "Transactions sent to other servers")

and updates it where the thing happens (``SENT.inc()``): a counter or a
histogram costs a few microseconds an update. What the process already knows
at any moment (open streams, a pool's connections, a queue's length) is not
updated at all: ``sampled`` names a function read only when the metrics are
scraped, so it costs nothing between scrapes. Several servers in one process
(the tests run two) each add their function, and a scrape reports the sum.

Each process has its own registry: behind a load balancer, or with
``atomchat serve --workers N``, every process is scraped on its own (the
metrics port of worker ``i`` is ``metrics_port + i``), and Prometheus sums
across them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# The *_created series (when each labelled child was first used) double the
# lines of a scrape and tell a server's operator nothing it needs.
prometheus_client.disable_created_metrics()
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # CPU, memory, open files: read from /proc at each scrape

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds: from a fast read (a millisecond) to the longest long-poll answer.
# Each bucket is a line per labelled child in every scrape: a dozen will do.
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0)
SIZE_BUCKETS = (1, 4, 16, 64, 256)


def counter(name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
    return Counter(name, documentation, labels, registry=REGISTRY)


def gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
    return Gauge(name, documentation, labels, registry=REGISTRY)


def histogram(
    name: str, documentation: str, labels: Sequence[str] = (), buckets: Sequence[float] = LATENCY_BUCKETS
) -> Histogram:
    return Histogram(name, documentation, labels, registry=REGISTRY, buckets=buckets)


class Sampled(Collector):
    """A gauge whose value is read from functions at scrape time: the sum of
    what each added function returns."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self._readers: list[Callable[[], float]] = []
        REGISTRY.register(self)

    def add(self, read: Callable[[], float]) -> Callable[[], None]:
        """Adds a source; returns the function that removes it again."""
        self._readers.append(read)
        return lambda: self._readers.remove(read)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.name, self.documentation, value=sum(read() for read in list(self._readers)))

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.name, self.documentation)


def sampled(name: str, documentation: str) -> Sampled:
    return Sampled(name, documentation)


# The text before each sample's value, by its name and labels: made once,
# since the same series are written at every scrape (generate_latest
# validates and escapes every label of every line, every time: several
# times the cost).
_PREFIXES: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
_TYPES = {
    "counter": "counter",
    "gauge": "gauge",
    "histogram": "histogram",
    "summary": "summary",
    "gaugehistogram": "histogram",
    "info": "gauge",
    "stateset": "gauge",
}


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _prefix(name: str, labels: dict[str, str]) -> str:
    key = (name, tuple(labels.items()))
    prefix = _PREFIXES.get(key)
    if prefix is None:
        pairs = ",".join(f'{label}="{_escape(value)}"' for label, value in labels.items())
        prefix = _PREFIXES[key] = f"{name}{{{pairs}}} " if pairs else f"{name} "
    return prefix


def exposition() -> bytes:
    """Every metric, in the Prometheus text format (version 0.0.4)."""
    lines = []
    for family in REGISTRY.collect():
        name = family.name + "_total" if family.type == "counter" else family.name
        doc = family.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        lines.append(f"# HELP {name} {doc}\n# TYPE {name} {_TYPES.get(family.type, 'untyped')}\n")
        for sample in family.samples:
            lines.append(f"{_prefix(sample.name, sample.labels)}{floatToGoString(sample.value)}\n")
    return "".join(lines).encode()


# -- the metrics of the core, declared here so that each is declared once ---------

REQUESTS = histogram(
    "atomchat_http_request_duration_seconds",
    "HTTP requests by route pattern, method and status, and how long each took",
    ("route", "method", "status"),
)
EVENTS_PERSISTED = counter("atomchat_events_persisted_total", "Events committed by this process's writer")
BATCH_SIZE = histogram(
    "atomchat_write_batch_size", "Writes committed together in one transaction", buckets=SIZE_BUCKETS
)
COMMIT_SECONDS = histogram("atomchat_write_commit_seconds", "Time to commit one batch of writes")
NOTIFIER_LAG = histogram(
    "atomchat_notifier_lag_seconds", "From an event's commit timestamp to its dispatch to this process's clients"
)
OPEN_STREAMS = sampled("atomchat_open_streams", "WebSocket streams open on this process")
LONG_POLLS = sampled("atomchat_waiting_long_polls", "/sync long-polls waiting on this process")
POOL_SIZE = sampled("atomchat_db_pool_connections", "PostgreSQL connections open in the read pool")
POOL_IN_USE = sampled("atomchat_db_pool_connections_in_use", "Read-pool connections lent to a request")
QUERY_SECONDS = histogram("atomchat_db_query_seconds", "Time of each query on the read pool", ("pool",))
HASH_QUEUE = sampled("atomchat_password_hash_queue", "Password hashes and checks waiting for a hashing thread")
