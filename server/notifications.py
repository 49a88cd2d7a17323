"""The server's notifications: finished runs and incident changes, routed by ``--notify-routes``, delivered off the loop.

Where events come from: every ``run`` and ``incident`` message this replica publishes on its hub
(:attr:`bizra_server.hub.Hub.listeners`), that is, the changes **this replica made**: the run it
executed (or failed as lost, as the leader), the incident its webhook or API handler opened or resolved.
Events other replicas publish reach this one through the Redis bus (:meth:`Hub.deliver_local`) and
are not heard here.

Sent once with several replicas: each change is made by exactly one replica (the store decides: one
replica's Alertmanager webhook opens the incident, the others update it), so the replica that made it
sends its notification. Listening to the bus on the leader only was the other way, and it was
rejected: while Redis is unreachable the bus delivers events locally only, so the leader would miss
other replicas' changes, and a change of leader in the middle would drop or repeat events. A change
published twice (a run failed as lost by the leader, then its owner finishing it late; an incident
PATCHed with a note after it was resolved) is sent once per channel: each (change, channel) is claimed
first, with ``SET NX`` in Redis under ``--redis-url`` (kept 7 days), else in this process's memory of
the last :data:`REMEMBERED` changes. When Redis cannot answer the claim the notification is sent
anyway: a duplicate is better than silence.

Each delivery (one event to one channel) is a task of its own: a slow or failing channel delays no
other, and nothing here blocks the IOLoop (the store is read on the I/O threads, SMTP runs on the
deliverer's threads, webhooks use httpx's async client). Failures after the retries are recorded as
``silent_failure`` (see :mod:`bizra_nb.channels`).
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from pathlib import Path

from bizra_nb.channels import RETRY_DELAYS, Deliverer, SmtpConfig
from bizra_nb.notify import Event, Routes, incident_events, load_routes, run_events

log = logging.getLogger("bizra.notify")

REMEMBERED = 10_000  # (change, channel) claims kept in memory without Redis
CLAIM_SECONDS = 7 * 24 * 3600  # how long a claim lives in Redis
STOP_WAIT = 5.0  # seconds deliveries in flight may take to finish when the server stops


class Notifications:
    """Hears this replica's run and incident events and sends each routed one to its channels, once."""

    def __init__(self, services, routes: Routes | None, *, delays: tuple[float, ...] | None = None) -> None:
        self.services = services
        self.routes = routes
        self.delays = RETRY_DELAYS if delays is None else tuple(delays)
        self.deliverer: Deliverer | None = None
        self.tasks: set[asyncio.Task] = set()
        self._claimed: OrderedDict[str, None] = OrderedDict()

    @staticmethod
    def routes_from(settings) -> Routes | None:
        """The routes of ``--notify-routes`` (None without: nothing is sent). Raises InvalidSetting for a bad file."""
        if not settings.notify_routes:
            return None
        return load_routes(Path(settings.notify_routes).expanduser(), email_ready=bool(settings.smtp_host))

    def start(self) -> None:
        """Listen to the hub (call on the running IOLoop)."""
        if self.routes is None or not self.routes.routes:
            return
        self.deliverer = Deliverer(smtp=SmtpConfig.from_settings(self.services.settings),
                                   keeper=self.services.scorekeeper, delays=self.delays)
        self.services.hub.listeners.append(self.observe)
        log.info("notifications: %d route(s) to %d channel(s) from %s", len(self.routes.routes),
                 len(self.routes.channels), self.routes.source)

    def observe(self, type_: str, data) -> None:
        """The hub's listener (IOLoop thread): a finished run, an incident opened or resolved, start a task."""
        if not isinstance(data, dict):
            return
        if type_ == "run" and data.get("status") in ("succeeded", "failed") and data.get("id"):
            self._spawn(self._run_finished(str(data["id"])), f"notifications of run {data['id']}")
        elif type_ == "incident" and data.get("action") in ("opened", "resolved"):
            events = incident_events(data, data["action"], public_url=self.services.public_url)
            self._spawn(self._send(events), f"notifications of incident {data.get('id')}")

    def _spawn(self, coro, name: str) -> asyncio.Task:
        task = self.services.background.spawn(coro, name)  # a bug here is logged and scored, never lost
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _run_finished(self, run_id: str) -> None:
        services = self.services
        if not any(r.event in ("run_failed", "run_succeeded", "audit_not_compliant") for r in self.routes.routes):
            return
        public_url = self.services.public_url
        events = await asyncio.get_running_loop().run_in_executor(  # the store and the report's file: off the loop
            services.io_pool, lambda: run_events(services.store.get_run(run_id), public_url=public_url))
        await self._send(events)

    async def _send(self, events: list[Event]) -> None:
        for event, channel in self.routes.deliveries(events):
            if await self._claim(f"{event.key}:{channel.name}"):
                self._spawn(self.deliverer.deliver(event, channel), f"notification {event.name} to {channel.name}")

    async def _claim(self, key: str) -> bool:
        """True when this replica is the first to send ``key`` (a change to a channel)."""
        if key in self._claimed:
            return False
        self._claimed[key] = None
        while len(self._claimed) > REMEMBERED:
            self._claimed.popitem(last=False)
        redis = self.services.redis
        if redis is None:
            return True
        try:
            return bool(await asyncio.wait_for(redis.set(f"bizra:notified:{key}", self.services.replica, nx=True,
                                                         ex=CLAIM_SECONDS), 2.0))
        except Exception as exc:  # noqa: BLE001 - Redis down: send (a duplicate beats silence)
            log.warning("notification %s: could not claim it in Redis (%r): sending it from here", key, exc)
            return True

    async def stop(self) -> None:
        """Let deliveries in flight finish for up to :data:`STOP_WAIT` s, then close the clients."""
        if self.routes is not None and self.observe in self.services.hub.listeners:
            self.services.hub.listeners.remove(self.observe)
        if self.tasks:
            _, pending = await asyncio.wait(list(self.tasks), timeout=STOP_WAIT)
            if pending:
                log.warning("stopping: %d notification(s) still being delivered are abandoned", len(pending))
        if self.deliverer is not None:
            await self.deliverer.close()
