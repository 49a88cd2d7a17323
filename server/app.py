"""The application factory `make_app(settings)`, the shared services, and `serve()` with graceful shutdown."""
from __future__ import annotations

import asyncio
import errno
import gc
import logging
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from bizra_nb.errors import InvalidSetting, Unavailable
from bizra_nb.score import ScoreKeeper
from bizra_nb.settings import Settings
from bizra_nb.store import Store
from bizra_nb.cmdb import Cmdb
from bizra_nb.runner import Runner, executor_for
from bizra_server import (alerts, auth_check, cmdb, health, live, metrics, openapi, page, postmortem, rca, reports,
                          runs, schedules, silences, slo, timeline)
from bizra_server.auth import load_or_create_token
from bizra_server.background import Background
from bizra_server.base import MAX_BODY_SIZE, NotFoundHandler, UnknownHostHandler, host_allowed
from bizra_server.controller import Controller
from bizra_server.hub import Hub
from bizra_server.incident_flow import IncidentFlow
from bizra_server.notifications import Notifications
from bizra_server.leader import Leadership, LocalLeadership
from bizra_server.processes import default_replica_name
from bizra_server.redis_bus import RedisBus, redis_client
from bizra_server.scheduler import Scheduler
from bizra_server.shared_score import SharedScore
from bizra_server.instrumentation import AccessLog, RequestInstrumentation, route_template

log = logging.getLogger("bizra.server")

STOP_TIMEOUT = 5.0  # seconds each Redis part may take to stop before the server stops without it
DASK_CHECK_TIMEOUT = 3.0  # seconds the Dask scheduler may take to answer /ready's question before it counts as down
RESOURCES = [health, page, metrics, live, auth_check, cmdb, rca, timeline, postmortem, silences, alerts, runs, schedules, slo, reports, openapi]  # each module ends in its `handlers` route list; /health first: routes match in order, and it is polled hardest


