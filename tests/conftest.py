"""Shared fixtures; every server test talks to a real server on free loopback ports.

Fixtures
--------
settings
    Settings for a test server: free ports, temporary data and reports dirs, short intervals, token
    ``test-token``, no schedules, no notebook run on incidents, no warm kernel pool (tests switch these on).
make_server
    Factory: ``make_server(**setting_overrides, extra_handlers=[...])`` starts a real
    :class:`bizra_server.app.Server` in a background thread and returns a :class:`RunningServer`.
server
    One running server with the default test settings and the test-only routes ``/boom`` (500)
    and ``/echo`` (POST, token-protected).
http
    An ``httpx.Client`` whose base URL is ``server``'s.
token
    The API token of ``server``.
auth
    ``{"Authorization": "Bearer <token>"}`` for state-changing requests.
browser
    (module) Debian's Chromium driven by Playwright (its own browsers are never downloaded); open pages
    with :class:`tests.browser.Watched`. Skips locally, fails in CI, when Chromium is missing.
fleet
    (session) The demo fleet written to files: ``fleet.metrics`` (CSV), ``fleet.cmdb`` (YAML),
    ``fleet.fault`` (the injected fault: ``catalog-db`` latency at ``fleet.fault.start``).
alertmanager
    (session) A real ``prometheus-alertmanager`` on a free port (``url``, ``silences()``, ``silence(id)``).

Helpers: :func:`need_binary` (skip locally, fail in CI when a real component is missing),
:func:`wait_until`.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
import tornado.web

from bizra_nb.settings import Settings, load_settings
from bizra_server.app import Server
from bizra_server.base import BaseHandler

TOKEN = "test-token"


def need_binary(name: str) -> str:
    """The path of ``name``; skips the test locally when missing, fails it in CI (CI=true)."""
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is required in CI but is not installed")
    pytest.skip(f"{name} is not installed")


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


class BoomHandler(BaseHandler):
    """Test route: a bug in a handler (an unhandled exception)."""

    def get(self) -> None:
        raise RuntimeError("boom: a deliberate bug")


class EchoHandler(BaseHandler):
    """Test route: a state-changing endpoint (needs the token), echoing its JSON body."""

    def post(self) -> None:
        self.write_json({"echo": self.json_body()})


TEST_ROUTES: list[tuple[str, type[tornado.web.RequestHandler]]] = [(r"/boom", BoomHandler), (r"/echo", EchoHandler)]


class RunningServer:
    """A real Server on its own IOLoop thread."""

    def __init__(self, settings: Settings, extra_handlers=()) -> None:
        self.settings = settings
        self.server = Server(settings, extra_handlers=list(extra_handlers))
        self.services = self.server.services
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("test server did not start")
        self.url = f"http://127.0.0.1:{self.ports['http']}"
        self.ws_url = f"ws://127.0.0.1:{self.ports['http']}/ws/live-updates"

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self.ports = await self.server.start()
        self._ready.set()
        await self._stopped.wait()
        await self.server.stop()

    def call(self, fn: Callable, *args: Any) -> Any:
        """Run ``fn(*args)`` on the server's IOLoop thread and return its result."""
        async def run():
            result = fn(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=30)

    def stop(self) -> None:
        if self.loop and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout=20)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return load_settings(
        {
            "host": "127.0.0.1", "port": 0, "ws_port": 0, "data_dir": tmp_path / "data",
            "controller_interval": 0.2, "heartbeat_interval": 0.5, "api_token": TOKEN,
            "log_level": "warning", "reports_dir": tmp_path / "reports", "run_workers": 2,
            "audit_schedule": "", "benchmark_schedule": "", "diagnose_with_notebook": False,
            "kernel_pool": 0,  # no warm workers (~2 s of CPU each) for every test server; tests switch them on
        },
        environ={},
    )


@pytest.fixture
def make_server(settings):
    started: list[RunningServer] = []

    def make(extra_handlers=TEST_ROUTES, **overrides: Any) -> RunningServer:
        running = RunningServer(settings.replace(**overrides) if overrides else settings, extra_handlers)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


@pytest.fixture
def make_nb_server(make_server, tmp_path, monkeypatch):
    """``make_nb_server(**overrides)``: a server whose notebooks folder also holds the tiny test notebooks."""
    import bizra_nb.runner as runner_module

    folder = tmp_path / "notebooks"
    shutil.copytree(runner_module.NOTEBOOKS_DIR, folder)
    for nb in (Path(__file__).parent / "notebooks").glob("*.ipynb"):
        shutil.copy(nb, folder)
    monkeypatch.setattr(runner_module, "NOTEBOOKS_DIR", folder)

    def make(**overrides: Any) -> RunningServer:
        running = make_server(**overrides)
        running.services.runner.notebooks_dir = folder
        return running

    return make


