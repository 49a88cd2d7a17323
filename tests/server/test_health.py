"""/health and /ready on a real server."""
from __future__ import annotations

import sqlite3

from bizra_nb import __version__
from tests.conftest import wait_until


def test_health_fields_and_the_arabic_key(http):
    response = http.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert "احسان".encode() in response.content  # raw UTF-8, so `grep احسان` finds it
    body = response.json()
    assert body["status"] == "ok" and body["version"] == __version__
    assert body["ahsan_score"] == body["احسان"] == 100.0
    assert body["tier"] == "perfect"
    assert body["uptime_seconds"] >= 0
    assert set(body["violations"]) == {"http_error", "validation_failed", "run_failed",
                                       "assumption_violated", "silent_failure"}
    assert "controller" in body and "components" in body


def test_components_appear_after_a_cycle(server, http):
    wait_until(lambda: http.get("/health").json()["components"].get("store", {}).get("ok"))


def test_ready_when_everything_works(server, http):
    wait_until(lambda: server.services.controller.alive)
    response = http.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json()["ready"] is True


def test_ready_503_when_the_store_is_not_writable(server, http):
    wait_until(lambda: server.services.controller.alive)
    locker = sqlite3.connect(server.settings.data_dir / "bizra.sqlite3", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        response = http.get("/ready")
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False and body["components"]["store"]["ok"] is False
    assert any(reason.startswith("store:") for reason in body["reasons"])
    assert http.get("/ready").status_code == 200  # and back once the lock is gone


def test_ready_503_when_the_metric_backend_does_not_answer(make_server):
    import httpx

    running = make_server(prometheus_url="http://127.0.0.1:9")  # nothing listens on the discard port
    wait_until(lambda: running.services.controller.alive)
    response = httpx.get(running.url + "/ready", timeout=10)
    assert response.status_code == 503
    assert "metric_backend" in " ".join(response.json()["reasons"])
