"""SLO specs: the platform's default spec, OpenSLO v1 and Sloth prometheus/v1 files, and every kind of invalid file."""
from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from bizra_nb.errors import InvalidInput, NotFound
from bizra_nb.score import ahsan_score
from bizra_nb.slo_spec import (DEFAULT_ALERT_NAMES, DEFAULT_RUNBOOK_URL, MAX_SPEC_BYTES, SLO, SpecError, Window,
                               default_spec_path, find, load_specs, parse_spec, window_bounds)
from tests.ahsan_cases import REPLICATED, ahsan_case
from tests.conftest import need_binary

ROOT = Path(__file__).resolve().parent.parent
SPECS = Path(__file__).resolve().parent / "slo_specs"
DEFAULT = (ROOT / "monitoring" / "slo" / "bizra.yaml").read_text()


def problems_of(text: str, source: str = "bad.yaml") -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, source)
    error = caught.value
    assert error.field == "slo_spec" and isinstance(error, InvalidInput)
    assert error.message == "\n".join(error.problems)
    return error.problems


def only_problem(text: str, source: str = "bad.yaml") -> str:
    problems = problems_of(text, source)
    assert len(problems) == 1, problems
    return problems[0]


def edit(old: str, new: str, text: str = DEFAULT) -> str:
    assert text.count(old) >= 1, old
    return text.replace(old, new, 1)


# --- the default spec ---------------------------------------------------------------------------------------------

def test_the_default_spec_has_the_platforms_three_slos():
    assert default_spec_path() == ROOT / "monitoring" / "slo" / "bizra.yaml"
    slos = load_specs()
    assert [s.name for s in slos] == ["bizra-api-availability", "bizra-api-latency", "bizra-ahsan-score"]
    assert load_specs([""]) == slos == load_specs([default_spec_path()])
    availability, latency, score = slos
    for slo in slos:
        assert slo.service == "bizra-api" and slo.window == Window("1M", True)
        assert slo.window.describe() == "calendar month" and slo.window.promql_range == "30d"
        assert len(slo.description) > 60 and slo.source == str(default_spec_path())
        assert slo.alert_names == DEFAULT_ALERT_NAMES and slo.runbook_url == DEFAULT_RUNBOOK_URL
        assert not slo.disabled_alerts and slo.labels == {} and slo.annotations == {}

    assert availability.display_name == "API availability"
    assert (availability.target, availability.budgeting) == (0.999, "Occurrences")
    assert availability.indicator.kind == "ratio" and availability.indicator.good is None
    assert availability.indicator.bad == ('sum(rate(bizra_http_requests_total{job="bizra", route!~"/metrics|/slo.*", '
                                          'code=~"5.."}[{{.window}}]))')
    assert availability.indicator.total == 'sum(rate(bizra_http_requests_total{job="bizra", route!~"/metrics|/slo.*"}[{{.window}}]))'
    assert availability.indicator.dataset == {"bad": "bizra_errors", "total": "bizra_requests"}
    assert availability.timeslice_window is None and availability.budget == pytest.approx(0.001)

    assert latency.display_name == "API latency (p99 ≤ 100 ms)"
    assert (latency.target, latency.budgeting, latency.timeslice_window) == (0.99, "Timeslices", "1m")
    assert latency.indicator.kind == "threshold" and (latency.indicator.op, latency.indicator.value) == ("lte", 100.0)
    assert latency.indicator.query == ('histogram_quantile(0.99, sum by (le) (rate(bizra_http_request_duration_seconds_'
                                       'bucket{job="bizra", route!~"/metrics|/slo.*"}[{{.window}}]))) * 1000')
    assert latency.indicator.dataset == {"value": "bizra_lat_p99"} and latency.timeslice_target is None

    assert score.display_name == "Ahsan score at or above 97"
    assert (score.target, score.budgeting, score.timeslice_window) == (0.99, "Timeslices", "1m")
    assert score.indicator.kind == "threshold" and (score.indicator.op, score.indicator.value) == ("gte", 97.0)
    assert score.indicator.dataset == {"value": "ahsan_score_5m"}
    # self-contained: raw counters over 5 minutes, no recorded series
    assert "bizra:" not in score.indicator.query and "{{" not in score.indicator.query
    assert score.indicator.query.count("[5m]") == 2


def test_the_default_specs_ahsan_query_is_the_platform_score(tmp_path):
    """The query on random counters of two replicas (one with two processes) gives Python's score of the sums
    and the recording rule's bizra:ahsan_score:platform:5m, rounding to 0.1 included."""
    promtool = need_binary("promtool")
    query = find(load_specs(), "bizra-ahsan-score").indicator.query
    rng = random.Random(16)
    tests = []
    for case in range(12):
        series, events_sum, totals = ahsan_case(rng, REPLICATED, [1, 3, 7, 20, 100],
                                                lambda r: r.choice([0, 0, 1, 2, 3]))
        expected = ahsan_score(events_sum, totals)
        tests.append({"name": f"case {case}: score {expected}", "interval": "15s", "input_series": series,
                      "promql_expr_test": [
                          {"expr": query, "eval_time": "8m", "exp_samples": [{"labels": "{}", "value": expected}]},
                          {"expr": "bizra:ahsan_score:platform:5m", "eval_time": "8m",
                           "exp_samples": [{"labels": 'bizra:ahsan_score:platform:5m{job="bizra"}', "value": expected}]},
                      ]})
    assert len({t["name"].split("score ")[1] for t in tests}) > 3  # varied scores, some below 97
    path = tmp_path / "ahsan_slo_test.yml"
    path.write_text(yaml.safe_dump({"rule_files": [str(ROOT / "monitoring" / "rules" / "recording.yml")],
                                    "evaluation_interval": "15s", "tests": tests}))
    result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_find_names_the_known_slos():
    slos = load_specs()
    assert find(slos, "bizra-api-latency") is slos[1]
    with pytest.raises(NotFound) as caught:
        find(slos, "<b>" + "x" * 200)
    message = caught.value.message
    assert "bizra-api-availability, bizra-api-latency, bizra-ahsan-score" in message
    assert "x" * 80 not in message