@dataclass
class Services:
    """What the handlers share, reached through ``self.settings["services"]``."""

    settings: Settings
    store: Store
    scorekeeper: ScoreKeeper
    metrics: metrics.Metrics
    hub: Hub
    background: Background
    api_token: str
    token_generated: bool = False
    started_at: float = field(default_factory=time.time)
    controller: Controller = None  # type: ignore[assignment]
    incident_flow: IncidentFlow = None  # type: ignore[assignment]
    notifications: Notifications = None  # type: ignore[assignment]  # --notify-routes
    cmdb: Cmdb = field(default_factory=lambda: Cmdb({}, []))
    error_budgets: slo.ErrorBudgets = None  # type: ignore[assignment]  # the --slo-spec SLOs and their evaluation
    cmdb_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    workers: ThreadPoolExecutor = None  # type: ignore[assignment]  # CPU-bound work: diagnoses
    io_pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(4, "bizra-io"))  # store calls
    runner: Runner = None  # type: ignore[assignment]
    scheduler: Scheduler = None  # type: ignore[assignment]
    base_url: str = ""
    printers: ThreadPoolExecutor | None = None  # Chromium's prints of /reports/…/report.pdf, made on the first
    host_names: frozenset = frozenset()  # the Host header names the server answers to (see server_names)
    public_origins: frozenset = frozenset()  # page origins allowed on the WebSocket; set once the ports are known
    access_log: AccessLog = field(default_factory=AccessLog)
    store_writer: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "bizra-store"))
    replica: str = ""  # this replica's name (--replica-name, else host:port); set once the port is bound
    leadership: LocalLeadership | Leadership = field(default_factory=LocalLeadership)
    redis: object = None  # with --redis-url: the asyncio client the shared parts use
    bus: RedisBus | None = None
    shared_score: SharedScore | None = None
    metric_siblings: list[tuple[str, str]] = field(default_factory=list)  # --processes: (replica, private /metrics URL)
    _store_ok_since: float | None = None  # monotonic time of this replica's first heartbeat since the store was last down
    _beats_seen: dict = field(default_factory=dict)  # leader: replica -> (its last heartbeat value, when that changed here)
    duties_pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "bizra-duties"))  # apart from requests'
    dask_pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "bizra-dask-check"))
    _dask_refresh: asyncio.Future | None = None  # the scheduler question in flight (check_dask)

    @property
    def shared(self) -> bool:
        """Several replicas may share this one's store: runs have owners, replicas heart-beat."""
        return bool(self.settings.redis_url or self.settings.store_url)

    def score_snapshot(self) -> dict:
        """The platform's score: over every replica with --redis-url (cached, no I/O), else this process's."""
        return self.shared_score.snapshot() if self.shared_score is not None else self.scorekeeper.snapshot()

    def persist_violation(self, kind: str, detail: str) -> None:
        """Log a violation to the store off the IOLoop (one writer thread, in order)."""
        self.store_writer.submit(self._log_violation, kind, detail)

    def _log_violation(self, kind: str, detail: str) -> None:
        try:
            self.store.log_violation(kind, detail)
        except Exception as exc:  # noqa: BLE001 - the score already counts it; the log is best effort
            log.warning("could not persist a %s violation: %s", kind, exc)

    def start(self) -> None:
        """Start the background loops (call on the running IOLoop)."""
        settings = self.settings
        self.hub.bind_loop(asyncio.get_running_loop())
        self.leadership = LocalLeadership(self.replica)
        if settings.redis_url:
            self.redis = redis_client(settings.redis_url)
            database = self.redis.connection_pool.connection_kwargs.get("db", 0)
            self.bus = RedisBus(settings.redis_url, self.replica, on_message=self.hub.deliver_local,
                                on_state=self.hub.stream_changed,
                                channel=f"bizra:live:{database}")  # pub/sub ignores databases: keep platforms apart
            self.hub.attach_bus(self.bus)
            self.leadership = Leadership(self.redis, self.replica, lease=settings.leader_lease)
            self.shared_score = SharedScore(self.scorekeeper, self.redis, self.replica)
            for part in (self.bus, self.leadership, self.shared_score):
                self.background.spawn(part.start(), f"start {type(part).__name__}")
            self.controller.add_check("redis", self.check_redis)
        if settings.dask_scheduler:
            self.controller.add_check("dask", self.check_dask)
        else:
            self.metrics.set_run_workers("local", settings.run_workers)
        self.metrics.describe_replica(self.replica, lambda: self.leadership.is_leader)
        self.background.every(settings.controller_interval, self.controller.cycle, "controller")
        if self.shared:
            self.background.every(settings.leader_lease / 3, self._replica_duties, "replica duties")
        if self.scheduler.schedules:
            self.background.every(settings.schedule_check_interval, self.scheduler.step, "scheduler")
        self.background.every(self.settings.heartbeat_interval, self._heartbeat, "heartbeat")
        self.background.every(1.0, self._flush_access_log, "access log")
        self.notifications.start()
        self.workers.submit(self.incident_flow.warm_up)  # what the first alert would load, loaded now

    def check_redis(self) -> str:
        """The /ready check of Redis: the bus, the shared score and the lease all reach it."""
        for part in (self.bus, self.shared_score, self.leadership):
            if not part.connected:
                raise Unavailable(f"{type(part).__name__}: {part.reason}")
        return f"connected ({self.bus.address}); leader: {self.leadership.holder or 'none'}"

    async def check_dask(self) -> str:
        """The /ready check of the Dask cluster (each controller cycle): its scheduler answers, workers are there.

        It also counts the workers' threads, the runs' slots, and gives the queue the slots that joined.
        One question to the scheduler at a time, in a thread of its own: a hung scheduler (paused, its
        network black-holed) makes the check fail after :data:`DASK_CHECK_TIMEOUT` s, never piles up
        calls, and never holds the heartbeat's thread.
        """
        executor = self.runner.executor
        if self._dask_refresh is None or self._dask_refresh.done():
            self._dask_refresh = asyncio.ensure_future(
                asyncio.get_running_loop().run_in_executor(self.dask_pool, executor.refresh))
        try:
            detail = await asyncio.wait_for(asyncio.shield(self._dask_refresh), DASK_CHECK_TIMEOUT)
        except asyncio.TimeoutError:
            executor.mark_down(f"the Dask scheduler {executor.address} did not answer within "
                               f"{DASK_CHECK_TIMEOUT:g} s (hung or unreachable): notebook runs cannot start")
            raise Unavailable(executor.down_reason) from None
        finally:
            self.metrics.set_run_workers("dask", executor.workers_seen)
        self.runner.queue.poke()
        if not executor.workers_seen:
            raise Unavailable(f"no Dask worker is connected to {executor.address}: runs wait until one joins")
        return detail

    async def _replica_duties(self) -> None:
        """Heart-beat in the store; the leader also fails the runs of replicas that stopped heart-beating.

        A replica is dead when its heartbeat has not changed for three leases **by the leader's own
        clock** (watched since this replica became the leader), so clock skew between machines cannot
        get a live replica's runs failed; and only once this replica has reached the store for as long
        (after an outage every replica needs time to beat again).
        """
        loop = asyncio.get_running_loop()
        info = {"pid": os.getpid(), "leader": self.leadership.is_leader, "base_url": self.base_url}
        max_age = 3 * self.settings.leader_lease
        try:
            await loop.run_in_executor(self.duties_pool, self.store.heartbeat_replica, self.replica, info)
            if self._store_ok_since is None:
                self._store_ok_since = time.monotonic()
            if not self.leadership.is_leader:
                self._beats_seen.clear()  # a new leader watches afresh
                return
            dead = await loop.run_in_executor(self.duties_pool, self._dead_replicas, max_age)
            if dead and time.monotonic() - self._store_ok_since >= max_age:
                for run_id in await loop.run_in_executor(self.duties_pool, self.runner.reap, dead):
                    log.warning("run %s failed: its replica stopped answering", run_id)
        except Unavailable as exc:  # the store is down: the controller scores it once
            self._store_ok_since = None
            log.debug("replica heartbeat skipped: %s", exc.message)

    def _dead_replicas(self, max_age: float) -> list[str]:
        """Owners of unfinished runs whose heartbeat has not changed for ``max_age`` s, watched from here."""
        beats = {r["name"]: r["seen_at"] for r in self.store.list_replicas()}
        owners = {run.get("owner") for status in ("queued", "running")
                  for run in self.store.list_runs(status=status, limit=1000)} - {None, self.replica}
        now = time.monotonic()
        dead = []
        for owner in owners:
            seen = self._beats_seen.get(owner)
            if seen is None or seen[0] != beats.get(owner):
                self._beats_seen[owner] = (beats.get(owner), now)
            elif now - seen[1] >= max_age:
                dead.append(owner)
        for gone in set(self._beats_seen) - owners:
            del self._beats_seen[gone]
        return sorted(dead)

    async def _flush_access_log(self) -> None:
        self.access_log.flush()

    async def _heartbeat(self) -> None:
        self.hub.publish("heartbeat", {"clients": len(self.hub.clients), "replica": self.replica,
                                       "uptime_seconds": round(time.time() - self.started_at, 1)})

    @property
    def public_url(self) -> str:
        """The server's address as people reach it, for links: the ``public_url`` setting, else :attr:`base_url`."""
        return self.settings.public_url or self.base_url

    async def stop(self) -> None:
        """Hand over the lease, close clients with a close frame, stop the loops, flush the store."""
        await _bounded("the leadership", self.leadership.stop())  # released at once: another replica leads now
        closing = self.hub.close_all(1001, "server shutting down")
        deadline = time.monotonic() + 2.0
        while any(c.ws_connection is not None for c in closing) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # let the close handshakes finish
        await self.notifications.stop()  # deliveries in flight finish (bounded) before the tasks are cancelled
        await self.background.stop()
        for name, part in (("the live bus", self.bus), ("the shared score", self.shared_score)):
            if part is not None:
                await _bounded(name, part.stop())
        if self.redis is not None:
            await _bounded("the Redis client", self.redis.aclose())
        self.access_log.flush()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.runner.close)  # running notebooks end as cancelled, with a report
        await loop.run_in_executor(None, self.workers.shutdown, True)
        await loop.run_in_executor(None, self.io_pool.shutdown, True)
        await loop.run_in_executor(None, self.duties_pool.shutdown, True)
        self.dask_pool.shutdown(wait=False, cancel_futures=True)  # a question to a hung scheduler is not waited for
        if self.printers is not None:
            self.printers.shutdown(wait=False, cancel_futures=True)  # a print in flight ends at its timeout
        if self.error_budgets is not None:
            self.error_budgets.close()  # ?at= evaluations' threads (one in flight ends at its Prometheus deadline)
        await loop.run_in_executor(None, self.store_writer.shutdown, True)
        self.store.close()