@pytest.fixture
def server(make_server) -> RunningServer:
    return make_server()


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture
def token() -> str:
    return TOKEN


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="session")
def fleet(tmp_path_factory):
    import types

    import pandas as pd

    from bizra_nb.dataset import write_dataset
    from bizra_nb.fleet import Fault, generate

    out = tmp_path_factory.mktemp("fleet")
    start = pd.Timestamp("2026-10-01T10:00:00Z")
    fault = Fault(service="catalog-db", kind="latency", start=start + pd.Timedelta("80min"))
    data = generate(start=start, duration="2h", faults=[fault], seed=11)
    metrics = write_dataset(data.metrics, out / "metrics.csv")
    cmdb = out / "cmdb.yaml"
    cmdb.write_text(data.cmdb.dumps("yaml"))
    return types.SimpleNamespace(dir=out, metrics=metrics, cmdb=cmdb, fault=fault, data=data)


@pytest.fixture
def rca_server(make_server, fleet, auth):
    """A server diagnosing the fleet dataset, the fleet CMDB imported; with an httpx client on it."""
    import httpx

    running = make_server(dataset=str(fleet.metrics))
    with httpx.Client(base_url=running.url, timeout=30) as client:
        assert client.post("/cmdb/import", content=fleet.cmdb.read_text(), headers=auth).status_code == 200
        yield running, client


@pytest.fixture(scope="module")  # not wider: Playwright's sync API keeps an asyncio loop running meanwhile
def browser():
    from playwright.sync_api import sync_playwright  # a dev dependency

    from tests.browser import PLAYWRIGHT_FLAGS

    chromium = need_binary("chromium")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, headless=True, args=PLAYWRIGHT_FLAGS)
        yield launched
        launched.close()


# -- PostgreSQL (issue 11): a real cluster for the store's tests -------------------------------------------


@pytest.fixture(scope="session")
def postgres():
    """(session) A throwaway PostgreSQL cluster (:class:`tests.postgres_server.PostgresServer`); skips
    locally, fails in CI, when PostgreSQL is not installed."""
    from tests.postgres_server import PostgresServer, postgres_bin

    bindir = postgres_bin()
    if bindir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL (initdb, pg_ctl) is required in CI but is not installed")
        pytest.skip("PostgreSQL (initdb, pg_ctl) is not installed")
    cluster = PostgresServer(bindir)
    yield cluster
    cluster.close()


@pytest.fixture
def postgres_url(postgres) -> str:
    """The URL of a new, empty database of ``postgres`` for this test."""
    if not postgres.running():  # a test that stopped it and failed before starting it again
        postgres.start()
    return postgres.create_database()


# -- Redis (issue 11): a real redis-server for the hub's bus, the shared score and the leader's lease ---------


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory):
    """A real ``dask scheduler`` and two ``dask worker`` processes (one thread each) on free ports, for the
    whole session (:class:`tests.dask_cluster.DaskCluster`); tests that kill parts of it make their own."""
    from tests.dask_cluster import DaskCluster

    cluster = DaskCluster(tmp_path_factory.mktemp("dask"))
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_server(tmp_path):
    """A real ``redis-server`` on a free port (:class:`tests.redis_server.RedisServer`: ``url``, ``stop()``,
    ``start()``); skips locally, fails in CI, when redis-server is not installed."""
    from tests.redis_server import RedisServer

    server = RedisServer(need_binary("redis-server"), tmp_path / "redis")
    yield server
    server.stop()


# -- Alertmanager (issue 15): a real prometheus-alertmanager for the silences made from incidents -------------


@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory):
    """(session) A real Alertmanager on a free port, clustering off (:class:`tests.alertmanager_server.
    AlertmanagerProcess`: ``url``, ``silences()``, ``silence(id)``); tests tell their silences apart by their
    own labels. Skips locally, fails in CI, when prometheus-alertmanager is not installed."""
    from tests.alertmanager_server import AlertmanagerProcess

    process = AlertmanagerProcess(need_binary("prometheus-alertmanager"), tmp_path_factory.mktemp("alertmanager"))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    """A notebook runner on a store and reports dir of its own, shared by a test module (real papermill)."""
    from bizra_nb.runner import Runner
    from bizra_nb.store import Store

    root = tmp_path_factory.mktemp("runs")
    r = Runner(Store.open(root / "data"), reports_dir=root / "reports", workers=2, cell_timeout=120)
    yield r
    r.close()
