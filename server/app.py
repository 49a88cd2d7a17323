"""The application factory `make_app(settings)`, the shared services, and `serve()` with graceful shutdown."""
from __future__ import annotations

import asyncio
import errno
import gc
import logging
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from bizra_nb.errors import InvalidSetting
from bizra_nb.score import ScoreKeeper
from bizra_nb.settings import Settings
from bizra_nb.store import Store
from bizra_nb.cmdb import Cmdb
from bizra_nb.runner import Runner
from bizra_server import alerts, auth_check, cmdb, health, live, metrics, openapi, page, rca, reports, runs
from bizra_server.auth import load_or_create_token
from bizra_server.background import Background
from bizra_server.base import MAX_BODY_SIZE, NotFoundHandler, UnknownHostHandler, host_allowed
from bizra_server.controller import Controller
from bizra_server.hub import Hub
from bizra_server.incident_flow import IncidentFlow
from bizra_server.scheduler import Scheduler
from bizra_server.instrumentation import AccessLog, RequestInstrumentation, route_template

log = logging.getLogger("bizra.server")

RESOURCES = [page, health, metrics, live, auth_check, cmdb, rca, alerts, runs, reports, openapi]  # each module ends in its `handlers` route list


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
    cmdb: Cmdb = field(default_factory=lambda: Cmdb({}, []))
    cmdb_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    workers: ThreadPoolExecutor = None  # type: ignore[assignment]  # CPU-bound work: diagnoses
    io_pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(4, "bizra-io"))  # store calls
    runner: Runner = None  # type: ignore[assignment]
    scheduler: Scheduler = None  # type: ignore[assignment]
    base_url: str = ""
    host_names: frozenset = frozenset()  # the Host header names the server answers to (see server_names)
    public_origins: frozenset = frozenset()  # page origins allowed on the WebSocket; set once the ports are known
    access_log: AccessLog = field(default_factory=AccessLog)
    store_writer: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "bizra-store"))

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
        self.hub.bind_loop(asyncio.get_running_loop())
        self.background.every(self.settings.controller_interval, self.controller.cycle, "controller")
        if self.scheduler.schedules:
            self.background.every(30.0, self.scheduler.step, "scheduler")
        self.background.every(self.settings.heartbeat_interval, self._heartbeat, "heartbeat")
        self.background.every(1.0, self._flush_access_log, "access log")

    async def _flush_access_log(self) -> None:
        self.access_log.flush()

    async def _heartbeat(self) -> None:
        self.hub.publish("heartbeat", {"clients": len(self.hub.clients), "uptime_seconds": round(time.time() - self.started_at, 1)})

    async def stop(self) -> None:
        """Close clients with a close frame, stop the loops, flush the store."""
        closing = self.hub.close_all(1001, "server shutting down")
        deadline = time.monotonic() + 2.0
        while any(c.ws_connection is not None for c in closing) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # let the close handshakes finish
        await self.background.stop()
        self.access_log.flush()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.runner.close)  # running notebooks end as cancelled, with a report
        await loop.run_in_executor(None, self.workers.shutdown, True)
        await loop.run_in_executor(None, self.io_pool.shutdown, True)
        await loop.run_in_executor(None, self.store_writer.shutdown, True)
        self.store.close()


def make_services(settings: Settings) -> Services:
    store = Store.open(settings.data_dir)
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
    )
    services.controller = Controller(services, interval=settings.controller_interval)
    services.incident_flow = IncidentFlow(services)
    Path(settings.reports_dir).mkdir(parents=True, exist_ok=True)  # /reports/ serves it from the start
    services.runner = Runner(store, reports_dir=settings.reports_dir, workers=settings.run_workers,
                             keeper=scorekeeper, on_event=services.incident_flow.run_changed,
                             cell_timeout=settings.cell_timeout, run_timeout=settings.run_timeout)
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


def listen(app: tornado.web.Application, port: int, host: str, *, flag: str = "--port") -> tuple[HTTPServer, int]:
    """Start an HTTP server for ``app``; returns it and the port actually bound (``port=0`` picks one).

    A client gets ``idle_timeout`` seconds to send a request's headers (or to send
    the next one), ``body_timeout`` for its body. Handlers without a streamed body
    (static files, the WebSocket upgrade) take at most ``MAX_BODY_SIZE`` bytes.
    A port already taken raises :class:`InvalidSetting` naming the address and ``flag``.
    """
    settings: Settings = app.settings["services"].settings
    try:
        sockets = bind_sockets(port, address=host)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        shown = f"[{host}]" if ":" in host else host
        raise InvalidSetting(f"cannot listen on {shown}:{port}: the address is already in use (another program "
                             f"or server has it): choose another {flag}, or 0 for a free port",
                             field=flag.lstrip("-").replace("-", "_")) from None
    server = HTTPServer(app, idle_connection_timeout=settings.idle_timeout, body_timeout=settings.body_timeout,
                        max_body_size=MAX_BODY_SIZE)
    server.add_sockets(sockets)
    return server, sockets[0].getsockname()[1]


class Server:
    """The application listening on its ports, with its background loops; used by `serve` and the tests."""

    def __init__(self, settings: Settings, *, extra_handlers: list[tuple[str, type]] = ()) -> None:
        self.settings = settings
        self.app = make_app(settings, extra_handlers=extra_handlers)
        self.services: Services = self.app.settings["services"]
        self.http_servers: list[HTTPServer] = []
        self.ports: dict[str, int] = {}

    async def start(self) -> dict[str, int]:
        """Recover interrupted runs, listen and start the loops (on the running IOLoop); returns the ports bound."""
        settings = self.settings
        # before listening: no new run may start meanwhile; their failure reports are written off the IOLoop
        for run_id in await asyncio.get_running_loop().run_in_executor(None, self.services.runner.recover):
            log.warning("run %s was interrupted by the last stop: marked failed, with a failure report", run_id)
        server, self.ports["http"] = listen(self.app, settings.port, settings.host)
        self.http_servers.append(server)
        if settings.ws_port >= 0:
            try:
                server, self.ports["ws"] = listen(make_ws_app(self.app), settings.ws_port, settings.host,
                                                  flag="--ws-port")
            except InvalidSetting:
                self.http_servers.pop().stop()  # not left listening on --port
                raise
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


async def serve(settings: Settings, *, ready: Callable[[dict], None] | None = None) -> None:
    """Run the server until SIGINT, SIGTERM or SIGHUP, then shut down gracefully."""
    server = Server(settings)
    ports = await server.start()
    gc.freeze()  # start-up objects never become garbage: keep them out of every collection
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal closed
        loop.add_signal_handler(sig, stop.set)
    log.info("serving API on http://%s:%d (WebSocket also on :%s)", settings.host, ports["http"], ports.get("ws", "-"))
    if ready is not None:
        ready({"ports": ports, "token": server.services.api_token, "token_generated": server.services.token_generated})
    await stop.wait()
    log.info("shutting down")
    await server.stop()
    log.info("stopped")