async def _bounded(what: str, stopping) -> None:
    """Await ``stopping`` for at most :data:`STOP_TIMEOUT` seconds: a stop never waits on Redis for long."""
    try:
        await asyncio.wait_for(stopping, STOP_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - stopping anyway (a lease not released ends by itself)
        log.warning("stopping %s: %r", what, exc)


def make_services(settings: Settings) -> Services:
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)  # the token, /ready's probe, notebooks' files: also with --store-url
    notify_routes = Notifications.routes_from(settings)  # a bad routes file: InvalidSetting, before anything opens
    error_budgets = slo.ErrorBudgets.from_settings(settings)  # a bad --slo-spec: InvalidSetting, one line a problem
    store = Store.from_url(settings.store_url, data_dir=settings.data_dir)
    scorekeeper = ScoreKeeper(settings.score_window)
    token, generated = load_or_create_token(settings.api_token, settings.data_dir)
    metric_set = metrics.Metrics(scorekeeper)
    services = Services(
        settings=settings,
        store=store,
        scorekeeper=scorekeeper,
        metrics=metric_set,
        hub=Hub(metrics=metric_set),
        background=Background(scorekeeper),
        api_token=token,
        token_generated=generated,
        cmdb=Cmdb.from_dict(store.load_cmdb()),
        workers=ThreadPoolExecutor(settings.workers, "bizra-worker"),
        host_names=server_names(settings),
        error_budgets=error_budgets,
    )
    services.controller = Controller(services, interval=settings.controller_interval)
    services.incident_flow = IncidentFlow(services)
    services.notifications = Notifications(services, notify_routes)
    Path(settings.reports_dir).mkdir(parents=True, exist_ok=True)  # /reports/ serves it from the start
    services.runner = Runner(store, reports_dir=settings.reports_dir,
                             executor=executor_for(settings.dask_scheduler, settings.run_workers),
                             keeper=scorekeeper, on_event=services.incident_flow.run_changed,
                             cell_timeout=settings.cell_timeout, run_timeout=settings.run_timeout,
                             data_dir=settings.data_dir, kernel_pool=settings.kernel_pool,
                             on_worker_start=metric_set.run_started)
    services.scheduler = Scheduler.from_settings(services, lambda: services.base_url)
    scorekeeper.on_violation(services.persist_violation)
    return services


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::")


