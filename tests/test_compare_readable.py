"""bizra_nb.compare: a run that answered nothing is not compared on latency; differing parameters; number format."""
from __future__ import annotations

import json

import numpy as np

from bizra_nb import compare
from tests.test_compare import doc

LATENCY = {"p50_ms": 0.4, "p95_ms": 3.6, "p99_ms": 5.7, "max_ms": 52.1}


def dead(run_id="bbbbbb0002", **extra) -> dict:
    """A benchmark whose every request was refused, as an older run recorded it (quantiles of its errors)."""
    return doc(run_id=run_id, requests=2200, successes=0, error_rate=1.0, p50_ms=0.19, p95_ms=0.7, p99_ms=1.29,
               max_ms=6.8, throughput_rps=0.0, latency_quantiles_ms=list(np.linspace(0.1, 6.8, 101)), **extra)


def test_latencies_of_a_run_that_answered_nothing_are_not_comparable():
    a = doc(requests=1500, successes=1500, error_rate=0.0, throughput_rps=300.0,
            latency_quantiles_ms=list(np.linspace(0.3, 52.1, 101)), **LATENCY)
    for first, second, name, b_is in ((a, dead(), "B", "worse"),  # B the dead run: B's error rate is worse
                                      (dead("aaaaaa0001"), {**a, "run_id": "bbbbbb0002"}, "A", "better")):
        rows = {r["key"]: r for r in compare.metric_rows(first["summary"], second["summary"])}
        assert all(rows[k]["direction"] == "not comparable" for k in LATENCY)  # never better, never worse
        assert rows["error_rate"]["direction"] in ("worse", "better") and rows["successes"]["direction"] != "same"
        assert rows["error_rate"]["direction"] == b_is and rows["successes"]["direction"] == b_is  # never inverted
        page = compare.comparison_html(first, second)
        assert f"{name}: 100 % of requests failed; its latencies are not comparable." in page
        assert page.index('class="warning"') < page.index("<h2>Verdicts")  # at the top
        numbers = page[page.index('id="numbers"'):]
        for key in LATENCY:
            row = numbers[numbers.index(f'data-key="{key}"'):]
            row = row[:row.index("</tr>")]
            assert 'class="not-comparable">not comparable' in row and 'class="better"' not in row
            assert 'class="worse"' not in row
        assert 'class="plotly-graph-div"' not in page and f"run {name} had no successful response" in page


def test_a_mostly_failing_run_warns_and_a_healthy_pair_does_not():
    a = doc(requests=100, successes=100, error_rate=0.0, **LATENCY)
    half = doc(run_id="bbbbbb0002", requests=100, successes=40, error_rate=0.6, **{**LATENCY, "p99_ms": 1.0})
    page = compare.comparison_html(a, half)
    assert "B: 60 % of requests failed; its latencies are not comparable." in page
    assert {r["key"]: r for r in compare.metric_rows(a["summary"], half["summary"])}["p99_ms"]["direction"] == \
        "not comparable"
    ok = doc(run_id="bbbbbb0002", requests=100, successes=99, error_rate=0.01, **{**LATENCY, "p99_ms": 1.0})
    healthy = compare.comparison_html(a, ok)
    assert 'class="warning"' not in healthy and 'class="better">better' in healthy
    assert {r["key"]: r for r in compare.metric_rows(a["summary"], ok["summary"])}["p99_ms"]["direction"] == "better"
    # an audit has no requests/successes of a benchmark: never warned about
    audit = compare.comparison_html(doc("compliance_audit", availability=0.99, requests=10**8),
                                    doc("compliance_audit", run_id="bbbbbb0002", availability=0.98, requests=10**8))
    assert 'class="warning"' not in audit


