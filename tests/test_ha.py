"""The production topology under faults: PostgreSQL, Redis and three replicas (`serve --processes 2` plus one).

Everything is real and in its own process: PostgreSQL and redis-server started by the fixtures,
the replicas started with the `bizra-nb serve` command exactly as docs/deploy.md says, WebSocket
clients on each replica, alert deliveries spread over the replicas like a load balancer would
(a refused connection or a 503 is retried on another replica, as Alertmanager retries).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
import websocket

from tests.conftest import TOKEN, wait_until
from tests.prometheus_server import free_port
from tests.test_incidents import payload

AUTH = {"Authorization": f"Bearer {TOKEN}"}
LEASE = 2.0


class Replica:
    """One `bizra-nb serve` (maybe with --processes) as a subprocess, its stderr in a log file."""

    def __init__(self, tmp: Path, name: str, *, store_url: str, redis_url: str, audit_source: Path,
                 processes: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"{name}.log"
        cmd = [sys.executable, "-m", "bizra_nb.cli", "serve", "--port", str(self.port), "--ws-port", "-1",
               "--data-dir", str(tmp / "data"), "--reports-dir", str(tmp / "reports"),
               "--processes", str(processes), "--leader-lease", str(LEASE), "--schedule-check-interval", "0.5",
               "--controller-interval", "0.5", "--heartbeat-interval", "1", "--run-workers", "1",
               "--audit-schedule", "* * * * *", "--audit-source", str(audit_source), "--benchmark-schedule", "",
               "--no-diagnose-with-notebook", "--log-level", "info"]
        env = {**os.environ, "BIZRA_STORE_URL": store_url, "BIZRA_REDIS_URL": redis_url, "BIZRA_API_TOKEN": TOKEN}
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.names: set[str] = set()
        wait_until(lambda: self._answers(processes), timeout=60, interval=0.1)

    def _answers(self, processes: int) -> bool:
        assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
        try:
            self.names.add(httpx.get(self.url + "/health", timeout=5, headers={"Connection": "close"})
                           .json()["replica"]["name"])
        except httpx.HTTPError:
            return False
        return len(self.names) >= processes

    def health(self) -> dict:
        return httpx.get(self.url + "/health", timeout=10, headers={"Connection": "close"}).json()

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class LiveClient:
    """A WebSocket client reading in its own thread; knows its replica from the first heartbeat."""

    def __init__(self, replica: Replica) -> None:
        self.ws = websocket.create_connection(replica.url.replace("http", "ws") + "/ws/live-updates", timeout=30)
        self.messages: list[dict] = []
        self.replica_name: str | None = None
        self.closed = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                message = json.loads(self.ws.recv())
                if message["type"] == "heartbeat" and self.replica_name is None:
                    self.replica_name = message["data"]["replica"]
                self.messages.append(message)
        except Exception:  # noqa: BLE001 - the connection ended (its replica was killed, or the test ends)
            self.closed = True

    def incident_ids(self) -> set[int]:
        return {m["data"]["id"] for m in list(self.messages) if m["type"] == "incident"}


def deliver(endpoints: list[str], body: dict, statuses: list[int]) -> dict:
    """POST an alert group like Alertmanager behind a load balancer: retry on another replica until a 200."""
    for attempt in range(2000):
        url = endpoints[attempt % len(endpoints)]
        try:
            response = httpx.post(url + "/alerts/webhook", json=body, headers=AUTH, timeout=30)
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        statuses.append(response.status_code)
        if response.status_code == 200:
            return response.json()
        assert response.status_code == 503, response.text  # an outage says "retry", never a 500
        assert response.headers.get("Retry-After"), "a 503 must tell Alertmanager when to retry"
        time.sleep(0.2)
    raise AssertionError(f"{body['groupKey']} was never accepted")


def storm(endpoints: list[str], groups: range, statuses: list[int]) -> list[dict]:
    """Each group delivered twice (the second a repeat), concurrently, spread over the endpoints."""
    bodies = [payload(group_key=f"storm-{g}", service=f"svc-{g}") for g in groups for _ in range(2)]
    with ThreadPoolExecutor(10) as pool:
        return list(pool.map(lambda ib: deliver(endpoints[ib[0] % len(endpoints):] + endpoints[:ib[0] % len(endpoints)],
                                                ib[1], statuses), enumerate(bodies)))


def all_incidents(url: str) -> list[dict]:
    return httpx.get(url + "/rca/incidents", params={"limit": 1000}, timeout=30).json()["incidents"]


def audit_runs(url: str) -> list[dict]:
    runs = httpx.get(url + "/runs", params={"limit": 500}, timeout=30).json()["runs"]
    return [r for r in runs if r["trigger"] == "schedule:audit"]


@pytest.fixture
def topology(tmp_path, postgres, postgres_url, redis_server):
    audit_source = tmp_path / "platform.csv"
    audit_source.write_text("timestamp,service,metric,value\n")  # the scheduled audit only has to start
    replicas: list[Replica] = []

    def start(name: str, processes: int = 1) -> Replica:
        replica = Replica(tmp_path, name, store_url=postgres_url, redis_url=redis_server.url,
                          audit_source=audit_source, processes=processes)
        replicas.append(replica)
        return replica

    yield start
    for replica in replicas:
        replica.stop()
    if not postgres.running():
        postgres.start()


def test_three_replicas_survive_the_leader_killed_and_a_database_outage(topology, postgres, redis_server):
    # the standalone replica starts first and leads; then `serve --processes 2`
    alone = topology("alone")
    wait_until(lambda: alone.health()["replica"]["leader"], timeout=30)
    pair = topology("pair", processes=2)
    assert len(pair.names) == 2 and alone.names.isdisjoint(pair.names)

    # live clients on every replica (the pair's port spreads connections over its two processes)
    clients = [LiveClient(alone)]
    pair_clients: list[LiveClient] = []
    while {c.replica_name for c in pair_clients} != pair.names:
        assert len(pair_clients) < 40, "connections never reached both processes of --processes 2"
        pair_clients.append(LiveClient(pair))
        wait_until(lambda: pair_clients[-1].replica_name, timeout=10)
    clients += pair_clients
    wait_until(lambda: all(c.replica_name for c in clients), timeout=10)

    statuses: list[int] = []
    endpoints = [alone.url, pair.url]
    storm(endpoints, range(0, 25), statuses)  # the first half of the storm, then the leader dies

    # kill -9 the leader just before a minute turns, so the schedule falls due during the failover
    wait_until(lambda: 57.0 <= time.time() % 60 < 58.5, timeout=70, interval=0.05)
    due = (int(time.time()) // 60 + 1) * 60
    alone.kill()
    killed_at = time.monotonic()
    storm(endpoints, range(25, 50), statuses)  # the dead replica's connections are refused: retried elsewhere

    # a new leader holds the lease
    def new_leader() -> str | None:
        health = pair.health()
        return health["replica"]["name"] if health["replica"]["leader"] else None

    leader = wait_until(new_leader, timeout=30)
    failover = time.monotonic() - killed_at
    assert leader in pair.names
    holder = redis.Redis.from_url(redis_server.url, decode_responses=True).get("bizra:leader")
    assert holder is not None and holder.rsplit(" ", 1)[0] == leader  # the lease is the new leader's
    print(f"failover: a new leader within {failover:.2f} s of the kill (lease {LEASE} s)")

    # exactly 50 incidents, one per group: none lost, none doubled
    incidents = all_incidents(pair.url)
    assert sorted(i["group_key"] for i in incidents) == sorted(f"storm-{g}" for g in range(50))
    assert set(statuses) == {200}

    # every client still connected saw every incident's event, whichever replica opened it
    ids = {i["id"] for i in incidents}
    for client in pair_clients:
        wait_until(lambda: client.incident_ids() >= ids, timeout=20)
    wait_until(lambda: clients[0].closed, timeout=10)  # the killed replica's client was cut off

    # the schedule due during the failover ran exactly once, started by the new leader
    wait_until(lambda: any(r["created_at"] >= due for r in audit_runs(pair.url)), timeout=30)
    # once more ticks have passed (a duplicate would come from the same tick or the next ones)
    ticks = pair.health()["controller"]["cycles"]
    wait_until(lambda: pair.health()["controller"]["cycles"] >= ticks + 6, timeout=30)
    assert len([r for r in audit_runs(pair.url) if due <= r["created_at"] < due + 55]) == 1

    # /health on the survivors agrees on the platform's score
    def agree() -> bool:
        seen: dict[str, tuple] = {}
        for _ in range(20):
            health = pair.health()
            seen[health["replica"]["name"]] = (health["ahsan_score"], health["replica"]["shared"])
            if len(seen) == 2:
                return len(set(seen.values())) == 1 and next(iter(seen.values()))[1] is True
        return False

    wait_until(agree, timeout=30, interval=0.2)

    # PostgreSQL down for 10 s during deliveries: 503s and retries, then every incident present once
    violations_before = pair.health()["violations"]["assumption_violated"]
    outage_statuses: list[int] = []
    postgres.stop()
    stopped_at = time.monotonic()
    with ThreadPoolExecutor(1) as background:
        sent = background.submit(storm, [pair.url], range(50, 60), outage_statuses)
        ready = wait_until(lambda: _not_ready(pair.url), timeout=30)
        assert any("store" in reason for reason in ready["reasons"])
        wait_until(lambda: outage_statuses.count(503) >= 5, timeout=30)
        wait_until(lambda: time.monotonic() - stopped_at >= 10, timeout=20, interval=0.1)  # the outage lasts 10 s
        postgres.start()
        sent.result(timeout=120)
    assert set(outage_statuses) == {200, 503}
    incidents = all_incidents(pair.url)
    assert sorted(i["group_key"] for i in incidents) == sorted(f"storm-{g}" for g in range(60))
    wait_until(lambda: httpx.get(pair.url + "/ready", timeout=10).status_code == 200, timeout=30)
    # the outage is one violation per replica that saw it (the two survivors), not one per refused request
    wait_until(lambda: pair.health()["violations"]["assumption_violated"] - violations_before == 2, timeout=10)
    assert pair.health()["violations"]["http_error"] == 0


def _not_ready(url: str) -> dict | None:
    response = httpx.get(url + "/ready", timeout=10)
    return response.json() if response.status_code == 503 else None
