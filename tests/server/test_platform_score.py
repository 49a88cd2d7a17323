"""Two replicas sharing Redis: /health on each, PromQL summed over both (real Prometheus) and Python agree."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from bizra_nb.score import WEIGHTS, ahsan_score
from tests.conftest import TEST_ROUTES, need_binary, wait_until
from tests.prometheus_server import PrometheusProcess


def promql(prometheus: PrometheusProcess, query: str) -> float:
    result = httpx.get(prometheus.url + "/api/v1/query", params={"query": query}, timeout=10).json()["data"]["result"]
    return float(result[0]["value"][1]) if result else float("nan")


def test_the_platform_score_is_the_same_everywhere(make_server, redis_server, tmp_path):
    binary = need_binary("prometheus")
    # one controller cycle each (at start): the only events besides the requests below
    a, b = (make_server(redis_url=redis_server.url, controller_interval=3600, extra_handlers=TEST_ROUTES)
            for _ in range(2))
    targets = ", ".join(f'"127.0.0.1:{s.ports["http"]}"' for s in (a, b))
    prometheus = PrometheusProcess(binary, tmp_path / "prom", config=(
        "global: {scrape_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: bizra\n    static_configs:\n      - targets: [{targets}]\n"))
    try:
        # replica a: 480 good requests and 20 server errors (its own score 96); replica b: 500 good (100)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda path: httpx.get(a.url + path, timeout=30), ["/health"] * 480 + ["/boom"] * 20))
            list(pool.map(lambda path: httpx.get(b.url + path, timeout=30), ["/health"] * 500))
        keepers = [s.services.scorekeeper for s in (a, b)]
        events = sum(k.total_events for k in keepers)
        violations = {kind: sum(k.total_violations[kind] for k in keepers) for kind in WEIGHTS}
        python = ahsan_score(events, violations)
        assert violations["http_error"] == 20 and python == 98.0

        # PromQL over both instances, once Prometheus scraped them after the traffic
        wait_until(lambda: promql(prometheus, 'sum(bizra_events_total{job="bizra"})') == events, timeout=30,
                   interval=0.2)
        weighted = promql(prometheus, 'sum(bizra_violations_total * on (instance, kind) group_left '
                                      'max by (instance, kind) (bizra_violation_weight))')
        assert weighted == 20
        assert ahsan_score(events, {"http_error": weighted}) == python

        # the API: each replica reports the platform's score, and its own beside it
        def platform_scores() -> list[dict]:
            return [httpx.get(s.url + "/health", timeout=10).json() for s in (a, b)]

        health = wait_until(lambda: (h := platform_scores()) and all(x["ahsan_score"] == python for x in h) and h,
                            timeout=30, interval=0.2)
        assert [x["replica"]["ahsan_score"] for x in health] == [96.0, 100.0]
        assert all(x["violations"]["http_error"] == 20 for x in health)
    finally:
        prometheus.stop()
