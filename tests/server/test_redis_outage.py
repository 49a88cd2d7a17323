"""A replica with --redis-url whose Redis goes away: it says so (/ready, the stream), keeps serving, and recovers."""
from __future__ import annotations

import httpx

from tests.conftest import TOKEN, wait_until
from tests.server.test_live import connect, next_of
from tests.test_incidents import payload

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def ready(url: str) -> httpx.Response:
    return httpx.get(url + "/ready", timeout=10)


def test_redis_down_then_back(make_server, redis_server):
    server = make_server(redis_url=redis_server.url, leader_lease=1.0)
    wait_until(lambda: ready(server.url).status_code == 200, timeout=20)
    # the controller's own cycle saw it up (what /health's components show)
    health = wait_until(lambda: (h := httpx.get(server.url + "/health").json())["components"]["redis"]["ok"] and h,
                        timeout=20)
    assert health["replica"]["shared"] is True and health["replica"]["leader"] is True
    ws = connect(server.ws_url)
    assert next_of(ws, "stream")["data"]["shared"] is True  # said at once on connecting
    ws.send('{"subscribe": ["incident", "stream"]}')

    redis_server.stop()
    assert next_of(ws, "stream")["data"]["shared"] is False
    # degraded, still ready: a 503 on every replica would have the load balancer drop them all
    body = wait_until(lambda: (r := ready(server.url)).status_code == 200 and r.json().get("degraded") and r.json(),
                      timeout=20)
    assert [reason.split(":")[0] for reason in body["degraded"]] == ["redis"] and body["ready"] is True
    assert body["components"]["redis"]["ok"] is False
    # its own clients are still served: an incident opened now reaches them, once
    opened = httpx.post(server.url + "/alerts/webhook", json=payload(group_key="while-down"), headers=AUTH).json()
    event = next_of(ws, "incident")
    assert event["data"]["id"] == opened["incident_id"] and event["data"]["action"] == "opened"
    health = wait_until(lambda: (h := httpx.get(server.url + "/health").json())["replica"]["leader"] is False and h,
                        timeout=20)
    assert health["status"] == "ok" and health["replica"]["shared"] is False  # alive, its own score

    redis_server.start()
    assert next_of(ws, "stream", timeout=30)["data"]["shared"] is True
    wait_until(lambda: "degraded" not in ready(server.url).json(), timeout=30)
    second = httpx.post(server.url + "/alerts/webhook", json=payload(group_key="after"), headers=AUTH).json()
    event = next_of(ws, "incident")
    assert event["data"]["id"] == second["incident_id"]
    wait_until(lambda: httpx.get(server.url + "/health").json()["replica"]["leader"], timeout=20)
    # the outage counted once in the score, not once per check or request
    assert server.services.scorekeeper.snapshot()["violations"]["assumption_violated"] == 1
    ws.close()


def test_platforms_on_two_databases_of_one_redis_keep_their_events_apart(make_server, redis_server):
    production = make_server(redis_url=redis_server.url)  # .../0
    staging = make_server(redis_url=redis_server.url.rsplit("/", 1)[0] + "/1")
    for replica in (production, staging):
        wait_until(lambda: ready(replica.url).json()["components"].get("redis", {}).get("ok"), timeout=20)
    ws = connect(staging.ws_url)
    ws.send('{"subscribe": ["incident"]}')
    next_of(ws, "subscribed")
    httpx.post(production.url + "/alerts/webhook", json=payload(group_key="prod"), headers=AUTH)
    own = httpx.post(staging.url + "/alerts/webhook", json=payload(group_key="staging"), headers=AUTH).json()
    assert next_of(ws, "incident")["data"]["id"] == own["incident_id"]  # production's came first, if it leaked
    ws.close()
