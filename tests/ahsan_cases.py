"""Random steady Ahsan-score counters for promtool rule tests: one case's input series and the 5-minute totals."""
from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence

from bizra_nb.score import WEIGHTS

REPLICATED = {"a": [None], "b": ["b/0", "b/1"]}  # instance b runs `--processes 2`: its series are labelled replica
STEPS_IN_5M = 20  # 15-second steps


def ahsan_case(rng: random.Random, instances: Mapping[str, Sequence[str | None]], events_from: Sequence[int],
               violations: Callable[[random.Random], int], steps: int = 40) -> tuple[list[dict], int, dict[str, int]]:
    """One promtool case of counters rising steadily every 15 s step, drawn from ``rng``.

    Parameters
    ----------
    rng : random.Random
        The seeded generator; draws happen in a fixed order (per replica: its events, then each kind's violations).
    instances : Mapping[str, Sequence[str | None]]
        Each instance's replicas (``None``: no replica label).
    events_from : Sequence[int]
        The events per step a replica's rate is chosen from.
    violations : Callable[[random.Random], int]
        Draws one kind's violations per step for one replica.
    steps : int
        How many steps each series holds after its first value.

    Returns
    -------
    tuple[list[dict], int, dict[str, int]]
        promtool's ``input_series``, the events of the last 5 minutes summed over every series, and each kind's
        violations of the last 5 minutes summed likewise (what :func:`bizra_nb.score.ahsan_score` takes).
    """
    series, events_total, totals = [], 0, dict.fromkeys(WEIGHTS, 0)
    for instance, replicas in instances.items():
        for replica in replicas:
            labels = f'job="bizra", instance="{instance}"' + (f', replica="{replica}"' if replica else "")
            events = rng.choice(events_from)
            events_total += STEPS_IN_5M * events
            series.append({"series": f"bizra_events_total{{{labels}}}", "values": f"0+{events}x{steps}"})
            for kind in WEIGHTS:
                n = violations(rng)
                totals[kind] += STEPS_IN_5M * n
                series.append({"series": f'bizra_violations_total{{{labels}, kind="{kind}"}}',
                               "values": f"0+{n}x{steps}"})
                series.append({"series": f'bizra_violation_weight{{{labels}, kind="{kind}"}}',
                               "values": f"{WEIGHTS[kind]}x{steps}"})
    return series, events_total, totals
