"""Throughput of /health with all instrumentation on, against a bare Tornado JSON handler (target: ratio >= 0.95).

Usage: python benchmarks/health_throughput.py [--duration 8] [--connections 50] [--rounds 5]

Needs `wrk` (Debian package). Both servers start once, as subprocesses, with their default
logging: the bare one (benchmarks/bare_server.py) as Tornado ships it, ours as `bizra-nb serve`
ships it (one access-log line per request at info, written to a file as a deployment would),
except for its warm kernel pool (``--kernel-pool 0``): its notebook workers start with the server and
would take the cores while the benchmark runs; idle, they cost /health nothing.
Each round runs `wrk` against one, then the other (the order alternates between rounds, so a
neighbour's load on a shared machine does not always fall on the same server), and prints both
rates and their ratio. The verdict is on the median of the rounds' ratios; the spread shows
whether it is steady.

Beside req/s, each server's CPU time per request (user + system, all its threads, read from
/proc) is printed: on a busy machine it is steadier than req/s, since it does not count the
time the server waited for a core.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bizra_nb.settings import setting_fields

HERE = Path(__file__).resolve().parent
TARGET = 0.95
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wrk(url: str, duration: int, connections: int) -> tuple[float, int]:
    """``(requests per second, requests)`` of a `wrk` run; a non-2xx answer is an error."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", url], capture_output=True, text=True, check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} non-2xx responses\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), int(re.search(r"(\d+) requests in", out).group(1))


class Target:
    """One server under test: its process, its URL, and the figures of each round."""

    def __init__(self, name: str, cmd: list[str], port: int, log_path: Path) -> None:
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}/health"
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        self.rates: list[float] = []
        self.cpu_us: list[float] = []

    def measure(self, duration: int, connections: int) -> None:
        before = cpu_seconds(self.proc.pid)
        rate, requests = wrk(self.url, duration, connections)
        self.rates.append(rate)
        self.cpu_us.append((cpu_seconds(self.proc.pid) - before) / requests * 1e6)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="Exit status: 0 when the median ratio meets the target, 1 otherwise.")
    parser.add_argument("--duration", type=int, default=8, help="seconds of each wrk run (default 8)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, each measuring both servers (default 5)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("error: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="bizra-bench-"))
    bare_port, ours_port = free_port(), free_port()
    bare = Target("bare", [sys.executable, str(HERE / "bare_server.py"), str(bare_port)], bare_port, tmp / "bare.log")
    serve = [sys.executable, "-m", "bizra_nb.cli", "serve", "--port", str(ours_port), "--ws-port", "-1",
             "--data-dir", str(tmp / "data")]
    if "kernel_pool" in {f.name for f in setting_fields()}:
        serve += ["--kernel-pool", "0"]
    ours = Target("/health", serve, ours_port, tmp / "ours.log")
    try:
        for target in (bare, ours):
            wait_for(target.port)
            wrk(target.url, 2, args.connections)  # warm-up
        for round_ in range(1, args.rounds + 1):
            for target in ((bare, ours) if round_ % 2 else (ours, bare)):
                target.measure(args.duration, args.connections)
            print(f"round {round_}: bare {bare.rates[-1]:7.0f} req/s ({bare.cpu_us[-1]:5.1f} µs CPU/req)   "
                  f"/health {ours.rates[-1]:7.0f} req/s ({ours.cpu_us[-1]:5.1f} µs CPU/req)   "
                  f"ratio {ours.rates[-1] / bare.rates[-1]:.3f}", flush=True)
    finally:
        bare.stop()
        ours.stop()
    ratios = [o / b for o, b in zip(ours.rates, bare.rates)]
    ratio = statistics.median(ratios)
    cpu_ratio = statistics.median(bare.cpu_us) / statistics.median(ours.cpu_us)
    print(f"ratios per round: {', '.join(f'{r:.3f}' for r in ratios)} (min {min(ratios):.3f}, max {max(ratios):.3f})")
    print(f"median of {args.rounds}: bare {statistics.median(bare.rates):.0f} req/s, "
          f"/health {statistics.median(ours.rates):.0f} req/s; CPU per request: bare "
          f"{statistics.median(bare.cpu_us):.1f} µs, /health {statistics.median(ours.cpu_us):.1f} µs "
          f"(throughput-equivalent ratio {cpu_ratio:.3f})")
    verdict = "PASS" if ratio >= TARGET else "FAIL"
    print(f"median ratio {ratio:.3f} (target >= {TARGET:.2f}) {verdict}")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
