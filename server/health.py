"""`GET /health` (liveness, score, components) and `GET /ready` (200 only when every dependency works)."""
from __future__ import annotations

import time

from bizra_nb import __version__
from server.base import BaseHandler, encode_json


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


class ReadyHandler(BaseHandler):
    async def get(self) -> None:
        controller = self.services.controller
        components = await controller.run_checks()
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
