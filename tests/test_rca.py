"""The RCA engine on demo-fleet cases with known truth, and its edge cases."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from bizra_nb.errors import InvalidInput
from bizra_nb.evaluation import evaluate
from bizra_nb.fleet import Fault, generate, random_case
from bizra_nb.rca import detect_anomaly_start, detect_start, metric_direction, rank_root_causes


def case_with(service: str, kind: str, seed: int = 5):
    start = pd.Timestamp("2026-10-03T10:00:00Z")
    fault = Fault(service=service, kind=kind, start=start + pd.Timedelta("40min"))
    return generate(start=start, duration="1h", faults=[fault], seed=seed), fault


@pytest.mark.parametrize("service, kind", [("catalog-db", "latency"), ("payment", "cpu_hog"),
                                           ("cart-cache", "packet_loss"), ("user", "error_burst"),
                                           ("orders-queue", "memory_leak")])
def test_finds_the_injected_root_cause(service, kind):
    data, fault = case_with(service, kind)
    diagnosis = rank_root_causes(data.metrics, anomaly_start=fault.start, cmdb=data.cmdb)
    assert diagnosis.top(1) == [service]
    top = diagnosis.ranking[0]
    assert top.evidence and top.explanation.startswith(service)
    assert abs((top.onset - fault.start).total_seconds()) <= 120


def test_topology_puts_the_root_above_its_dependents():
    data, fault = case_with("catalog-db", "latency")
    diagnosis = rank_root_causes(data.metrics, anomaly_start=fault.start, cmdb=data.cmdb)
    by_service = {c.service: c for c in diagnosis.ranking}
    assert by_service["catalog"].explained_by == "catalog-db"
    assert "symptom" in by_service["catalog"].explanation
    assert diagnosis.ranking[0].path[0] == "catalog-db" and "catalog" in diagnosis.ranking[0].path


def test_start_late_by_a_minute_or_absent():
    data, fault = case_with("payment", "cpu_hog")
    late = rank_root_causes(data.metrics, anomaly_start=fault.start + pd.Timedelta("60s"), cmdb=data.cmdb)
    assert late.top(1) == ["payment"]
    found = rank_root_causes(data.metrics, cmdb=data.cmdb)
    assert found.anomaly_start_detected
    assert abs((found.anomaly_start - fault.start).total_seconds()) <= 120
    assert found.top(1) == ["payment"]


def test_json_contract_lists_every_service_once():
    data, fault = case_with("user", "error_burst")
    doc = rank_root_causes(data.metrics, anomaly_start=fault.start.timestamp()).as_dict()
    services = [r["service"] for r in doc["ranking"]]
    assert sorted(services) == sorted({c.split("_")[0] for c in data.metrics.columns})
    assert isinstance(doc["anomaly_start"], float) and doc["anomaly_start_detected"] is False
    first = doc["ranking"][0]
    assert set(first) >= {"service", "score", "metric", "onset", "evidence", "explanation"}
    assert set(first["evidence"][0]) == {"metric", "direction", "magnitude", "onset", "normal", "peak"}


def test_constant_series_and_a_throughput_drop():
    index = pd.date_range("2026-10-01", periods=200, freq="15s", tz="UTC")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "flat_cpu": np.full(200, 5.0),  # constant all along: no signal, no division by zero
        "noisy_rate": 100 + rng.normal(0, 2, 200),
        "shop_rate": 100 + rng.normal(0, 2, 200),
        "shop_cpu": 40 + rng.normal(0, 1, 200),
    }, index=index)
    frame.loc[index[150]:, "shop_rate"] -= 60  # the shop stopped serving
    frame.loc[index[150]:, "noisy_rate"] += 20  # a traffic rise elsewhere is less suspicious
    diagnosis = rank_root_causes(frame, anomaly_start=index[150])
    assert diagnosis.top(1) == ["shop"]
    assert diagnosis.ranking[0].evidence[0].direction == "down"
    flat = next(c for c in diagnosis.ranking if c.service == "flat")
    assert flat.score == 0.0 and np.isfinite(flat.score)


def test_a_constant_series_that_jumps_is_found():
    index = pd.date_range("2026-10-01", periods=100, freq="15s", tz="UTC")
    frame = pd.DataFrame({"a_error": np.zeros(100), "b_error": np.zeros(100)}, index=index)
    frame.loc[index[80]:, "b_error"] = 0.2
    assert rank_root_causes(frame, anomaly_start=index[80]).top(1) == ["b"]


@pytest.mark.parametrize("metric, direction", [("lat_99", "up"), ("latency-90", "up"), ("cpu", "up"),
                                               ("error", "up"), ("rate", "down"), ("workload", "down"),
                                               ("temperature", "both")])
def test_metric_direction(metric, direction):
    assert metric_direction(metric) == direction


def test_bad_inputs():
    data, fault = case_with("user", "latency")
    with pytest.raises(InvalidInput, match="outside the data"):
        rank_root_causes(data.metrics, anomaly_start="2020-01-01")
    with pytest.raises(InvalidInput, match="before end"):
        rank_root_causes(data.metrics, anomaly_start=fault.start, end=fault.start - pd.Timedelta("1min"))
    with pytest.raises(InvalidInput, match="leaves 2 points of normal data before it; at least 3 are needed"):
        rank_root_causes(data.metrics, anomaly_start=data.metrics.index[2])
    with pytest.raises(InvalidInput, match="not enough data"):
        rank_root_causes(data.metrics.iloc[:3])


def test_detects_the_start_of_a_latency_fault():
    data, fault = case_with("catalog", "latency")
    assert abs((detect_anomaly_start(data.metrics) - fault.start).total_seconds()) <= 60


@pytest.mark.parametrize("offset", ["0s", "60s", None])
def test_accuracy_over_generated_cases(offset):
    accuracy = evaluate(40, start_offset=offset, seed=500)
    assert accuracy.ac1 >= 0.9 and accuracy.ac3 >= 0.95, accuracy.as_dict()


def test_doctest_example():
    case = random_case(3)
    assert rank_root_causes(case.metrics, cmdb=case.cmdb).top(1) == [case.faults[0].service]


def chain_case(caller_at: int, dependency_at: int):
    """CMDB a → b → c (a calls b, b calls c); latency of the caller a jumps more than that of the dependency c."""
    from bizra_nb.cmdb import Cmdb

    index = pd.date_range("2026-10-01", periods=240, freq="15s", tz="UTC")
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({f"{s}_latency": 20 + rng.normal(0, 1, 240) for s in "abc"}, index=index)
    frame.loc[index[caller_at]:, "a_latency"] += 60
    frame.loc[index[dependency_at]:, "c_latency"] += 25
    cmdb = Cmdb.from_dict({"items": [{"id": s, "kind": "service"} for s in "abc"],
                           "relations": [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}]})
    start = index[min(caller_at, dependency_at)]
    return rank_root_causes(frame, anomaly_start=start, cmdb=cmdb), index


def test_a_dependency_anomalous_later_is_not_promoted_over_its_caller():
    diagnosis, index = chain_case(caller_at=150, dependency_at=180)  # c's onset 7.5 minutes after a's
    by_service = {c.service: c for c in diagnosis.ranking}
    assert by_service["a"].onset == index[150] and by_service["c"].onset == index[180]
    assert diagnosis.top(2) == ["a", "c"]
    assert by_service["a"].explained_by is None


def test_a_dependency_anomalous_earlier_is_promoted_over_its_caller():
    diagnosis, index = chain_case(caller_at=180, dependency_at=150)  # c first: a is its symptom
    by_service = {c.service: c for c in diagnosis.ranking}
    assert by_service["c"].onset == index[150] and by_service["a"].onset == index[180]
    assert diagnosis.top(2) == ["c", "a"]
    assert by_service["a"].explained_by == "c" and by_service["a"].score < by_service["c"].score
    assert diagnosis.ranking[0].path[0] == "c"


# -- hard cases (issue 13): short history, callers' view, detection, rhythm, verdict, confidence -------------


def synthetic(series: dict[str, float], *, n: int = 240, seed: int = 2) -> pd.DataFrame:
    """Flat noisy series (noise 1) at the given levels, 15 s apart."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2026-10-01", periods=n, freq="15s", tz="UTC")
    return pd.DataFrame({name: level + rng.normal(0, 1, n) for name, level in series.items()}, index=index)


