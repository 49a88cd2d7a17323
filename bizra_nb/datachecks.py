"""Checks run on every metric fetch: gaps, NaN share, time order, stale series; failures become violations."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bizra_nb.score import ScoreKeeper

NAN_SHARE_LIMIT = 0.2
GAP_FACTOR = 2.0  # a step more than twice the usual one is a gap
STALE_STEPS = 5  # a series silent for this many steps before the end is stale


@dataclass(frozen=True)
class CheckResult:
    """One data check's outcome; ``kind`` is the violation kind when it failed."""

    name: str
    ok: bool
    message: str = ""
    kind: str = "validation_failed"

    def as_dict(self) -> dict:
        return {"check": self.name, "ok": self.ok, "kind": self.kind, "message": self.message}


def usual_step(index: pd.DatetimeIndex) -> pd.Timedelta | None:
    if len(index) < 2:
        return None
    diffs = np.diff(index.as_unit("ns").asi8)
    diffs = diffs[diffs > 0]
    return pd.Timedelta(int(np.median(diffs)), "ns") if len(diffs) else None


def check_frame(frame: pd.DataFrame, *, time_was_sorted: bool = True, source: str = "data",
                end: pd.Timestamp | None = None) -> list[CheckResult]:
    """Run the data checks on a wide frame (UTC index); returns every result, passed or failed."""
    results = [CheckResult(
        "time order", time_was_sorted,
        "" if time_was_sorted else f"{source}: timestamps were not in increasing order (sorted before use)",
        kind="assumption_violated",
    )]
    index = frame.index
    step = usual_step(index)
    if step is not None:
        diffs = np.diff(index.as_unit("ns").asi8)
        gaps = diffs > GAP_FACTOR * step.value
        if gaps.any():
            longest = pd.Timedelta(int(diffs[gaps].max()), "ns")
            first = index[:-1][gaps][0]
            results.append(CheckResult("gaps", False, f"{source}: {int(gaps.sum())} gap(s) in time (usual step "
                                       f"{step}, longest {longest}, first after {first.isoformat()})"))
        else:
            results.append(CheckResult("gaps", True))
    nan_share = frame.isna().mean() if len(frame) else pd.Series(dtype=float)
    bad = nan_share[nan_share > NAN_SHARE_LIMIT].sort_values(ascending=False)
    if len(bad):
        shown = ", ".join(f"{c} ({v:.0%})" for c, v in bad.head(5).items())
        results.append(CheckResult("missing values", False, f"{source}: {len(bad)} series more than "
                                   f"{NAN_SHARE_LIMIT:.0%} empty: {shown}"))
    else:
        results.append(CheckResult("missing values", True))
    if step is not None and len(frame):
        horizon = (end if end is not None else index[-1]) - STALE_STEPS * step
        last_seen = frame.apply(pd.Series.last_valid_index)
        stale = [c for c, t in last_seen.items() if t is None or pd.isna(t) or t < horizon]
        if stale:
            results.append(CheckResult("stale series", False, f"{source}: {len(stale)} series with no sample in the "
                                       f"last {STALE_STEPS} steps: {', '.join(stale[:5])}"))
        else:
            results.append(CheckResult("stale series", True))
    return results


def record_checks(results: list[CheckResult], keeper: ScoreKeeper | None) -> list[str]:
    """Count each check as an event (failures as violations); returns the failure messages as warnings."""
    if keeper is not None:
        for result in results:
            keeper.record(None if result.ok else result.kind, result.message)
    return [r.message for r in results if not r.ok]
