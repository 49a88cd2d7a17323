"""The RCA benchmark's case families: each injects what it says (so a generator that stops injecting fails)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bizra_nb.cases import FAMILIES, FAULT_FREE, WEAK, fault_free, make_case, service_of
from bizra_nb.evaluation import evaluate_family, rank_of
from bizra_nb.fleet import CODE_FAULT_KINDS, FAULT_KINDS, METRICS, Fault, generate, random_case

RESOURCES = ("cpu", "mem", "rate")


def change(case) -> pd.DataFrame:
    """What the family added to the fault-free noise of the same seed."""
    return case.metrics - fault_free(case).loc[case.metrics.index]


def after(frame: pd.DataFrame, at: pd.Timestamp, minutes: float = 3) -> pd.DataFrame:
    return frame[frame.index >= at + pd.Timedelta(minutes=minutes)]


def robust_z(frame: pd.DataFrame, at: pd.Timestamp, service: str) -> float:
    """The largest shift of a service's metrics after ``at`` (from 2 min on), in robust units of before."""
    cols = [f"{service}_{m}" for m in METRICS]
    before, later = frame.loc[frame.index < at, cols], after(frame[cols], at, 2)
    scale = (before.quantile(0.75) - before.quantile(0.25)) / 1.349
    return float(((later.median() - before.median()).abs() / scale).max())


def test_the_old_generator_is_unchanged_by_the_new_options():
    plain = generate(seed=3).metrics
    assert plain.equals(generate(seed=3, traffic=lambda index: np.ones(len(index))).metrics)
    at = plain.index[150]
    one = generate(seed=4, faults=[Fault("catalog", "latency", at)]).metrics
    assert one.equals(generate(seed=4, faults=[Fault("catalog", "latency", at, amplify=1.0)]).metrics)
    assert "network_delay" not in FAULT_KINDS and set(CODE_FAULT_KINDS) == {"code_error", "code_latency"}
    assert Fault("catalog", "latency", at).as_dict().keys() == {"service", "kind", "start", "end", "magnitude"}


def test_clean_families_are_the_old_random_cases():
    case = make_case("clean", 7)
    assert case.metrics.equals(random_case(7).metrics)
    assert (case.root, case.start, case.root_kind) == (random_case(7).faults[0].service, random_case(7).faults[0].start,
                                                       "resource")
    weak = make_case("clean_weak", 7)
    assert weak.metrics.equals(random_case(7, magnitude=(0.15, 0.5)).metrics)
    assert 0.15 <= weak.faults[0].magnitude <= 0.5 and weak.window_start == weak.metrics.index[0]


@pytest.mark.parametrize("seed", [1, 0])  # code_latency, root untouched; code_error, root shifted weakly
def test_code_fault_leaves_the_root_alone_and_moves_its_callers(seed):
    case = make_case("code_fault", seed)
    assert case.root_kind == "code" and case.faults[0].kind in CODE_FAULT_KINDS
    delta = change(case)
    for metric in RESOURCES:
        assert (delta[f"{case.root}_{metric}"] == 0).all(), metric
    noise = fault_free(case)
    caller = case.cmdb.dependents(case.root)[0]
    metric = "lat_50" if case.faults[0].kind == "code_latency" else "error"
    column = f"{caller}_{metric}"
    before = case.metrics.loc[case.metrics.index < case.start, column]
    lift = after(case.metrics, case.start)[column].median() - before.median()
    assert lift > 10 * (before.quantile(0.75) - before.quantile(0.25))
    own = after(delta, case.start)[f"{case.root}_{metric}"].abs().max()
    assert own <= 2.0 * noise[f"{case.root}_{metric}"].diff().std() + 1e-9  # at most a weak shift at the root


def test_code_fault_roots_are_seen_weakly_in_half_the_cases_at_most():
    seen = []
    for seed in range(12):
        case = make_case("code_fault", seed)
        own = change(case)[[f"{case.root}_{m}" for m in ("error", "lat_50", "lat_99")]]
        seen.append(bool((own.abs() > 1e-9).to_numpy().any()))
    assert 2 <= sum(seen) <= 10  # seeded coin: sometimes, not always


@pytest.mark.parametrize("seed", [0, 10])  # one edge with one caller; one edge of two (api-gateway -> user)
def test_network_delay_slows_the_caller_and_not_the_callee(seed):
    case = make_case("network_delay", seed)
    assert case.detail["scope"] == "edge" and case.root_kind == "dependency_edge"
    caller, callee = case.edge
    assert callee == case.root and caller in case.cmdb.dependents(callee)
    delta = change(case)
    for metric in ("lat_50", "lat_99", "error", "cpu", "mem"):
        assert (delta[f"{callee}_{metric}"] == 0).all(), metric
    assert (after(delta, case.start)[f"{callee}_rate"] < 0).all()  # its callers send a little less
    assert (after(delta, case.start)[f"{caller}_lat_50"] >= 5 - 1e-3).all()
    assert (delta.loc[delta.index < case.start, f"{caller}_lat_50"] == 0).all()
    for other in case.cmdb.dependents(callee):
        if other != caller and caller not in {d["id"] for d in case.cmdb.upstream(other)}:
            assert (delta[f"{other}_lat_50"] == 0).all()  # another caller of the callee: not slowed