def graph(*edges: tuple[str, str], unmonitored: tuple[str, ...] = ()):
    from bizra_nb.cmdb import Cmdb

    names = sorted({s for edge in edges for s in edge} | set(unmonitored))
    return Cmdb.from_dict({"items": [{"id": s, "kind": "service"} for s in names],
                           "relations": [{"source": a, "target": b} for a, b in edges]})


def test_three_normal_points_are_enough_and_the_warning_says_how_few():
    data, fault = case_with("payment", "cpu_hog")
    at = data.metrics.index.get_loc(fault.start)
    diagnosis = rank_root_causes(data.metrics.iloc[at - 3:], anomaly_start=fault.start, cmdb=data.cmdb)
    assert diagnosis.top(1) == ["payment"]
    assert any("only 3 normal points" in w for w in diagnosis.warnings)
    assert diagnosis.confidence["level"] != "high"
    assert any("starts earlier" in a for a in diagnosis.confidence["advice"])


def test_a_database_without_metrics_is_blamed_from_its_callers_view():
    data, fault = case_with("payments-db", "error_burst", seed=6)
    frame = data.metrics[[c for c in data.metrics.columns if not c.startswith("payments-db_")]]
    diagnosis = rank_root_causes(frame, anomaly_start=fault.start, cmdb=data.cmdb)
    top = diagnosis.ranking[0]
    assert (top.service, top.kind, top.callers) == ("payments-db", "no_metrics", ["payment"])
    assert top.explanation.startswith("payments-db: reports no metrics, but its caller payment turned slow or failing")
    by_service = {c.service: c for c in diagnosis.ranking}
    assert by_service["payment"].explained_by == "payments-db"
    assert "it points at its dependency payments-db (see there)" in by_service["payment"].explanation
    doc = diagnosis.as_dict()["ranking"][0]
    assert doc["kind"] == "no_metrics" and doc["callers"] == ["payment"]
    # without a CMDB nothing says payment calls a database: payment itself is blamed, as before
    assert rank_root_causes(frame, anomaly_start=fault.start).top(1) == ["payment"]


