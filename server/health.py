"""`GET /health` (liveness, score, components) and `GET /ready` (200 only when every dependency works)."""
from __future__ import annotations

import os
import time
from pathlib import Path

from bizra_nb import __version__
from bizra_nb.errors import Unavailable
from bizra_nb.status import overall_status
from bizra_server.base import BaseHandler, encode_json

OPEN_INCIDENTS_TTL = 1.0  # seconds /health reuses its read of the open incidents (dashboards poll it hard)
NO_SOURCE_HINT = ("no metric source is configured: diagnoses cannot run; start the server with "
                  "--prometheus-url URL or --dataset FILE (BIZRA_PROMETHEUS_URL, BIZRA_DATASET)")


class StatusPart:
    """The overall-status members of /health (``overall_status``, ``open_incidents``, ``metric_source``,
    ``links``), encoded once per change: the open incidents are read from the store at most once a TTL,
    and the verdict is recomputed only when they, the score or the controller's cycle changed."""

    def __init__(self, ttl: float = OPEN_INCIDENTS_TTL) -> None:
        self.ttl = ttl
        self.read_at = float("-inf")
        self.incidents: list[dict] = []
        self.key: tuple | None = None
        self.encoded = ""

    async def get(self, handler: BaseHandler, snap: dict) -> str:
        if time.monotonic() - self.read_at >= self.ttl:
            self.read_at = time.monotonic()
            try:
                self.incidents = await handler.blocking(self.read_incidents, handler.store)
            except Unavailable:
                pass  # the store is down (/ready and components say so): liveness answers with the last read
        controller = handler.services.controller
        alive = controller.alive
        key = (snap["score"], snap["tier"], controller.cycle_count, alive, self.read_at)
        if key != self.key:
            self.key, self.encoded = key, self.encode(handler.services, snap, alive)
        return self.encoded

    @staticmethod
    def read_incidents(store) -> list[dict]:
        return [{"id": i["id"], "severity": i["severity"], "title": i.get("title")}
                for status in ("open", "acknowledged")
                for i in store.list_incidents(status=status, limit=1000)]

    def encode(self, services, snap: dict, alive: bool) -> str:
        controller, settings = services.controller, services.settings
        components = dict(controller.components)
        if controller.last_cycle_at is not None and not alive:
            components["controller"] = {"ok": False, "detail": "no cycle since "
                                        f"{time.time() - controller.last_cycle_at:.0f} s"}
        return encode_json({
            "overall_status": overall_status(snap["score"], snap["tier"], self.incidents, components),
            "open_incidents": len(self.incidents),
            "metric_source": metric_source(settings),
            "links": {"grafana": settings.grafana_url} if settings.grafana_url else {},
        })[1:-1]


def metric_source(settings) -> dict:
    """Where diagnoses read metrics, so the page can say when nothing is configured (and what fixes it)."""
    if settings.prometheus_url:
        return {"configured": True, "kind": "prometheus"}
    if settings.dataset:
        return {"configured": True, "kind": "dataset"}
    return {"configured": False, "kind": None, "hint": NO_SOURCE_HINT}


