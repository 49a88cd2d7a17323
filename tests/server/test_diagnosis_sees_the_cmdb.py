"""Diagnoses on a real Prometheus use the CMDB as it is now: a new per-service selector applies without a restart."""
from __future__ import annotations

import httpx
import pytest

from bizra_nb.openmetrics import create_blocks
from tests.conftest import TOKEN, need_binary
from tests.prometheus_server import PrometheusProcess

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SELECTOR = 'fleet_lat_50{service="catalog-db"} * 3'


@pytest.fixture(scope="module")
def prometheus(fleet, tmp_path_factory):
    binary = need_binary("prometheus")
    promtool = need_binary("promtool")
    work = tmp_path_factory.mktemp("prom-cmdb")
    create_blocks(fleet.data.metrics, work / "tsdb", promtool=promtool, work_dir=work)
    server = PrometheusProcess(binary, work, tsdb=work / "tsdb")
    yield server
    server.stop()


def test_a_new_cmdb_selector_applies_to_the_next_diagnosis(make_server, prometheus, fleet):
    running = make_server(prometheus_url=prometheus.url)
    http = httpx.Client(base_url=running.url, timeout=60)
    assert http.post("/cmdb/import", content=fleet.cmdb.read_text(), headers=AUTH).status_code == 200
    window = {"start": fleet.data.metrics.index[0].isoformat(), "end": fleet.data.metrics.index[-1].isoformat()}
    before = http.post("/rca/diagnose", json=window, headers=AUTH)
    assert before.status_code == 200, before.text
    assert SELECTOR not in before.json()["queries"]  # the source is built now, with this CMDB

    item = http.get("/cmdb/items/catalog-db").json()
    for derived in ("depends_on", "dependents", "runs_on"):
        item.pop(derived, None)
    changed = http.put("/cmdb/items/catalog-db", json={**item, "selectors": {"lat_50": SELECTOR}}, headers=AUTH)
    assert changed.status_code == 200, changed.text

    after = http.post("/rca/diagnose", json=window, headers=AUTH)
    assert after.status_code == 200, after.text
    assert SELECTOR in after.json()["queries"]  # no restart needed
    assert after.json()["ranking"][0]["service"] == "catalog-db"  # the selector's series was fetched and ranked