def test_a_quiet_dependency_with_a_weak_steady_change_is_the_code_fault_its_caller_shows():
    frame = synthetic({"a_latency": 20, "b_latency": 10, "b_cpu": 30})
    frame.iloc[160:, 0] += 40  # the caller: anomalous
    frame.iloc[160:, 1] += 1.5  # the dependency: 1.5 noise units, far below "anomalous", but steady
    cmdb = graph(("a", "b"))
    diagnosis = rank_root_causes(frame, anomaly_start=frame.index[160], cmdb=cmdb)
    assert diagnosis.top(2) == ["b", "a"]
    assert (diagnosis.ranking[0].kind, diagnosis.ranking[0].callers) == ("code", ["a"])
    # no change at the dependency: a fault in a and one in b look the same; the one that shows it keeps the blame
    frame.iloc[160:, 1] -= 1.5
    assert rank_root_causes(frame, anomaly_start=frame.index[160], cmdb=cmdb).top(1) == ["a"]


def test_a_dependency_whose_traffic_dips_as_its_caller_slows_is_a_slow_edge():
    frame = synthetic({"a_latency": 20, "b_latency": 10, "b_rate": 100})
    frame.iloc[160:, 0] += 40
    frame.iloc[160:, 2] -= 2.0  # b receives a little less: its caller waits
    diagnosis = rank_root_causes(frame, anomaly_start=frame.index[160], cmdb=graph(("a", "b")))
    top = diagnosis.ranking[0]
    assert (top.service, top.kind, top.edge) == ("b", "dependency_edge", ("a", "b"))
    assert "calls from a to b slowed" in top.explanation
    assert diagnosis.as_dict()["ranking"][0]["edge"] == {"caller": "a", "callee": "b"}


def test_a_quiet_service_two_callers_point_at_together_is_the_common_cause():
    frame = synthetic({"a_latency": 20, "b_latency": 20, "c_latency": 10})
    cmdb = graph(("a", "c"), ("b", "c"))
    frame.iloc[160:, 0] += 40
    frame.iloc[161:, 1] += 30
    diagnosis = rank_root_causes(frame, anomaly_start=frame.index[160], cmdb=cmdb)
    assert diagnosis.top(1) == ["c"] and diagnosis.ranking[0].callers == ["a", "b"]
    # callers that turned anomalous ten minutes apart do not point at one cause
    apart = synthetic({"a_latency": 20, "b_latency": 20, "c_latency": 10})
    apart.iloc[140:, 0] += 40
    apart.iloc[180:, 1] += 30
    assert rank_root_causes(apart, anomaly_start=apart.index[140], cmdb=cmdb).top(1) == ["a"]


