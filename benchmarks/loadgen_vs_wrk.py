"""Our load generator (bizra_nb.loadgen, `bizra-nb bench`) checked against `wrk` on the same endpoint, rate and connections.

Usage: python benchmarks/loadgen_vs_wrk.py [--rate 1000] [--connections 32] [--duration 10] [--rounds 2] [--endpoint /health]

Starts ``bizra-nb serve`` (its warm kernel pool off: its workers would take the cores while they
start), then, each round, loads ``/health`` with ``wrk`` and with our generator, one after the
other: the same offered rate (``--rate``), the same number of connections (``--connections``), the
same duration. ``wrk`` (4.1, not wrk2) has no rate option: a Lua script paces it, its ``delay()``
holding each next request until its turn in one schedule of ``rate`` requests a second over all
connections (LuaJIT's FFI reads CLOCK_MONOTONIC), and its ``done()`` prints the percentiles. Printed:
both tools' p50/p95/p99 latency and achieved throughput (responses a second), the difference of ours
in % and in ms, PASS within 10 % (a latency also within 0.5 ms: below, why ours reads a tenth or two
of a millisecond higher on an endpoint that answers in 0.3 ms). The figures are the median over the rounds. Exit 0 when all agree, 1 otherwise.

How each tool counts time, and why the figures may still differ:

- ``wrk`` times each request from the moment it writes it on its connection to the last byte of
  the response. A request that waits for a free connection is not timed while it waits, so when the
  server stalls, wrk under-reports the tail (coordinated omission).
- Ours is open-loop: each request is due at its place in the schedule and waits for a free
  connection from then on; its latency counts from when it was due, or from when the generator
  issued it when the generator itself was late (asyncio wakes its timers up to a millisecond late;
  see the docstring of :mod:`bizra_nb.loadgen`). Before this was fixed, that lateness (0.5 to
  1 ms, about 0.6 ms at the median) counted as the server's latency: at 1000 req/s on /health,
  whose own answer takes a few tenths of a millisecond, ours read p50 1.0 ms where wrk read 0.3 ms.
- Ours is a Python asyncio client sharing 2 cores with the server: reading and parsing a response,
  waking the request's task through its timeout (``asyncio.wait_for``: one more task and IOLoop
  turn) and recording it cost it 0.1 ms a request more than wrk's C at the median, 0.2 to 0.3 ms
  in p95 and p99 (measured: p50 0.39 to 0.42 ms where wrk read 0.26 to 0.31 ms). On /health, whose
  answer takes 0.3 ms, that is +25 to +55 %, tenths of a millisecond, which the runbook's
  20/50/100 ms targets never notice (hence the 0.5 ms slack). On a slower endpoint (``--endpoint``) the
  same tenth is a smaller share. On a machine shared with other work the tails (p95, p99) of both
  tools move by milliseconds from run to run: compare them on a quiet machine.
- Throughput: at a rate the server sustains both reach the offered rate; ours counts from the first
  due request to the last response (the ramp-down included), so it reads a few req/s under it.
"""
from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bizra_nb.loadgen import run_load
from health_throughput import free_port, wait_for  # this folder: sys.path[0]

