"""Error-budget arithmetic (bizra_nb.slo_budget): hand-made frames with exact numbers, and a real Prometheus."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bizra_nb import slo_spec
from bizra_nb.dataset import write_dataset
from bizra_nb.fleet import Fault, platform_month
from bizra_nb.slo_budget import (
    NO_SOURCE, Budget, budget_from_frame, budget_from_prometheus, budget_percent, deploy_decision, month_budgets,
    status,
)
from bizra_nb.slo_spec import SLO, Indicator, Window, load_specs
from tests.conftest import need_binary
from tests.prometheus_server import PrometheusProcess, free_port

CALENDAR = Window("1M", True)
OCT = pd.Timestamp("2026-10-01", tz="UTC")
NOV = pd.Timestamp("2026-11-01", tz="UTC")


def availability(**changes) -> SLO:
    slo = SLO("api-availability", "API availability", "", "bizra-api", 0.999, CALENDAR, "Occurrences",
              Indicator("ratio", bad='sum(rate(bad[{{.window}}]))', total='sum(rate(total[{{.window}}]))',
                        dataset={"bad": "bizra_errors", "total": "bizra_requests"}))
    return SLO(**{**slo.__dict__, **changes})


def latency(**changes) -> SLO:
    slo = SLO("api-latency", "API latency", "", "bizra-api", 0.99, CALENDAR, "Timeslices",
              Indicator("threshold", query="p99[{{.window}}]", op="lte", value=100.0,
                        dataset={"value": "bizra_lat_p99"}, display_name="the API's p99 latency in ms"),
              timeslice_window="1m")
    return SLO(**{**slo.__dict__, **changes})


def minutes(start, n: int, **columns) -> pd.DataFrame:
    index = pd.date_range(start, periods=n, freq="1min")
    return pd.DataFrame({k: (np.full(n, v, dtype=float) if np.isscalar(v) else np.asarray(v, dtype=float))
                         for k, v in columns.items()}, index=index)


# -- Occurrences ------------------------------------------------------------------------------------------------


def test_occurrences_counts_bad_events_in_the_interval_only():
    errors = [0, 0, 5, 0, 0, 8, 0, 0, 0, 0]
    inside = minutes(OCT, 10, bizra_requests=1000, bizra_errors=errors)
    before = minutes(OCT - pd.Timedelta(minutes=2), 2, bizra_requests=1000, bizra_errors=900)
    after = minutes(OCT + pd.Timedelta(minutes=10), 1, bizra_requests=1000, bizra_errors=900)
    frame = pd.concat([before, inside, after])
    b = budget_from_frame(availability(), frame, OCT, OCT + pd.Timedelta(minutes=10))
    assert (b.total, b.measured, b.bad, b.unit) == (10_000, 10_000, 13, "requests")
    assert b.allowed == pytest.approx(10.0) and b.attainment == pytest.approx(0.9987)
    assert b.consumed == pytest.approx(1.3) and b.remaining == pytest.approx(-0.3) and b.met is False
    assert b.error is None and b.source == "dataset"
    assert b.explanation == ("99.9 % of 10,000 requests allows 10 bad requests; 13 were bad; "
                             "130 % of the budget consumed, the budget is exhausted.")


def test_good_mapping_counts_total_minus_good_not_a_bad_column():
    frame = minutes(OCT, 4, bizra_requests=[100, 200, 300, 400], ok=[100, 190, 300, 396],
                    bizra_errors=[50, 50, 50, 50])  # a column the good mapping must not read
    slo = availability(indicator=Indicator("ratio", good="g", total="t", dataset={"good": "ok", "total": "bizra_requests"}))
    b = budget_from_frame(slo, frame, OCT, OCT + pd.Timedelta(minutes=4))
    assert (b.total, b.bad) == (1000, 14)
    assert b.remaining == pytest.approx(1 - 14 / 1.0)  # 1,000 requests allow 1 bad one
    assert b.explanation.endswith("14 were bad; 1,400 % of the budget consumed, the budget is exhausted.")


@pytest.mark.parametrize("errors, remaining, allowed", [(10, 0.0, False), (9, 0.1, True)])
def test_a_budget_used_exactly_is_exhausted_and_a_little_less_is_not(errors, remaining, allowed):
    frame = minutes(OCT, 10, bizra_requests=1000, bizra_errors=[0] * 9 + [errors])  # 10,000 requests allow 10
    b = budget_from_frame(availability(), frame, OCT, OCT + pd.Timedelta(minutes=10))
    assert b.remaining == pytest.approx(remaining, abs=1e-12) and deploy_decision(b)[0] is allowed
    assert (b.remaining <= 0) is (not allowed)  # 1 − 0.999 is not 0.0010000000000000009 here


def test_a_calendar_month_in_progress_budgets_the_months_estimated_requests():
    """2 bad of 1,807 requests in the first minute: the budget is 0.1 % of about 80 million requests, not of 1,807."""
    frame = minutes(OCT, 1, bizra_requests=1807, bizra_errors=2)
    b = budget_from_frame(availability(), frame, OCT, OCT + pd.Timedelta(minutes=1), period=(OCT, NOV))
    assert (b.measured, b.bad) == (1807, 2) and b.total == pytest.approx(1807 * 44_640)
    assert b.allowed == pytest.approx(0.001 * 1807 * 44_640) and b.consumed == pytest.approx(2 / (1.807 * 44_640))
    assert b.attainment == pytest.approx(1 - 2 / 1807) and b.remaining > 0.99 and deploy_decision(b) == (True, None)
    assert b.explanation == ("99.9 % of about 80,664,480 requests this month at the rate so far (1,807 so far) "
                             "allows 80,664.5 bad requests; 2 were bad; under 0.1 % of the budget consumed, "
                             "over 99.9 % left.")
    burning_ = budget_from_frame(availability(), minutes(OCT, 1, bizra_requests=1807, bizra_errors=100), OCT,
                                 OCT + pd.Timedelta(minutes=1), period=(OCT, NOV))
    assert burning_.remaining > 0.99 and burning_.alerting == "page"  # a real fast burn still stops a deploy
    assert deploy_decision(burning_)[1].startswith("fast burn: API availability is burning its error budget for "
                                                   "October 2026 at 55.3× over 1h")
    whole = minutes(OCT, 44_640, bizra_requests=10, bizra_errors=[0] * 44_639 + [500])
    (month,) = month_budgets([availability()], "2026-10", frame=whole)  # at the month's end: the requests measured
    assert (month.total, month.measured, month.bad) == (446_400, 446_400, 500)
    assert month.explanation.startswith("99.9 % of 446,400 requests allows 446.4 bad requests; 500 were bad; ")
    rolling = availability(window=Window("28d", False))  # a rolling window is never "in progress"
    b = budget_from_frame(rolling, frame, OCT, OCT + pd.Timedelta(minutes=1),
                          period=(OCT - pd.Timedelta(days=28) + pd.Timedelta(minutes=1), OCT + pd.Timedelta(minutes=1)))
    assert b.total == 1807


# -- Timeslices -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("month, slices", [("2026-10", 44_640), ("2026-11", 43_200), ("2026-02", 40_320),
                                           ("2028-02", 41_760)])
def test_timeslices_budget_counts_every_minute_of_the_month_and_no_data_is_neither(month, slices):
    start = pd.Timestamp(month + "-01", tz="UTC")
    n = slices
    values = np.full(n, 50.0)
    values[np.arange(31) * 1000 + 7] = 150.0  # 31 bad minutes
    values[500] = 100.0  # at the line: good (lte)
    values[np.arange(7) * 3000 + 11] = np.nan  # 7 minutes with a row but no value
    frame = minutes(start, n, bizra_lat_p99=values).drop(index=pd.date_range(start + pd.Timedelta(hours=5),
                                                                               periods=5, freq="1min"))
    (b,) = month_budgets([latency()], month, frame=frame)
    assert (b.total, b.measured, b.bad, b.no_data, b.unit) == (slices, slices - 12, 31, 12, "minutes")
    assert b.allowed == pytest.approx(0.01 * slices)
    assert b.consumed == pytest.approx(31 / (0.01 * slices)) and b.attainment == pytest.approx(1 - 31 / (slices - 12))
    assert (b.start, b.end, b.period_start, b.period_end) == (start, start + pd.offsets.MonthBegin(1),) * 2
    if month == "2026-10":
        assert b.explanation == (
            "A minute is bad when the API's p99 latency in ms is over 100: 99 % of 44,640 minutes allows 446.4 bad "
            "minutes; 31 were bad (12 minutes had no data); 6.9 % of the budget consumed, 93.1 % left.")


def test_a_month_in_progress_keeps_the_whole_months_allowance():
    frame = minutes(OCT, 1440, bizra_lat_p99=[150.0] * 3 + [50.0] * 1437)
    b = budget_from_frame(latency(), frame, OCT, OCT + pd.Timedelta(days=1), period=(OCT, NOV))
    assert (b.total, b.measured, b.bad, b.no_data) == (44_640, 1440, 3, 0)
    assert b.explanation == ("A minute is bad when the API's p99 latency in ms is over 100: 99 % of 44,640 minutes "
                             "allows 446.4 bad minutes; 3 were bad (43,200 are still to come); "
                             "0.7 % of the budget consumed, 99.3 % left.")


def test_a_slice_longer_than_the_step_takes_its_worst_value():
    values = [50, 50, 150, 50, 50,  50, 50, 50, 50, 50,  96, 99, 99, 99, 99]  # three 5-minute slices
    frame = minutes(OCT, 15, bizra_lat_p99=values, score=[99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 96, 99, 99, 99, 99])
    end = OCT + pd.Timedelta(minutes=15)
    over = budget_from_frame(latency(timeslice_window="5m"), frame, OCT, end)
    assert (over.total, over.bad, over.unit) == (3, 1, "5-minute slices")  # the max of the first slice is 150
    assert over.explanation.startswith("A 5-minute slice is bad when the worst of the API's p99 latency in ms in it "
                                       "is over 100")
    under = latency(timeslice_window="5m", indicator=Indicator("threshold", query="s", op="gte", value=97.0,
                                                               dataset={"value": "score"}))
    assert budget_from_frame(under, frame, OCT, end).bad == 1  # the min of the last slice is 96


def test_ratio_timeslices_a_slice_is_bad_when_its_good_ratio_is_under_the_slice_target():
    slo = availability(budgeting="Timeslices", timeslice_window="1m", timeslice_target=0.95)
    frame = minutes(OCT, 5, bizra_requests=[100, 100, 100, 0, 100], bizra_errors=[5, 6, 0, 0, 100])
    b = budget_from_frame(slo, frame, OCT, OCT + pd.Timedelta(minutes=5))
    assert (b.total, b.measured, b.bad, b.no_data) == (5, 4, 2, 1)  # 95 % good is good; 0 requests: no data
    assert b.explanation.startswith("A minute is bad when under 95 % of its events are good: ")


def test_the_derived_score_column_is_computed_from_the_counts():
    from bizra_nb.audit import score_over_time

    platform = platform_month("2026-10", seed=3, faults=[Fault("payment", "latency", OCT + pd.Timedelta(days=3),
                                                               magnitude=2.0)])
    slo = next(s for s in load_specs() if s.indicator.dataset.get("value") == "ahsan_score_5m")
    b = budget_from_frame(slo, platform, OCT, NOV)
    assert b.error is None and b.bad == int((score_over_time(platform) < 97).sum()) and b.bad > 0
    # the same count from PRODUCT.md's definition in plain pandas, not the function the code calls: the score over
    # the 5 minutes ending at each minute, weights 1, 1, 1, 10, 10, at least 100 events, rounded to 0.1
    weights = {"http_error": 1, "validation_failed": 1, "run_failed": 1, "assumption_violated": 10,
               "silent_failure": 10}
    weighted = sum(w * platform[f"bizra_violations_{k}"] for k, w in weights.items()).rolling(5, min_periods=1).sum()
    events = platform["bizra_events"].rolling(5, min_periods=1).sum()
    score = np.round(100 * (1 - np.minimum(1, weighted / np.maximum(events, 100))), 1)
    assert b.bad == int((score < 97).sum())


def test_missing_mapping_or_column_or_data_is_an_error_not_a_number():
    frame = minutes(OCT, 5, bizra_requests=10, bizra_errors=0)
    unmapped = availability(indicator=Indicator("ratio", bad="b", total="t"))
    b = budget_from_frame(unmapped, frame, OCT, NOV)
    assert b.error == ("api-availability is measured from Prometheus only (no bizra.io/dataset-* annotations)")
    assert b.remaining is None and b.met is None
    assert "bizra_lat_p99" in budget_from_frame(latency(), frame, OCT, NOV).error
    assert budget_from_frame(availability(), frame, NOV, NOV + pd.Timedelta(days=1)).error.startswith("no data")


# -- burn rates and alerting ------------------------------------------------------------------------------------


END = pd.Timestamp("2026-10-20T12:00Z")


def burning(errors: int, last: str) -> pd.DataFrame:
    """Three days and an hour of 100,000 requests a minute, with `errors` of them failing in the `last` minutes."""
    n = 3 * 1440 + 60
    frame = minutes(END - pd.Timedelta(minutes=n), n, bizra_requests=100_000, bizra_errors=0)
    frame.loc[frame.index >= END - slo_spec.duration(last), "bizra_errors"] = errors
    return frame


@pytest.mark.parametrize("last, below, above, kind", [
    ("1h", 1400, 1500, "page"),     # 14 × and 15 × the budget over 1h and 5m; 14.4 pages
    ("6h", 580, 620, "page"),       # 5.8 × and 6.2 × over 6h and 30m; 6 pages
    ("1d", 290, 310, "ticket"),     # 2.9 × and 3.1 × over 1d and 2h; 3 tickets
    ("3d", 97, 103, "ticket"),      # 0.97 × and 1.03 × over 3d and 6h; 1 tickets
])
def test_alerting_just_below_and_just_above_each_burn_rate(last, below, above, kind):
    quiet = budget_from_frame(availability(), burning(below, last), END - pd.Timedelta(days=3), END)
    loud = budget_from_frame(availability(), burning(above, last), END - pd.Timedelta(days=3), END)
    assert quiet.alerting is None
    assert loud.alerting == kind
    assert loud.burn_rates[last] == pytest.approx(above / 100) and loud.burn_rates["5m"] == pytest.approx(above / 100)


def test_a_long_window_alone_does_not_alert_the_short_one_must_burn_too():
    frame = burning(2000, "1h")
    frame.loc[frame.index >= END - pd.Timedelta(minutes=5), "bizra_errors"] = 0
    b = budget_from_frame(availability(), frame, END - pd.Timedelta(days=3), END)
    assert b.burn_rates["1h"] == pytest.approx(20 * 55 / 60) and b.burn_rates["5m"] == 0
    assert b.alerting is None


def test_exactly_at_the_factor_is_not_alerting():
    from bizra_nb.slo_budget import _alerting
    from bizra_nb.slo_spec import BURN_ALERTS, WINDOWS

    for alert in BURN_ALERTS:
        at = {w: 0.0 for w in WINDOWS} | {alert.long: alert.factor, alert.short: alert.factor}
        assert _alerting(at) is None, alert
        over = {w: 0.0 for w in WINDOWS} | {alert.long: alert.factor + 1e-9, alert.short: alert.factor + 1e-9}
        assert _alerting(over) == alert.kind, alert
        assert _alerting(at | {alert.short: None}) is None


# -- deploy decision and the Budget's form -----------------------------------------------------------------------


def budget(**fields) -> Budget:
    base = dict(slo="api-availability", display_name="API availability", service="bizra-api", target=0.999,
                window="calendar month", budgeting="Occurrences", start=OCT, end=NOV, period_start=OCT,
                period_end=NOV, consumed=0.5, remaining=0.5)
    return Budget(**{**base, **fields})


def test_deploy_decision_every_branch():
    assert deploy_decision(budget()) == (True, None)
    assert deploy_decision(budget(alerting="ticket", remaining=0.1)) == (True, None)
    allowed, reason = deploy_decision(budget(consumed=1.31, remaining=-0.31, alerting="page"))
    assert not allowed and reason == ("budget exhausted: API availability has used 131 % of its error budget for "
                                      "October 2026 (calendar month, target 99.9 %)")
    assert deploy_decision(budget(consumed=1.0, remaining=0.0))[1].startswith("budget exhausted: ")
    rates = {"5m": 20.0, "30m": 3.0, "1h": 15.04, "2h": 1.0, "6h": 1.0, "1d": 1.0, "3d": 1.0}
    allowed, reason = deploy_decision(budget(alerting="page", burn_rates=rates))
    assert not allowed and reason == ("fast burn: API availability is burning its error budget for October 2026 at "
                                      "15.0× over 1h and 20.0× over 5m (a page fires above 14.4×; calendar month, "
                                      "target 99.9 %)")
    allowed, reason = deploy_decision(budget(error=NO_SOURCE, consumed=None, remaining=None))
    assert not allowed and reason == f"budget unknown: {NO_SOURCE}"
    rolling = budget(window="rolling 28 days", consumed=1.2, remaining=-0.2, end=pd.Timestamp("2026-11-05T15:00Z"),
                     period_start=pd.Timestamp("2026-10-08T15:00Z"), period_end=pd.Timestamp("2026-11-05T15:00Z"),
                     display_name="")
    assert deploy_decision(rolling)[1] == ("budget exhausted: api-availability has used 120 % of its error budget for "
                                           "the 28 days to 2026-11-05 15:00 UTC (target 99.9 %)")
    stale = budget(stale=True, as_of=NOV, consumed=2.0, remaining=-1.0)  # unknown first: the figures are old
    assert deploy_decision(stale) == (False, "budget unknown: the data ends at 2026-11-01 00:00 UTC, more than 1 h "
                                             "before the time asked for (is the dataset still being written?)")


def test_budget_percent_is_one_rule():
    shown = [budget_percent(r) for r in (0.74, 0.259, 0.0694, 1.0, 1.3149, 14.0, 0.0, 0.0004, 0.99996, 0.9994,
                                         -0.31, -1e-5, None, float("nan"))]
    assert shown == ["74 %", "25.9 %", "6.9 %", "100 %", "131 %", "1,400 %", "0 %", "under 0.1 %", "over 99.9 %",
                     "99.9 %", "-31 %", "-0.1 %", "—", "—"]


def test_to_dict_is_json_with_iso_times():
    b = budget_from_frame(availability(), minutes(OCT, 10, bizra_requests=10, bizra_errors=0), OCT, NOV)
    data = json.loads(json.dumps(b.to_dict()))
    assert data["start"] == "2026-10-01T00:00:00+00:00" and data["period_end"] == "2026-11-01T00:00:00+00:00"
    assert data["bad"] == 0.0 and data["met"] is True and set(data["burn_rates"]) == {"5m", "30m", "1h", "2h", "6h",
                                                                                       "1d", "3d"}
    assert data["burn_rates"]["5m"] is None  # the 5 minutes before the end have no data


def test_the_explanation_is_plain_text_naming_the_indicator_or_its_value():
    hostile = '<img src=x onerror=alert(1)> [click](http://evil) *x* `y` (a_b)'
    frame = minutes(OCT, 3, bizra_lat_p99=500)
    named = latency(indicator=Indicator("threshold", query="q", op="lte", value=100.0,
                                        dataset={"value": "bizra_lat_p99"}, display_name=hostile))
    b = budget_from_frame(named, frame, OCT, OCT + pd.Timedelta(minutes=3))
    assert b.explanation == (f"A minute is bad when {hostile} is over 100: 99 % of 3 minutes allows "
                             "0.03 bad minutes; 3 were bad; 10,000 % of the budget consumed, the budget is exhausted.")
    assert "\\" not in b.explanation and "&lt;" not in b.explanation  # the consumers escape where it becomes markup
    unnamed = latency(indicator=Indicator("threshold", query="q", op="gte", value=97.0, dataset={"value": "v"}))
    b = budget_from_frame(unnamed, minutes(OCT, 3, v=[99, 96, 98]), OCT, OCT + pd.Timedelta(minutes=3))
    assert b.explanation.startswith("A minute is bad when its value is under 97: ")
    missing = budget_from_frame(availability(display_name=hostile, name="a-b"), frame, OCT, NOV)  # no such column
    assert missing.explanation == f"No figures: {missing.error}" and "\\" not in missing.explanation


# -- the audit's and the API's entry points ---------------------------------------------------------------------


def test_a_rolling_window_longer_than_the_frame_is_read_from_the_source(tmp_path):
    rolling = availability(window=Window("30d", False))
    sept = minutes(pd.Timestamp("2026-02-01", tz="UTC"), 28 * 1440, bizra_requests=10, bizra_errors=0)
    march = minutes(pd.Timestamp("2026-01-01", tz="UTC"), 31 * 1440, bizra_requests=10, bizra_errors=1)
    (only_frame,) = month_budgets([rolling], "2026-02", frame=sept)
    assert (only_frame.start, only_frame.end) == (pd.Timestamp("2026-01-30", tz="UTC"), pd.Timestamp("2026-03-01", tz="UTC"))
    assert only_frame.bad == 0 and only_frame.explanation.startswith(
        "The data covers only 2026-02-01 00:00 UTC to 2026-03-01 00:00 UTC of this interval. ")
    path = write_dataset(pd.concat([march, sept]), tmp_path / "platform.parquet")
    (both,) = month_budgets([rolling], "2026-02", frame=sept, source=str(path))
    assert both.bad == 2 * 1440 and both.total == 30 * 1440 * 10 and not both.explanation.startswith("The data")


NAMES = ["bizra-api-availability", "bizra-api-latency", "bizra-ahsan-score"]  # the default spec's SLOs, in order


def test_status_without_a_source_says_how_to_give_one():
    budgets = status(load_specs(), "", at="2026-10-12T10:00Z")
    assert [b.slo for b in budgets] == NAMES  # every SLO: the checks below are not over an empty list
    assert [b.error for b in budgets] == [NO_SOURCE] * len(budgets)
    assert all(b.period_start == OCT and b.remaining is None and not deploy_decision(b)[0] for b in budgets)


@pytest.fixture(scope="module")
def platform():
    faults = [Fault("payment", "latency", pd.Timestamp("2026-10-12T10:00Z"), magnitude=2.0)]
    return platform_month("2026-10", faults=faults, seed=3)


def test_status_on_a_dataset_is_as_of_its_last_data(platform, tmp_path):
    path = write_dataset(platform, tmp_path / "platform.parquet")
    slos = load_specs()
    later = status(slos, str(path), at="2026-12-15T00:00Z")
    month = month_budgets(slos, "2026-10", frame=platform)
    assert [b.slo for b in later] == [m.slo for m in month] == NAMES  # zip below pairs every SLO with itself
    for b, m in zip(later, month):
        assert b.as_of == NOV and b.end == NOV and b.period_start == OCT and b.error is None
        assert (b.total, b.bad, b.consumed) == (m.total, m.bad, m.consumed) and b.burn_rates == m.burn_rates
        assert b.stale is True and b.to_dict()["stale"] is True  # the data ends six weeks before the time asked
        assert deploy_decision(b)[1].startswith("budget unknown: the data ends at 2026-11-01 00:00 UTC, ")
    fresh = status(slos, str(path), at=NOV + pd.Timedelta(hours=1))  # an hour after the data ends: not yet stale
    assert [b.stale for b in fresh] == [False] * 3 and fresh[0].to_dict()["stale"] is False
    assert [b.stale for b in status(slos, str(path), at=NOV + pd.Timedelta(hours=1, seconds=1))] == [True] * 3
    at = pd.Timestamp("2026-10-12T10:30Z")
    during = status(slos, str(path), at=at)
    requests = platform.loc[OCT:at - pd.Timedelta(minutes=1), "bizra_requests"].sum()
    assert [b.as_of for b in during] == [at] * 3 and during[0].measured == requests
    assert during[0].total == pytest.approx(requests * 44_640 / ((at - OCT) / pd.Timedelta(minutes=1)))
    assert not any(b.stale for b in during)
    assert during[1].total == 44_640 and during[1].measured == (at - OCT) / pd.Timedelta(minutes=1)
    assert during[0].alerting == "page" and deploy_decision(during[0])[1].startswith("fast burn: ")
    unmapped = SLO(**{**slos[0].__dict__, "indicator": Indicator("ratio", bad="b", total="t")})
    assert status([unmapped], str(path), at=at)[0].error.endswith("is measured from Prometheus only "
                                                                    "(no bizra.io/dataset-* annotations)")
    assert "not found" in status(slos, str(tmp_path / "nothing.parquet"))[0].error


# -- against a real Prometheus loaded with the same month --------------------------------------------------------


@pytest.fixture(scope="module")
def month_prometheus(platform, tmp_path_factory):
    binary = need_binary("prometheus")
    promtool = need_binary("promtool")
    from bizra_nb.openmetrics import create_blocks

    work = tmp_path_factory.mktemp("slo-month")
    create_blocks(None, work / "tsdb", promtool=promtool, work_dir=work, platform=platform)
    server = PrometheusProcess(binary, work / "prom", tsdb=work / "tsdb")
    yield server
    server.stop()


def test_prometheus_agrees_with_the_dataset_over_the_month(month_prometheus, platform):
    slos = load_specs()
    availability_, latency_, score = [budget_from_prometheus(s, month_prometheus.url, OCT, NOV) for s in slos]
    exact = month_budgets(slos, "2026-10", frame=platform)
    assert all(b.error is None and b.source == "prometheus" for b in (availability_, latency_, score))
    assert availability_.total == pytest.approx(exact[0].total, rel=0.005)
    assert availability_.bad == pytest.approx(exact[0].bad, rel=0.005)
    assert "about" in availability_.explanation and "extrapolate" in availability_.explanation
    assert exact[1].bad > 20 and abs(latency_.bad - exact[1].bad) <= 5  # histogram buckets vs the exact p99
    assert exact[2].bad > 20 and abs(score.bad - exact[2].bad) <= 5
    assert latency_.total == score.total == 44_640 and latency_.measured >= 44_640 - 2


def test_prometheus_burn_rates_agree_with_the_dataset_during_a_burn(month_prometheus, platform, tmp_path):
    slos = load_specs()
    at = pd.Timestamp("2026-10-12T10:30Z")
    from_prom = status(slos, month_prometheus.url, at=at)
    from_file = status(slos, str(write_dataset(platform, tmp_path / "p.parquet")), at=at)
    for p, f in zip(from_prom, from_file):
        assert p.error is None and p.as_of == at and p.alerting == f.alerting, p.slo
        for w in ("1h", "6h", "1d", "3d"):
            assert p.burn_rates[w] == pytest.approx(f.burn_rates[w], rel=0.1, abs=0.05), (p.slo, w)
    assert from_prom[0].alerting == "page"
    minutes_so_far = (at - OCT) / pd.Timedelta(minutes=1)
    for p, f in zip(from_prom[1:], from_file[1:]):  # the past days and the day so far: no minute twice, none lost
        assert f.measured == minutes_so_far and p.measured in (minutes_so_far - 1, minutes_so_far), p.slo
        assert abs(p.bad - f.bad) <= 3 and p.total == 44_640, p.slo
    assert from_prom[0].total == pytest.approx(from_file[0].total, rel=0.005)


def test_the_past_days_counts_are_queried_once_then_reused(month_prometheus, monkeypatch):
    import httpx

    sent = []
    real_get = httpx.Client.get

    def counting(self, url, *, params=None, **kwargs):
        sent.append(params["query"])
        return real_get(self, url, params=params, **kwargs)

    monkeypatch.setattr(httpx.Client, "get", counting)
    slos = load_specs()[1:]
    first = status(slos, month_prometheus.url, at="2026-10-21T08:15Z")
    past = [q for q in sent if "sum_over_time((" in q]
    assert len(past) == 4  # for each SLO: the whole days before the 21st, and the day so far
    sent.clear()
    again = status(slos, month_prometheus.url, at="2026-10-21T08:15Z")
    assert len([q for q in sent if "sum_over_time((" in q]) == 2  # the day so far only
    assert [b.to_dict() for b in again] == [b.to_dict() for b in first]


def test_month_budgets_measure_unmapped_slos_from_prometheus(month_prometheus, platform):
    mapped = load_specs()[0]
    unmapped = SLO(**{**mapped.__dict__, "indicator": Indicator("ratio", bad=mapped.indicator.bad,
                                                                total=mapped.indicator.total)})
    from_prom, from_frame = month_budgets([unmapped, mapped], "2026-10", frame=platform, source=month_prometheus.url)
    assert from_prom.source == "prometheus" and from_frame.source == "dataset"
    assert from_prom.bad == pytest.approx(from_frame.bad, rel=0.005)
    everything = month_budgets(load_specs(), "2026-10", source=month_prometheus.url)  # no frame: all from Prometheus
    exact = month_budgets(load_specs(), "2026-10", frame=platform)
    assert [b.source for b in everything] == ["prometheus"] * 3
    assert [abs(p.bad - f.bad) <= 5 for p, f in zip(everything[1:], exact[1:])] == [True, True]


def test_one_bad_query_spoils_only_its_own_slo(month_prometheus):
    broken = SLO(**{**latency().__dict__, "indicator": Indicator("threshold", query="sum(rate(x[{{.window}}]", op="lte",
                                                                             value=1.0)})
    good, bad = status([load_specs()[0], broken], month_prometheus.url, at="2026-10-20T00:00Z")
    assert good.error is None and bad.error.startswith(f"Prometheus at {month_prometheus.url} rejected a query: ")
    assert "api-latency" in bad.error


def test_a_threshold_query_keeping_labels_counts_each_slice_once_bad_when_any_series_is(month_prometheus):
    """Two series a minute (the real value and a copy that is always good): every minute counts once, and a
    minute is bad when any series is, so the budget is the single series' budget exactly."""
    from dataclasses import replace

    latency_, score = load_specs()[1:]
    doubled = []
    for slo, good in ((latency_, "* 0"), (score, "+ 1000")):  # lte: 0 is always good; gte: 1,000 is
        q = slo.indicator.query
        labelled = (f'label_replace({q}, "copy", "real", "", "") '
                    f'or label_replace(({q}) {good}, "copy", "good", "", "")')
        doubled.append(replace(slo, indicator=replace(slo.indicator, query=labelled)))
    at = "2026-10-12T10:30Z"
    single = status([latency_, score], month_prometheus.url, at=at)
    two = status(doubled, month_prometheus.url, at=at)
    assert [b.slo for b in single] == [b.slo for b in two] == NAMES[1:]
    for one, both in zip(single, two):
        assert both.error is None and one.bad > 0 and one.alerting is not None, one.slo
        assert (both.measured, both.bad, both.total) == (one.measured, one.bad, one.total), one.slo
        assert both.burn_rates == one.burn_rates, one.slo