def test_the_start_is_found_after_unrelated_level_shifts_in_many_series():
    """Many series step in random directions 20 minutes before the fault (data recorded in another
    period): the start is the fault's, and those series are compared with their new level."""
    data, fault = case_with("payment", "cpu_hog")
    frame = data.metrics.copy()
    rng = np.random.default_rng(3)
    shifted = [c for c in frame.columns if not c.startswith("payment_")][::3]
    at = fault.start - pd.Timedelta("20min")
    for column in shifted:
        noise = frame[column].diff().abs().median()
        frame.loc[at:, column] += rng.choice([-1, 1]) * rng.uniform(8, 15) * noise
    found = rank_root_causes(frame, cmdb=data.cmdb)
    assert abs((found.anomaly_start - fault.start).total_seconds()) <= 60
    assert found.top(1) == ["payment"]
    given = rank_root_causes(frame, anomaly_start=fault.start, cmdb=data.cmdb)
    assert given.top(1) == ["payment"]
    assert not {c.service for c in given.ranking if c.evidence} - {"payment", "checkout", "api-gateway", "frontend"}


def test_a_slow_ramp_is_dated_from_where_it_began_and_a_lone_noisy_series_does_not_move_the_start():
    frame = synthetic({"a_mem": 100, "a_latency": 20, "b_latency": 20, "c_cpu": 30})
    ramp = np.clip(np.arange(240) - 150, 0, None) * 0.8  # from row 150, rising for the rest of the window
    frame["a_mem"] += ramp
    frame["a_latency"] += ramp * 0.5
    frame.iloc[60:63, 3] += 30  # one noisy series: a short burst long before
    start, confidence = detect_start(frame)
    assert frame.index[146] <= start <= frame.index[160]  # within 2.5 minutes of where the ramp began
    assert 0 <= confidence <= 1


def month_of(fault=None, seed: int = 2):
    start = pd.Timestamp("2026-10-01", tz="UTC")
    faults = [fault] if fault is not None else []
    return generate(start=start, duration="14D", step="1min", faults=faults, seed=seed)


@pytest.mark.parametrize("hour", [3, 9, 15, 21])
def test_the_daily_rhythm_alone_is_nothing_to_blame(hour):
    data = month_of()
    end = data.metrics.index[0] + pd.Timedelta(days=13, hours=hour)
    with_history = rank_root_causes(data.metrics.loc[:end], start=end - pd.Timedelta("2h"), cmdb=data.cmdb)
    assert with_history.verdict == "nothing_to_blame"
    assert any("same time of day" in w for w in with_history.warnings)
    window_only = rank_root_causes(data.metrics.loc[end - pd.Timedelta("6h"):end], cmdb=data.cmdb)
    assert window_only.verdict == "nothing_to_blame", window_only.ranking[0].explanation
    assert with_history.confidence["reason"].startswith("no series changed abruptly")
    assert sorted(c.service for c in with_history.ranking) == sorted({c.split("_")[0] for c in data.metrics.columns})


@pytest.mark.parametrize("hour", [9, 18])  # traffic rising 1.3x through the morning, falling in the evening
def test_a_fault_in_a_window_after_two_weeks_of_history_is_found_against_the_time_of_day(hour):
    begin = pd.Timestamp("2026-10-01", tz="UTC")
    fault = Fault("cart", "latency", begin + pd.Timedelta(days=13, hours=hour, minutes=10), magnitude=0.3)
    data = month_of(fault)
    end = fault.start + pd.Timedelta("3h")
    diagnosis = rank_root_causes(data.metrics.loc[:end], start=end - pd.Timedelta("6h"), cmdb=data.cmdb)
    assert diagnosis.verdict == "root_cause" and diagnosis.top(1) == ["cart"]
    assert abs((diagnosis.anomaly_start - fault.start).total_seconds()) <= 120
    assert diagnosis.start_confidence is not None and diagnosis.anomaly_start_detected