# --- windows ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("at, start, end", [
    ("2024-02-29 23:59:59", "2024-02-01", "2024-03-01"),  # February of a leap year, its last second
    ("2024-02-01 00:00:00", "2024-02-01", "2024-03-01"),  # the first instant belongs to the month
    ("2026-12-31 12:00:00", "2026-12-01", "2027-01-01"),  # December → January of the next year
    ("2027-01-01 00:00:00", "2027-01-01", "2027-02-01"),
])
def test_calendar_window_bounds(at, start, end):
    bounds = window_bounds(Window("1M", True), pd.Timestamp(at, tz="UTC"))
    assert bounds == (pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC"))
    assert window_bounds(Window("1M", True), pd.Timestamp(at)) == bounds  # naive: UTC


def test_calendar_window_bounds_are_utc_months():
    # 00:30 on March 1st in Berlin is still February in UTC
    bounds = window_bounds(Window("1M", True), pd.Timestamp("2024-03-01 00:30", tz="Europe/Berlin"))
    assert bounds == (pd.Timestamp("2024-02-01", tz="UTC"), pd.Timestamp("2024-03-01", tz="UTC"))
    assert str(bounds[0].tz) == "UTC"


@pytest.mark.parametrize("duration, delta, words", [
    ("28d", pd.Timedelta(days=28), "rolling 28 days"), ("4w", pd.Timedelta(weeks=4), "rolling 4 weeks"),
    ("24h", pd.Timedelta(hours=24), "rolling 24 hours"), ("1d", pd.Timedelta(days=1), "rolling 1 day"),
])
def test_rolling_window_bounds_and_words(duration, delta, words):
    at = pd.Timestamp("2024-03-01 06:00", tz="UTC")
    assert window_bounds(Window(duration, False), at) == (at - delta, at)
    assert Window(duration, False).describe() == words


# --- valid OpenSLO and Sloth files ---------------------------------------------------------------------------------

def test_openslo_ratio_good_total_rolling_and_bad_total_calendar():
    success, errors = load_specs([SPECS / "openslo_ratio.yaml"])
    assert success.name == "checkout-success" and success.display_name == "Checkout success"
    assert success.target == 0.995  # targetPercent 99.5
    assert success.window == Window("28d", False) and success.window.promql_range == "28d"
    assert success.indicator.good == 'sum(rate(checkout_total{status="ok"}[{{.window}}]))'  # {{ .window }} normalised
    assert success.indicator.bad is None and success.indicator.total == "sum(rate(checkout_total[{{.window}}]))"
    assert success.indicator.dataset == {"good": "ok_requests", "total": "requests"}
    assert success.labels == {"team": "payments", "tier": "gold"}
    assert success.annotations == {"owner": "payments-oncall"}  # example.com/... stays in the file
    assert success.runbook_url == "https://runbooks.example.com/checkout#success"
    assert success.source == str(SPECS / "openslo_ratio.yaml") and success.service == "checkout"

    assert errors.name == "checkout-errors" and errors.display_name == "checkout-errors" and errors.description == ""
    assert errors.indicator.bad == 'sum(rate(checkout_total{status="error"}[{{.window}}]))'
    assert errors.indicator.good is None and errors.window == Window("1M", True) and errors.target == 0.995
    assert errors.indicator.dataset == {} and errors.runbook_url == DEFAULT_RUNBOOK_URL


def test_openslo_threshold_with_a_slice_in_seconds_and_ignored_data_source():
    (slo,) = load_specs([SPECS / "openslo_threshold.yaml"])
    assert (slo.name, slo.budgeting, slo.timeslice_window, slo.timeslice_target) == ("search-latency", "Timeslices", "5m", None)
    assert (slo.indicator.kind, slo.indicator.op, slo.indicator.value) == ("threshold", "lt", 250.0)
    assert slo.indicator.query.startswith("histogram_quantile(0.95") and "[{{.window}}]" in slo.indicator.query
    assert slo.window.describe() == "rolling 7 days" and slo.indicator.dataset == {"value": "search_p95_ms"}


def test_openslo_indicator_ref_and_several_objectives():
    slos = load_specs([SPECS / "openslo_ref.yaml"])
    # named by the objective's name, else its displayName's slug, else its position
    assert [s.name for s in slos] == ["api-strict", "api-loose-slices", "api-3"]
    assert [s.display_name for s in slos] == ["Strict", "Loose Slices!", "API (3)"]
    assert [(s.target, s.timeslice_target, s.timeslice_window) for s in slos] == [
        (0.99, 0.999, "1m"), (0.95, 0.95, "2m"), (0.98, 0.5, "1h")]
    for slo in slos:  # the referenced SLI, its dataset annotations too
        assert slo.indicator.kind == "ratio" and slo.budgeting == "Timeslices" and slo.window.calendar
        assert slo.indicator.good == 'sum(rate(http_requests_total{code!~"5.."}[{{.window}}]))'
        assert slo.indicator.dataset == {"good": "good", "total": "total"}
        assert slo.indicator.display_name == "the share of requests answered without a 5xx"  # the SLI's displayName


def test_one_objective_keeps_the_slos_name():
    slo = parse_spec(edit("  objectives:\n    - displayName: API availability\n",
                          "  objectives:\n    - displayName: Objective words\n"), "x.yaml")[0]
    assert slo.name == "bizra-api-availability"
    assert slo.display_name == "API availability"  # metadata.displayName first


def test_sloth_events_raw_alerting_and_disable():
    availability, ratio = load_specs([SPECS / "sloth.yaml"])
    assert availability.name == "myservice-requests-availability" and availability.service == "myservice"
    assert (availability.target, availability.window, availability.budgeting) == (0.999, Window("30d", False), "Occurrences")
    assert availability.window.describe() == "rolling 30 days"
    assert availability.indicator.kind == "ratio"
    assert availability.indicator.bad.startswith("sum(rate(http_request_duration_seconds_count{job=\"myservice\",code=~")
    assert availability.indicator.total == 'sum(rate(http_request_duration_seconds_count{job="myservice"}[{{.window}}]))'
    assert availability.alert_names == {"page": "MyServiceHighErrorRate", "ticket": "MyServiceHighErrorRate"}
    # the spec's, the SLO's and alerting's labels on both alerts (the most specific wins)
    assert availability.labels == {"owner": "myteam", "repo": "myorg/myservice", "category": "availability-alerts"}
    assert availability.annotations == {"summary": "High error rate on 'myservice' requests responses"}
    assert availability.runbook_url == "https://runbooks.example.com/myservice"
    # page/ticket ones on that alert only, their severity too (the spec's own routing: the rules make it win)
    assert availability.alert_labels == {"page": {"severity": "critical", "routing_key": "myteam-pager"},
                                         "ticket": {"severity": "warning", "slack_channel": "alerts-myteam"}}
    assert availability.indicator.display_name == ""  # Sloth has none
    assert availability.alert_annotations == {"page": {"escalation": "call the lead"}}
    assert availability.disabled_alerts == frozenset()

    assert ratio.name == "myservice-ratio" and ratio.target == 0.99 and ratio.indicator.kind == "error_ratio"
    assert ratio.indicator.query == "sum(rate(errors_total[{{.window}}])) / sum(rate(requests_total[{{.window}}]))"
    assert ratio.disabled_alerts == frozenset({"ticket"}) and ratio.alert_names == DEFAULT_ALERT_NAMES
    assert ratio.labels == {"owner": "myteam", "repo": "myorg/myservice"}


def test_several_files_load_in_order():
    slos = load_specs([SPECS / "sloth.yaml", default_spec_path()])
    assert [s.name for s in slos][:2] == ["myservice-requests-availability", "myservice-ratio"]
    assert len(slos) == 5 and all(isinstance(s, SLO) for s in slos)


def test_hostile_values_are_kept_verbatim():
    long = "<b>" + "é" * 5000
    text = (SPECS / "hostile.yaml").read_text().replace('"LONG"', f'"{long}"')
    (slo,) = parse_spec(text, "hostile.yaml")
    assert slo.display_name == "<script>alert('x')</script> {{ .window }} {{template \"x\"}}"
    assert slo.description == long
    assert slo.labels == {"note": "<img src=x onerror=alert(1)>"}
    assert slo.annotations == {"summary": "**bold** [link](javascript:alert(1)) <b>"}
    assert slo.indicator.bad == 'sum(rate(x_total{code="<script>"}[{{.window}}]))'
    assert slo.window.describe() == "rolling 24 hours"


def test_hostile_values_are_cut_to_80_characters_in_messages():
    secret = "S" * 50
    value = "<script>" + "v" * 300 + secret
    problem = only_problem(edit("target: 0.999", f'target: "{value}"'))
    assert "<script>vvvv" in problem and secret not in problem and "v" * 80 not in problem
    shown = problem.split("got the string ")[1]
    assert len(shown) <= 80
    # an unknown key is cut too
    problem = only_problem(edit("  budgetingMethod: Occurrences\n", f"  budgetingMethod: Occurrences\n  {'k' * 300}: 1\n"))
    assert "k" * 80 not in problem and "unknown field" in problem


# --- invalid files: each problem names the file, the document, the path and what was expected ------------------

def test_unknown_fields_at_three_levels_are_all_reported():
    text = edit("kind: SLO\nmetadata:\n  name: bizra-api-latency", "kind: SLO\nsepc: {}\nmetadata:\n  name: bizra-api-latency")
    text = edit("  name: bizra-api-latency\n", "  name: bizra-api-latency\n  lables: {}\n", text)
    text = edit("      target: 0.99\n      timeSliceWindow: 1m\n---", "      target: 0.99\n      traget: 0.99\n"
                "      timeSliceWindow: 1m\n---", text)
    problems = problems_of(text, "bizra.yaml")
    assert problems == [
        "bizra.yaml: document 3 (SLO bizra-api-latency): sepc: unknown field; expected one of apiVersion, kind, "
        "metadata, spec",
        "bizra.yaml: document 3 (SLO bizra-api-latency): metadata.lables: unknown field; did you mean labels? "
        "expected one of name, displayName, labels, annotations",
        "bizra.yaml: document 3 (SLO bizra-api-latency): spec.objectives[0].traget: unknown field; expected one of "
        "displayName, name, op, value, target, targetPercent, timeSliceTarget, timeSliceWindow",
    ]


def test_problems_of_every_file_are_collected(tmp_path):
    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    one.write_text(edit("target: 0.999", "target: 2"))
    two.write_text((SPECS / "sloth.yaml").read_text().replace("objective: 99\n", "objective: true\n"))
    with pytest.raises(SpecError) as caught:
        load_specs([one, tmp_path / "missing.yaml", two])
    problems = caught.value.problems
    assert problems == [
        f"{one}: document 2 (SLO bizra-api-availability): spec.objectives[0].target: expected a number in (0, 1) "
        "(0.999 for 99.9 %), got 2 (a number)",
        f"{tmp_path / 'missing.yaml'}: no such file",
        f"{two}: document 1 (Sloth service myservice): slos[1].objective: expected a number (a percentage: 99.9), "
        "got true (a boolean)",
    ]


@pytest.mark.parametrize("old, new, path, expected", [
    ("target: 0.999", 'target: "0.999"', "spec.objectives[0].target", "expected a number (0.999 for 99.9 %), got the string '0.999'"),
    ("target: 0.999", "target: 1", "spec.objectives[0].target", "expected a number in (0, 1) (0.999 for 99.9 %), got 1 (a number)"),
    ("target: 0.999", "target: 0", "spec.objectives[0].target", "expected a number in (0, 1)"),
    ("target: 0.999", "targetPercent: 100", "spec.objectives[0].targetPercent", "expected a number in (0, 100) (99.9), got 100"),
    ("target: 0.999", "target: .nan", "spec.objectives[0].target", "expected a number"),
    ("isRolling: false", "isRolling: 'no'", "spec.timeWindow[0].isRolling", "expected true or false, got the string 'no'"),
    ("service: bizra-api", "service: [bizra-api]", "spec.service", "got a list"),
    ("counter: true", "counter: 1", "spec.indicator.spec.ratioMetric.counter", "expected true or false, got 1 (a number)"),
    ("timeZone: UTC", "timeZone: Europe/Berlin", "spec.timeWindow[0].calendar.timeZone",
     "expected UTC (calendar months are UTC months), got the string 'Europe/Berlin'"),
    ('startTime: "2026-01-01 00:00:00"', 'startTime: "2026-01-15 00:00:00"', "spec.timeWindow[0].calendar.startTime",
     "calendar months start on the 1st at 00:00 UTC"),
    ("duration: 1M\n      isRolling: false", "duration: 1M\n      isRolling: true", "spec.timeWindow[0].duration",
     "a rolling month is not supported: use 30d or 28d"),
    ("duration: 1M\n      isRolling: false", "duration: 1Q\n      isRolling: false", "spec.timeWindow[0].duration",
     "a calendar window must be 1M"),
    ("budgetingMethod: Occurrences", "budgetingMethod: occurrences", "spec.budgetingMethod",
     "expected Occurrences or Timeslices, got the string 'occurrences'"),
    ("type: Prometheus", "type: Datadog", "spec.indicator.spec.ratioMetric.bad.metricSource.type",
     "expected Prometheus (the only metric source read), got the string 'Datadog'"),
    ("apiVersion: openslo/v1\nkind: SLO", "apiVersion: openslo/v1alpha\nkind: SLO", "apiVersion",
     "expected openslo/v1 (the only OpenSLO version read), got the string 'openslo/v1alpha'"),
    ("bizra.io/dataset-bad: bizra_errors", "bizra.io/dataset-bda: bizra_errors", 'metadata.annotations[\'bizra.io/dataset-bda\']',
     "unknown annotation; expected one of bizra.io/dataset-bad"),
    ("    - displayName: API availability\n      target: 0.999", "    - displayName: API availability\n      target: 0.999\n"
     "      timeSliceWindow: 1m", "spec.objectives[0].timeSliceWindow", "applies to budgetingMethod Timeslices only"),
    ("    - displayName: API availability\n      target: 0.999", "    - displayName: API availability\n      target: 0.999\n"
     "      op: lte", "spec.objectives[0].op", "applies to a thresholdMetric only"),
])
def test_a_wrong_value_names_the_path_and_what_was_expected(old, new, path, expected):
    problems = problems_of(edit(old, new), "bizra.yaml")
    prefix = f"bizra.yaml: document 2 (SLO bizra-api-availability): {path}: "
    assert [p for p in problems if p.startswith(prefix) and expected in p], problems
    # at most one consequence besides (a rolling window with a calendar, a dataset without its bad column)
    assert len(problems) <= 2 and all(p.startswith("bizra.yaml: document 2 (SLO bizra-api-availability): ")
                                      for p in problems), problems


def test_a_ratio_query_without_the_window_shows_an_example():
    problem = only_problem(edit('code=~"5.."}[{{.window}}]', 'code=~"5.."}[5m]'), "bizra.yaml")
    assert problem.startswith("bizra.yaml: document 2 (SLO bizra-api-availability): "
                              "spec.indicator.spec.ratioMetric.bad.metricSource.spec.query: "
                              "a ratio's query needs {{.window}} as its range"), problem
    assert "e.g. sum(rate(http_requests_total{code=~\"5..\"}[{{.window}}]))" in problem
    # the query is longer than 80 characters: the part around its range is shown, so the wrong [5m] is visible
    assert problem.endswith("""; got …'quests_total{job="bizra", route!~"/metrics|/slo.*", code=~"5.."}[5m]))'"""), problem


def test_a_query_with_another_template_is_refused():
    problem = only_problem(edit("[{{.window}}]))) * 1000", "[{{.slice}}]))) * 1000"))
    assert "document 3 (SLO bizra-api-latency): spec.indicator.spec.thresholdMetric.metricSource.spec.query: " \
           "only {{.window}} is filled in a query" in problem


def test_a_threshold_budgeted_by_occurrences_says_why_not():
    problem = only_problem(edit("budgetingMethod: Timeslices", "budgetingMethod: Occurrences"), "bizra.yaml")
    assert problem.startswith("bizra.yaml: document 3 (SLO bizra-api-latency): spec.budgetingMethod: "
                              "a thresholdMetric has no events to count"), problem
    assert "use budgetingMethod Timeslices with a timeSliceWindow (1m)" in problem


def test_timeslices_need_a_slice_window_and_a_ratio_a_slice_target():
    problem = only_problem(edit("      timeSliceWindow: 1m\n", ""))
    assert "document 3 (SLO bizra-api-latency): spec.objectives[0].timeSliceWindow: required with budgetingMethod " \
           "Timeslices" in problem
    ratio = (SPECS / "openslo_ref.yaml").read_text().replace("      timeSliceTarget: 0.95\n", "")
    problem = only_problem(ratio, "ref.yaml")
    assert problem.startswith("ref.yaml: document 2 (SLO api): spec.objectives[1].timeSliceTarget: required with a "
                              "ratio and Timeslices"), problem
    # OpenSLO asks for a timeSliceTarget with Timeslices: on a thresholdMetric it is checked and ignored
    with_target = edit("      timeSliceWindow: 1m\n", "      timeSliceWindow: 1m\n      timeSliceTarget: 0.9\n")
    assert parse_spec(with_target, "x.yaml") == parse_spec(DEFAULT, "x.yaml")
    problem = only_problem(edit("      timeSliceWindow: 1m\n", "      timeSliceWindow: 1m\n      timeSliceTarget: 9\n"))
    assert "document 3 (SLO bizra-api-latency): spec.objectives[0].timeSliceTarget: expected a number in (0, 1]" in problem


def test_unsupported_ratio_timeslices_and_sloth_plugin():
    problem = only_problem(edit("budgetingMethod: Timeslices", "budgetingMethod: RatioTimeslices"), "bizra.yaml")
    assert problem == ("bizra.yaml: document 3 (SLO bizra-api-latency): spec.budgetingMethod: RatioTimeslices is "
                       "not supported; expected Occurrences or Timeslices")
    sloth = (SPECS / "sloth.yaml").read_text().replace(
        "      raw:\n        error_ratio_query: |\n          sum(rate(errors_total[{{.window}}])) / sum(rate(requests_total[{{.window}}]))\n",
        "      plugin:\n        id: sloth-common/kubernetes/apiserver/availability\n")
    problem = only_problem(sloth, "sloth.yaml")
    assert problem == ("sloth.yaml: document 1 (Sloth service myservice): slos[1].sli.plugin: Sloth plugins are not "
                       "supported: write the SLI as sli.events (error_query, total_query) or sli.raw (error_ratio_query)")


def test_sloth_problems():
    text = (SPECS / "sloth.yaml").read_text()
    text = text.replace("    objective: 99.9\n", "    objective: 99.9\n    objectiv: 1\n")
    text = text.replace("          severity: warning\n", "          severity: page\n")  # accepted: the spec's own
    text = text.replace("      name: MyServiceHighErrorRate\n", "      name: My-Alert\n")
    text = text.replace("        error_query: sum(rate(http_request_duration_seconds_count{job=\"myservice\",code=~\"(5..|429)\"}[{{.window}}]))",
                        "        error_query: sum(rate(http_request_duration_seconds_count[5m]))")
    prefix = "s.yaml: document 1 (Sloth service myservice): "
    assert problems_of(text, "s.yaml") == [
        prefix + "slos[0].objectiv: unknown field; expected one of name, objective, description, labels, sli, alerting",
        prefix + "slos[0].sli.events.error_query: a ratio's query needs {{.window}} as its range (the generator fills "
                 "in each window), e.g. sum(rate(http_requests_total{code=~\"5..\"}[{{.window}}])); got "
                 "'sum(rate(http_request_duration_seconds_count[5m]))'",
        prefix + "slos[0].alerting.name: expected a Prometheus alert name ([a-zA-Z_:][a-zA-Z0-9_:]*), got the string "
                 "'My-Alert'",
    ]


def test_duplicate_names_across_files(tmp_path):
    copy = tmp_path / "copy.yaml"
    copy.write_text(DEFAULT)
    with pytest.raises(SpecError) as caught:
        load_specs([default_spec_path(), copy])
    assert caught.value.problems == [
        f"{copy}: SLO {name}: the name is given twice (also in {default_spec_path()}); SLO names must be unique"
        for name in ("bizra-api-availability", "bizra-api-latency", "bizra-ahsan-score")]
    # within one file: the several-objectives suffix colliding with another SLO
    text = (SPECS / "openslo_ref.yaml").read_text().replace("    - displayName: Loose Slices!\n", "    - name: strict\n")
    assert only_problem(text, "r.yaml") == ("r.yaml: SLO api-strict: the name is given twice (earlier in the same "
                                            "file); SLO names must be unique")


@pytest.mark.parametrize("name", ["Bizra_API", "-api", "api-", "a" * 64, "api.v2"])
def test_bad_names(name):
    problem = only_problem(edit("name: bizra-api-latency", f"name: {name}"), "bizra.yaml")
    assert problem.startswith("bizra.yaml: document 3 (SLO): metadata.name: expected a name of lowercase letters, "
                              "digits and '-' (at most 63 characters"), problem


def test_a_reserved_or_invalid_label_is_refused():
    problems = problems_of(edit("  name: bizra-api-latency\n",
                                '  name: bizra-api-latency\n  labels: {severity: x, "bad-label": y, ok: 3, team: sre}\n'))
    prefix = "bad.yaml: document 3 (SLO bizra-api-latency): metadata.labels."
    assert problems == [
        prefix + "severity: the generated alerts set this label themselves; reserved: slo, severity, priority, service",
        prefix + "bad-label: expected a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __), got the "
                 "string 'bad-label'",
        prefix + "ok: expected a text label value, got 3 (a number)",
    ]


def test_yaml_syntax_error_names_the_line_without_the_contents():
    text = edit("  budgetingMethod: Occurrences", "  budgetingMethod: [Occurrences\n  secret: hunter2-the-password")
    problem = only_problem(text, "bizra.yaml")
    line = text.splitlines().index("  secret: hunter2-the-password") + 1
    assert problem.startswith(f"bizra.yaml: line {line}, column "), problem
    assert "not valid YAML" in problem and "hunter2" not in problem and "secret" not in problem


def test_unsafe_yaml_tags_are_refused_and_a_key_given_twice_is_an_error():
    problem = only_problem('!!python/object/apply:os.system ["touch /tmp/owned"]\n')
    assert problem.startswith("bad.yaml: line 1, column 1: not valid YAML: could not determine a constructor")
    text = edit("  displayName: API availability\n", "  displayName: API availability\n  displayName: Again\n")
    line = text.splitlines().index("  displayName: Again") + 1
    assert only_problem(text) == (f"bad.yaml: line {line}, column 3: not valid YAML: the key 'displayName' is given "
                                  "twice in one mapping")
    # a merge key may override what it merges
    merged = "x: &base {version: prometheus/v2, service: s}\n<<: *base\nversion: prometheus/v1\nslos: 1\n"
    assert [p.split(": ", 2)[2] for p in problems_of(merged)] == [  # no "given twice", no "expected prometheus/v1"
        "x: unknown field; expected one of version, service, labels, slos",
        "slos: expected a list of at least one SLO, got 1 (a number)"]


def test_a_file_over_1_mib_is_refused_without_reading_it(tmp_path, monkeypatch):
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(MAX_SPEC_BYTES + 1)  # sparse: its contents would not even be YAML
    opened = []
    real_open = Path.open
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: opened.append(self) or real_open(self, *a, **k))
    with pytest.raises(SpecError) as caught:
        load_specs([big])
    assert caught.value.problems == [f"{big}: 1,048,577 bytes is over the 1,048,576-byte (1 MiB) limit of a spec "
                                     "file; not read"]
    assert big not in opened
    exactly = tmp_path / "exactly.yaml"  # the limit itself is fine
    exactly.write_text(DEFAULT + "#" * (MAX_SPEC_BYTES - len(DEFAULT.encode()) - 1) + "\n")
    opened.clear()  # (write_text may open it through Path.open too)
    assert exactly.stat().st_size == MAX_SPEC_BYTES and len(load_specs([exactly])) == 3
    assert opened == [exactly]  # the spy sees how spec files are opened: "big not in opened" above is not vacuous