def test_prometheus_without_data_in_the_last_hour_is_stale_not_old_counts(month_prometheus):
    """Prometheus answers but holds nothing for the last hour (the server down, the target wrong): the counts of
    the rolling window are there, yet the budget is stale and the gate does not judge on it."""
    from dataclasses import replace

    rolling = [replace(s, window=Window("28d", False)) for s in load_specs()]
    ended = status(rolling, month_prometheus.url, at=NOV + pd.Timedelta(days=1))  # October's data ended a day ago
    assert [b.slo for b in ended] == NAMES
    for b in ended:
        assert b.error is None and b.measured > 0 and b.period_start == NOV + pd.Timedelta(days=1) - pd.Timedelta(
            days=28), b.slo  # the window's counts are there ...
        assert b.stale is True and b.to_dict()["stale"] is True, b.slo  # ... but nothing now
        assert b.stale_reason == f"no data from Prometheus for {b.slo} in the last hour"
        assert b.to_dict()["stale_reason"] == b.stale_reason
        assert deploy_decision(b) == (False, f"budget unknown: no data from Prometheus for {b.slo} in the last hour")
    within_the_hour = status(rolling, month_prometheus.url, at=NOV + pd.Timedelta(minutes=30))  # 5m empty, 1h not
    assert [(b.error, b.stale, b.stale_reason) for b in within_the_hour] == [(None, False, None)] * 3
    live = status(load_specs(), month_prometheus.url, at="2026-10-20T00:00Z")
    assert [(b.error, b.stale) for b in live] == [(None, False)] * 3
    assert deploy_decision(live[1]) == (True, None)
    # the audit (a whole past month) is never stale: it does not ask about "now"
    audited = month_budgets(rolling, "2026-10", source=month_prometheus.url)
    assert [b.slo for b in audited] == NAMES
    assert not any(b.stale for b in audited)


