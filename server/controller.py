"""The controller loop: every interval, check the components, recompute the score, publish `cycle`/`score`."""
from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

import httpx

from bizra_nb.errors import Unavailable
from bizra_server.base import encode_json

log = logging.getLogger("bizra.controller")

Check = Callable[[], Any]  # returns a detail string (healthy) or raises Unavailable (down)
OUTAGE_COMPONENTS = ("store", "redis", "dask")
CHECK_TIMEOUT = 10.0  # seconds a component check may take: a hung dependency fails its check, never the cycle  # the platform's own dependencies: going down is one violation, not one per 503
STARTUP_GRACE = 10.0  # seconds a dependency may take to connect at start before it counts as down


class Controller:
    """Periodic health work of the server; its state is what /health and /ready report."""

    def __init__(self, services, *, interval: float) -> None:
        self.services = services
        self.interval = interval
        self.cycle_count = 0
        self.last_cycle_at: float | None = None
        self.components: dict[str, dict] = {}
        self.history: deque[tuple[float, float]] = deque(maxlen=max(10, int(3600 / interval)))  # the last hour
        self.health_fragment = self._fragment()
        self._last_score: float | None = None
        self.checks: dict[str, Check] = {"store": self.check_store}
        self._started = time.monotonic()
        self._up: set[str] = set()  # outage components seen working at least once
        self._outages: set[str] = set()  # outage components down now, their violation recorded
        if services.settings.prometheus_url:
            self.checks["metric_backend"] = self.check_metric_backend
        elif services.settings.dataset:
            self.checks["metric_backend"] = self.check_dataset

    def add_check(self, name: str, check: Check) -> None:
        """Add a component check: return a detail string when healthy, raise Unavailable when down."""
        self.checks[name] = check

    def _fragment(self) -> str:
        """The controller's part of /health as JSON members, encoded once per cycle."""
        state = {"controller": {"cycles": self.cycle_count, "last_cycle_at": self.last_cycle_at,
                                "interval_seconds": self.interval,
                                "heartbeat_interval_seconds": self.services.settings.heartbeat_interval},
                 "components": self.components}
        return encode_json(state)[1:-1]

    @property
    def alive(self) -> bool:
        if self.last_cycle_at is None:
            return False
        return time.time() - self.last_cycle_at < max(3 * self.interval, 15.0)

    async def check_store(self) -> str:
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.run_in_executor(None, self.services.store.check_writable), timeout=3.0)
        return "writable"

    async def check_metric_backend(self) -> str:
        url = self.services.settings.prometheus_url.rstrip("/") + "/api/v1/query"
        try:
            async with httpx.AsyncClient(timeout=3.0) as client:
                response = await client.get(url, params={"query": "1"})
        except httpx.HTTPError as exc:
            raise Unavailable(f"metric backend {url} does not answer: {exc!r}") from None
        if response.status_code != 200:
            raise Unavailable(f"metric backend {url} answered HTTP {response.status_code}")
        return "answering"

    def check_dataset(self) -> str:
        path = Path(self.services.settings.dataset)
        if not path.is_file():
            raise Unavailable(f"dataset file {path} does not exist")
        return f"dataset {path}"

    def _score_outages(self) -> None:
        """One ``assumption_violated`` per outage of the store or Redis: when it goes down, or when it has
        not come up within :data:`STARTUP_GRACE` seconds of the start (connecting takes a moment)."""
        for name in OUTAGE_COMPONENTS:
            state = self.components.get(name)
            if state is None or state["ok"]:
                self._up.add(name)
                self._outages.discard(name)
                continue
            if name in self._outages or (name not in self._up and time.monotonic() - self._started < STARTUP_GRACE):
                continue
            self._outages.add(name)
            log.error("%s is down: %s", name, state["detail"])
            self.services.scorekeeper.record_violation("assumption_violated", f"{name} down: {state['detail']}"[:500])

    async def run_checks(self) -> dict[str, dict]:
        """Run every component check concurrently; unexpected exceptions are silent failures."""

        async def one(name: str, check: Check) -> dict:
            try:
                result = check()
                if inspect.isawaitable(result):
                    result = await asyncio.wait_for(result, CHECK_TIMEOUT)
                return {"ok": True, "detail": str(result or "ok")}
            except (Unavailable, asyncio.TimeoutError) as exc:
                return {"ok": False, "detail": getattr(exc, "message", None) or f"check timed out: {exc!r}"}
            except Exception as exc:  # noqa: BLE001 - a broken check must not kill the cycle
                self.services.background.failed(f"check {name}", exc)
                return {"ok": False, "detail": f"check raised {exc!r}"}

        names = list(self.checks)
        results = await asyncio.gather(*(one(n, self.checks[n]) for n in names))
        return dict(zip(names, results))

    async def cycle(self) -> None:
        started = time.perf_counter()
        self.components = await self.run_checks()
        self._score_outages()
        self.cycle_count += 1
        self.last_cycle_at = time.time()
        self.health_fragment = self._fragment()
        scorekeeper = self.services.scorekeeper
        scorekeeper.record()  # a controller cycle is a checked operation
        snap = self.services.score_snapshot()  # the platform's, with --redis-url
        self.history.append((round(self.last_cycle_at, 3), snap["score"]))
        duration = time.perf_counter() - started
        metrics = self.services.metrics
        metrics.controller_cycles.inc()
        metrics.controller_cycle_seconds.set(duration)
        hub = self.services.hub
        hub.publish("cycle", {
            "cycle": self.cycle_count,
            "duration_ms": round(duration * 1000, 2),
            "score": snap["score"],
            "tier": snap["tier"],
            "components": self.components,
        })
        if snap["score"] != self._last_score:
            self._last_score = snap["score"]
            hub.publish("score", snap)
