"""/health latency while a 10,000-item CMDB is imported, merged and queried (target: p99 < 50 ms during the import).

Usage: python benchmarks/cmdb_import.py [--items 10000] [--rounds 3]
Starts `bizra-nb serve` as a subprocess, then, for each round, imports a generated CMDB
(items with depends_on and runs_on relations; replace, then merge) while a thread
samples GET /health back to back on its own connection. Prints the import durations
and the /health p50/p99/max of the samples taken while an import was in flight.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

TOKEN = "bench-token"


def generate_cmdb(items: int, *, seed: int = 7) -> dict:
    """``items`` configuration items (a hundredth of them hosts) in a layered depends_on DAG, as a CMDB document."""
    rng = random.Random(seed)
    hosts = [f"host-{n:04d}" for n in range(max(1, items // 100))]
    services = [f"svc-{n:05d}" for n in range(items - len(hosts))]
    doc_items = [{"id": h, "kind": "host", "rack": f"r{n % 40}"} for n, h in enumerate(hosts)]
    doc_items += [{"id": s, "kind": rng.choice(["service", "database", "cache", "queue"]), "owner": f"team-{n % 50}",
                   "tier": n % 3 + 1, "selectors": {"latency": f'histogram_quantile(0.99, rate(rpc{{app="{s}"}}[1m]))'}}
                  for n, s in enumerate(services)]
    relations = []
    for n, s in enumerate(services):
        later = services[n + 1: n + 60]
        for target in rng.sample(later, min(2, len(later))):  # only later items: no cycles
            relations.append({"source": s, "target": target, "type": "depends_on"})
        relations.append({"source": s, "target": rng.choice(hosts), "type": "runs_on"})
    return {"items": doc_items, "relations": relations}


def sample_health(url: str, stop: threading.Event, samples: list[tuple[float, float]]) -> None:
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            began = time.perf_counter()
            client.get(url).raise_for_status()
            samples.append((began, time.perf_counter() - began))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bizra-cmdb-bench-"))
    body = json.dumps(generate_cmdb(args.items)).encode()
    print(f"CMDB: {args.items} items, {len(body) / 2**20:.1f} MiB of JSON", flush=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bizra_nb.cli", "serve", "--port", "0", "--ws-port", "-1", "--data-dir", str(tmp / "data"),
         "--reports-dir", str(tmp / "reports"), "--api-token", TOKEN, "--log-level", "warning",
         "--audit-schedule", "", "--benchmark-schedule", "", "--kernel-pool", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(re.search(r":(\d+)/health", proc.stdout.readline()).group(1))
        base = f"http://127.0.0.1:{port}"
        samples: list[tuple[float, float]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample_health, args=(base + "/health", stop, samples))
        sampler.start()
        time.sleep(1.0)  # a baseline before the first import
        windows: list[tuple[float, float]] = []
        auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        with httpx.Client(base_url=base, timeout=300, headers=auth) as client:
            for round_ in range(1, args.rounds + 1):
                for mode in ("replace", "merge"):
                    began = time.perf_counter()
                    response = client.post("/cmdb/import", params={"mode": mode}, content=body)
                    ended = time.perf_counter()
                    response.raise_for_status()
                    windows.append((began, ended))
                    print(f"round {round_}: import ({mode}) of {response.json()['items']} items "
                          f"in {ended - began:.2f} s", flush=True)
                began = time.perf_counter()
                client.get("/cmdb/items/svc-09899/impact").raise_for_status()
                client.get("/cmdb/paths", params={"from": "svc-00000", "to": "svc-09000"}).raise_for_status()
                client.get("/cmdb/export").raise_for_status()
                windows.append((began, time.perf_counter()))
                print(f"round {round_}: impact + paths + export in {time.perf_counter() - began:.2f} s", flush=True)
        stop.set()
        sampler.join()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    before = [d for t, d in samples if t < windows[0][0]]
    during = [d for t, d in samples if any(a <= t <= b for a, b in windows)]
    imports = [b - a for a, b in windows]
    p99 = percentile(during, 0.99) * 1000
    print(f"/health before: {len(before)} samples, p50 {percentile(before, 0.5) * 1000:.1f} ms, "
          f"p99 {percentile(before, 0.99) * 1000:.1f} ms")
    print(f"/health during imports and queries: {len(during)} samples, p50 {statistics.median(during) * 1000:.1f} ms, "
          f"p99 {p99:.1f} ms, max {max(during) * 1000:.1f} ms (target p99 < 50 ms) {'PASS' if p99 < 50 else 'FAIL'}")
    print(f"import/query windows: median {statistics.median(imports):.2f} s, max {max(imports):.2f} s")
    return 0 if p99 < 50 else 1


if __name__ == "__main__":
    sys.exit(main())