def test_a_prometheus_before_its_data_starts_is_unknown_not_ok(month_prometheus):
    before = status(load_specs(), month_prometheus.url, at=OCT - pd.Timedelta(days=3))  # September: nothing loaded
    assert [b.slo for b in before] == NAMES
    for b in before:
        assert b.error is not None and b.error.startswith(f"no data for {b.slo}") and b.remaining is None
        assert deploy_decision(b)[0] is False


class SlowPrometheus:
    """An HTTP server answering every query with an empty vector after ``delay`` seconds (a loaded Prometheus);
    ``seen`` keeps each request's line and headers."""

    def __init__(self, delay: float) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        done = self.done = threading.Event()
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                seen.append((self.requestline, dict(self.headers)))
                done.wait(delay)  # answers late, or at once when the test is over
                body = b'{"status": "success", "data": {"resultType": "vector", "result": []}}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.done.set()
        self.server.shutdown()
        self.server.server_close()


def test_all_the_queries_of_a_call_share_one_deadline(monkeypatch):
    """Each query answers well within its timeout, but 30-odd of them queued six at a time do not: the call
    gives up at the deadline with a budget error (the gate answers 503 in time instead of after 40 s)."""
    from bizra_nb import slo_prometheus

    slow = SlowPrometheus(0.25)
    try:
        budgets = status(load_specs(), slow.url, at="2026-10-20T00:00Z", timeout=5, deadline=0.5)
        assert [b.error for b in budgets] == [f"Prometheus at {slow.url} did not answer all queries within 0.5 s"] * 3
        assert deploy_decision(budgets[0])[1] == f"budget unknown: {budgets[0].error}"
        monkeypatch.setattr(slo_prometheus, "EVALUATION_DEADLINE", 0.4)  # the default deadline is the module's
        (b,) = status(load_specs()[:1], slow.url, at="2026-10-20T00:00Z", timeout=5)
        assert b.error == f"Prometheus at {slow.url} did not answer all queries within 0.4 s"
        generous = status(load_specs()[:1], slow.url, at="2026-10-20T00:00Z", timeout=5, deadline=30)
        assert generous[0].error.startswith("no data for bizra-api-availability")  # every query was answered
    finally:
        slow.close()