def test_a_traffic_surge_is_load_not_a_fault():
    data, _ = case_with("payment", "cpu_hog")
    frame = generate(start=data.metrics.index[0], duration="1h", seed=5).metrics
    surge = frame.index[160:]
    for column in frame.columns:
        if column.endswith("_rate"):
            frame.loc[surge, column] *= 2.0
        elif column.endswith(("_lat_50", "_lat_99")):
            frame.loc[surge, column] *= 1.3
    diagnosis = rank_root_causes(frame, cmdb=data.cmdb)
    assert diagnosis.verdict == "nothing_to_blame"
    assert re.match(r"traffic rose 2\.\dx at 15 of 15 services at once", diagnosis.confidence["reason"])
    # a fault during the surge that stands out from what the load did everywhere is still a fault
    frame.loc[frame.index[170]:, "payment_lat_50"] *= 6
    during = rank_root_causes(frame, anomaly_start=frame.index[160], cmdb=data.cmdb)
    assert during.verdict == "root_cause" and during.top(1) == ["payment"]


def test_confidence_is_high_for_a_clear_fault_and_lower_for_indirect_evidence():
    data, fault = case_with("payment", "cpu_hog")
    clear = rank_root_causes(data.metrics, anomaly_start=fault.start, cmdb=data.cmdb)
    assert clear.verdict == "root_cause" and clear.confidence["level"] == "high"
    assert set(clear.confidence) == {"level", "score", "reason", "advice"} and 0 < clear.confidence["score"] <= 1
    assert clear.as_dict()["confidence"] == clear.confidence and clear.as_dict()["verdict"] == "root_cause"
    assert clear.as_dict()["anomaly_start_confidence"] is None
    no_cmdb = rank_root_causes(data.metrics, anomaly_start=fault.start)
    assert any("CMDB" in a for a in no_cmdb.confidence["advice"])
    assert no_cmdb.confidence["score"] < clear.confidence["score"]


def test_without_a_cmdb_call_edges_are_inferred_from_co_moving_traffic():
    from bizra_nb.fleet import demo_cmdb
    from bizra_nb.rca import infer_calls

    cmdb = demo_cmdb()
    real = {tuple(sorted((s, d))) for s in cmdb.items for d in cmdb.dependencies(s)}
    coupled = generate(duration="1h", seed=0, coupling=0.7).metrics
    inferred = infer_calls(coupled, coupled.index[-1])
    assert len(set(inferred.edges) & real) >= 8 and len(set(inferred.edges) - real) <= 2
    independent = generate(duration="1h", seed=0).metrics  # traffic that does not flow along calls: no edge
    assert infer_calls(independent, independent.index[-1]) is None


def test_without_a_cmdb_a_quiet_neighbour_whose_traffic_dips_is_blamed_from_inferred_edges():
    rng = np.random.default_rng(4)
    index = pd.date_range("2026-10-01", periods=240, freq="15s", tz="UTC")
    shared = rng.normal(0, 5, 240)  # a's calls to b carry a's traffic
    frame = pd.DataFrame({"a_rate": 100 + shared + rng.normal(0, 2, 240), "a_latency": 20 + rng.normal(0, 1, 240),
                          "b_rate": 80 + shared + rng.normal(0, 2, 240), "b_latency": 10 + rng.normal(0, 1, 240),
                          "c_rate": 50 + rng.normal(0, 5, 240), "c_latency": 15 + rng.normal(0, 1, 240)}, index=index)
    frame.iloc[160:, 1] += 40  # a slows down
    frame.iloc[160:, 2] -= 10  # b receives a little less (a waits): below "anomalous", but steady
    diagnosis = rank_root_causes(frame, anomaly_start=index[160])
    top = diagnosis.ranking[0]
    assert (top.service, top.kind, top.callers) == ("b", "dependency_edge", ["a"])
    assert any("inferred from co-moving traffic (a-b)" in w for w in diagnosis.warnings)
    # a weak rise of b's latency is no evidence along an edge of unknown direction: b may be a's caller
    frame.iloc[160:, 2] += 10
    frame.iloc[160:, 3] += 1.5
    assert rank_root_causes(frame, anomaly_start=index[160]).top(1) == ["a"]
    frame["b_rate"] = 80 + rng.normal(0, 5, 240)  # b's traffic unrelated to a's: no edge, no blame
    frame.iloc[160:, 2] -= 10
    assert rank_root_causes(frame, anomaly_start=index[160]).top(1) == ["a"]