def test_network_delay_at_the_node_slows_every_caller():
    case = next(c for c in (make_case("network_delay", s) for s in range(40))
                if c.detail["scope"] == "node" and len(c.cmdb.dependents(c.root)) > 1)
    delta = change(case)
    assert case.edge == (case.cmdb.dependents(case.root)[0], case.root)
    for caller in case.cmdb.dependents(case.root):
        assert (after(delta, case.start)[f"{caller}_lat_50"] >= 5 - 1e-3).all(), caller


@pytest.mark.parametrize("seed", [0, 5])  # latency at user-db, at catalog-db
def test_no_metrics_root_has_no_columns_and_its_caller_moves(seed):
    case = make_case("no_metrics", seed)
    assert case.root_kind == "no_metrics" and case.root in case.cmdb.items
    assert case.cmdb.items[case.root]["kind"] != "service"
    assert not [c for c in case.metrics.columns if service_of(c) == case.root]
    assert case.metrics.shape[1] == 84
    caller = case.cmdb.dependents(case.root)[0]
    assert robust_z(case.metrics, case.start, caller) > 5


@pytest.mark.parametrize("seed, metric", [(1, "lat_50"), (3, "error")])
def test_weak_root_is_amplified_by_its_callers(seed, metric):
    case = make_case("weak_root", seed)
    fault = case.faults[0]
    assert 0.15 <= fault.magnitude <= 0.4 and 1.5 <= fault.amplify <= 3.0
    last = change(case).iloc[-1]
    for caller in case.cmdb.dependents(case.root):
        ratio = last[f"{caller}_{metric}"] / last[f"{case.root}_{metric}"]
        assert ratio == pytest.approx(fault.amplify, rel=0.02)
    caller_z = max(robust_z(case.metrics, case.start, c) for c in case.cmdb.dependents(case.root))
    if seed == 3:
        assert robust_z(case.metrics, case.start, case.root) < caller_z


def test_surge_raises_every_rate_and_blames_no_one():
    case = make_case("surge", 2)
    assert case.root is None and case.root_kind is None and case.start is not None
    rates = [c for c in case.metrics.columns if c.endswith("_rate")]
    before = case.metrics.loc[case.metrics.index < case.start, rates].mean()
    later = after(case.metrics, case.start, 4)[rates].mean()
    assert (later / before >= 1.4).all(), (later / before).min()
    delta = change(case)
    assert (delta.filter(like="_error") == 0).all().all() and (delta.filter(like="_mem") == 0).all().all()
    assert len(case.detail["queueing"]) in (3, 4, 5)


def test_unrelated_step_is_at_a_service_outside_the_roots_paths():
    case = make_case("unrelated", 4)
    other, column, at = case.detail["service"], case.detail["column"], case.detail["at"]
    related = {case.root} | {d["id"] for d in case.cmdb.impact(case.root)} | {
        d["id"] for d in case.cmdb.upstream(case.root)}
    assert other not in related
    assert case.start - pd.Timedelta("20min") <= at <= case.start + pd.Timedelta("10min")
    clean = random_case(4, magnitude=WEAK).metrics  # the same weak fault without the unrelated step
    differs = (case.metrics - clean).abs() > 1e-3
    assert list(differs.columns[differs.any()]) == [column]
    assert not differs.loc[differs.index < at, column].any() and differs.loc[differs.index >= at, column].all()


