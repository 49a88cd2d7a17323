"""`GET /metrics`: the server's Prometheus metrics, defined once here on a per-app registry."""
from __future__ import annotations

import asyncio

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from bizra_nb import __version__
from bizra_nb.score import WEIGHTS, ScoreKeeper
from bizra_server.base import BaseHandler

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ScoreCollector:
    """Exports the score and its counters straight from the :class:`ScoreKeeper`, one source of truth."""

    def __init__(self, scorekeeper: ScoreKeeper) -> None:
        self.scorekeeper = scorekeeper

    def collect(self):
        snap = self.scorekeeper.snapshot()
        score = GaugeMetricFamily("bizra_ahsan_score", "Ahsan score (0-100) over the sliding window")
        score.add_metric([], snap["score"])
        yield score
        events = CounterMetricFamily("bizra_events", "Checked operations (requests but /metrics scrapes, checks, runs, cycles)")
        events.add_metric([], self.scorekeeper.total_events)
        yield events
        violations = CounterMetricFamily("bizra_violations", "Failed checked operations by kind", labels=["kind"])
        for kind in WEIGHTS:
            violations.add_metric([kind], self.scorekeeper.total_violations[kind])
        yield violations
        weights = GaugeMetricFamily("bizra_violation_weight", "Weight of each violation kind in the Ahsan score", labels=["kind"])
        for kind, weight in WEIGHTS.items():
            weights.add_metric([kind], weight)
        yield weights


class Metrics:
    """The server's metric objects on their own registry (several apps may live in one process)."""

    def __init__(self, scorekeeper: ScoreKeeper) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        registry.register(ScoreCollector(scorekeeper))
        info = Gauge("bizra_build_info", "Build information", ["version"], registry=registry)
        info.labels(__version__).set(1)
        self.http_requests = Counter(
            "bizra_http_requests", "HTTP requests by method, route template and status",
            ["method", "route", "code"], registry=registry,
        )
        self.http_errors = Counter(
            "bizra_http_errors", "HTTP 5xx responses (server errors) by route template and status",
            ["route", "code"], registry=registry,
        )
        self.http_duration = Histogram(
            "bizra_http_request_duration_seconds", "HTTP request latency by route template",
            ["route"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.ws_connections = Gauge("bizra_ws_connections", "Connected WebSocket clients", registry=registry)
        self.ws_messages_sent = Counter(
            "bizra_ws_messages_sent", "WebSocket messages sent, by message type", ["type"], registry=registry,
        )
        self.controller_cycles = Counter("bizra_controller_cycles", "Controller cycles run", registry=registry)
        self.controller_cycle_seconds = Gauge(
            "bizra_controller_last_cycle_duration_seconds", "Duration of the last controller cycle", registry=registry,
        )

        self.runs = Counter("bizra_runs", "Notebook runs finished, by kind and status", ["kind", "status"],
                            registry=registry)
        self.runs_active = Gauge("bizra_runs_active", "Notebook runs running now", registry=registry)
        self.replica_info = Gauge("bizra_replica_info", "This replica's name (one series per process)", ["replica"],
                                  registry=registry)
        self.leader = Gauge("bizra_leader", "1 while this replica holds the leader's lease (it runs the schedules)",
                            registry=registry)

    def describe_replica(self, name: str, is_leader) -> None:
        """Name this replica (``bizra_replica_info``) and export ``is_leader()`` as ``bizra_leader``."""
        self.replica_info.labels(name).set(1)
        self.leader.set_function(lambda: 1.0 if is_leader() else 0.0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def merged_exposition(parts: list[tuple[str, str]]) -> bytes:
    """One exposition of several processes' ``(replica, text)``: every sample gains a ``replica`` label.

    Under ``--processes`` a scrape of the shared port reaches one process at random; this lets it answer
    for all of them, so Prometheus sees every process at every scrape (bounded: one label value per process).
    """
    from prometheus_client.parser import text_string_to_metric_families
    from prometheus_client.samples import Sample
    from prometheus_client.metrics_core import Metric

    families: dict[str, Metric] = {}
    for replica, text in parts:
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
            merged.samples.extend(Sample(s.name, {**s.labels, "replica": replica}, s.value, s.timestamp, s.exemplar)
                                  for s in family.samples)

    class Parts:
        def collect(self):
            return list(families.values())

    return generate_latest(Parts())  # type: ignore[arg-type]


class MetricsHandler(BaseHandler):
    """Prometheus text exposition; scrapes are not score events. Under ``--processes``, every process's."""

    SIBLING_TIMEOUT = 2.0  # seconds to wait for another process's metrics (a missing one is left out)

    async def get(self) -> None:
        services = self.services
        own = services.metrics.exposition()
        if services.metric_siblings:
            from tornado.httpclient import AsyncHTTPClient, HTTPClientError  # only under --processes

            async def fetch(name: str, url: str) -> tuple[str, str] | None:
                try:
                    response = await AsyncHTTPClient().fetch(url, request_timeout=self.SIBLING_TIMEOUT)
                    return name, response.body.decode()
                except (HTTPClientError, OSError):
                    return None

            others = await asyncio.gather(*(fetch(name, url) for name, url in services.metric_siblings))
            own = merged_exposition([(services.replica, own.decode())] + [p for p in others if p is not None])
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(own)


class ProcessMetricsHandler(BaseHandler):
    """This process's metrics only, on its private loopback port (``--processes``: read by its siblings)."""

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(self.services.metrics.exposition())


handlers = [(r"/metrics", MetricsHandler)]