def test_the_parameters_that_differ_are_named_at_the_top():
    a = doc(p99_ms=1.0)
    b = doc(run_id="bbbbbb0002", p99_ms=2.0)
    a["parameters"] = {"rate": 300.0, "duration": 10.0, "endpoints": ["/health"], "concurrency": 4}
    b["parameters"] = {"rate": 1100, "duration": 30.0, "endpoints": ["/health"], "ws_clients": 0,
                       "targets": {"p99_ms": "<b>x</b>"}}
    changes = compare.parameter_changes(a, b)
    assert [c["key"] for c in changes] == ["rate", "duration", "concurrency", "ws_clients", "targets"]
    assert changes[0] == {"key": "rate", "a": "300", "b": "1,100"} and changes[2]["b"] == "(default)"
    page = compare.comparison_html(a, b)
    top = page[page.index('id="parameters"'):page.index("Deltas are")]
    assert "<code>rate</code> 300 vs 1,100" in top and "<code>duration</code> 10 vs 30" in top
    assert "endpoints" not in top and "<b>x</b>" not in page and json.dumps("<b>x</b>")[1:-1] not in top
    assert 'id="parameters"' not in compare.comparison_html(doc(), doc(run_id="bbbbbb0002"))


def test_numbers_read_as_numbers():
    shown = compare._shown
    assert shown(104291000.0) == "104,291,000" and shown(103687000) == "103,687,000"
    assert shown(5.0114567) == "5.0115" and shown(1197.4) == "1,197.4" and shown(0.000123456) == "0.0001235"
    assert shown(0.999259, "availability") == "99.926 %" and shown(1.0, "error_rate") == "100 %"
    assert shown(0.7413, "error_budget_used") == "74.13 %" and shown(0.0, "error_rate") == "0 %"
    assert compare._delta(0.0012, "availability") == "+0.12 pp" and compare._delta(-4500) == "-4,500"
    page = compare.comparison_html(doc("compliance_audit", events=1.04291e8, availability=0.999259),
                                   doc("compliance_audit", run_id="bbbbbb0002", events=1.04291e8,
                                       availability=0.999301))
    assert "e+08" not in page and ">104,291,000<" in page and ">99.926 %<" in page and ">99.93 %<" in page


def test_the_latency_axis_is_labelled_at_1_2_5_only_and_the_figure_has_no_empty_band():
    assert compare._log_ticks(0.3, 52.1) == [0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
    a = doc(latency_quantiles_ms=list(np.linspace(0.3, 9, 101)), requests=10, successes=10, error_rate=0.0)
    b = doc(run_id="bbbbbb0002", latency_quantiles_ms=list(np.linspace(0.3, 52, 101)), requests=10, successes=10,
            error_rate=0.0)
    fig = compare.figures(a, b, "benchmark")[0][1]
    assert fig.layout.margin.t == 30 and fig.layout.xaxis.type == "log"
    assert list(fig.layout.xaxis.ticktext) == ["0.2", "0.5", "1", "2", "5", "10", "20", "50", "100"]
    assert fig.layout.xaxis.tickvals == tuple(compare._log_ticks(0.3, 52))  # labels at these values only


def test_status_and_direction_never_wrap_mid_word():
    page = compare.comparison_html(doc(status="succeeded"), doc(run_id="bbbbbb0002", status="failed"))
    assert '<td class="nowrap">succeeded</td>' in page and "#numbers td:nth-child(5)" in page


def test_a_latency_the_failed_run_did_not_measure_is_not_comparable_rather_than_only_in_a():
    a = doc(requests=100, successes=100, error_rate=0.0, **LATENCY)
    b = doc(run_id="bbbbbb0002", requests=100, successes=0, error_rate=1.0, p50_ms=None, p99_ms=None,
            errors_by_status={"503": 100})
    rows = {r["key"]: r for r in compare.metric_rows(a["summary"], b["summary"])}
    assert rows["p50_ms"]["direction"] == "not comparable" and rows["p50_ms"]["b"] is None
    assert rows["errors_by_status.503"]["sense"] == "lower"
