"""/metrics: the required series, promtool-clean, bounded label cardinality."""
from __future__ import annotations

import subprocess

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import need_binary


def samples(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_required_series_are_exported(http):
    http.get("/health")
    http.get("/boom")
    text = http.get("/metrics").text
    for name in ("bizra_ahsan_score", "bizra_events_total", "bizra_violations_total",
                 "bizra_http_requests_total", "bizra_http_errors_total",
                 "bizra_http_request_duration_seconds_bucket", "bizra_ws_connections",
                 "bizra_controller_cycles_total", "process_resident_memory_bytes"):
        assert f"\n{name}" in text, name
    values = samples(text)
    assert values[("bizra_http_requests_total", (("code", "200"), ("method", "GET"), ("route", "/health")))] == 1
    assert values[("bizra_http_errors_total", (("code", "500"), ("route", "/boom")))] == 1
    assert values[("bizra_violations_total", (("kind", "http_error"),))] == 1
    assert values[("bizra_violations_total", (("kind", "silent_failure"),))] == 0


def test_passes_promtool_check_metrics(http):
    promtool = need_binary("promtool")
    http.get("/health")
    http.get("/nope")
    text = http.get("/metrics").text
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_distinct_bad_paths_add_no_series(http):
    http.get("/first-unknown-path")
    http.request("BREW", "/health")  # unknown method: one OTHER series at most
    http.get("/metrics")  # the scrape's own series exist from here on
    before = len(http.get("/metrics").text.splitlines())
    for i in range(1000):
        http.get(f"/unknown/{i}/x")
    http.request("BREW", "/health")
    after = http.get("/metrics").text.splitlines()
    assert len(after) == before
    assert not any("/unknown/" in line for line in after)


def test_latency_is_labelled_with_the_route_template_not_its_regex(http):
    http.get("/cmdb/items/x")
    http.get("/cmdb/items/y/impact")
    text = http.get("/metrics").text
    routes = {s.labels["route"] for family in text_string_to_metric_families(text) for s in family.samples
              if s.name == "bizra_http_request_duration_seconds_bucket"}
    assert {"/cmdb/items/{item_id}", "/cmdb/items/{item_id}/impact"} <= routes, routes
    values = samples(text)
    count = values[("bizra_http_request_duration_seconds_count", (("route", "/cmdb/items/{item_id}"),))]
    assert count == 1
    assert not any("(?P<" in route or "[^/]" in route for route in routes), routes
    assert "(?P<" not in text
