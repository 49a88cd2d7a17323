"""The RCA engine on demo-fleet cases with known truth, and its edge cases."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bizra_nb.errors import InvalidInput
from bizra_nb.evaluation import evaluate
from bizra_nb.fleet import Fault, generate, random_case
from bizra_nb.rca import detect_anomaly_start, metric_direction, rank_root_causes


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
    with pytest.raises(InvalidInput, match="points of normal data"):
        rank_root_causes(data.metrics, anomaly_start=data.metrics.index[3])
    with pytest.raises(InvalidInput, match="not enough data"):
        rank_root_causes(data.metrics.iloc[:5])


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
