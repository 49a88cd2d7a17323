"""The Prometheus source against a real Prometheus loaded with the demo fleet (promtool create-blocks-from)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bizra_nb.diagnose import diagnose
from bizra_nb.errors import InvalidInput, Unavailable
from bizra_nb.openmetrics import create_blocks
from bizra_nb.prometheus import PrometheusSource, choose_step
from tests.conftest import need_binary
from tests.prometheus_server import PrometheusProcess


@pytest.fixture(scope="module")
def prometheus(fleet, tmp_path_factory):
    binary = need_binary("prometheus")
    promtool = need_binary("promtool")
    work = tmp_path_factory.mktemp("prom")
    create_blocks(fleet.data.metrics, work / "tsdb", promtool=promtool, work_dir=work)
    server = PrometheusProcess(binary, work, tsdb=work / "tsdb")
    yield server
    server.stop()


def window(fleet):
    return fleet.data.metrics.index[0], fleet.data.metrics.index[-1]


def test_fetch_returns_the_loaded_data(prometheus, fleet):
    start, end = window(fleet)
    fetch = PrometheusSource(prometheus.url).fetch(start=start, end=end, step=15)
    frame = fetch.frame
    assert set(frame.columns) == set(fleet.data.metrics.columns)
    assert len(frame) == len(fleet.data.metrics)
    expected = fleet.data.metrics["catalog-db_lat_50"].to_numpy()
    assert np.allclose(frame["catalog-db_lat_50"].to_numpy(), expected, rtol=1e-5)
    assert 'fleet_lat_50{}' in fetch.queries and fetch.warnings == []


def test_diagnosis_on_prometheus_matches_the_dataset(prometheus, fleet):
    start, end = window(fleet)
    from_prom, _ = diagnose(PrometheusSource(prometheus.url), start=start, end=end, cmdb=fleet.data.cmdb)
    from bizra_nb.sources import open_source

    from_file, _ = diagnose(open_source(fleet.metrics), start=start, end=end, cmdb=fleet.data.cmdb)
    assert from_prom.top(3) == from_file.top(3) and from_prom.top(1) == ["catalog-db"]
    assert from_prom.anomaly_start == from_file.anomaly_start


def test_services_filter(prometheus, fleet):
    start, end = window(fleet)
    fetch = PrometheusSource(prometheus.url).fetch(start=start, end=end, services=["cart", "user"])
    assert {c.split("_")[0] for c in fetch.frame.columns} == {"cart", "user"}
    assert 'fleet_cpu{service=~"cart|user"}' in fetch.queries


def test_chunked_range_queries_merge_exactly(prometheus, fleet):
    start, end = window(fleet)
    source = PrometheusSource(prometheus.url)
    whole = source.query_range('fleet_cpu{service="cart"}', start, end, 15)
    chunked = source.query_range('fleet_cpu{service="cart"}', start, end, 15, max_points=37)
    assert len(chunked) == len(whole) == len(fleet.data.metrics)
    pd.testing.assert_frame_equal(whole, chunked)


def test_step_choice_keeps_under_the_point_limit():
    start = pd.Timestamp("2026-10-01", tz="UTC")
    for span in ("1h", "1D", "30D", "365D"):
        step = choose_step(start, start + pd.Timedelta(span))
        assert pd.Timedelta(span).total_seconds() / step <= 10_000
    assert choose_step(start, start + pd.Timedelta("1h")) == 15


def test_instant_query(prometheus, fleet):
    at = fleet.data.metrics.index[-1]
    values = PrometheusSource(prometheus.url).query('fleet_mem{service="user-db"}', at=at)
    assert len(values) == 1
    assert values.iloc[0] == pytest.approx(fleet.data.metrics["user-db_mem"].iloc[-1], rel=1e-5)


def test_invalid_promql_shows_prometheus_message(prometheus, fleet):
    start, end = window(fleet)
    with pytest.raises(InvalidInput) as info:
        PrometheusSource(prometheus.url).query_range("sum(rate(", start, end)
    assert "rejected the query" in info.value.message and "parse error" in info.value.message


def test_unreachable_server_is_unavailable():
    with pytest.raises(Unavailable, match="does not answer"):
        PrometheusSource("http://127.0.0.1:9", timeout=2).query("up")


def test_headers_for_token_and_tenant():
    source = PrometheusSource("http://127.0.0.1:9", token="s3cret", tenant="team-a")
    assert source.client.headers == {"Authorization": "Bearer s3cret", "X-Scope-OrgID": "team-a"}


def test_cli_diagnose_against_prometheus(prometheus, fleet):
    start, end = window(fleet)
    result = subprocess.run([sys.executable, "-m", "bizra_nb.cli", "diagnose", "--prometheus", prometheus.url,
                             "--start", start.isoformat(), "--end", str(int(end.timestamp())),
                             "--cmdb", str(fleet.cmdb), "--format", "json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ranking"][0]["service"] == "catalog-db"


def test_cmdb_selectors_override_the_default_queries(prometheus, fleet):
    from bizra_nb.cmdb import Cmdb

    cmdb = Cmdb.from_dict({"items": [{"id": "cart", "kind": "service",
                                      "selectors": {"cpu_doubled": 'fleet_cpu{service="cart"} * 2'}}]})
    start, end = window(fleet)
    fetch = PrometheusSource(prometheus.url, cmdb=cmdb).fetch(start=start, end=end, services=["cart"], step=15)
    assert list(fetch.frame.columns) == ["cart_cpu_doubled"]
    assert np.allclose(fetch.frame["cart_cpu_doubled"], 2 * fleet.data.metrics["cart_cpu"], rtol=1e-5)
