"""The verdict (a root cause, or nothing to blame) and the calibrated confidence in it."""
from __future__ import annotations

import numpy as np
import pandas as pd

from bizra_nb.cmdb import Cmdb
from bizra_nb.rca.metrics import metric_direction
from bizra_nb.rca.model import Candidate
from bizra_nb.rca.scoring import ABRUPT, ANOMALOUS
from bizra_nb.rca.series import FEW_NORMAL_POINTS

STANDOUT = 3.0  # during a traffic surge, a service this many times more deviant than the typical one is a fault
CONFIDENT = (0.5, 0.25)  # confidence score thresholds of "high" and "medium" (calibrated: benchmarks/rca_accuracy.py)


def judge(scores: pd.DataFrame, ranking: list[Candidate]) -> tuple[str, str]:
    """``("root_cause", "")``, or ``("nothing_to_blame", why)``: no abrupt anomaly, or a broad rise of traffic.

    A traffic surge raises load, latency and CPU everywhere at once; what it shows is capacity, not a fault
    of one service: when the request rate (its median after the start over its median before) rose by a
    quarter or more, abruptly (not the daily rhythm's morning ramp), at most services that report one, and
    no service's errors rose, the verdict is nothing to blame, unless one service stands out: its deviation ``STANDOUT`` times that of the typical anomalous
    service or more (a fault during a surge).
    """
    if not any(c.evidence for c in ranking):  # blame from weak changes of callers alone is not enough
        strongest = float(scores["magnitude"].max()) if len(scores) else 0.0
        return "nothing_to_blame", (f"no series changed abruptly for the worse beyond its usual behaviour (the "
                                    f"strongest change of any kind "
                                    f"is {strongest:.1f}x the normal spread)")
    rates = scores[scores["metric"].map(metric_direction) == "down"]
    if len(rates) >= 3:
        rose = rates[(rates["ratio"] >= 1.25) & (rates["direction"] == "up") & (rates["abrupt"] >= ABRUPT)]
        errors = scores[scores["metric"].str.contains(r"err|fail", case=False) & (scores["magnitude"] >= ANOMALOUS)
                        & (scores["direction"] == "up")]
        own = scores.groupby("service")["magnitude"].max()  # before topology: a symptom's own deviation
        anomalous = sorted((float(own[c.service]) for c in ranking if c.evidence), reverse=True)
        standout = len(anomalous) > 1 and anomalous[0] >= STANDOUT * float(np.median(anomalous[1:]))
        if len(rose) >= 0.6 * len(rates) and errors.empty and not standout:
            factor = float(rose["ratio"].median())
            return "nothing_to_blame", (f"traffic rose {factor:.1f}x at {rose['service'].nunique()} of "
                                        f"{rates['service'].nunique()} services at once and no errors rose: "
                                        "more load, not a fault of one service")
    return "root_cause", ""


def assess(ranking: list[Candidate], verdict: str, reason: str, *, cmdb: Cmdb | None, normal_points: int,
           start_confidence: float | None, seasonal: bool) -> dict:
    """The diagnosis' confidence: ``level`` (high, medium, low), ``score`` (0..1), ``reason`` and ``advice``.

    The score starts from the margin of the first candidate over the best one it does not explain, and is
    lowered for each reason to doubt: the evidence is indirect (a dependency blamed from its callers); the
    first candidate shows only latency or errors while some of its dependencies look normal (a fault in
    one of them, seen only by this caller, would look the same); another independent anomaly is in the
    window; the history is short; the start was detected with little agreement; there is no CMDB. The
    levels' thresholds (``CONFIDENT``) are calibrated on the generated benchmark families
    (``benchmarks/rca_accuracy.py`` prints the calibration) so that "high" is right at least 90 % of the
    time there.
    """
    advice: list[str] = []
    if verdict == "nothing_to_blame":
        pointed = [c.service for c in ranking if c.callers]
        if reason.startswith("traffic"):
            level, score = "medium", 0.5
        elif pointed:
            level, score = "low", 0.2
            reason += f"; weak changes at the callers of {', '.join(pointed[:3])} were seen"
        else:
            strongest = max((c.score for c in ranking), default=0.0)
            level, score = ("high", 1.0) if strongest < ANOMALOUS * 0.8 else ("medium", 0.5)
        return {"level": level, "score": score, "reason": reason, "advice": advice}
    top = ranking[0]
    by_id = {c.service: c for c in ranking}

    def cause_of(c: Candidate) -> str:  # the end of its explained_by chain (symptoms of symptoms too)
        seen = {c.service}
        while c.explained_by and c.explained_by in by_id and c.explained_by not in seen:
            c = by_id[c.explained_by]
            seen.add(c.service)
        return c.service

    rivals = [c for c in ranking[1:] if cause_of(c) != top.service and c.service not in top.callers]
    second = rivals[0].score if rivals else 0.0
    score = float(np.clip((top.score - second) / top.score, 0, 1)) if top.score > 0 else 0.0
    notes = [f"the first candidate leads the next independent one by {score:.0%}"]
    if top.kind in ("no_metrics", "dependency_edge") or top.callers:
        score *= 0.7
        notes.append("blamed from its callers' view (indirect evidence)")
    elif top.kind == "code" and cmdb is not None and top.service in cmdb.items:
        quiet = [d for d in cmdb.dependencies(top.service) if cmdb.items.get(d, {}).get("kind") != "host"
                 and not (d in by_id and by_id[d].anomalous)]
        if quiet:
            score *= 0.5
            notes.append(f"only its latency or errors moved, and its dependencies {', '.join(quiet[:3])} look normal: "
                         "a fault in one of them seen only by this caller would look the same")
            advice.append("latency and errors per dependency as the caller sees them (client-side metrics)")
    independent = [c.service for c in rivals if c.anomalous and c.explained_by is None][:2]
    if independent:
        score *= 0.6
        notes.append(f"another independent anomaly in the window: {', '.join(independent)}")
    if normal_points < FEW_NORMAL_POINTS:
        score *= 0.6
        notes.append(f"only {normal_points} normal points")
        advice.append("a window that starts earlier before the incident (more normal data)")
    if start_confidence is not None and start_confidence < 0.5:
        score *= 0.8
        notes.append("the detected start is uncertain")
        advice.append("the anomaly start, if known (--anomaly-start)")
    if cmdb is None:
        score *= 0.8
        advice.append("a CMDB of the services' dependencies (--cmdb)")
    level = "high" if score >= CONFIDENT[0] else "medium" if score >= CONFIDENT[1] else "low"
    if level != "high" and not seasonal:
        advice.append("a day or more of history before the window (the usual values at that time of day)")
    return {"level": level, "score": round(score, 3), "reason": "; ".join(notes), "advice": advice}