def test_unreadable_or_odd_files_are_named(tmp_path):
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SpecError) as caught:
        load_specs([tmp_path, tmp_path / "latin1.yaml", tmp_path / "empty.yaml"])
    assert caught.value.problems == [f"{tmp_path}: not a file", f"{tmp_path / 'latin1.yaml'}: not UTF-8 text (byte 9)",
                                     f"{tmp_path / 'empty.yaml'}: no such file"]


def test_unknown_kind_non_mapping_document_and_no_slo():
    text = edit("kind: Service", "kind: Servise")
    assert only_problem(text) == ("bad.yaml: document 1: kind: unknown kind; expected one of SLO, SLI, Service, "
                                  "AlertPolicy, AlertCondition, AlertNotificationTarget, DataSource, got the string "
                                  "'Servise'")
    assert only_problem(DEFAULT + "---\n- a list\n- of things\n") == (
        "bad.yaml: document 5: expected a mapping (an OpenSLO object or a Sloth spec), got a list of 2 items")
    assert only_problem("just a string\n") == (
        "bad.yaml: document 1: expected a mapping (an OpenSLO object or a Sloth spec), got a string of 13 characters")
    assert only_problem("---\n---\n") == ("bad.yaml: no SLO in it; expected OpenSLO v1 documents (kind: SLO) or a Sloth "
                                          "prometheus/v1 spec")
    assert only_problem("foo: 1\n") == ("bad.yaml: document 1: expected an OpenSLO object (apiVersion: openslo/v1, "
                                        "kind: SLO) or a Sloth spec (version: prometheus/v1)")


