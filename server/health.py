"""`GET /health` (liveness, score, components) and `GET /ready` (200 only when every dependency works)."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Awaitable

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

    def stale(self) -> bool:
        """Whether the open incidents must be read again (:meth:`read`) before :meth:`text`."""
        return time.monotonic() - self.read_at >= self.ttl

    async def read(self, handler: BaseHandler) -> None:
        """Read the open incidents from the store (on the I/O threads); a store that is down keeps the last read."""
        self.read_at = time.monotonic()
        try:
            self.incidents = await handler.blocking(self.read_incidents, handler.store)
        except Unavailable:
            pass  # the store is down (/ready and components say so): liveness answers with the last read

    def text(self, services, snap: dict) -> str:
        """The members, encoded (again only when the score, the controller's cycle or the read changed)."""
        controller = services.controller
        alive = controller.alive
        key = (snap["score"], snap["tier"], controller.cycle_count, alive, self.read_at)
        if key != self.key:
            self.key, self.encoded = key, self.encode(services, snap, alive)
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


class LivePart:
    """The whole /health body, kept as the encoded text around its two members that change on every
    request (``uptime_seconds``, and ``events``: each request is one); the text is re-encoded only
    when another member changed. The body is the same as encoding the dict each time."""

    UPTIME, EVENTS = "\x00uptime\x00", "\x00events\x00"  # placeholders: no other member of the dict holds them

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.violations: dict | None = None  # a copy: the snapshot's own dict may change in place
        self.pieces = (b"", b"", b"")

    def body(self, snap: dict, clients: int, uptime: float, controller: str, status: str, replica: str) -> bytes:
        """The body (UTF-8) for this snapshot, client count, uptime and pre-encoded parts."""
        score, window, violations = snap["score"], snap["window_seconds"], snap["violations"]
        key = (score, type(score), snap["tier"], window, type(window), clients,  # the types too: 100 == 100.0,
               controller, status, replica)  # but they encode apart
        if key != self.key or violations != self.violations:
            self.key, self.violations = key, dict(violations)
            self.pieces = self.encode(snap, clients, controller, status, replica)
        head, middle, tail = self.pieces
        return b"".join((head, json_number(uptime).encode(), middle, json_number(snap["events"]).encode(), tail))

    def encode(self, snap: dict, clients: int, controller: str, status: str, replica: str) -> tuple[bytes, ...]:
        live = encode_json({
            "status": "ok",
            "version": __version__,
            "uptime_seconds": self.UPTIME,
            "ahsan_score": snap["score"],
            "احسان": snap["score"],
            "tier": snap["tier"],
            "window_seconds": snap["window_seconds"],
            "events": self.EVENTS,
            "violations": snap["violations"],
            "websocket_clients": clients,
        })
        head, _, rest = live.partition(encode_json(self.UPTIME))  # before the pre-encoded parts join: only
        middle, _, tail = rest.partition(encode_json(self.EVENTS))  # the placeholders themselves can match
        tail = tail[:-1] + ", " + controller + ", " + status + ", " + replica + "}"
        return head.encode(), middle.encode(), tail.encode()


def json_number(value) -> str:
    """``value`` as :func:`encode_json` writes it (a finite float or an int, the fast way)."""
    kind = type(value)
    if kind is int or (kind is float and value - value == 0.0):  # finite: NaN and infinities are not
        return kind.__repr__(value)
    return encode_json(value)


class HealthHandler(BaseHandler):
    """Liveness, the score and the overall status; kept cheap, since dashboards poll it
    (see benchmarks/health_throughput.py): the body is re-encoded only when a member other than the
    uptime and the event count changed (:class:`LivePart`), the status part only when it changed.

    ``status`` stays the liveness answer (``ok``); ``overall_status`` is the status-page verdict
    (:func:`bizra_nb.status.overall_status`) with its reasons.
    """

    def get(self) -> Awaitable[None] | None:
        settings = self.application.settings
        services = settings["services"]
        parts = settings.get("health_parts") or settings.setdefault("health_parts", (StatusPart(), LivePart()))
        snap = services.score_snapshot()
        if parts[0].stale():  # once a TTL: this answer waits for the read (Tornado awaits what get returns)
            return self._answer_after_reading(services, snap, parts)
        self._answer(services, snap, parts)
        return None

    async def _answer_after_reading(self, services, snap: dict, parts: tuple) -> None:
        await parts[0].read(self)
        self._answer(services, snap, parts)

    def _answer(self, services, snap: dict, parts: tuple) -> None:
        status_part, live = parts
        # the controller's part changes once a cycle, the status part once a change: they arrive pre-encoded
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(live.body(snap, len(services.hub.clients), round(time.time() - services.started_at, 3),
                              services.controller.health_fragment, status_part.text(services, snap),
                              self.replica_fragment(services, snap)))

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
