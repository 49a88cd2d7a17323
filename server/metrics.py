"""`GET /metrics`: the server's Prometheus metrics, defined once here on a per-app registry."""
from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Mapping

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
from bizra_nb.runner import KINDS
from bizra_nb.score import WEIGHTS, ScoreKeeper
from bizra_server.base import BaseHandler

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RUN_DURATION_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
RUN_KINDS = tuple(dict.fromkeys(KINDS.values())) + ("other",)  # the values of a run's ``kind`` label
RUN_EXECUTORS = ("local", "dask")  # the values of ``bizra_run_workers``' ``executor`` label
RUN_STARTS = ("warm", "cold")  # the values of ``bizra_runs_started_total``'s ``start`` label


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
        self.runs_queued = Gauge("bizra_runs_queued", "Notebook runs of this process waiting for a slot",
                                 registry=registry)
        self.runs_running = Gauge("bizra_runs_running", "Notebook runs of this process running now, by kind",
                                  ["kind"], registry=registry)
        self.run_duration = Histogram(
            "bizra_run_duration_seconds", "Duration of finished notebook runs (start to end), by notebook "
            "(one of the server's notebooks, else other)", ["notebook"], buckets=RUN_DURATION_BUCKETS,
            registry=registry,
        )
        self.run_workers = Gauge("bizra_run_workers", "Run execution slots seen, by executor (local or dask)",
                                 ["executor"], registry=registry)
        for kind in RUN_KINDS:
            self.runs_running.labels(kind).set(0)
        for executor in RUN_EXECUTORS:
            self.run_workers.labels(executor).set(0)
        self.runs_started = Counter(
            "bizra_runs_started", "Notebook runs whose worker started, by start: warm (a worker of the kernel "
            "pool, its kernel started) or cold (a worker and kernel of its own; every run on Dask)", ["start"],
            registry=registry)
        for start in RUN_STARTS:
            self.runs_started.labels(start)
        self.replica_info = Gauge("bizra_replica_info", "This replica's name (one series per process)", ["replica"],
                                  registry=registry)
        self.leader = Gauge("bizra_leader", "1 while this replica holds the leader's lease (it runs the schedules)",
                            registry=registry)

    def describe_replica(self, name: str, is_leader) -> None:
        """Name this replica (``bizra_replica_info``) and export ``is_leader()`` as ``bizra_leader``."""
        self.replica_info.labels(name).set(1)
        self.leader.set_function(lambda: 1.0 if is_leader() else 0.0)

    def set_run_workers(self, executor: str, slots: int) -> None:
        """``bizra_run_workers{executor}`` = ``slots`` (the slots the executor has now); the other executor's 0.

        Parameters
        ----------
        executor
            ``local`` or ``dask`` (:data:`RUN_EXECUTORS`).
        slots
            Its execution slots seen: the local pool's size, or the Dask workers' threads.
        """
        if executor not in RUN_EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(RUN_EXECUTORS)}, not {executor!r}")
        for name in RUN_EXECUTORS:
            self.run_workers.labels(name).set(slots if name == executor else 0)

    def run_started(self, start: str) -> None:
        """Count a run's start in ``bizra_runs_started_total{start}``: ``warm`` or ``cold`` (:data:`RUN_STARTS`)."""
        if start not in RUN_STARTS:
            raise ValueError(f"start must be one of {', '.join(RUN_STARTS)}, not {start!r}")
        self.runs_started.labels(start).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def run_kind_label(kind: str | None) -> str:
    """A run's ``kind`` as a label value: one of :data:`RUN_KINDS`, anything else ``other``."""
    return kind if kind in RUN_KINDS else "other"


def notebook_label(notebook: str, notebooks: Mapping[str, Path]) -> str:
    """A run's notebook as a label value: its name when it is that one of ``notebooks`` (the server's, by
    name), else ``other`` (a notebook given by path, even one named like the server's): bounded."""
    path = Path(notebook)
    known = notebooks.get(path.stem)
    return path.stem if known is not None and Path(known).resolve() == path.resolve() else "other"


class RunGauges:
    """Run events → ``bizra_runs_queued``, ``bizra_runs_running{kind}``, ``bizra_runs_active``, and, once per
    ended run, ``bizra_runs_total{kind,status}`` and ``bizra_run_duration_seconds{notebook}``.

    Events come from any thread, may repeat (progress is a ``running`` event) and a late one may follow a
    newer one: a run only moves forward (queued → running → ended), each step counted once.

    Parameters
    ----------
    metrics
        The server's :class:`Metrics`.
    notebooks
        ``notebooks()`` → the server's notebooks by name (read when a run ends, for its ``notebook`` label).
    remember
        How many ended runs are remembered, to ignore their repeated events (the oldest are forgotten).
    """

    STAGES = {"queued": 0, "running": 1, "succeeded": 2, "failed": 2, "cancelled": 2}

    def __init__(self, metrics: Metrics, *, notebooks: Callable[[], Mapping[str, Path]],
                 remember: int = 10_000) -> None:
        self.metrics = metrics
        self.notebooks = notebooks
        self.remember = remember
        self._lock = threading.Lock()
        self._queued: set[str] = set()
        self._running: dict[str, str] = {}  # run id → its kind label
        self._ended: OrderedDict[str, None] = OrderedDict()  # oldest first

    def observe(self, run: dict) -> None:
        """Count the run event ``run`` (a run's dict: ``id``, ``status``, ``kind``, ``notebook``, times)."""
        stage = self.STAGES.get(run.get("status"))
        if stage is None:
            return
        run_id = run["id"]
        label = self._notebook(run) if stage == 2 else None  # the folder is read outside the lock
        with self._lock:
            if run_id in self._ended:
                return
            reached = 1 if run_id in self._running else 0 if run_id in self._queued else -1
            if stage <= reached:
                return
            self._queued.discard(run_id)
            self._running.pop(run_id, None)
            kind = run_kind_label(run.get("kind"))
            if stage == 0:
                self._queued.add(run_id)
            elif stage == 1:
                self._running[run_id] = kind
            else:
                self._ended[run_id] = None
                if len(self._ended) > self.remember:
                    self._ended.popitem(last=False)
                self.metrics.runs.labels(kind, run["status"]).inc()
                started, finished = run.get("started_at"), run.get("finished_at")
                if started and finished and finished >= started:
                    self.metrics.run_duration.labels(label).observe(finished - started)
            self._publish()

    def _notebook(self, run: dict) -> str:
        try:
            return notebook_label(run.get("notebook") or "", self.notebooks())
        except OSError:  # the notebooks folder cannot be read: the label stays bounded
            return "other"

    def _publish(self) -> None:
        metrics = self.metrics
        metrics.runs_queued.set(len(self._queued))
        metrics.runs_active.set(len(self._running))
        running = list(self._running.values())
        for kind in RUN_KINDS:
            metrics.runs_running.labels(kind).set(running.count(kind))


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