def test_indicator_problems():
    both = edit("    spec:\n      ratioMetric:\n        counter: true\n",
                "    spec:\n      thresholdMetric: {}\n      ratioMetric:\n        counter: true\n")
    assert only_problem(both).endswith("spec.indicator.spec: expected exactly one of ratioMetric, thresholdMetric, got both")
    ref = edit("  indicator:\n    metadata:\n      name: bizra-api-5xx-ratio", "  indicatorRef: nowhere\n  indicator:\n"
               "    metadata:\n      name: bizra-api-5xx-ratio")
    assert only_problem(ref).endswith("spec: expected exactly one of indicator, indicatorRef, got both")
    missing = (SPECS / "openslo_ref.yaml").read_text().replace("indicatorRef: api-good-ratio", "indicatorRef: api-bad-ratio")
    assert only_problem(missing, "r.yaml") == ("r.yaml: document 2 (SLO api): spec.indicatorRef: no SLI document of "
                                               "this name in the file, got the string 'api-bad-ratio'; SLIs: api-good-ratio")
    composite = edit("      op: lte\n", "      op: lte\n      indicatorRef: x\n")
    assert only_problem(composite).endswith("spec.objectives[0].indicatorRef: composite SLOs (an indicator per "
                                            "objective) are not supported: write one SLO per indicator")
    dataset = edit("bizra.io/dataset-value: bizra_lat_p99", "bizra.io/dataset-bad: bizra_lat_p99")
    assert "metadata.annotations: bizra.io/dataset-bad does not fit a threshold indicator; expected " \
           "bizra.io/dataset-value" in only_problem(dataset)
    runbook = edit("    bizra.io/dataset-value: bizra_lat_p99\n", "    bizra.io/dataset-value: bizra_lat_p99\n"
                   "    bizra.io/runbook-url: javascript:alert(1)\n")
    assert "expected an http(s) URL or a relative link" in only_problem(runbook)


