"""Accuracy of the RCA engine on generated demo-fleet cases: AC@1, AC@3, Avg@5, against the BARO baseline.

Usage: python benchmarks/rca_accuracy.py [--cases 200]
Each case: one fault (CPU hog, memory leak, latency, error burst, packet loss) at a random
service of the 15-service fleet, 1 h at 15 s; the engine is given the true start, a start
60 s late, or none. Runs ours with and without the CMDB, and BARO's robust scorer.
"""
from __future__ import annotations

import argparse
import sys

from bizra_nb.evaluation import evaluate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{'method':<22}{'start':<10}{'faults':<8}{'AC@1':>7}{'AC@3':>7}{'Avg@5':>7}{'ms/case':>9}")
    for label, magnitude in (("normal", (0.5, 1.5)), ("weak", (0.15, 0.5))):
        rows = [("BARO baseline", "true", dict(method="baro")),
                ("BARO baseline", "+60 s", dict(method="baro", start_offset="60s"))]
        for cmdb in (False, True):
            name = "bizra + CMDB" if cmdb else "bizra, no CMDB"
            rows += [(name, "true", dict(use_cmdb=cmdb)), (name, "+60 s", dict(use_cmdb=cmdb, start_offset="60s")),
                     (name, "detected", dict(use_cmdb=cmdb, start_offset=None))]
        for name, start, options in rows:
            acc = evaluate(args.cases, seed=args.seed, magnitude=magnitude, **options)
            print(f"{name:<22}{start:<10}{label:<8}{acc.ac1:>7.3f}{acc.ac3:>7.3f}{acc.avg5:>7.3f}"
                  f"{acc.seconds_per_case * 1000:>9.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
