"""Diagnosis reports name every anomalous service, one unit per value, unclipped graph labels; the index fits a phone."""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from bizra_nb.fleet import demo_cmdb
from bizra_nb.plots import candidate_series, cmdb_graph, ranking_bar
from bizra_nb.rca import Candidate, Diagnosis, Evidence, explain
from bizra_nb.reports import write_index
from bizra_nb.summaries import incident_summary

START = pd.Timestamp("2026-10-27T16:40Z")


def candidate(service: str, metric: str = "error", score: float = 5.0, evidence: bool = True) -> Candidate:
    ev = [Evidence(metric, "up", score, START, 0.002, 0.1327)] if evidence else []
    return Candidate(service, score, metric, START if evidence else None, ev, explanation=f"{service} moved")


def diagnosis() -> Diagnosis:
    ranking = [candidate(s, score=9 - n) for n, s in enumerate(["cart-cache", "cart", "checkout", "api-gateway",
                                                                 "frontend", "orders"])]
    ranking += [candidate("payments", evidence=False, score=0.5), candidate("search", evidence=False, score=0.4)]
    return Diagnosis(START, True, START + pd.Timedelta("30min"), ranking)


def test_also_anomalous_lists_every_other_service_with_evidence():
    text = incident_summary(diagnosis(), {"title": "HighErrorRate on api-gateway"})
    also = next(line for line in text.split("\n\n") if line.startswith("Also anomalous"))
    for service in ("cart", "checkout", "api-gateway", "frontend", "orders"):
        assert f"` {service} `" in also, also  # md_code pads its spans
    assert "2 other service(s) stayed within their normal range" in text


def test_a_ratio_is_a_percentage_in_the_explanation_the_bars_and_the_series():
    c = candidate("cart-cache")
    sentence = explain(c, [c], None)
    assert "rose to 13.27 % (normally 0.20 %" in sentence, sentence
    assert "ratio" not in " ".join(ranking_bar(diagnosis()).data[0].text)
    frame = pd.DataFrame({"cart-cache_error": [0.01, 0.13]}, index=[START, START + pd.Timedelta("1min")])
    fig = candidate_series(frame, Diagnosis(START, True, START, [c]))
    titles = [a.text for a in fig.layout.annotations]
    assert "cart-cache: error (%)" in titles and fig.layout.yaxis.title.text == "%"
    assert "lat_99" in explain(candidate("cart", "lat_99"), [], None) and " ms " in explain(
        candidate("cart", "lat_99"), [], None)


def test_the_graph_leaves_room_for_the_outermost_labels():
    cmdb = demo_cmdb()
    fig = cmdb_graph(cmdb, anomalous={"cart-cache"}, path=["cart-cache", "cart", "checkout", "api-gateway"],
                     alerting="api-gateway")
    nodes = fig.data[-1]
    low, high = fig.layout.xaxis.range
    label_half = 0.5 * len("cart-cache (root cause)") / 150  # of the axis, at ~150 characters across
    assert min(nodes.x) - low >= label_half
    assert high - max(nodes.x) >= label_half


def test_the_reports_index_fits_a_phone(browser, tmp_path):
    runs = [{"id": f"r{n}", "kind": "incident_diagnosis", "status": "failed", "created_at": time.time() - n,
             "title": "Incident 12 diagnosis — a-very-long-service-name-without-breaks",
             "error": "dataset-file-not-found:" + "x" * 150,
             "summary": {"headline": "HighErrorRate on api-gateway: cart-cache error rose to 13.27 %"}}
            for n in range(3)]
    index = write_index(runs, tmp_path)
    context = browser.new_context(viewport={"width": 390, "height": 800})
    page = context.new_page()
    page.goto(Path(index).as_uri())
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the index is {width} px wide at 390 px"
    context.close()