def test_the_list_of_problems_is_bounded():
    text = "apiVersion: openslo/v1\nkind: SLO\n" + "".join(f"field{i}: 1\n" for i in range(500))
    problems = problems_of(text)
    assert len(problems) == 201 and problems[-1] == "… and 302 more problems"  # 500 unknown + metadata, spec missing
    assert problems[0] == "bad.yaml: document 1 (SLO): field0: unknown field; expected one of apiVersion, kind, metadata, spec"


# --- round 2: impossible targets, Sloth severity/plugins/annotation names, counters, indicator names, typos -------

def test_the_default_specs_indicators_are_named_for_sentences():
    availability, latency, score = load_specs()
    assert latency.indicator.display_name == "the API's p99 latency in ms"
    assert score.indicator.display_name == "the Ahsan score over 5 minutes"
    assert availability.indicator.display_name == "Share of requests answered with a 5xx"  # the inline metadata's


def test_a_target_that_makes_a_burn_alert_impossible_is_refused():
    assert only_problem(edit("target: 0.999", "target: 0.9"), "bizra.yaml") == (
        "bizra.yaml: document 2 (SLO bizra-api-availability): spec.objectives[0].target: 0.9 leaves an error budget "
        "of 10 %: the page alert (14.4 × the budget) could never fire; use a target of at least 0.9306")
    # the least target it names is the boundary: it is accepted, a hair under it is not
    assert parse_spec(edit("target: 0.999", "target: 0.9306"), "x.yaml")[0].target == 0.9306
    assert "0.9305 leaves an error budget of 6.95 %" in only_problem(edit("target: 0.999", "target: 0.9305"))
    both = only_problem(edit("target: 0.999", "targetPercent: 50"))
    assert both.endswith("spec.objectives[0].targetPercent: 50 leaves an error budget of 50 %: the page alert (14.4 × "
                         "the budget) and the ticket alert (3 × the budget) could never fire; use a targetPercent of "
                         "at least 93.06"), both
    # a percentage written as a target: already out of range, and the message says what was probably meant
    assert only_problem(edit("target: 0.999", "target: 99.5")).endswith(
        "spec.objectives[0].target: expected a number in (0, 1) (0.999 for 99.9 %), got 99.5 (a number); did you mean 0.995?")
    assert "did you mean" not in only_problem(edit("target: 0.999", "target: 50"))  # 0.5 would not do either
    assert only_problem(edit("target: 0.999", "targetPercent: 0.999")).endswith(
        "targetPercent: 0.999 leaves an error budget of 99.001 %: the page alert (14.4 × the budget) and the ticket "
        "alert (3 × the budget) could never fire; use a targetPercent of at least 93.06; did you mean 99.9?")


