"""One incident per alert group on a real server, even when Alertmanager delivers a group concurrently."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import TOKEN
from tests.test_incidents import payload

AUTH = {"Authorization": f"Bearer {TOKEN}"}
DELIVERIES = 20


def deliver_at_once(url: str, body: dict, count: int = DELIVERIES) -> list[dict]:
    """POST ``body`` to the webhook ``count`` times from ``count`` threads, each with its own connection."""
    def one(_: int) -> dict:
        with httpx.Client(base_url=url, timeout=60) as client:
            response = client.post("/alerts/webhook", json=body, headers=AUTH)
            assert response.status_code == 200, response.text
            return response.json()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_concurrent_deliveries_of_one_group_open_one_incident(server, http):
    outcomes = deliver_at_once(server.url, payload(group_key="race"))
    assert [o["action"] for o in outcomes].count("opened") == 1
    assert {o["incident_id"] for o in outcomes} == {outcomes[0]["incident_id"]}
    incidents = http.get("/rca/incidents").json()["incidents"]
    assert len(incidents) == 1 and incidents[0]["group_key"] == "race"


def test_a_resolved_group_that_fires_again_opens_a_new_incident(server, http):
    first = deliver_at_once(server.url, payload(group_key="again"))[0]["incident_id"]
    resolved = deliver_at_once(server.url, payload(status="resolved", group_key="again"))
    assert [o["action"] for o in resolved].count("resolved") == 1
    assert {o["action"] for o in resolved} <= {"resolved", "unchanged"}
    assert http.get(f"/rca/incidents/{first}").json()["status"] == "resolved"
    again = deliver_at_once(server.url, payload(group_key="again"))
    assert [o["action"] for o in again].count("opened") == 1
    second = {o["incident_id"] for o in again}
    assert len(second) == 1 and first not in second
    assert http.get("/rca/incidents").json()["count"] == 2


def test_reopening_an_incident_of_a_group_that_has_another_active_is_409(server, http):
    first = deliver_at_once(server.url, payload(group_key="g"), count=1)[0]["incident_id"]
    deliver_at_once(server.url, payload(status="resolved", group_key="g"), count=1)
    deliver_at_once(server.url, payload(group_key="g"), count=1)
    response = http.patch(f"/rca/incidents/{first}", json={"status": "open"}, headers=AUTH)
    assert response.status_code == 409 and "another active incident" in response.json()["error"]["message"]
