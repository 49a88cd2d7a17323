"""`GET /health` (liveness, score, components) and `GET /ready` (200 only when every dependency works)."""
from __future__ import annotations

import os
import time
from pathlib import Path

from bizra_nb import __version__
from bizra_nb.errors import Unavailable
from bizra_server.base import BaseHandler, encode_json


class HealthHandler(BaseHandler):
    """Liveness and the score; kept cheap, since dashboards poll it (see benchmarks/health_throughput.py)."""

    def get(self) -> None:
        services = self.services
        snap = self.scorekeeper.snapshot()
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
        # the controller's part changes once a cycle: it arrives pre-encoded
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(live[:-1] + ", " + services.controller.health_fragment + "}")


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
    and the data dir take writes; else 503 with ``reasons``."""

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
        reasons = [f"{name}: {state['detail']}" for name, state in components.items() if not state["ok"]]
        body = {"ready": not reasons, "components": components}
        if reasons:
            body["reasons"] = reasons
        self.write_json(body, status=503 if reasons else 200)


class ScoreHistoryHandler(BaseHandler):
    """The score at each controller cycle of the last hour: ``{"points": [[unix_seconds, score], ...]}``."""

    def get(self) -> None:
        minutes = self.int_argument("minutes", 60, low=1, high=60)
        since = time.time() - minutes * 60
        points = [list(p) for p in self.services.controller.history if p[0] >= since]
        self.write_json({"points": points, "interval_seconds": self.services.controller.interval})


handlers = [(r"/health", HealthHandler), (r"/ready", ReadyHandler), (r"/score/history", ScoreHistoryHandler)]