SLOTH_ONE = """version: prometheus/v1
service: svc
slos:
  - name: api
    objective: OBJECTIVE
    sli:
      events:
        error_query: sum(rate(e_total[{{.window}}]))
        total_query: sum(rate(t_total[{{.window}}]))
    alerting:
      page_alert:
        disable: PAGE_OFF
"""


def sloth(objective, page_off: bool = False, text: str = SLOTH_ONE) -> str:
    return text.replace("OBJECTIVE", str(objective)).replace("PAGE_OFF", "true" if page_off else "false")


def test_a_sloth_objective_written_as_a_fraction_says_what_was_meant():
    assert only_problem(sloth(0.999), "s.yaml") == (
        "s.yaml: document 1 (Sloth service svc): slos[0].objective: 0.999 leaves an error budget of 99.001 %: the page "
        "alert (14.4 × the budget) and the ticket alert (3 × the budget) could never fire; use an objective of at least "
        "93.06 or disable those alerts; did you mean 99.9?")
    assert parse_spec(sloth(99.9), "s.yaml")[0].target == 0.999
    # a disabled alert does not count: 90 % leaves the ticket alert possible (3 × 10 % < 1)
    (slo,) = parse_spec(sloth(90, page_off=True), "s.yaml")
    assert slo.target == 0.9 and slo.disabled_alerts == {"page"}
    assert only_problem(sloth(90), "s.yaml").endswith(
        "slos[0].objective: 90 leaves an error budget of 10 %: the page alert (14.4 × the budget) could never fire; "
        "use an objective of at least 93.06 or disable that alert")
    assert only_problem(sloth(50, page_off=True), "s.yaml").endswith(
        "50 leaves an error budget of 50 %: the ticket alert (3 × the budget) could never fire; use an objective of "
        "at least 66.67 or disable that alert")


