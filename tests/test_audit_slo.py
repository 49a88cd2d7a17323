"""The compliance audit reads the SLO spec: every SLO with its error budget, recomputed here independently."""
from __future__ import annotations

import hashlib
import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bizra_nb import audit, summaries
from bizra_nb.demo import generate_fleet
from bizra_nb.errors import InvalidInput
from bizra_nb.slo_budget import budget_percent
from bizra_nb.slo_spec import SpecError, default_spec_path, load_specs

MONTH = "2026-10"  # 31 days
NAMES = ("bizra-api-availability", "bizra-api-latency", "bizra-ahsan-score")
SCRIPT = "<script>document.title='pwned-script';window.pwned='script'</script>"
IMG = "<img src=x onerror=\"document.title='pwned-img';window.pwned='img'\">"
NOT_RUN = "() => window.pwned === undefined && !document.title.includes('pwned')"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo month as ``bizra-nb demo`` writes it: (data dir, platform.parquet)."""
    folder = tmp_path_factory.mktemp("demo")
    generate_fleet(folder, MONTH)
    return folder, folder / "platform.parquet"


@pytest.fixture(scope="module")
def demo_audit(demo):
    _, platform = demo
    frame, _, _ = audit.load_platform_metrics(str(platform), MONTH)
    return frame, audit.audit_month(frame, MONTH, source=str(platform))


def by_name(summary: dict) -> dict[str, dict]:
    return {b["slo"]: b for b in summary["slos"]}


def independent(platform: Path) -> dict:
    """The budgets recomputed from the parquet file with plain pandas, from PRODUCT.md's definitions."""
    raw = pd.read_parquet(platform)
    raw.index = pd.to_datetime(raw.pop("time"), unit="s", utc=True)
    start, end = pd.Timestamp(MONTH + "-01", tz="UTC"), pd.Timestamp("2026-11-01", tz="UTC")
    month = raw[(raw.index >= start) & (raw.index < end)]
    minutes = 31 * 1440
    # availability: 5xx responses are the bad events of all requests; 99.9 %
    errors, requests = month["bizra_errors"].sum(), month["bizra_requests"].sum()
    # latency: a minute is bad when its p99 is over 100 ms; 99 % of every minute of the month
    slow = int((month["bizra_lat_p99"] > 100).sum())
    # the Ahsan score over the 5 minutes ending at each minute (PRODUCT.md): weights 1, 1, 1, 10, 10; floor 100
    weights = {"http_error": 1, "validation_failed": 1, "run_failed": 1, "assumption_violated": 10,
               "silent_failure": 10}
    weighted = sum(w * month[f"bizra_violations_{k}"] for k, w in weights.items()).rolling(5, min_periods=1).sum()
    events = month["bizra_events"].rolling(5, min_periods=1).sum()
    score = np.round(100 * (1 - np.minimum(1, weighted / np.maximum(events, 100))), 1)
    low = int((score < 97).sum())
    return {
        "bizra-api-availability": {"total": requests, "bad": errors, "allowed": 0.001 * requests,
                                   "consumed": errors / (0.001 * requests)},
        "bizra-api-latency": {"total": minutes, "bad": slow, "allowed": 0.01 * minutes,
                              "consumed": slow / (0.01 * minutes)},
        "bizra-ahsan-score": {"total": minutes, "bad": low, "allowed": 0.01 * minutes,
                              "consumed": low / (0.01 * minutes)},
    }