class HealthHandler(BaseHandler):
    """Liveness, the score and the overall status; kept cheap, since dashboards poll it
    (see benchmarks/health_throughput.py): the status part is re-encoded only when it changed.

    ``status`` stays the liveness answer (``ok``); ``overall_status`` is the status-page verdict
    (:func:`bizra_nb.status.overall_status`) with its reasons.
    """

    async def get(self) -> None:
        services = self.services
        snap = services.score_snapshot()
        status_part = await self.application.settings.setdefault("health_status_part", StatusPart()).get(self, snap)
        live = encode_json({
            "status": "ok",
            "version": __version__,
            "uptime_seconds": round(time.time() - services.started_at, 3),
            "ahsan_score": snap["score"],
            "احسان": snap["score"],
            "tier": snap["tier"],
            "window_seconds": snap["window_seconds"],
            "events": snap["events"],
            "violations": snap["violations"],
            "websocket_clients": len(self.hub.clients),
        })
        # the controller's part changes once a cycle, the status part once a change: they arrive pre-encoded
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(live[:-1] + ", " + services.controller.health_fragment + ", " + status_part + ", "
                    + self.replica_fragment(services, snap) + "}")


    _replica_cache: tuple = (None, "")  # (key, encoded): the replica part changes when its leadership does

    def replica_fragment(self, services, platform: dict) -> str:
        """``"replica": {...}``: this replica's name, process, whether it leads; with Redis, its own score
        beside the platform's (encoded once per change: it is on every /health)."""
        leader = services.leadership.is_leader
        shared = bool(platform.get("shared", False))
        own = services.scorekeeper.snapshot() if services.shared_score is not None else None
        key = (services.replica, leader, shared, own and (own["score"], own["tier"], own["events"]))
        cached_key, encoded = HealthHandler._replica_cache
        if key != cached_key:
            part = {"name": services.replica, "pid": os.getpid(), "leader": leader, "shared": shared}
            if own is not None:
                part.update(ahsan_score=own["score"], tier=own["tier"], events=own["events"])
            encoded = '"replica": ' + encode_json(part)
            HealthHandler._replica_cache = (key, encoded)
        return encoded


DEGRADED_ONLY = ("redis", "dask")  # down: the replica still does its work (its own events, its own score; runs
# are refused or wait), so /ready stays 200 and says so under "degraded"; a 503 on every replica would have load
# balancers drop them all
PROBE_FILE = ".write-probe"  # created, synced and removed in the data dir by each GET /ready


def check_data_dir_writable(data_dir: Path) -> str:
    """Create, fsync and remove a probe file in ``data_dir``; :class:`Unavailable` names the dir and why not.

    This finds a read-only mount, a full disk (the fsync of a non-empty file), a dir that is gone.
    """
    probe = Path(data_dir) / PROBE_FILE
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"ok\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        probe.unlink(missing_ok=True)  # a concurrent /ready may have removed it
    except OSError as exc:
        raise Unavailable(f"the data dir {data_dir} is not writable: {exc.strerror or exc}") from None
    return f"writable ({data_dir})"


class ReadyHandler(BaseHandler):
    """200 when the server can do its work: every component check passes, the controller cycles, the store
    and the data dir take writes; else 503 with ``reasons``. Redis down is ``degraded`` (listed, still 200)."""

    async def get(self) -> None:
        controller = self.services.controller
        components = await controller.run_checks()
        try:
            detail = await self.blocking(check_data_dir_writable, self.services.settings.data_dir)
            components["data_dir"] = {"ok": True, "detail": detail}
        except Unavailable as exc:
            components["data_dir"] = {"ok": False, "detail": exc.message}
        components["controller"] = {
            "ok": controller.alive,
            "detail": f"{controller.cycle_count} cycles" if controller.alive else "no recent cycle",
        }
        down = [f"{name}: {state['detail']}" for name, state in components.items() if not state["ok"]]
        reasons = [reason for reason in down if reason.split(":", 1)[0] not in DEGRADED_ONLY]
        body = {"ready": not reasons, "components": components}
        if len(down) > len(reasons):
            body["degraded"] = [reason for reason in down if reason not in reasons]
        if reasons:
            body["reasons"] = reasons
            self.dependency_down = True  # a true answer about a dependency, not a server error (scored once)
        self.write_json(body, status=503 if reasons else 200)


class ScoreHistoryHandler(BaseHandler):
    """The score at each controller cycle of the last hour: ``{"points": [[unix_seconds, score], ...]}``."""

    def get(self) -> None:
        minutes = self.int_argument("minutes", 60, low=1, high=60)
        since = time.time() - minutes * 60
        points = [list(p) for p in self.services.controller.history if p[0] >= since]
        self.write_json({"points": points, "interval_seconds": self.services.controller.interval})


handlers = [(r"/health", HealthHandler), (r"/ready", ReadyHandler), (r"/score/history", ScoreHistoryHandler)]