def test_sloth_severity_plugins_and_annotation_names():
    text = (SPECS / "sloth.yaml").read_text().replace("          severity: critical\n", "          severity: sev1\n")
    availability, _ = parse_spec(text, "s.yaml")
    assert availability.alert_labels["page"] == {"severity": "sev1", "routing_key": "myteam-pager"}
    assert only_problem(text.replace("severity: sev1", "severity: 1"), "s.yaml").endswith(
        "slos[0].alerting.page_alert.labels.severity: expected a text label value, got 1 (a number)")
    # other reserved labels stay reserved, and severity is reserved outside page_alert / ticket_alert
    assert "reserved: slo" in only_problem(text.replace("          routing_key:", "          priority: P0\n"
                                                                                  "          routing_key:"), "s.yaml")
    assert "alerting.labels.severity: the generated alerts set this label" in only_problem(
        text.replace("        category: availability-alerts\n", "        severity: page\n"), "s.yaml")

    plugins = text.replace("slos:\n", "slo_plugins:\n  chain: []\nslos:\n", 1).replace(
        "      raw:\n        error_ratio_query: |\n          sum(rate(errors_total[{{.window}}])) / sum(rate(requests_total[{{.window}}]))\n",
        "      plugin:\n        id: sloth-common/availability\n")
    assert only_problem(plugins, "s.yaml") == (
        "s.yaml: document 1 (Sloth service myservice): slo_plugins: Sloth plugins are not supported: remove "
        "slo_plugins (and write the SLI of slos[1] as events or raw)")
    only = text.replace("slos:\n", "slo_plugins: {}\nslos:\n", 1)
    assert only_problem(only, "s.yaml").endswith("slo_plugins: Sloth plugins are not supported: remove slo_plugins "
                                                 "(and write the SLIs as events or raw)")

    for where, old, new in [
        ("slos[0].alerting.annotations.runbook-link", "        runbook_url: https", "        runbook-link: https"),
        ("slos[0].alerting.page_alert.annotations.call-who", "          escalation: call", "          call-who: call"),
        ("slos[0].alerting.page_alert.annotations.__meta", "          escalation: call", "          __meta: call"),
    ]:
        problem = only_problem(text.replace(old, new), "s.yaml")
        assert problem.startswith(f"s.yaml: document 1 (Sloth service myservice): {where}: expected an annotation "
                                  "name Prometheus accepts ([a-zA-Z_][a-zA-Z0-9_]*"), problem