def test_a_source_that_does_not_answer_is_named_without_its_password():
    port = free_port()
    url = f"http://user:secret@127.0.0.1:{port}"
    budgets = status(load_specs(), url, at="2026-10-20T00:00Z", timeout=2)
    assert [b.slo for b in budgets] == NAMES
    for b in budgets:
        assert b.error == f"Prometheus at http://127.0.0.1:{port} does not answer (ConnectError)"
        assert "secret" not in json.dumps(b.to_dict()) and "user" not in b.error
        assert deploy_decision(b)[0] is False
    alone = budget_from_prometheus(load_specs()[1], url, OCT, NOV, timeout=2)
    assert alone.error.startswith(f"Prometheus at http://127.0.0.1:{port} ") and "secret" not in alone.error


def test_the_login_goes_as_basic_auth_never_in_the_url_httpx_requests_and_logs(caplog):
    """``user:password@`` in the Prometheus URL: every request carries it as an Authorization header (decoded as
    the URL encodes it), while the URL httpx requests (and logs at INFO) and the Host header carry none of it."""
    import base64
    import logging

    prometheus = SlowPrometheus(0)
    port = prometheus.server.server_address[1]
    try:
        with caplog.at_level(logging.INFO, logger="httpx"):
            (b,) = status(load_specs()[:1], f"http://us%40er:s3cr%3Aet@127.0.0.1:{port}", at="2026-10-20T00:00Z")
    finally:
        prometheus.close()
    seen = prometheus.seen
    assert b.error.startswith("no data for bizra-api-availability")  # every query was answered
    expected = "Basic " + base64.b64encode(b"us@er:s3cr:et").decode()
    assert seen and all(headers.get("Authorization") == expected for _, headers in seen)
    assert all(headers.get("Host") == f"127.0.0.1:{port}" for _, headers in seen)
    logged = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert len(logged) == len(seen) and all(f"GET http://127.0.0.1:{port}/api/v1/query?" in m for m in logged)
    assert not any("s3cr" in m or "us%40er" in m or "us@er" in m for m in logged + [line for line, _ in seen])