def server_names(settings: Settings) -> frozenset[str]:
    """The host names a request's Host header may carry: loopback, ``--host``, and ``--allowed-hosts``."""
    names = set(LOOPBACK_NAMES) | {name.strip().lower().strip("[]") for name in settings.allowed_hosts}
    if settings.host not in WILDCARD_ADDRESSES:
        names.add(settings.host.lower().strip("[]"))
    return frozenset(names)


def public_origins(names: frozenset[str], ports: Iterable[int]) -> frozenset[str]:
    """``http://<name>:<port>`` for each of the server's names and ports: the pages that may open the WebSocket."""
    hosts = [f"[{name}]" if ":" in name else name for name in names if name != "*"]
    return frozenset(f"http://{host}:{port}" for host in hosts for port in ports)


class Api(tornado.web.Application):
    """The application, answering only requests addressed to one of the server's names (no DNS rebinding)."""

    KNOWN_HOSTS = 256  # verdicts kept per Host header value: a handful in practice; parsing each time cost 10 % of /health

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._host_verdicts: dict[str, bool] = {}

    def find_handler(self, request, **kwargs):
        allowed = self._host_verdicts.get(request.host)
        if allowed is None:
            allowed = host_allowed(request.host, self.settings["services"].host_names)
            if len(self._host_verdicts) < self.KNOWN_HOSTS:
                self._host_verdicts[request.host] = allowed
        if not allowed:
            return self.get_handler_delegate(request, UnknownHostHandler)
        return super().find_handler(request, **kwargs)


def _application(services: Services, routes: list[tuple[str, type]]) -> tornado.web.Application:
    names = {route[1]: route_template(route[0]) for route in routes}
    return Api(
        routes,
        services=services,
        default_handler_class=NotFoundHandler,
        log_function=RequestInstrumentation(services, names, services.access_log),
        websocket_ping_interval=services.settings.heartbeat_interval,
        websocket_ping_timeout=services.settings.heartbeat_interval,  # Tornado caps it at the interval
        compress_response=False,
    )


def make_app(
    settings: Settings, *, services: Services | None = None, extra_handlers: list[tuple[str, type]] = (),
) -> tornado.web.Application:
    """The API application; ``app.settings["services"]`` holds the shared services.

    ``extra_handlers`` adds routes (plugins, tests) with the same base behaviour.
    """
    services = services or make_services(settings)
    routes = [route for module in RESOURCES for route in module.handlers] + list(extra_handlers)  # (pattern, class[, kwargs])
    return _application(services, routes)


def make_ws_app(app: tornado.web.Application) -> tornado.web.Application:
    """The WebSocket-only application for the extra port (``/`` and ``/ws/live-updates``)."""
    return _application(app.settings["services"], [(r"/", live.LiveUpdatesHandler)] + live.handlers)


def bind(port: int, host: str, *, flag: str = "--port") -> list:
    """Listening sockets for ``host:port`` (``port=0`` picks one); forked processes inherit and share them.

    A port already taken raises :class:`InvalidSetting` naming the address and ``flag``.
    """
    try:
        return bind_sockets(port, address=host)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        shown = f"[{host}]" if ":" in host else host
        raise InvalidSetting(f"cannot listen on {shown}:{port}: the address is already in use (another program "
                             f"or server has it): choose another {flag}, or 0 for a free port",
                             field=flag.lstrip("-").replace("-", "_")) from None


