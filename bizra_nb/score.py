"""The Ahsan score: events and weighted violations over a sliding window, and its tiers.

``score = 100 × (1 − min(1, Σ weight_k × violations_k / max(events, 100)))``,
rounded to one decimal; no events gives 100. A violation is an event that
failed, so recording one counts one event too.

Tiers (PRODUCT.md names five; its 95 and 97 lines are the P1 and P2 lines of
the severity table, so ``degraded`` is the band between them)::

    perfect     100
    peak        >= 98
    production  >= 97
    degraded    >= 95     warning line: P2
    critical    <  95     P1
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Mapping

WEIGHTS: dict[str, int] = {
    "http_error": 1,
    "validation_failed": 1,
    "run_failed": 1,
    "assumption_violated": 10,
    "silent_failure": 10,
}
EVENT_FLOOR = 100
TIERS: tuple[tuple[str, float], ...] = (
    ("perfect", 100.0),
    ("peak", 98.0),
    ("production", 97.0),
    ("degraded", 95.0),
    ("critical", float("-inf")),
)


def ahsan_score(events: float, violations: Mapping[str, float]) -> float:
    """The score for ``events`` checked operations of which ``violations`` (by kind) failed.

    Examples
    --------
    >>> ahsan_score(1000, {"http_error": 20})
    98.0
    >>> ahsan_score(10, {"silent_failure": 1})
    90.0
    """
    unknown = set(violations) - set(WEIGHTS)
    if unknown:
        raise ValueError(f"unknown violation kind(s) {sorted(unknown)}; known: {list(WEIGHTS)}")
    weighted = sum(WEIGHTS[kind] * n for kind, n in violations.items())
    if events <= 0 and weighted <= 0:
        return 100.0
    return round(100.0 * (1.0 - min(1.0, weighted / max(events, EVENT_FLOOR))), 1)


def tier(score: float) -> str:
    """The tier name of a score: perfect, peak, production, degraded or critical."""
    for name, floor in TIERS:
        if score >= floor:
            return name
    return "critical"


class ScoreKeeper:
    """Thread-safe sliding-window counter of events and violations.

    Recording is O(1) (per-second buckets with running sums), so it can sit on
    every request's path. Lifetime totals feed the Prometheus counters
    ``bizra_events_total`` and ``bizra_violations_total{kind}``.

    Parameters
    ----------
    window
        Sliding window in seconds (default 300).
    clock
        Returns the current time in seconds; tests pass a fake one.
    """

    def __init__(self, window: float = 300.0, *, clock: Callable[[], float] = time.time) -> None:
        if window <= 0:
            raise ValueError("window must be > 0 seconds")
        self.window = float(window)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: deque[list] = deque()  # [second, events, {kind: n}]
        self._events = 0
        self._weighted = 0
        self._violations = dict.fromkeys(WEIGHTS, 0)
        self.total_events = 0
        self.total_violations = dict.fromkeys(WEIGHTS, 0)
        self._listeners: list[Callable[[str, str], None]] = []
        self._sharing = False

    def share_deltas(self) -> None:
        """Hand what is recorded from now on to :meth:`take_deltas` (a shared score's writer drains it)."""
        with self._lock:
            if not self._sharing:
                self._sharing = True
                for bucket in self._buckets:  # recorded before: not shared
                    bucket[3], bucket[4] = bucket[1], dict(bucket[2] or {})

    def take_deltas(self) -> dict[int, tuple[int, dict[str, int]]]:
        """What was recorded since the last call, ``{second: (events, {kind: n})}``; empty unless shared.

        :meth:`record` pays nothing for it: each bucket also holds what was taken
        from it, and only the newest bucket ever changes, so this walks back from
        it to the first bucket taken in full (one or two buckets when called every
        100 ms). Every event lands in exactly one call's result while its second is
        in the window.
        """
        deltas: dict[int, tuple[int, dict[str, int]]] = {}
        with self._lock:
            if not self._sharing:
                return deltas
            for bucket in reversed(self._buckets):
                second, events, kinds, taken_events, taken_kinds = bucket
                if events == taken_events:
                    break
                added = events - taken_events
                added_kinds = {kind: n - taken_kinds.get(kind, 0) for kind, n in (kinds or {}).items()
                               if n != taken_kinds.get(kind, 0)}
                bucket[3], bucket[4] = events, dict(kinds or {})
                if second in deltas:  # the clock went back: two buckets of one second
                    more, more_kinds = deltas[second]
                    added += more
                    added_kinds = {k: added_kinds.get(k, 0) + more_kinds.get(k, 0) for k in {*added_kinds, *more_kinds}}
                deltas[second] = (added, added_kinds)
        return deltas

    def on_violation(self, listener: Callable[[str, str], None]) -> None:
        """Call ``listener(kind, detail)`` for every violation recorded (e.g. to persist it)."""
        self._listeners.append(listener)

    def record(self, violation: str | None = None, detail: str = "") -> None:
        """Record one checked operation; ``violation`` names its kind when it failed."""
        if violation is not None and violation not in WEIGHTS:
            raise ValueError(f"unknown violation kind {violation!r}; known: {list(WEIGHTS)}")
        second = int(self._clock())
        with self._lock:
            buckets = self._buckets
            if buckets and buckets[-1][0] == second:
                bucket = buckets[-1]
            else:
                bucket = [second, 0, None, 0, {}]  # second, events, {kind: n}; then what take_deltas() took
                buckets.append(bucket)
                self._expire(second)
            bucket[1] += 1
            self._events += 1
            self.total_events += 1
            if violation is not None:
                if bucket[2] is None:
                    bucket[2] = {}
                bucket[2][violation] = bucket[2].get(violation, 0) + 1
                self._violations[violation] += 1
                self._weighted += WEIGHTS[violation]
                self.total_violations[violation] += 1
        if violation is not None:
            for listener in self._listeners:
                listener(violation, detail)

    def record_violation(self, kind: str, detail: str = "") -> None:
        """Record a failed operation of ``kind`` (one of :data:`WEIGHTS`)."""
        self.record(kind, detail)

    def _expire(self, now_second: int) -> None:
        oldest = now_second - self.window
        buckets = self._buckets
        while buckets and buckets[0][0] <= oldest:
            _, events, violations, _, _ = buckets.popleft()
            self._events -= events
            if violations:
                for kind, n in violations.items():
                    self._violations[kind] -= n
                    self._weighted -= WEIGHTS[kind] * n

    def snapshot(self) -> dict:
        """The window's events, violations by kind, score and tier, as one consistent dict."""
        with self._lock:
            self._expire(int(self._clock()))
            events = self._events
            weighted = self._weighted
            violations = dict(self._violations)
        if events <= 0 and weighted <= 0:
            score = 100.0
        else:  # the formula of ahsan_score(), on the running weighted sum
            score = round(100.0 * (1.0 - min(1.0, weighted / max(events, EVENT_FLOOR))), 1)
        return {
            "score": score,
            "tier": tier(score),
            "events": events,
            "violations": violations,
            "window_seconds": self.window,
        }

    def score(self) -> float:
        return self.snapshot()["score"]

