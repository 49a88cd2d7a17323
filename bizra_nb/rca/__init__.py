"""The RCA engine: rank the services of a metric frame by how likely each is the root cause.

Pipeline (each step a function you can call alone; the method, its limits and the benchmark are in
docs/rca.md)::

    prepare_frame           order, drop empty series, fill short gaps               (series)
    seasonal_expectation    with a day of history: the usual value at that time     (series)
    detect_start            consensus of abrupt changes for the worse, when no start is given   (start)
    score_metrics           each series' deviation from its recent normal level      (scoring)
    rank_services           a candidate per service: its strongest series, its evidence, its kind   (scoring)
    refine_with_topology    with a CMDB: a symptom ranks below its earlier dependency   (topology)
    callers_view            quiet or unmonitored dependencies blamed from their callers (topology)
    judge, assess           the verdict and the calibrated confidence                  (verdict)
    explain                 one sentence per candidate                                 (explain)

The per-metric score follows BARO's robust scorer (median and inter-quartile range of the normal
window). Direction matters per metric: a rise of latency, errors, CPU or memory is bad; for throughput
a drop is.
"""
from __future__ import annotations

import pandas as pd

from bizra_nb.cmdb import Cmdb
from bizra_nb.errors import InvalidInput
from bizra_nb.rca.explain import explain
from bizra_nb.rca.metrics import is_resource, metric_direction
from bizra_nb.rca.model import KINDS, Candidate, Diagnosis, Evidence
from bizra_nb.rca.scoring import ANOMALOUS, rank_services, score_metrics
from bizra_nb.rca.series import (FEW_NORMAL_POINTS, MIN_NORMAL_POINTS, _step, prepare_frame, seasonal_expectation,
                                 step_scores, step_width)
from bizra_nb.rca.start import detect_anomaly_start, detect_start
from bizra_nb.rca.topology import (InferredCalls, _with_paths, callers_view, infer_calls, prefer_the_first,
                                   prefer_what_spread, refine_with_topology)
from bizra_nb.rca.verdict import assess, judge

__all__ = ["ANOMALOUS", "KINDS", "MIN_NORMAL_POINTS", "Candidate", "Diagnosis", "Evidence", "InferredCalls",
           "assess", "callers_view", "detect_anomaly_start", "detect_start", "explain", "infer_calls", "is_resource",
           "judge", "metric_direction", "prepare_frame", "rank_root_causes", "rank_services", "refine_with_topology",
           "score_metrics", "seasonal_expectation"]


def rank_root_causes(
    frame: pd.DataFrame,
    *,
    anomaly_start=None,
    end=None,
    cmdb: Cmdb | None = None,
    start=None,
) -> Diagnosis:
    """Rank every service of ``frame`` as a root-cause candidate.

    Parameters
    ----------
    frame
        Wide metric frame: UTC ``DatetimeIndex``, columns ``<service>_<metric>``.
    anomaly_start
        When the incident began (unix seconds, ISO-8601 or Timestamp); detected when None.
    end
        The end of the incident window; the frame's end when None.
    cmdb
        Dependencies between services; refines the ranking, gives propagation paths and lets quiet or
        unmonitored dependencies be blamed from their callers' view.
    start
        Where the examined window begins; rows before it are history. With a day or more of history,
        every series is compared with its usual value at the same time of day. None: the frame's start.

    Returns
    -------
    Diagnosis
        Every service once, best candidate first, with evidence, a kind and a one-sentence explanation;
        a verdict (``nothing_to_blame`` when nothing changed beyond its usual behaviour) and a confidence.

    Examples
    --------
    >>> from bizra_nb.fleet import random_case
    >>> case = random_case(3)
    >>> diagnosis = rank_root_causes(case.metrics, cmdb=case.cmdb)
    >>> diagnosis.top(1) == [case.faults[0].service]
    True
    """
    from bizra_nb.sources import to_timestamp

    data, warnings = prepare_frame(frame)
    given = to_timestamp(anomaly_start, name="anomaly_start")
    stop = to_timestamp(end, name="end") or data.index[-1]
    window_start = to_timestamp(start, name="start")
    if given is not None and given >= stop:
        raise InvalidInput(f"anomaly_start ({given.isoformat()}) must be before end ({stop.isoformat()})",
                           field="anomaly_start")
    data = data.loc[:stop]
    expected = None
    earliest = 0  # where the anomaly may start: not in the history
    if window_start is not None and window_start > data.index[0]:
        expected = seasonal_expectation(data, window_start)
        if expected is not None:
            data = data.loc[window_start:]
            warnings.append("compared with the usual values at the same time of day (history before the window)")
        else:
            earliest = int((data.index < window_start).sum())
            span = window_start - data.index[0]
            why = "it spans less than a day" if span < pd.Timedelta(days=1) else (
                "its time steps are irregular or do not divide a day")
            warnings.append(f"the history before the window ({span}) is used as normal data only, not for a "
                            f"same-time-of-day comparison: {why}")
    if len(data) < MIN_NORMAL_POINTS + 1:
        raise InvalidInput(f"not enough data to diagnose: {len(data)} rows up to the end "
                           f"(need at least {MIN_NORMAL_POINTS + 1})", field="end")
    detected = given is None
    start_confidence = None
    work = data - expected.to_numpy() if expected is not None else data
    steps = step_scores(work.to_numpy(dtype="float64"), step_width(len(work)))
    alternative = None
    if detected:
        anomaly_at, start_confidence, alternative = detect_start(work, steps, earliest=earliest, alternative=True)
    elif window_start is not None and given < window_start:
        raise InvalidInput(f"anomaly_start {given.isoformat()} is before the window's start "
                           f"{window_start.isoformat()}: the rows before it are history", field="anomaly_start")
    elif given <= data.index[0] or given > data.index[-1]:
        raise InvalidInput(f"anomaly_start {given.isoformat()} is outside the data "
                           f"({data.index[0].isoformat()} .. {data.index[-1].isoformat()})", field="anomaly_start")
    else:
        anomaly_at = given
    diagnosis = _diagnose_at(anomaly_at, data, stop, expected, steps, cmdb, list(warnings), detected,
                             start_confidence)
    if alternative is not None and start_confidence < 0.5:
        # two moments competed: the one that explains the data more clearly wins (a change of period or an
        # unrelated step diagnoses as a muddle of independent anomalies, the fault's start does not)
        other = _diagnose_at(alternative, data, stop, expected, steps, cmdb, list(warnings), detected,
                             start_confidence)
        if other.confidence["score"] > diagnosis.confidence["score"]:
            diagnosis, alternative = other, anomaly_at
        diagnosis.warnings.append(f"two moments competed for the anomaly start: {diagnosis.anomaly_start:%H:%M:%S} "
                                  f"(chosen: its diagnosis is clearer) and {alternative:%H:%M:%S} UTC")
    return diagnosis