def test_without_a_cmdb_a_slow_database_is_not_blamed_on_a_neighbour_whose_latency_follows():
    """Traffic flows along calls (inferred edges); the caller of a slow database also slows a little: the
    database, whose own latency moved, stays first (edges of unknown direction blame only traffic dips)."""
    start = pd.Timestamp("2026-10-01T10:00:00Z")
    at = start + pd.Timedelta("40min")
    for seed in range(8):
        data = generate(start=start, duration="1h", seed=seed, faults=[Fault("payments-db", "latency", at)],
                        coupling=0.7)
        assert rank_root_causes(data.metrics, anomaly_start=at).top(1) == ["payments-db"], seed


def test_an_isolated_anomaly_ranks_below_one_that_reached_its_callers():
    frame = synthetic({"a_latency": 20, "b_latency": 10, "c_latency": 20, "d_mem": 100})
    cmdb = graph(("a", "b"), ("c", "d"))
    frame.iloc[160:, 1] += 20  # b: a fault that its caller a sees
    frame.iloc[162:, 0] += 15
    frame.iloc[160:, 3] += 30  # d: a bigger step that none of its callers sees
    diagnosis = rank_root_causes(frame, anomaly_start=frame.index[160], cmdb=cmdb)
    assert diagnosis.top(1) == ["b"], [(c.service, c.score) for c in diagnosis.ranking]
    assert "another independent anomaly in the window: d" in diagnosis.confidence["reason"]
    without = rank_root_causes(frame, anomaly_start=frame.index[160])  # no CMDB: nothing says d is isolated
    assert without.top(1) == ["d"]


def test_an_independent_anomaly_that_began_minutes_later_ranks_below_the_first():
    frame = synthetic({"x_latency": 20, "y_latency": 20})
    cmdb = graph(unmonitored=("x", "y"))
    frame.iloc[150:, 0] += 20
    frame.iloc[170:, 1] += 30  # five minutes later, stronger
    diagnosis = rank_root_causes(frame, anomaly_start=frame.index[150], cmdb=cmdb)
    assert diagnosis.top(2) == ["x", "y"]
    frame.iloc[150:170, 1] += 30  # the same moment: the stronger one first
    assert rank_root_causes(frame, anomaly_start=frame.index[150], cmdb=cmdb).top(1) == ["y"]


def test_the_time_of_day_baseline_works_on_a_microsecond_index():
    """Parquet files often hold microseconds: the time-of-day slots must not depend on the index unit."""
    begin = pd.Timestamp("2026-10-01", tz="UTC")
    fault = Fault("cart", "error_burst", begin + pd.Timedelta(days=13, hours=18, minutes=10))
    frame = month_of(fault).metrics
    frame.index = frame.index.as_unit("us")
    end = fault.start + pd.Timedelta("40min")
    diagnosis = rank_root_causes(frame.loc[:end], start=end - pd.Timedelta("2h"))
    assert any("same time of day" in w for w in diagnosis.warnings) and diagnosis.top(1) == ["cart"]
    quiet = rank_root_causes(frame.loc[:fault.start], start=fault.start - pd.Timedelta("2h"))
    assert quiet.verdict == "nothing_to_blame"


def test_a_short_history_is_normal_data_and_the_start_is_not_looked_for_in_it():
    frame = synthetic({"a_latency": 20, "b_latency": 20})
    frame.iloc[40:, 0] += 30  # a step in the history, before the window
    frame.iloc[180:, 1] += 15  # the incident, in the window
    diagnosis = rank_root_causes(frame, start=frame.index[120])
    assert diagnosis.anomaly_start >= frame.index[120] and diagnosis.top(1) == ["b"]
    assert any("used as normal data only, not for a same-time-of-day comparison: it spans less than a day" in w
               for w in diagnosis.warnings)
    whole = rank_root_causes(frame)  # without start= the history is part of the window: its step competes
    assert any("two moments competed" in w and "00:10:00" in w for w in whole.warnings), whole.warnings