def test_a_source_that_hangs_times_out_into_an_error():
    import socket

    with socket.socket() as listener:  # accepts connections (the backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        budgets = status(load_specs(), url, at="2026-10-20T00:00Z", timeout=0.3)
    assert [b.error for b in budgets] == [f"Prometheus at {url} did not answer within 0.3 s"] * 3


def test_measuring_from_prometheus_is_its_own_module_and_the_arrows_point_one_way():
    """slo_prometheus does the I/O and never imports slo_budget (not even inside a function); slo_budget does
    no I/O of its own; the names used elsewhere stay importable from slo_budget."""
    import ast
    import inspect
    import subprocess
    import sys

    from bizra_nb import slo_budget, slo_prometheus

    def imported(module) -> set[str]:
        names = set()
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                names |= {node.module or ""} | {f"{node.module}.{a.name}" for a in node.names}
        return names

    assert not any("slo_budget" in name for name in imported(slo_prometheus))
    assert {"httpx", "threading", "concurrent.futures"}.isdisjoint(imported(slo_budget))
    assert "bizra_nb.slo_prometheus" in imported(slo_budget)
    alone = subprocess.run([sys.executable, "-c", "import sys, bizra_nb.slo_prometheus; "
                            "print('bizra_nb.slo_budget' in sys.modules)"], capture_output=True, text=True, timeout=60)
    assert alone.stdout.strip() == "False", alone.stderr
    for name in ("QUERY_TIMEOUT", "status", "month_budgets", "budget_from_prometheus", "budget_from_frame",
                 "deploy_decision", "budget_percent", "Budget"):
        assert hasattr(slo_budget, name), name
    for name in ("EVALUATION_DEADLINE", "QUERY_TIMEOUT", "CACHE_SECONDS", "safe_url"):  # the measuring's own
        assert hasattr(slo_prometheus, name), name
    assert slo_prometheus.safe_url("http://u:p@h:9090/x?y=1") == "http://h:9090/x"


def test_derived_columns_are_the_ones_computed(monkeypatch):
    """_column derives exactly DERIVED_COLUMNS: without the score in it, the score's column is simply missing."""
    from bizra_nb import slo_budget
    from bizra_nb.score import WEIGHTS

    score = load_specs()[2]
    frame = minutes(OCT, 10, bizra_events=100, **{f"bizra_violations_{k}": 0 for k in WEIGHTS})
    assert budget_from_frame(score, frame, OCT, OCT + pd.Timedelta(minutes=10)).error is None
    monkeypatch.setattr(slo_budget, "DERIVED_COLUMNS", ())
    b = budget_from_frame(score, frame, OCT, OCT + pd.Timedelta(minutes=10))
    assert b.error == "the data has no column ahsan_score_5m (the bizra.io/dataset-value of bizra-ahsan-score)"