def numbers_in(sentence: str) -> list[float]:
    plain = re.sub(r"\\(.)", r"\1", sentence)
    return [float(n.replace(",", "")) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", plain)]


def test_every_slo_of_the_default_spec_with_budget_arithmetic_recomputed_independently(demo, demo_audit):
    _, platform = demo
    _, result = demo_audit
    summary = result.summary
    assert [b["slo"] for b in summary["slos"]] == list(NAMES)
    assert summary["slos_total"] == 3 and summary["slos_met"] == 3 and summary["verdict"] == "compliant"
    expected = independent(platform)
    # the demo month has faults: none of the budgets is untouched, so a zero would not pass
    assert all(e["bad"] > 0 for e in expected.values())
    for name, want in expected.items():
        got = by_name(summary)[name]
        assert got["total"] == pytest.approx(want["total"]), name
        assert got["bad"] == pytest.approx(want["bad"]), name
        assert got["allowed"] == pytest.approx(want["allowed"]), name
        assert got["consumed"] == pytest.approx(want["consumed"]), name
        assert got["remaining"] == pytest.approx(1 - want["consumed"]), name
        assert got["met"] is True and got["error"] is None
        # the sentence says the same numbers: the total, the allowance (0.1), the bad count, the share consumed
        said = numbers_in(got["explanation"])
        assert any(abs(n - want["total"]) < 0.5 for n in said), (name, got["explanation"])
        assert any(abs(n - want["allowed"]) <= 0.05 for n in said), (name, got["explanation"])
        assert any(abs(n - want["bad"]) < 0.5 for n in said), (name, got["explanation"])
        assert any(abs(n - 100 * want["consumed"]) <= 0.5 for n in said), (name, got["explanation"])
    assert by_name(summary)["bizra-api-latency"]["total"] == 44_640  # every minute of the month, not 30 days
    # the legacy keys keep their meaning
    assert summary["availability"] == pytest.approx(1 - expected["bizra-api-availability"]["bad"] /
                                                    expected["bizra-api-availability"]["total"], abs=1e-6)
    assert summary["error_budget_used"] == pytest.approx(expected["bizra-api-availability"]["consumed"], abs=1e-4)
    assert summary["minutes_below_97"] == expected["bizra-ahsan-score"]["bad"]
    assert summary["slo"] == {"availability": 0.999, "latency_p99_ms": 100.0, "latency_attainment": 0.99,
                              "score": 95.0}


def exhausting(frame: pd.DataFrame) -> pd.DataFrame:
    """The demo month with three hours of half the requests failing on the 20th: availability's budget gone."""
    frame = frame.copy()
    hours = (frame.index >= pd.Timestamp("2026-10-20T08:00Z")) & (frame.index < pd.Timestamp("2026-10-20T11:00Z"))
    failed = (frame.loc[hours, "bizra_requests"] * 0.5).round()
    frame.loc[hours, "bizra_errors"] += failed
    frame.loc[hours, "bizra_violations_http_error"] += failed
    return frame


def test_a_month_that_exhausts_the_availability_budget_is_not_compliant_and_says_why(demo_audit):
    frame, _ = demo_audit
    result = audit.audit_month(exhausting(frame), MONTH)
    summary = result.summary
    availability = by_name(summary)["bizra-api-availability"]
    assert availability["remaining"] < 0 and availability["met"] is False
    assert summary["verdict"] == "not compliant" and summary["slos_met"] == 2
    reason = next(r for r in summary["reasons"] if r.startswith("API availability"))
    assert f"{budget_percent(availability['consumed'])} of its error budget consumed" in reason
    assert f"{availability['attainment'] * 100:.3f} %" in reason and "99.900 %" in reason
    assert len(summary["reasons"]) == 1  # the score SLO still holds: 180 bad minutes of 446.4 allowed
    said = summaries.audit_summary(summary)
    assert "2 of 3 SLOs met" in said and "Error budget exhausted: **API availability**" in said
    assert summaries.budget_state(availability) == ("exhausted", "red")


def test_legacy_slo_overrides_map_onto_the_spec(demo_audit):
    frame, _ = demo_audit
    strict = audit.audit_month(frame, MONTH, slo={"availability": 0.99999}).summary
    assert by_name(strict)["bizra-api-availability"]["target"] == 0.99999
    assert by_name(strict)["bizra-api-availability"]["met"] is False and strict["verdict"] == "not compliant"
    assert strict["slo"]["availability"] == 0.99999 and strict["error_budget_used"] > 1
    assert [r.split(":")[0] for r in strict["reasons"]] == ["API availability"]

    fast = audit.audit_month(frame, MONTH, slo={"latency_p99_ms": 10}).summary
    latency = by_name(fast)["bizra-api-latency"]
    assert latency["met"] is False and latency["bad"] == 44_640 and fast["latency_attainment"] == 0.0
    assert fast["slo"]["latency_p99_ms"] == 10 and latency["threshold"] == "≤ 10"
    assert fast["reasons"][0].startswith("API latency")

    # by the SLO's own name, and the score line
    named = audit.audit_month(frame, MONTH, slo={"bizra-ahsan-score": 0.9999, "score": 99.95}).summary
    assert by_name(named)["bizra-ahsan-score"]["met"] is False and named["slo"]["score"] == 99.95
    assert named["reasons"][0].startswith("the month's score") and len(named["reasons"]) == 2


@pytest.mark.parametrize("overrides, words", [
    ({"availabilty": 0.99}, "unknown SLO override 'availabilty'"),
    ({"availability": 1.5}, "between 0 and 1"),
    ({"availability": "high"}, "must be a number"),
    ({"latency_p99_ms": -1}, "above 0"),
])
def test_bad_overrides_are_refused_naming_slo(demo_audit, overrides, words):
    frame, _ = demo_audit
    with pytest.raises(InvalidInput) as info:
        audit.audit_month(frame, MONTH, slo=overrides)
    assert info.value.field == "slo" and words in info.value.message
    if "unknown" in words:
        assert "availability" in info.value.message and "bizra-ahsan-score" in info.value.message  # the known keys


def test_a_legacy_key_whose_slo_the_spec_lacks_is_refused(demo_audit):
    frame, _ = demo_audit
    only_score = [s for s in load_specs() if s.name == "bizra-ahsan-score"]
    with pytest.raises(InvalidInput) as info:
        audit.audit_month(frame, MONTH, slos=only_score, slo={"availability": 0.99})
    assert info.value.field == "slo" and "bizra-api-availability" in info.value.message
    summary = audit.audit_month(frame, MONTH, slos=only_score).summary  # the legacy shape stays, from the defaults
    assert summary["slos_total"] == 1 and summary["slo"]["availability"] == 0.999


SLOTH = """\
version: "prometheus/v1"
service: "checkout"
labels:
  team: payments
slos:
  - name: "requests-availability"
    objective: 99.5
    description: "Checkout answers without a server error."
    sli:
      events:
        error_query: sum(rate(http_requests_total{job="checkout",code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total{job="checkout"}[{{.window}}]))
    alerting:
      name: CheckoutHighErrorRate
      page_alert:
        labels:
          severity: critical
      ticket_alert:
        labels:
          severity: warning
"""


def test_an_slo_without_a_dataset_mapping_on_a_dataset_source_is_not_certified(demo, demo_audit, tmp_path):
    _, platform = demo
    frame, _ = demo_audit
    sloth = tmp_path / "sloth.yaml"
    sloth.write_text(SLOTH)
    slos = load_specs([default_spec_path(), sloth])
    summary = audit.audit_month(frame, MONTH, slos=slos, source=str(platform)).summary
    checkout = summary["slos"][-1]
    assert checkout["error"] and checkout["met"] is not True and summary["slos_total"] == 4
    assert summary["verdict"] == "not compliant" and summary["slos_met"] == 3
    assert len(summary["reasons"]) == 1 and "could not be measured" in summary["reasons"][0]
    assert checkout["error"] in summary["reasons"][0]
    assert "Not measured: **" in summaries.audit_summary(summary)


def test_a_bad_spec_is_refused_before_a_run_is_recorded(tmp_path):
    from bizra_nb.runner import Runner
    from bizra_nb.store import Store

    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: openslo/v1\nkind: SLO\nmetadata: {name: x}\nspec: {budgetingMethod: Sometimes}\n")
    runner = Runner(Store.open(tmp_path / "d"), reports_dir=tmp_path / "r", workers=1)
    try:
        with pytest.raises(SpecError) as info:
            runner.create("compliance_audit", {"month": MONTH, "source": str(bad), "slo_spec": str(bad)})
        assert info.value.field == "slo_spec" and "bad.yaml" in info.value.message
        with pytest.raises(InvalidInput) as info:  # a missing file: the pre-flight names it
            runner.create("compliance_audit", {"month": MONTH, "source": str(bad), "slo_spec": str(tmp_path / "no")})
        assert info.value.field == "slo_spec"
        assert runner.store.list_runs(limit=10) == []
    finally:
        runner.close()


def test_scheduled_audits_get_the_configured_spec(make_server, settings, auth, tmp_path):
    import httpx

    (settings.data_dir / "audit").mkdir(parents=True)
    (settings.data_dir / "audit" / "platform.parquet").write_bytes(b"")
    spec = tmp_path / "elsewhere" / "slos.yaml"  # outside the data dir: accepted as configured
    spec.parent.mkdir()
    spec.write_text(default_spec_path().read_text())
    running = make_server(audit_schedule="0 6 1 * *", audit_source="audit/platform.parquet", slo_spec=str(spec),
                          schedule_check_interval=3600)
    with httpx.Client(base_url=running.url, timeout=30) as http:
        response = http.post("/schedules/audit/run", headers=auth)
        assert response.status_code == 201, response.text
        assert response.json()["parameters"]["slo_spec"] == str(spec)
        # the API takes the configured spec too, but no other file outside the data dir
        other = tmp_path / "other.yaml"
        other.write_text(spec.read_text())
        refused = http.post("/runs", json={"notebook": "compliance_audit",
                                           "parameters": {"month": MONTH, "slo_spec": str(other)}}, headers=auth)
        assert refused.status_code == 400 and refused.json()["error"]["field"] == "slo_spec"
        (settings.data_dir / "bad.yaml").write_text("apiVersion: openslo/v1\nkind: SLO\n")
        bad = http.post("/runs", json={"notebook": "compliance_audit",
                                       "parameters": {"month": MONTH, "slo_spec": "bad.yaml"}}, headers=auth)
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "slo_spec", bad.text
        assert "bad.yaml" in bad.json()["error"]["message"]


# -- the notebook, once, on the demo month; and a hostile spec in Chromium ---------------------------------------


def hostile_spec(path: Path) -> Path:
    """The default spec with the availability SLO's names and description made of markup, and the latency
    SLO's and its indicator's names too (the indicator's display name is in the explanation's sentence)."""
    documents = list(yaml.safe_load_all(default_spec_path().read_text()))
    for doc in documents:
        if doc.get("kind") == "SLO" and doc["metadata"]["name"] == "bizra-api-availability":
            doc["metadata"]["displayName"] = f"Avail {IMG}{SCRIPT}"
            doc["spec"]["description"] = f"{SCRIPT} {IMG}"
            for objective in doc["spec"]["objectives"]:
                objective["displayName"] = f"Avail {IMG}"
        if doc.get("kind") == "SLO" and doc["metadata"]["name"] == "bizra-api-latency":
            doc["metadata"]["displayName"] = f"Lat *{IMG}*"
            doc["spec"]["indicator"]["metadata"]["displayName"] = f"p99 [ms](javascript:alert(1)) {IMG}"
    path.write_text(yaml.safe_dump_all(documents, allow_unicode=True, sort_keys=False))
    return path


def text_of(page: str) -> str:
    """What a reader sees of an HTML fragment: tags dropped, entities undone, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_the_audit_report_shows_every_slo_and_its_arithmetic(runner, demo):
    folder, platform = demo
    run = runner.run("compliance_audit", {"month": MONTH, "source": str(platform), "data_dir": str(folder)})
    summary = run["summary"]
    assert [b["slo"] for b in summary["slos"]] == list(NAMES) and summary["verdict"] == "compliant"
    page = (Path(run["folder"]) / "report.html").read_text()
    assert page.index("COMPLIANT") < page.index("SLO attainment") < page.index("Error budgets") \
        < page.index("Error budget arithmetic")
    assert "3 of 3 SLOs met" in page and page.count('class="plotly-graph-div"') == 3
    appendix = text_of(page[page.index("Error budget arithmetic"):])
    for budget in summary["slos"]:
        assert html.escape(budget["display_name"], quote=False) in page, budget["display_name"]
        said = " ".join(budget["explanation"].split())
        assert said in appendix, said  # shown as written: no escape left over, nothing eaten as Markdown
    # which targets were in force: the spec's path (relative to the project) and the start of its hash
    digest = hashlib.sha256(default_spec_path().read_bytes()).hexdigest()
    assert summary["slo_spec_files"] == [{"path": "monitoring/slo/bizra.yaml", "sha256": digest}]
    assert f"Spec: monitoring/slo/bizra.yaml (sha256 {digest[:12]})." in appendix
    assert str(default_spec_path().parent) not in page  # never more than the file's path


def test_a_hostile_spec_renders_inert(runner, demo, browser, tmp_path):
    from tests.browser import Watched

    folder, platform = demo
    spec = hostile_spec(folder / "hostile.yaml")
    run = runner.run("compliance_audit", {"month": MONTH, "source": str(platform), "data_dir": str(folder),
                                          "slo_spec": str(spec)})
    report = Path(run["folder"]) / "report.html"
    page_html = report.read_text()
    assert "&lt;img src=x onerror=" in page_html  # it reached the report, escaped
    page = Watched(browser, report.as_uri(), viewport={"width": 1280, "height": 900})
    try:
        page.page.wait_for_selector(".main-svg")  # the report's own scripts (plotly) ran
        assert page.page.evaluate(NOT_RUN), (page.page.title(), page.page.evaluate("window.pwned"))
        assert page.page.query_selector_all("img[src='x'], img[onerror]") == []
        scripts = page.page.evaluate("() => [...document.scripts].map(s => s.textContent.trim())")
        assert not any(s.startswith("document.title='pwned") for s in scripts)  # no injected script element
        body = page.page.inner_text("body")
        assert "Avail <img src=x onerror=" in body and "Lat *<img src=x onerror=" in body  # shown as text
        assert page.page.query_selector_all("a[href^='javascript']") == []
        latency = by_name(run["summary"])["bizra-api-latency"]
        assert IMG in latency["explanation"]  # plain text in the summary, escaped where it is rendered
        arithmetic = body[body.index("Error budget arithmetic"):]
        assert " ".join(latency["explanation"].split()) in " ".join(arithmetic.split())
    finally:
        page.close()


def test_the_audit_command_takes_a_spec_and_refuses_a_bad_one_before_running(demo, tmp_path):
    import subprocess
    import sys

    folder, platform = demo
    from bizra_nb.store import Store

    Store.open(tmp_path / "data")
    (tmp_path / "bad.yaml").write_text("apiVersion: openslo/v1\nkind: SLO\nmetadata: {name: Bad Name}\n")
    result = subprocess.run([sys.executable, "-m", "bizra_nb.cli", "audit", "--month", MONTH, "--audit-source",
                             str(platform), "--data-dir", str(tmp_path / "data"), "--reports-dir",
                             str(tmp_path / "r"), "--slo-spec", "bad.yaml"],  # relative: from this directory
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(tmp_path / "bad.yaml") in result.stderr and "'Bad Name'" in result.stderr  # the problem, named
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("budget, state", [
    ({"remaining": -0.1, "alerting": None}, ("exhausted", "red")),
    ({"remaining": 0.0, "alerting": "ticket"}, ("exhausted", "red")),
    ({"remaining": 0.8, "alerting": "page"}, ("fast burn", "red")),
    ({"remaining": 0.8, "alerting": "ticket"}, ("burning", "amber")),
    ({"remaining": 0.2, "alerting": None}, ("low", "amber")),
    ({"remaining": 0.25, "alerting": None}, ("ok", "green")),
    ({"remaining": None, "alerting": None, "error": "no data"}, ("not measured", "grey")),
])
def test_budget_states_follow_the_shared_semantics(budget, state):
    assert summaries.budget_state(budget) == state


def test_the_budget_figure_colours_by_state_and_shows_names_as_text():
    from bizra_nb import plots

    budgets = [{"slo": "a", "display_name": "<b>A</b>", "remaining": 0.5, "explanation": "x <br>(y) \\(z\\)"},
               {"slo": "b", "display_name": "B", "remaining": -0.2},
               {"slo": "c", "display_name": "C", "remaining": None, "error": "no <i>dataset</i> mapping"}]
    figure = plots.error_budget_bars(budgets)
    bar = figure.data[0]
    assert list(bar.y) == ["c", "b", "a"]  # keyed by the SLO's name, the spec's first SLO on top
    assert list(figure.layout.yaxis.ticktext) == ["C", "B", "&lt;b&gt;A&lt;/b&gt;"]  # markup as text
    assert list(bar.x) == [0, -20.0, 50.0]
    assert list(bar.marker.color) == [plots.MUTED, plots.BAD, plots.OK]
    # the explanation is plain text: escaped for plotly, nothing undone (a backslash stays a backslash)
    assert bar.hovertext[-1] == "x &lt;br&gt;(y) \\(z\\)"
    assert bar.hovertext[0] == "no &lt;i&gt;dataset&lt;/i&gt; mapping"


def test_two_slos_with_one_display_name_get_a_bar_each_labelled_with_their_names():
    from bizra_nb import plots

    budgets = [{"slo": "checkout-latency", "display_name": "Latency", "remaining": 0.9},
               {"slo": "search-latency", "display_name": "Latency", "remaining": 0.2},
               {"slo": "availability", "display_name": "Availability", "remaining": 0.7}]
    figure = plots.error_budget_bars(budgets)
    bar = figure.data[0]
    assert list(bar.y) == ["availability", "search-latency", "checkout-latency"]  # three categories, not two
    assert list(figure.layout.yaxis.ticktext) == ["Availability", "Latency (search-latency)",
                                                  "Latency (checkout-latency)"]
    assert list(figure.layout.yaxis.tickvals) == list(bar.y)
    # the words of the short bar sit on its own row
    assert [(a.y, a.text) for a in figure.layout.annotations] == [("search-latency", "20 % remaining (low)")]
    assert list(bar.text) == ["70 % remaining (ok)", "", "90 % remaining (ok)"]


HOSTILE = f"{IMG} *bold* [link](javascript:alert(1)) \\(x\\) a_b_c"


def hostile_summary(demo_summary: dict) -> dict:
    """The demo's summary with markup in every string of the budgets that reaches a report."""
    summary = dict(demo_summary)
    slos = [dict(b) for b in demo_summary["slos"]]
    slos[0] |= {"display_name": f"Avail {HOSTILE}", "explanation": f"Because {HOSTILE}", "window": f"w {HOSTILE}"}
    slos[1] |= {"error": f"source down {HOSTILE}", "met": None, "remaining": None, "consumed": None,
                "attainment": None, "explanation": ""}
    summary["slos"] = slos
    summary["slo_spec_files"] = [{"path": f"specs/{IMG}.yaml", "sha256": "ab" * 32}]
    return summary


def test_names_explanations_errors_and_windows_are_escaped_where_they_become_markdown(demo_audit):
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    from bizra_nb.tables import PeopleTable

    summary = hostile_summary(demo_audit[1].summary)
    for made in (summaries.audit_summary(summary), summaries.budget_arithmetic(summary)):
        rendered = markdown2html_mistune(made)
        assert "<img" not in rendered and "<em>bold" not in rendered and "javascript:alert(1)\"" not in rendered
        assert "<a href=\"javascript" not in rendered and "<script" not in rendered
        shown = text_of(rendered)
        assert "Avail <img src=x onerror=" in shown and "*bold* [link](javascript:alert(1)) \\(x\\) a_b_c" in shown
        assert "3 of 4 criteria met: the month's score, and 2 of 3 SLOs met" in shown or made.startswith("- **")
    arithmetic = text_of(markdown2html_mistune(summaries.budget_arithmetic(summary)))
    assert f"Because {HOSTILE}" in arithmetic and f"w {HOSTILE}" in arithmetic
    assert f"source down {HOSTILE}" in arithmetic and f"specs/{IMG}.yaml (sha256 abababababab)" in arithmetic
    assert f"source down {HOSTILE}" in text_of(markdown2html_mistune(summaries.audit_summary(summary)))
    for table in (summaries.slo_table(summary), summaries.budget_table(summary)):
        assert isinstance(table, PeopleTable)
        page = table.to_html()
        assert "<img" not in page and "&lt;img src=x" in page  # the renderer escapes every cell
        assert "\\\\" not in page and "\\*" not in page  # and nothing was escaped for Markdown before it


def test_the_executive_summary_says_what_each_count_counts_and_whose_budget(demo_audit):
    summary = demo_audit[1].summary
    said = summaries.audit_summary(summary)
    assert "4 of 4 criteria met: the month's score, and 3 of 3 SLOs met" in said
    assert "(4 of 4 met)" not in said
    # one line with each SLO's share of its budget, as budget_percent writes it everywhere
    line = next(part for part in said.split("\n\n") if part.startswith("Error budget used:"))
    for budget in summary["slos"]:
        assert f"{budget['display_name']} **{budget_percent(budget['consumed'])}**" in line.replace("\\", "")
    missed = dict(summary, score=90.0, tier="C")
    assert "3 of 4 criteria met: 3 of 3 SLOs met, but not the month's score" in summaries.audit_summary(missed)
    legacy = {k: v for k, v in summary.items() if k not in ("slos", "slos_met", "slos_total")}
    old = summaries.audit_summary(legacy)
    assert f"Availability error budget used: **{budget_percent(summary['error_budget_used'])}**" \
        in old.replace("\\", "") and "3 of 3 criteria met:" in old


def test_one_precision_for_a_share_of_a_budget_in_tables_chart_and_texts(demo_audit):
    from bizra_nb import plots

    summary = dict(demo_audit[1].summary)
    slos = [dict(b) for b in summary["slos"]]
    slos[0] |= {"consumed": 0.2594, "remaining": 0.7406}  # old formats: 25.94 % (table), 26 % (summary)
    slos[1] |= {"consumed": 1.31492, "remaining": -0.31492, "met": False}
    summary["slos"] = slos
    used = summaries.slo_table(summary).frame["Error budget used"].tolist()
    assert used[:2] == ["25.9 %", "131 %"] == [budget_percent(0.2594), budget_percent(1.31492)]
    budget = summaries.budget_table(summary).frame
    assert budget["Consumed"].tolist()[:2] == ["25.9 %", "131 %"]
    assert budget["Remaining"].tolist()[:2] == ["74.1 %", budget_percent(-0.31492)]
    assert "API availability **25\\.9 %**" in summaries.audit_summary(summary)
    bars = plots.error_budget_bars(slos).data[0]
    assert "74.1 % remaining (ok)" in list(bars.text)
    assert summaries.slo_table(summary).columns[-1].align == "right"


def test_the_summary_records_which_spec_files_were_in_force(demo_audit, tmp_path, monkeypatch):
    frame, result = demo_audit
    digest = hashlib.sha256(default_spec_path().read_bytes()).hexdigest()
    assert result.summary["slo_spec_files"] == [{"path": "monitoring/slo/bizra.yaml", "sha256": digest}]
    # a spec in the data dir: shown relative to it; elsewhere: its name alone (reports do not map the server)
    data = tmp_path / "data"
    (data / "slo").mkdir(parents=True)
    inside = data / "slo" / "mine.yaml"
    inside.write_text(default_spec_path().read_text() + "\n# edited\n")
    outside = tmp_path / "elsewhere" / "sloth.yaml"
    outside.parent.mkdir()
    outside.write_text(SLOTH)
    monkeypatch.setenv("BIZRA_DATA_DIR", str(data))
    summary = audit.audit_month(frame, MONTH, slos=load_specs([inside, outside])).summary
    assert summary["slo_spec_files"] == [
        {"path": "slo/mine.yaml", "sha256": hashlib.sha256(inside.read_bytes()).hexdigest()},
        {"path": "sloth.yaml", "sha256": hashlib.sha256(outside.read_bytes()).hexdigest()}]
    assert summary["slo_spec_files"][0]["sha256"] != digest  # the content, not the name
    line = summaries.budget_arithmetic(summary).splitlines()[-1]
    assert line.startswith("Spec: ") and "slo/mine" in line and inside.name in line
    assert hashlib.sha256(inside.read_bytes()).hexdigest()[:12] in line and str(data) not in line
    assert str(tmp_path) not in json.dumps(summary["slo_spec_files"])


def test_the_headline_names_the_slos(demo_audit):
    summary = demo_audit[1].summary
    shown = re.fullmatch(rf"{MONTH}: compliant, score {summary['score']} \({summary['tier']}\), "
                         rf"availability (\d+\.\d{{3}}) %, 3/3 SLOs met, {summary['incidents']} incidents",
                         summary["headline"])
    assert shown, summary["headline"]
    assert float(shown.group(1)) == pytest.approx(summary["availability"] * 100, abs=0.0006)
    frame, _ = demo_audit
    worse = audit.audit_month(exhausting(frame), MONTH).summary
    assert worse["headline"].startswith(f"{MONTH}: not compliant, score ") and ", 2/3 SLOs met, " in worse["headline"]
