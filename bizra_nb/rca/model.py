"""What a diagnosis is: the evidence of a series, a candidate service, the ranking with its verdict."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

KINDS = ("resource", "code", "dependency_edge", "no_metrics")


@dataclass
class Evidence:
    metric: str
    direction: str  # "up" or "down": how the series moved
    magnitude: float  # robust z: deviation in units of the normal spread
    onset: pd.Timestamp | None
    normal: float  # median of the normal window
    peak: float  # the most deviant value after the start

    def as_dict(self) -> dict:
        return {"metric": self.metric, "direction": self.direction, "magnitude": round(self.magnitude, 2),
                "onset": _unix(self.onset), "normal": _round(self.normal), "peak": _round(self.peak)}


@dataclass
class Candidate:
    service: str
    score: float
    metric: str
    onset: pd.Timestamp | None
    evidence: list[Evidence] = field(default_factory=list)
    explanation: str = ""
    path: list[str] | None = None  # propagation path root → … → most affected dependent
    explained_by: str | None = None  # an earlier anomalous dependency that explains this one
    kind: str = "resource"  # one of KINDS: what the evidence points at
    edge: tuple[str, str] | None = None  # kind dependency_edge: (caller, callee) whose calls slowed
    shift: float = 0.0  # the strongest steady change of its series after the start, in standard errors
    symptom_shift: float = 0.0  # the same, of its latency and error series only
    traffic_shift: float = 0.0  # the same, of its throughput series only (a drop is the bad way)
    callers: list[str] = field(default_factory=list)  # callers' view: the anomalous callers that point at it

    @property
    def anomalous(self) -> bool:
        """Anomalous itself (evidence), or blamed from its callers' view."""
        return bool(self.evidence or self.callers)

    def as_dict(self) -> dict:
        out = {"service": self.service, "score": round(self.score, 3), "metric": self.metric,
               "onset": _unix(self.onset), "evidence": [e.as_dict() for e in self.evidence],
               "explanation": self.explanation, "kind": self.kind}
        if self.path is not None:
            out["path"] = self.path
        if self.edge is not None:
            out["edge"] = {"caller": self.edge[0], "callee": self.edge[1]}
        if self.callers:
            out["callers"] = list(self.callers)
        return out


@dataclass
class Diagnosis:
    """A ranking of every service in the data, best root-cause candidate first."""

    anomaly_start: pd.Timestamp
    anomaly_start_detected: bool
    end: pd.Timestamp
    ranking: list[Candidate]
    warnings: list[str] = field(default_factory=list)
    verdict: str = "root_cause"  # or "nothing_to_blame": no service changed beyond its usual behaviour
    confidence: dict = field(default_factory=lambda: {"level": "low", "score": 0.0, "reason": "", "advice": []})
    start_confidence: float | None = None  # a detected start: the share of the evidence that agrees on it

    def top(self, k: int = 3) -> list[str]:
        return [c.service for c in self.ranking[:k]]

    def as_dict(self) -> dict:
        """The ``bizra-nb diagnose --format json`` contract."""
        return {"anomaly_start": _unix(self.anomaly_start), "anomaly_start_detected": self.anomaly_start_detected,
                "end": _unix(self.end), "ranking": [c.as_dict() for c in self.ranking], "warnings": list(self.warnings),
                "verdict": self.verdict, "confidence": dict(self.confidence),
                "anomaly_start_confidence": self.start_confidence}

    def table(self, k: int | None = None) -> pd.DataFrame:
        """The ranking as a frame, one row per candidate, best first: ``rank`` (index), ``service``,
        ``score`` (deviation in units of normal spread), ``metric`` (the strongest), ``onset`` (UTC),
        ``explanation``.

        Parameters
        ----------
        k
            The top ``k`` candidates; None: all.

        Returns
        -------
        pandas.DataFrame
            Displayed with every explanation in full (no ``…`` at pandas' column width).
        """
        from bizra_nb.tables import FullTextFrame

        rows = [{"rank": n, "service": c.service, "score": "-" if c.callers else round(c.score, 2), "metric": c.metric,
                 "onset": c.onset.strftime("%Y-%m-%d %H:%M:%S") if c.onset is not None else "-",
                 "explanation": c.explanation} for n, c in enumerate(self.ranking[:k], 1)]
        return FullTextFrame(pd.DataFrame(rows).set_index("rank") if rows else pd.DataFrame())


def _unix(ts: pd.Timestamp | None) -> float | None:
    return None if ts is None or pd.isna(ts) else round(ts.timestamp(), 3)


def _round(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(np.round(x, 4))