def listen(app: tornado.web.Application, port: int, host: str, *, flag: str = "--port",
           sockets: list | None = None) -> tuple[HTTPServer, int]:
    """Start an HTTP server for ``app``; returns it and the port actually bound (``port=0`` picks one).

    ``sockets``: already bound ones (``--processes``: bound once, before the processes fork).
    A client gets ``idle_timeout`` seconds to send a request's headers (or to send
    the next one), ``body_timeout`` for its body. Handlers without a streamed body
    (static files, the WebSocket upgrade) take at most ``MAX_BODY_SIZE`` bytes.
    """
    settings: Settings = app.settings["services"].settings
    sockets = sockets if sockets is not None else bind(port, host, flag=flag)
    server = HTTPServer(app, idle_connection_timeout=settings.idle_timeout, body_timeout=settings.body_timeout,
                        max_body_size=MAX_BODY_SIZE)
    server.add_sockets(sockets)
    return server, sockets[0].getsockname()[1]


class Server:
    """The application listening on its ports, with its background loops; used by `serve` and the tests."""

    def __init__(self, settings: Settings, *, extra_handlers: list[tuple[str, type]] = (),
                 sockets: dict[str, list] | None = None) -> None:
        self.settings = settings
        self.sockets = sockets or {}  # "http", "ws": bound before a fork (--processes)
        self.app = make_app(settings, extra_handlers=extra_handlers)
        self.services: Services = self.app.settings["services"]
        self.http_servers: list[HTTPServer] = []
        self.ports: dict[str, int] = {}

    async def start(self) -> dict[str, int]:
        """Recover interrupted runs, listen and start the loops (on the running IOLoop); returns the ports bound."""
        settings, services = self.settings, self.services
        http_sockets = self.sockets.get("http") or bind(settings.port, settings.host)
        services.replica = default_replica_name(settings, http_sockets[0].getsockname()[1])
        if services.shared:
            services.runner.owner = services.replica  # its runs are its own: other replicas' are not recovered here
        # before listening: no new run may start meanwhile; their failure reports are written off the IOLoop
        for run_id in await asyncio.get_running_loop().run_in_executor(None, services.runner.recover):
            log.warning("run %s was interrupted by the last stop: marked failed, with a failure report", run_id)
        server, self.ports["http"] = listen(self.app, settings.port, settings.host, sockets=http_sockets)
        self.http_servers.append(server)
        if settings.ws_port >= 0:
            try:
                server, self.ports["ws"] = listen(make_ws_app(self.app), settings.ws_port, settings.host,
                                                  flag="--ws-port", sockets=self.sockets.get("ws"))
            except InvalidSetting:
                self.http_servers.pop().stop()  # not left listening on --port
                raise
            self.http_servers.append(server)
        if "metrics" in self.sockets:  # --processes: this process's own /metrics, for its siblings
            server, _ = listen(_application(services, [(r"/metrics", metrics.ProcessMetricsHandler)]), 0,
                               "127.0.0.1", sockets=self.sockets["metrics"])
            self.http_servers.append(server)
        self.services.base_url = f"http://{settings.host}:{self.ports['http']}"
        self.services.public_origins = public_origins(self.services.host_names, self.ports.values())
        self.services.start()
        return self.ports

    async def stop(self) -> None:
        """Stop accepting, close WebSockets with a close frame, stop the loops, flush the store."""
        for server in self.http_servers:
            server.stop()
        await self.services.stop()
        for server in self.http_servers:
            await server.close_all_connections()


async def serve(settings: Settings, *, ready: Callable[[dict], None] | None = None,
                sockets: dict[str, list] | None = None, metric_siblings: list[tuple[str, str]] = ()) -> None:
    """Run the server until SIGINT, SIGTERM or SIGHUP, then shut down gracefully.

    ``sockets`` and ``metric_siblings``: see :mod:`bizra_server.processes`.
    """
    server = Server(settings, sockets=sockets)
    server.services.metric_siblings = list(metric_siblings)
    ports = await server.start()
    gc.freeze()  # start-up objects never become garbage: keep them out of every collection
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal closed
        loop.add_signal_handler(sig, stop.set)
    log.info("serving API on http://%s:%d (WebSocket %s)", settings.host, ports["http"],
             f"also on :{ports['ws']}" if "ws" in ports else "on the API port only")
    if ready is not None:
        ready({"ports": ports, "token": server.services.api_token, "token_generated": server.services.token_generated})
    await stop.wait()
    log.info("shutting down")
    await server.stop()
    log.info("stopped")