RATIO = """apiVersion: openslo/v1
kind: SLO
metadata: {name: api}
spec:
  service: api
  indicator:
    spec:
      ratioMetric:
        counter: COUNTER
        bad: {metricSource: {type: Prometheus, spec: {query: 'BAD'}}}
        total: {metricSource: {type: Prometheus, spec: {query: 'TOTAL'}}}
  timeWindow: [{duration: 28d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.999}]
"""


def ratio(bad: str, total: str = "http_requests_total", counter: bool = True) -> str:
    return RATIO.replace("COUNTER", str(counter).lower()).replace("BAD", bad).replace("TOTAL", total)


def test_a_counters_bare_selector_is_read_as_its_rate():
    (slo,) = parse_spec(ratio('http_requests_total{code=~"5..", path="/a}{b"}'), "r.yaml")
    assert slo.indicator.bad == 'sum(rate(http_requests_total{code=~"5..", path="/a}{b"}[{{.window}}]))'
    assert slo.indicator.total == "sum(rate(http_requests_total[{{.window}}]))"
    (slo,) = parse_spec(ratio('{__name__="x_total"}', total="sum(rate(t[{{.window}}]))"), "r.yaml")
    assert slo.indicator.bad == 'sum(rate({__name__="x_total"}[{{.window}}]))'
    assert slo.indicator.total == "sum(rate(t[{{.window}}]))"  # one with the window stays as written
    # not a counter, or not a bare selector: the window is still required
    windowed = "sum(rate(t[{{.window}}]))"
    for spec in (ratio("errors_total", windowed, counter=False), ratio("sum(errors_total)", windowed),
                 ratio("errors_total[5m]", windowed), ratio("errors_total / 2", windowed),
                 ratio("rate(errors_total[5m])", windowed)):
        assert "bad.metricSource.spec.query: a ratio's query needs {{.window}}" in only_problem(spec, "r.yaml"), spec


def test_a_typo_of_a_field_is_one_problem_that_says_what_was_meant():
    assert only_problem(edit("  budgetingMethod: Occurrences", "  budgetingMetod: Occurrences"), "bizra.yaml") == (
        "bizra.yaml: document 2 (SLO bizra-api-availability): spec.budgetingMetod: unknown field; did you mean "
        "budgetingMethod? expected one of description, service, indicator, indicatorRef, timeWindow, budgetingMethod, "
        "objectives, alertPolicies")
    for old, new, meant in [("target: 0.999", "traget: 0.999", "target"),
                            ("      timeSliceWindow: 1m\n", "      timeSliceWindw: 1m\n", "timeSliceWindow"),
                            ("      isRolling: false\n      calendar", "      isrolling: false\n      calendar", "isRolling"),
                            ("  indicator:\n    metadata:\n      name: bizra-api-5xx", "  indicatr:\n    metadata:\n"
                             "      name: bizra-api-5xx", "indicator"),
                            ("      thresholdMetric:", "      thresholdMetrc:", "thresholdMetric"),
                            ("        total:\n", "        totl:\n", "total")]:
        problem = only_problem(edit(old, new))
        assert f"unknown field; did you mean {meant}?" in problem, problem
    # not close to anything: no guess
    assert "did you mean" not in only_problem(edit("  budgetingMethod: Occurrences\n", "  budgetingMethod: Occurrences\n  zzz: 1\n"))
    sloth_typo = sloth(99.9).replace("    sli:\n      events:", "    sli:\n      event:")
    assert only_problem(sloth_typo, "s.yaml").endswith("slos[0].sli.event: unknown field; did you mean events? "
                                                       "expected one of events, raw, plugin")


def test_a_query_without_the_window_shows_the_part_around_its_range():
    text = edit('sum(rate(bizra_http_requests_total{job="bizra", route!~"/metrics|/slo.*", code=~"5.."}[{{.window}}]))',
                "sum(rate(" + "a" * 120 + '_total{code="5xx"}[5m]))')
    problem = only_problem(text)
    assert problem.endswith("""got …'""" + "a" * 46 + """_total{code="5xx"}[5m]))'"""), problem
    # no range at all: the end of the query
    text = edit('sum(rate(bizra_http_requests_total{job="bizra", route!~"/metrics|/slo.*", code=~"5.."}[{{.window}}]))',
                "sum(" + "b" * 150 + "_total) + on() vector(42)")
    assert only_problem(text).endswith("_total) + on() vector(42)'")


def test_a_document_that_is_not_a_mapping_is_described_by_type_only(tmp_path):
    passwd = "root:x:0:0:root:/root:/bin/bash hunter2 " * 40
    problem = only_problem(passwd + "\n", "/etc/passwd")
    assert problem == (f"/etc/passwd: document 1: expected a mapping (an OpenSLO object or a Sloth spec), got a "
                       f"string of {len(passwd.strip()):,} characters")
    assert "root" not in problem and "hunter2" not in problem
    assert only_problem("42\n").endswith("got a number") and only_problem("true\n").endswith("got a boolean")