def _diagnose_at(anomaly_at: pd.Timestamp, data: pd.DataFrame, stop: pd.Timestamp, expected, steps, cmdb,
                 warnings: list[str], detected: bool, start_confidence: float | None) -> Diagnosis:
    """The diagnosis of ``data`` from ``anomaly_at``: scores, ranking, topology, verdict, confidence, words."""
    normal_points = int((data.index < anomaly_at).sum())
    if normal_points < FEW_NORMAL_POINTS:
        warnings.append(f"only {normal_points} normal points before the anomaly start: the normal spread is a rough "
                        "estimate (a longer window before the incident makes the ranking firmer)")
    scores = score_metrics(data, anomaly_at, stop, expected=expected, steps=steps)
    ranking = rank_services(scores)
    tolerance = max(pd.Timedelta(seconds=30), 2 * _step(data))
    if cmdb is not None:
        unknown = sorted({c.service for c in ranking} - set(cmdb.items))
        if unknown:
            warnings.append(f"services not in the CMDB (ranked without topology): {', '.join(unknown[:10])}")
        ranking = refine_with_topology(ranking, cmdb, tolerance=tolerance)
        ranking = callers_view(ranking, cmdb, tolerance=tolerance, anomaly_start=anomaly_at)
        ranking = prefer_what_spread(ranking, cmdb)
        ranking = prefer_the_first(ranking, cmdb, late=max(pd.Timedelta(minutes=2), 4 * _step(data)))
        ranking = _with_paths(ranking, cmdb)
    else:
        inferred = infer_calls(data, anomaly_at)
        if inferred is not None:
            ranking = callers_view(ranking, inferred, tolerance=tolerance, anomaly_start=anomaly_at)
            if any(c.callers for c in ranking):
                shown = ", ".join(f"{a}-{b}" for a, b in inferred.edges[:8])
                warnings.append(f"no CMDB: call edges inferred from co-moving traffic ({shown}); a CMDB is surer")
    ranking.sort(key=lambda c: (not c.anomalous, -c.score))  # anomalous (or blamed) first, with or without a CMDB
    verdict, reason = judge(scores, ranking)
    confidence = assess(ranking, verdict, reason, cmdb=cmdb, normal_points=normal_points,
                        start_confidence=start_confidence, seasonal=expected is not None)
    for cand in ranking:
        cand.explanation = explain(cand, ranking, cmdb)
    return Diagnosis(anomaly_start=anomaly_at, anomaly_start_detected=detected, end=stop, ranking=ranking,
                     warnings=warnings, verdict=verdict, confidence=confidence, start_confidence=start_confidence)