@pytest.mark.parametrize("columns, message", [
    (["a_latency", "a_latency"], "column 'a_latency' appears more than once"),
    (["_latency", "b_latency"], "column '_latency' is not named <service>_<metric>"),
    (["latency", "b_latency"], "column 'latency' is not named <service>_<metric>"),
])
def test_bad_column_names_are_refused_by_name(columns, message):
    frame = synthetic({"x_latency": 20, "y_latency": 20})
    frame.columns = columns
    with pytest.raises(InvalidInput, match=re.escape(message)) as error:
        rank_root_causes(frame)
    assert error.value.field == "columns"


def test_infinite_values_are_ignored_with_a_warning_and_times_must_be_finite():
    frame = synthetic({"a_latency": 20, "b_latency": 20})
    frame.iloc[170:, 0] += 30
    frame.iloc[[10, 50], 1] = np.inf
    diagnosis = rank_root_causes(frame, anomaly_start=frame.index[170])
    assert "2 infinite values ignored" in diagnosis.warnings and diagnosis.top(1) == ["a"]
    assert all(np.isfinite(e.peak) for c in diagnosis.ranking for e in c.evidence)
    for name in ("anomaly_start", "end", "start"):
        with pytest.raises(InvalidInput, match=f"{name}: 'nan' is not a time") as error:
            rank_root_causes(frame, **{name: "nan"})
        assert error.value.field == name


@pytest.mark.parametrize("seed", [10, 23])
def test_the_morning_rise_of_traffic_is_no_surge(seed):
    """Two benchmark cases of a weak fault in a morning window: traffic rises 1.3x with the daily rhythm,
    slowly; that is no surge hiding the fault (a surge is an abrupt rise)."""
    from bizra_nb.cases import make_case

    case = make_case("rhythm_fault", seed)
    diagnosis = rank_root_causes(case.metrics, anomaly_start=case.start, start=case.window_start, cmdb=case.cmdb)
    assert diagnosis.verdict == "root_cause" and diagnosis.top(1) == [case.root]


def test_a_given_start_before_the_window_is_refused_and_a_quiet_window_is_dated_inside_it():
    frame = synthetic({"a_latency": 20, "b_latency": 20})
    with pytest.raises(InvalidInput, match="is before the window's start .*: the rows before it are history") as error:
        rank_root_causes(frame, start=frame.index[120], anomaly_start=frame.index[100])
    assert error.value.field == "anomaly_start"
    quiet = rank_root_causes(frame, start=frame.index[120])
    assert quiet.verdict == "nothing_to_blame" and quiet.anomaly_start >= frame.index[120]


def test_traffic_that_only_rises_is_nothing_to_blame_and_said_so():
    frame = synthetic({"a_rate": 100, "a_latency": 20, "b_latency": 20})
    frame.iloc[160:, 0] += 40  # more requests: no evidence of a fault
    diagnosis = rank_root_causes(frame, anomaly_start=frame.index[160])
    assert diagnosis.verdict == "nothing_to_blame"
    assert diagnosis.confidence["reason"].startswith("no series changed abruptly for the worse")
    a = next(c for c in diagnosis.ranking if c.service == "a")
    assert not a.evidence
    assert "no metric changed for the worse beyond its normal range (its strongest change, rate" in a.explanation
    frame.iloc[160:, 0] -= 80  # fewer requests: a fault's evidence (packet loss, a dead client)
    fell = rank_root_causes(frame, anomaly_start=frame.index[160])
    assert fell.verdict == "root_cause" and fell.top(1) == ["a"] and fell.ranking[0].evidence[0].metric == "rate"


@pytest.mark.parametrize("seed", [3, 14, 30])
def test_when_a_change_of_period_competes_with_the_fault_the_clearer_diagnosis_wins(seed):
    """Two benchmark cases where many series change level minutes before a weak fault: both moments are
    diagnosed and the one whose diagnosis is clearer (not a muddle of independent anomalies) is kept."""
    from bizra_nb.cases import make_case

    case = make_case("level_shift", seed)
    diagnosis = rank_root_causes(case.metrics, cmdb=case.cmdb, start=case.window_start)
    assert diagnosis.top(1) == [case.root]
    assert abs((diagnosis.anomaly_start - case.start).total_seconds()) <= 120  # not the change of period
    assert (case.start - case.detail["at"]).total_seconds() >= 180
    assert any(w.startswith("two moments competed for the anomaly start") for w in diagnosis.warnings)
