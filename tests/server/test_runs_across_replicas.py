"""Runs with several replicas on one PostgreSQL store: a cancel through any replica, dead replicas' runs failed."""
from __future__ import annotations

import shutil
import threading
import time

import httpx
import pytest
import sqlalchemy as sa

from bizra_nb.runner import REPLICA_LOST
from bizra_nb.store import Store
from tests.conftest import wait_until
from tests.server.test_runs_api import TINY, finished


@pytest.fixture
def replicas(make_server, tmp_path, monkeypatch, postgres_url, redis_server):
    """Start replicas sharing one PostgreSQL store and Redis; the tiny test notebooks are runnable."""
    import bizra_nb.runner as runner_module

    folder = tmp_path / "notebooks"
    shutil.copytree(runner_module.NOTEBOOKS_DIR, folder)
    for nb in TINY.glob("*.ipynb"):
        shutil.copy(nb, folder)
    monkeypatch.setattr(runner_module, "NOTEBOOKS_DIR", folder)

    def start(**overrides):
        running = make_server(store_url=postgres_url, redis_url=redis_server.url, cell_timeout=30,
                              heartbeat_interval=30, **overrides)
        running.services.runner.notebooks_dir = folder
        return running

    return start


def test_a_run_is_cancelled_through_a_replica_that_does_not_run_it(replicas, auth):
    owner, other = replicas(), replicas()
    run_id = httpx.post(owner.url + "/runs", json={"notebook": "sleeps_past_timeout"}, headers=auth).json()["id"]
    wait_until(lambda: run_id in owner.services.runner._running, timeout=60)  # its worker runs on `owner`
    response = httpx.post(other.url + f"/runs/{run_id}/cancel", headers=auth)
    assert response.status_code == 202
    run = finished(httpx.Client(base_url=other.url), run_id)
    assert run["status"] == "cancelled" and run["owner"] == owner.services.replica


def test_the_leader_fails_the_runs_of_a_dead_replica_not_of_a_live_one_with_a_skewed_clock(replicas):
    leader = replicas(leader_lease=0.5)
    wait_until(lambda: leader.services.leadership.is_leader, timeout=20)
    store: Store = leader.services.store
    for run_id, owner in (("dead-run", "ghost:1"), ("live-run", "skewed:1")):
        store.create_run(id=run_id, notebook="n", kind="other", status="running", trigger="test", parameters={},
                         created_at=time.time(), owner=owner)
        store.heartbeat_replica(owner, {})
    beating = threading.Event()

    def skewed_heartbeats() -> None:  # alive, but its clock is an hour behind the leader's
        while not beating.is_set():
            store.heartbeat_replica("skewed:1", {})
            with store.engine.begin() as conn:
                conn.execute(sa.text("UPDATE replicas SET seen_at = seen_at - 3600 WHERE name = 'skewed:1'"))
            beating.wait(0.1)

    thread = threading.Thread(target=skewed_heartbeats, daemon=True)
    thread.start()
    try:
        dead = wait_until(lambda: (r := store.get_run("dead-run"))["status"] == "failed" and r, timeout=30)
        assert dead["error"] == REPLICA_LOST
        assert store.get_run("live-run")["status"] == "running"  # watched as long, but its heartbeat moves
    finally:
        beating.set()
        thread.join()
