"""The Ahsan score: formula, floor, rounding, tiers, sliding window."""
from __future__ import annotations

import pytest

from bizra_nb.score import WEIGHTS, ScoreKeeper, ahsan_score, tier


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_no_events_is_perfect():
    assert ahsan_score(0, {}) == 100.0
    assert ScoreKeeper().snapshot()["score"] == 100.0


def test_floor_of_one_hundred_events():
    # 1 http_error among 10 events: the denominator is max(10, 100) = 100
    assert ahsan_score(10, {"http_error": 1}) == 99.0
    assert ahsan_score(1000, {"http_error": 1}) == 99.9


def test_weights_and_cap():
    assert ahsan_score(1000, {"silent_failure": 1}) == 99.0
    assert ahsan_score(1000, {"assumption_violated": 2, "run_failed": 3}) == 97.7
    assert ahsan_score(50, {"silent_failure": 20}) == 0.0  # capped at 0, never negative


def test_rounding_to_one_decimal():
    assert ahsan_score(3000, {"http_error": 1}) == 100.0  # 99.9667 rounds to 100.0
    assert ahsan_score(300, {"http_error": 1}) == 99.7


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="unknown violation kind"):
        ahsan_score(10, {"oops": 1})
    with pytest.raises(ValueError, match="known"):
        ScoreKeeper().record("oops")


@pytest.mark.parametrize("score, name", [
    (100.0, "perfect"), (99.9, "peak"), (98.0, "peak"), (97.9, "production"), (97.0, "production"),
    (96.9, "degraded"), (95.0, "degraded"), (94.9, "critical"), (0.0, "critical"),
])
def test_tiers(score, name):
    assert tier(score) == name


def test_a_violation_is_also_an_event():
    keeper = ScoreKeeper()
    keeper.record("http_error")
    snap = keeper.snapshot()
    assert snap["events"] == 1 and snap["violations"]["http_error"] == 1
    assert snap["score"] == 99.0


def test_window_slides():
    clock = FakeClock()
    keeper = ScoreKeeper(window=300, clock=clock)
    for _ in range(100):
        keeper.record()
    keeper.record("silent_failure")
    assert keeper.snapshot()["score"] == ahsan_score(101, {"silent_failure": 1})
    clock.now += 200
    keeper.record()
    assert keeper.snapshot()["events"] == 102
    clock.now += 101  # the first second has left the 300 s window
    snap = keeper.snapshot()
    assert snap["events"] == 1 and snap["violations"]["silent_failure"] == 0
    assert snap["score"] == 100.0
    assert keeper.total_events == 102 and keeper.total_violations["silent_failure"] == 1


def test_snapshot_matches_formula_on_random_outcomes():
    import random

    rng = random.Random(7)
    clock = FakeClock()
    keeper = ScoreKeeper(window=60, clock=clock)
    history = []
    for _ in range(5000):
        clock.now += rng.random() * 0.1
        outcome = rng.choice([None] * 30 + list(WEIGHTS))
        keeper.record(outcome)
        history.append((int(clock.now), outcome))
    now = int(clock.now)
    recent = [o for t, o in history if t > now - 60]
    counts = {k: sum(1 for o in recent if o == k) for k in WEIGHTS}
    assert keeper.snapshot()["score"] == ahsan_score(len(recent), counts)


def test_violation_listeners_are_called():
    seen = []
    keeper = ScoreKeeper()
    keeper.on_violation(lambda kind, detail: seen.append((kind, detail)))
    keeper.record()
    keeper.record_violation("run_failed", "cell 3")
    assert seen == [("run_failed", "cell 3")]
