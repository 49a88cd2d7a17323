"""bizra_nb.compare: senses, deltas, changed verdicts, overlaid figures, escaping in Chromium; real runs compared."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bizra_nb import compare, summaries
from bizra_nb.cli import main
from bizra_nb.errors import InvalidInput
from tests.browser import Watched


def doc(notebook="benchmark", run_id="aaaaaa0001", status="succeeded", **summary) -> dict:
    return {"run_id": run_id, "notebook": notebook, "status": status, "created_at": 1.79e9,
            "parameters": {}, "error": None, "summary": summary, "title": f"{notebook} run"}


def test_senses_come_from_the_table_next_to_the_summaries():
    assert summaries.sense_of("p99_ms") == "lower" and summaries.sense_of("error_rate") == "lower"
    assert summaries.sense_of("throughput_rps") == "higher" and summaries.sense_of("score") == "higher"
    assert summaries.sense_of("availability") == "higher" and summaries.sense_of("error_budget_used") == "lower"
    assert summaries.sense_of("violations.latency") == "lower"  # each key of the audit's violations dict
    assert summaries.sense_of("slo.score") is None  # a target, not a measure
    assert summaries.sense_of("requests") is None and summaries.sense_of("no_such_metric") is None


def test_deltas_and_directions_follow_each_metrics_sense():
    a = {"p99_ms": 10.0, "throughput_rps": 900.0, "score": 97.5, "requests": 100, "mystery": 1.0, "same": 3,
         "violations": {"latency": 4, "errors": 1}, "only_a": 1, "incident_id": 7, "passed": True}
    b = {"p99_ms": 12.5, "throughput_rps": 1000.0, "score": 96.0, "requests": 120, "mystery": 2.0, "same": 3,
         "violations": {"latency": 2, "errors": 1}, "only_b": 2, "incident_id": 9, "passed": False}
    rows = {r["key"]: r for r in compare.metric_rows(a, b)}
    assert rows["p99_ms"]["delta"] == 2.5 and rows["p99_ms"]["direction"] == "worse"  # lower is better
    assert rows["throughput_rps"]["delta"] == 100.0 and rows["throughput_rps"]["direction"] == "better"
    assert rows["score"]["direction"] == "worse"  # higher is better, and it fell
    assert rows["violations.latency"]["delta"] == -2 and rows["violations.latency"]["direction"] == "better"
    assert rows["violations.errors"]["direction"] == "same"
    assert rows["mystery"]["direction"] == "changed" and rows["mystery"]["sense"] is None  # no sense: no verdict
    assert rows["requests"]["direction"] == "changed"  # known, but neither better nor worse
    assert rows["only_a"]["direction"] == "only in A" and rows["only_b"]["direction"] == "only in B"
    assert "incident_id" not in rows and "passed" not in rows  # an id and a verdict are not numbers


def test_verdicts_that_changed():
    rows = {r["key"]: r for r in compare.verdict_rows(
        {"status": "succeeded", "passed": True, "headline": "pass"},
        {"status": "succeeded", "passed": False, "headline": "FAIL"}, "benchmark")}
    assert rows["passed"]["changed"] and rows["passed"]["direction"] == "worse"
    assert not rows["status"]["changed"]
    audit = {r["key"]: r for r in compare.verdict_rows(
        {"verdict": "not compliant", "compliant": False, "tier": "B", "reasons": ["score 90 is under 95"]},
        {"verdict": "compliant", "compliant": True, "tier": "B", "reasons": []}, "compliance_audit")}
    assert audit["verdict"]["changed"] and audit["compliant"]["direction"] == "better"
    assert not audit["tier"]["changed"] and audit["reasons"]["a"] == "score 90 is under 95"
    diagnosis = {r["key"]: r for r in compare.verdict_rows(
        {"verdict": "root_cause", "top_causes": [{"service": "db"}], "confidence": {"level": "high"}},
        {"verdict": "root_cause", "top_causes": [{"service": "api"}], "confidence": {"level": "low"}},
        "incident_diagnosis")}
    assert diagnosis["top_cause"]["a"] == "db" and diagnosis["top_cause"]["changed"]
    assert diagnosis["confidence.level"]["changed"] and not diagnosis["verdict"]["changed"]


def test_runs_of_different_notebooks_are_refused_naming_b():
    with pytest.raises(InvalidInput) as info:
        compare.comparison_html(doc("benchmark"), doc("compliance_audit", run_id="bbbbbb0002"))
    assert info.value.field == "b" and "'compliance_audit'" in info.value.message
    assert "same notebook" in info.value.message


def test_the_page_shows_numbers_verdicts_and_overlays_the_figures_both_runs_hold():
    qa, qb = list(np.linspace(1, 10, 101)), list(np.linspace(2, 30, 101))
    page = compare.comparison_html(doc(p99_ms=5.0, passed=True, latency_quantiles_ms=qa),
                                   doc(run_id="bbbbbb0002", p99_ms=7.0, passed=False, latency_quantiles_ms=qb))
    assert 'data-key="p99_ms"' in page and 'class="worse">worse' in page and "+2" in page
    assert page.count('class="plotly-graph-div"') == 1 and "Latency distribution" in page
    assert "A (aaaaaa0001)" in page and "B (bbbbbb0002)" in page
    assert page.count("sha256-") >= 1 and "script-src 'sha256-" in page  # only its own scripts may run
    none = compare.comparison_html(doc(p99_ms=5.0), doc(run_id="bbbbbb0002", p99_ms=5.0, latency_quantiles_ms=qb))
    assert 'class="plotly-graph-div"' not in none and "run A did not record them" in none
    assert "script-src 'none'" in none and "No verdict changed" in none
    audit = compare.comparison_html(
        doc("compliance_audit", score=99.0, score_hourly={"start": "2026-09-01T00:00:00+00:00", "step_minutes": 60,
                                                          "values": [99.0, None, 98.5]}),
        doc("compliance_audit", run_id="bbbbbb0002", score=98.0,
            score_hourly={"start": "2026-10-01T00:00:00+00:00", "step_minutes": 60, "values": [97.0] * 30}))
    assert "Score over the month" in audit and audit.count('class="plotly-graph-div"') == 1


def test_figure_data_that_is_not_numbers_draws_nothing():
    bad = doc(latency_quantiles_ms=["<script>", 1.0])
    page = compare.comparison_html(bad, doc(run_id="bbbbbb0002", latency_quantiles_ms=[1.0, 2.0]))
    assert 'class="plotly-graph-div"' not in page and "&lt;script&gt;" not in page  # not drawn, not shown


HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


def test_hostile_summary_strings_are_escaped_and_nothing_runs_in_chromium(browser, tmp_path):
    a = doc(run_id=HOSTILE, headline=HOSTILE, p99_ms=5.0, passed=True, latency_quantiles_ms=[1.0, 2.0, 3.0],
            **{HOSTILE: 1.0, "violations": {HOSTILE: 2}})
    a.update(title=HOSTILE, error={"type": HOSTILE, "message": HOSTILE}, status=HOSTILE)
    b = doc(run_id="bbbbbb0002", headline="</td></table>" + HOSTILE, p99_ms=4.0, passed=False,
            latency_quantiles_ms=[1.0, 1.5, 2.0], **{HOSTILE: 3.0})
    out = compare.write_comparison(a, b, tmp_path / "compare.html")
    page = out.read_text()
    assert "<script>window.pwned" not in page and "<img src=x" not in page
    watched = Watched(browser, out.as_uri())
    try:
        watched.page.wait_for_selector(".plotly-graph-div .main-svg", timeout=15000)  # its own figure drew
        assert watched.page.evaluate("window.pwned") is None, "a script from summary.json ran"
        text = watched.page.inner_text("body")
        assert HOSTILE in text  # shown as text, whole
        assert watched.page.locator("img").count() == 0
        assert watched.hosts <= {"file"}, watched.hosts  # nothing fetched
    finally:
        watched.close()


def test_summary_json_is_read_with_a_size_limit(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({**doc(), "pad": "x" * 5000}))
    assert compare.read_document(folder)["notebook"] == "benchmark"
    monkeypatch.setattr(compare, "MAX_SUMMARY_BYTES", 1000)
    with pytest.raises(InvalidInput, match="larger than 1000 bytes"):
        compare.read_document(folder)
    (folder / "summary.json").write_text("[1, 2]")
    with pytest.raises(InvalidInput, match="not a run's summary"):
        compare.read_document(folder / "summary.json")


def test_cli_compares_run_folders_and_refuses_different_notebooks(tmp_path, capsys):
    for name, d in (("a", doc(p99_ms=5.0)), ("b", doc(run_id="bbbbbb0002", p99_ms=6.0)),
                    ("c", doc("compliance_audit", run_id="cccccc0003"))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(d))
    out = tmp_path / "out.html"
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b" / "summary.json"), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert 'data-key="p99_ms"' in out.read_text()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "bizra-nb compare: error: run b ran the notebook 'compliance_audit'" in err


# -- real runs: what the notebooks record is what the comparison overlays ---------------------------------------


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    from bizra_nb.runner import Runner
    from bizra_nb.store import Store

    root = tmp_path_factory.mktemp("compare-runs")
    r = Runner(Store.open(root / "data"), reports_dir=root / "reports", workers=2, cell_timeout=120)
    r.data_dir_for_tests = root / "data"
    yield r
    r.close()


def test_two_real_benchmarks_compare_with_their_latency_distributions(runner, server, tmp_path, capsys):
    generous = {"throughput_rps": 10, "p50_ms": 5000, "p95_ms": 5000, "p99_ms": 5000, "ws_latency_ms": 5000}
    runs = [runner.run("benchmark", {"target_url": server.url, "duration": 1.0, "rate": rate, "concurrency": 4,
                                     "ws_clients": 0, "targets": generous}) for rate in (50.0, 100.0)]
    quantiles = runs[0]["summary"]["latency_quantiles_ms"]
    assert len(quantiles) == summaries.QUANTILES and quantiles == sorted(quantiles)
    assert quantiles[-1] == runs[0]["summary"]["max_ms"]
    out = tmp_path / "bench.html"
    assert main(["compare", runs[0]["id"], runs[1]["id"], "--data-dir", str(runner.data_dir_for_tests),
                 "--out", str(out)]) == 0
    page = out.read_text()
    assert "Latency distribution" in page and f"A ({runs[0]['id']})" in page and f"B ({runs[1]['id']})" in page
    assert 'data-key="requests"' in page and ">50<" in page and ">100<" in page  # 50 and 100 requests offered


def test_a_real_audit_records_its_score_over_the_month(runner, tmp_path):
    from bizra_nb.dataset import write_dataset
    from bizra_nb.fleet import platform_month
    from bizra_nb.store import Store

    data = tmp_path / "audit"
    write_dataset(platform_month("2026-09"), data / "platform.parquet")
    Store.open(data)
    run = runner.run("compliance_audit", {"month": "2026-09", "source": str(data / "platform.parquet"),
                                          "data_dir": str(data)})
    hourly = run["summary"]["score_hourly"]
    assert hourly["start"].startswith("2026-09-01T00:00") and len(hourly["values"]) == 30 * 24
    values = [v for v in hourly["values"] if v is not None]
    assert len(values) == 30 * 24 and min(values) <= run["summary"]["score_median"] <= max(values) <= 100
    page = compare.comparison_html(compare.run_document(run), compare.run_document(run))
    assert "Score over the month" in page and "No verdict changed" in page and 'class="same">same' in page


# -- untrusted numbers: huge integers, NaN, infinities, deep nesting never break the page -----------------------

HUGE = 10 ** 400
ODD_NUMBERS = {"huge": "1" + "0" * 400, "-huge": "-1" + "0" * 400, "nan": "NaN", "inf": "Infinity",
               "-inf": "-Infinity"}  # JSON text as Python's json reads it (a float cannot hold the first two)


def odd(name: str):
    return json.loads(ODD_NUMBERS[name])


@pytest.mark.parametrize("name", ODD_NUMBERS)
def test_numbers_a_float_cannot_hold_are_no_numbers_and_break_nothing(name):
    value = odd(name)
    a = doc(run_id="aaaaaa0001", p99_ms=value, score=value, violations={"latency": value, "errors": 1},
            headline=value, passed=value, latency_quantiles_ms=[1.0, value, 3.0])
    b = doc(run_id="bbbbbb0002", p99_ms=5.0, score=value, violations={"latency": 2, "errors": 1},
            headline="pass", passed=True, latency_quantiles_ms=[1.0, 2.0, 3.0])
    a.update(created_at=value, title=value, error={"type": value, "message": value})
    assert compare.numbers(a["summary"]) == {"violations.errors": 1}  # not a number to subtract
    rows = {r["key"]: r for r in compare.metric_rows(a["summary"], b["summary"])}
    assert rows["p99_ms"]["direction"] == "only in B" and rows["p99_ms"]["delta"] is None
    assert "score" not in rows and rows["violations.latency"]["direction"] == "only in B"
    page = compare.comparison_html(a, b)
    assert 'data-key="p99_ms"' in page and 'class="plotly-graph-div"' not in page  # the series is not drawn
    audit = [doc("compliance_audit", run_id=r, score_hourly={"step_minutes": value, "values": [99.0, v, 98.0]})
             for r, v in (("aaaaaa0001", 97.0), ("bbbbbb0002", value))]
    assert "Score over the month" not in compare.comparison_html(*audit)  # B's values are not numbers
    audit[1]["summary"]["score_hourly"]["values"] = [97.0, 96.0]
    page = compare.comparison_html(*audit)  # A's odd step is no step: the default hour is
    assert "Score over the month" in page and page.count('class="plotly-graph-div"') == 1


def test_a_delta_beyond_a_float_is_not_shown_but_its_direction_is():
    rows = {r["key"]: r for r in compare.metric_rows({"p99_ms": 1.7e308, "n": 10 ** 308, "m": 10 ** 300},
                                                     {"p99_ms": -1.7e308, "n": -10 ** 308, "m": -10 ** 300})}
    assert rows["p99_ms"]["delta"] is None and rows["p99_ms"]["direction"] == "better"  # fell: lower is better
    assert rows["n"]["delta"] is None and rows["n"]["direction"] == "changed"  # -2e308 is no float either
    assert rows["m"]["delta"] == -2 * 10 ** 300  # -2e300 is
    page = compare.comparison_html(doc(p99_ms=1.7e308), doc(run_id="bbbbbb0002", p99_ms=-1.7e308))
    assert 'class="num">–</td>' in page and 'class="better">better' in page
    same = {r["key"]: r for r in compare.verdict_rows({"passed": float("nan")}, {"passed": float("nan")},
                                                                  "benchmark")}
    assert not same["passed"]["changed"]  # NaN is not "changed" from NaN


def test_summary_json_with_odd_numbers_or_deep_nesting(tmp_path, capsys):
    odd_keys = "".join(f', "odd{n}": {literal}' for n, literal in enumerate(ODD_NUMBERS.values()))
    text = json.dumps(doc(p99_ms=5.0)).replace('"p99_ms": 5.0', '"p99_ms": 5.0' + odd_keys, 1)
    for name, body in (("a", text), ("b", json.dumps(doc(run_id="bbbbbb0002", p99_ms=6.0)))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(body)
    assert compare.read_document(tmp_path / "a")["summary"]["odd0"] == HUGE
    out = tmp_path / "out.html"
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 0, capsys.readouterr()
    assert 'data-key="p99_ms"' in out.read_text() and 'data-key="odd0"' not in out.read_text()
    (tmp_path / "a" / "summary.json").write_text("[" * 100_000 + "]" * 100_000)  # deeper than Python parses
    with pytest.raises(InvalidInput, match="not JSON") as info:
        compare.read_document(tmp_path / "a")
    assert info.value.field == "run"
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "bizra-nb compare: error:" in capsys.readouterr().err


def test_the_endpoint_answers_odd_numbers_and_deep_nesting_without_a_5xx(server, tmp_path):
    import httpx

    store = server.services.store
    bodies = {f"{n:06x}aa": '{"notebook": "benchmark", "run_id": "x", "created_at": %s, "error": {"type": %s}, '
                            '"summary": {"p99_ms": %s, "headline": %s, "violations": {"latency": %s}, '
                            '"latency_quantiles_ms": [1.0, %s], "passed": %s}}' % ((literal,) * 7)
              for n, literal in enumerate(ODD_NUMBERS.values())}
    bodies["ffffffaa"] = '{"notebook": "benchmark", "summary": ' + "[" * 100_000 + "]" * 100_000 + "}"
    bodies["eeeeeeaa"] = json.dumps(doc(p99_ms=5.0, latency_quantiles_ms=[1.0, 2.0]))
    for run_id, body in bodies.items():
        folder = tmp_path / run_id
        folder.mkdir()
        (folder / "summary.json").write_text(body)
        store.create_run(id=run_id, notebook="/srv/notebooks/benchmark.ipynb", kind="benchmark",
                         status="succeeded", trigger="test", parameters={}, created_at=1.79e9, folder=str(folder))
    for run_id in bodies:
        for a, b in ((run_id, "eeeeeeaa"), ("eeeeeeaa", run_id), (run_id, run_id)):
            response = httpx.get(f"{server.url}/runs/compare", params={"a": a, "b": b}, timeout=30)
            assert response.status_code == 200, (run_id, response.text[:300])
            assert "text/html" in response.headers["Content-Type"]
            assert ('data-key="p99_ms"' in response.text) == ("eeeeeeaa" in (a, b))  # the odd ones are no numbers


def test_the_audit_scores_sit_on_their_own_days_of_the_month():
    """A month whose data starts on the 3rd at noon is drawn from day 3.5, not shifted to the 1st."""
    a = doc("compliance_audit", score_hourly={"start": "2026-09-01T00:00:00+00:00", "step_minutes": 60,
                                              "values": [99.0, 98.0]})
    b = doc("compliance_audit", run_id="bbbbbb0002",
            score_hourly={"start": "2026-10-03T12:00:00+00:00", "step_minutes": 60, "values": [97.0, 96.0]})
    [(title, fig)] = compare.figures(a, b, "compliance_audit")
    assert title == "Score over the month"
    assert list(fig.data[0].x) == [1.0, 1 + 1 / 24] and list(fig.data[1].x) == [3.5, 3.5 + 1 / 24]
    b["summary"]["score_hourly"]["start"] = "<not a time>"
    assert list(compare.figures(a, b, "compliance_audit")[0][1].data[1].x)[0] == 1.0  # unknown: the 1st


def test_cli_with_a_mistyped_data_dir_says_so_and_creates_nothing(tmp_path, capsys):
    typo = tmp_path / "dta"
    assert main(["compare", "abc123abc1", "def456def4", "--data-dir", str(typo)]) == 2
    err = capsys.readouterr().err
    assert "no run 'abc123abc1'" in err and "has no store" in err and str(typo) in err
    assert not typo.exists()  # no empty store made where the user mistyped
    assert main(["report", "pdf", "abc123abc1", "--data-dir", str(typo)]) == 2 and not typo.exists()