TOLERANCE = 0.10  # the tools agree when ours is within 10 % of wrk's figure...
LATENCY_SLACK_MS = 0.5  # ...or, for a latency, within half a millisecond (the client's own cost: see above)
METRICS = ("p50_ms", "p95_ms", "p99_ms", "throughput_rps")
PACING = """
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } bench_timespec; int clock_gettime(int, bench_timespec *); ]]
local now_ts = ffi.new("bench_timespec")
local function now() ffi.C.clock_gettime(1, now_ts); return tonumber(now_ts.tv_sec) + tonumber(now_ts.tv_nsec) / 1e9 end
local rate = %(rate)r
local first, n = nil, 0
function delay()  -- milliseconds until this request's turn in one schedule over all connections
  local t = now()
  if first == nil then first = t end
  local due = first + n / rate
  n = n + 1
  if due <= t then return 0 end
  return math.floor((due - t) * 1000 + 0.5)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def run_wrk(url: str, *, rate: float, connections: int, duration: float, script: Path) -> dict:
    """wrk paced at ``rate`` over ``connections`` for ``duration`` s: p50/p95/p99 (ms), throughput, errors."""
    script.write_text(PACING % {"rate": float(rate)})
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    found = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", out)
    if not found:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    requests, micros, p50, p95, p99, errors = map(int, found.groups())
    return {"p50_ms": p50 / 1000, "p95_ms": p95 / 1000, "p99_ms": p99 / 1000,
            "throughput_rps": requests / (micros / 1e6), "errors": errors}


def run_ours(base: str, *, endpoint: str, rate: float, connections: int, duration: float) -> dict:
    """Our generator (as `bizra-nb bench` runs it, without the WebSocket probe) on ``endpoint``."""
    result = asyncio.run(run_load(base, endpoints=[endpoint], duration=duration, rate=rate,
                                  concurrency=connections))
    stats = result.stats()
    return {**{k: stats[k] for k in METRICS}, "errors": stats["requests"] - stats["successes"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--rate", type=float, default=1000.0, help="requests a second offered (default 1000)")
    parser.add_argument("--connections", type=int, default=32, help="connections of both tools (default 32)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each run (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both tools (default 2; medians shown)")
    parser.add_argument("--endpoint", default="/health", help="the path both tools load (default /health)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("error: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="bizra-loadgen-"))
    port = free_port()
    serve = [sys.executable, "-m", "bizra_nb.cli", "serve", "--port", str(port), "--ws-port", "-1",
             "--data-dir", str(tmp / "data"), "--log-level", "warning", "--kernel-pool", "0"]
    base = f"http://127.0.0.1:{port}"
    runs: dict[str, list[dict]] = {"wrk": [], "ours": []}
    with open(tmp / "server.log", "w") as log:
        server = subprocess.Popen(serve, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_for(port)
        url = base + args.endpoint
        run_wrk(url, rate=args.rate, connections=args.connections, duration=2, script=tmp / "pace.lua")  # warm-up
        for round_ in range(1, args.rounds + 1):
            runs["wrk"].append(run_wrk(url, rate=args.rate, connections=args.connections,
                                       duration=args.duration, script=tmp / "pace.lua"))
            runs["ours"].append(run_ours(base, endpoint=args.endpoint, rate=args.rate, connections=args.connections,
                                         duration=args.duration))
            for tool, figures in runs.items():
                print(f"round {round_} {tool:<4}: " + "  ".join(f"{k} {figures[-1][k]:8.3f}" for k in METRICS)
                      + f"  errors {figures[-1]['errors']}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{args.endpoint} at {args.rate:g} req/s offered, {args.connections} connections, {args.duration:g} s, "
          f"median of {args.rounds} round(s):")
    print(f"{'':16}{'wrk':>10}{'ours':>10}{'diff':>9}{'(abs)':>10}")
    agree = True
    for metric in METRICS:
        theirs = statistics.median(r[metric] for r in runs["wrk"])
        ours = statistics.median(r[metric] for r in runs["ours"])
        diff = (ours - theirs) / theirs if theirs else float("inf")
        ok = abs(diff) <= TOLERANCE or (metric.endswith("_ms") and abs(ours - theirs) <= LATENCY_SLACK_MS)
        agree &= ok
        print(f"{metric:<16}{theirs:10.3f}{ours:10.3f}{diff:+9.1%}{ours - theirs:+10.3f}  {'PASS' if ok else 'FAIL'}")
    errors = sum(r["errors"] for tool in runs.values() for r in tool)
    if errors:
        print(f"{errors} failed requests (either tool): the comparison is of a failing server")
    print(f"the tools {'agree' if agree else 'differ'} (within {TOLERANCE:.0%}, latencies within {TOLERANCE:.0%} "
          f"or {LATENCY_SLACK_MS:g} ms): {'PASS' if agree else 'FAIL'} (see --help for how each counts time)")
    return 0 if agree and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