def test_gaps_are_where_the_case_says():
    case = make_case("gaps", 3)
    frame, detail = case.metrics, case.detail
    at = frame.index.get_loc(case.start)
    assert len(detail["gaps"]) == 18
    expected = np.zeros(frame.shape, dtype=bool)
    for column, spans in detail["gaps"].items():
        assert 1 <= len(spans) <= 3
        for begin, length in spans:
            assert 2 <= length <= 10
            expected[begin:begin + length, frame.columns.get_loc(column)] = True
    late = [frame.columns.get_loc(f"{detail['late_service']}_{m}") for m in METRICS]
    expected[:len(frame) // 2, late] = True
    assert (frame.isna().to_numpy() == expected).all()
    first = detail["gaps"][detail["gap_at_start"]][0]
    assert service_of(detail["gap_at_start"]) == case.root and abs(first[0] - at) <= 5
    assert frame[f"{detail['late_service']}_rate"].iloc[len(frame) // 2:].notna().all()
    assert detail["late_service"] != case.root


def test_level_shift_steps_before_the_fault_not_at_it():
    case = make_case("level_shift", 2)
    at, steps = case.detail["at"], case.detail["steps"]
    assert pd.Timedelta("3min") <= case.start - at <= pd.Timedelta("10min")
    assert len(steps) == round(0.3 * 84) and all(service_of(c) != case.root for c in steps)
    clean = random_case(2, magnitude=WEAK).metrics  # the same weak fault without the steps
    delta = case.metrics - clean
    for column, size in steps.items():
        assert (delta.loc[delta.index < at, column] == 0).all()
        moved = delta.loc[delta.index >= at, column]
        if not column.endswith(("_error", "_rate")):  # not clipped at zero
            assert moved.to_numpy() == pytest.approx(size, abs=1e-3)
        assert abs(size) > 0
    untouched = [c for c in case.metrics.columns if c not in steps]
    assert (delta[untouched].abs() < 1e-9).all().all()  # the fault itself is the clean case's


def test_rhythm_fault_is_a_month_at_one_minute_with_the_fault_in_the_last_six_hours():
    case = make_case("rhythm_fault", 1)
    index = case.metrics.index
    assert len(index) == 28 * 24 * 60 and (index[1:] - index[:-1] == pd.Timedelta("1min")).all()
    assert case.window_start == index[-1] + pd.Timedelta("1min") - pd.Timedelta("6h")
    share = (case.start - case.window_start) / pd.Timedelta("6h")
    assert 0.55 <= share <= 0.76 and case.root is not None
    assert robust_z(case.metrics.loc[case.window_start:], case.start, case.root) > 3
    hour = index.hour
    rate = case.metrics["frontend_rate"]
    assert rate[hour == 15].mean() > 1.4 * rate[hour == 3].mean()  # the daily rhythm is there


def test_rhythm_quiet_windows_sit_on_the_peak_or_the_trough():
    centres = set()
    for seed in (0, 1, 2, 3):
        case = make_case("rhythm_quiet", seed)
        assert case.root is None and case.start is None and len(case.metrics) == 28 * 24 * 60
        assert (case.metrics - fault_free(case)).abs().to_numpy().max() == 0
        mid = case.reference_start
        assert mid.hour == case.detail["centre_hour"] and mid.minute == 0
        centres.add(case.detail["centre_hour"])
    assert centres == {3, 15}
    short = make_case("rhythm_quiet_short", 0)
    assert len(short.metrics) == 360 and short.window_start == short.metrics.index[0] and short.root is None


@pytest.mark.parametrize("rows", [3, 5, 8])
def test_short_history_has_exactly_n_rows_before_the_start(rows):
    case = make_case(f"short_{rows}", 9)
    assert (case.metrics.index < case.start).sum() == rows
    assert case.window_start == case.metrics.index[0]
    assert case.metrics.loc[case.start:].equals(random_case(9).metrics.loc[case.start:])


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_is_deterministic(family):
    one, two = make_case(family, 11), make_case(family, 11)
    assert one.metrics.equals(two.metrics) and (one.root, one.start, one.edge) == (two.root, two.start, two.edge)
    assert not one.metrics.equals(make_case(family, 12).metrics)
    assert (one.root is None) == (family in FAULT_FREE)


def test_an_unknown_family_names_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown case family 'chaos'.*clean, clean_weak, code_fault"):
        make_case("chaos", 0)


def test_rank_of_counts_an_edge_into_the_root_as_the_root():
    assert rank_of("payment", ["a", "b", "payment"]) == 3
    assert rank_of("payment", ["checkout", "b"], [("checkout", "payment"), None]) == 1
    assert rank_of("payment", ["a"]) is None


@pytest.mark.parametrize("family", ["surge", "code_fault"])
def test_evaluate_family_on_three_cases(family):
    ours = evaluate_family(family, 3, start_mode="late", seed=20)
    baro = evaluate_family(family, 3, method="baro", start_mode="absent", seed=20)
    for result in (ours, baro):
        assert result.cases == 3 and len(result.confidence) == 3 and result.seconds_per_case > 0
        assert 0 <= result.quiet <= 1 and result.refused >= 0
    assert baro.quiet == 0 and not baro.use_cmdb
    if family in FAULT_FREE:
        assert ours.ac1 is None and baro.ac1 is None
        assert all(right is False for _, right in baro.confidence)  # BARO always blames someone
    else:
        assert 0 <= ours.ac1 <= ours.ac3 <= 1 and 0 <= baro.ac1 <= baro.ac3 <= 1
        assert [right for _, right in baro.confidence].count(True) == round(baro.ac1 * 3)
    with pytest.raises(ValueError, match="start mode"):
        evaluate_family(family, 1, start_mode="early")
