"""Throughput of /health with all instrumentation on, against a bare Tornado JSON handler (target: ratio >= 0.9).

Usage: python benchmarks/health_throughput.py [--duration 10] [--connections 50] [--rounds 3]
Needs `wrk` (Debian package). Both servers run one at a time, as subprocesses, with
their default logging: the bare one as Tornado ships it, ours as `bizra-nb serve` ships it
(one access-log line per request at info, written to a file as a deployment would).
"""
from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def wrk(url: str, duration: int, connections: int) -> float:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", url], capture_output=True, text=True, check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} non-2xx responses\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def measure(cmd: list[str], port: int, duration: int, connections: int, log_path: Path) -> float:
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_for(port)
        wrk(f"http://127.0.0.1:{port}/health", 2, connections)  # warm-up
        return wrk(f"http://127.0.0.1:{port}/health", duration, connections)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("error: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="bizra-bench-"))
    bare, ours = [], []
    for round_ in range(1, args.rounds + 1):
        port = free_port()
        bare.append(measure([sys.executable, str(HERE / "bare_server.py"), str(port)], port,
                            args.duration, args.connections, tmp / "bare.log"))
        port = free_port()
        ours.append(measure([sys.executable, "-m", "bizra_nb.cli", "serve", "--port", str(port), "--ws-port", "-1",
                             "--data-dir", str(tmp / "data")], port, args.duration, args.connections, tmp / "ours.log"))
        print(f"round {round_}: bare {bare[-1]:8.0f} req/s   /health {ours[-1]:8.0f} req/s   "
              f"ratio {ours[-1] / bare[-1]:.3f}", flush=True)
    best_bare, best_ours = max(bare), max(ours)
    ratio = best_ours / best_bare
    print(f"best of {args.rounds}: bare {best_bare:.0f} req/s, /health {best_ours:.0f} req/s, "
          f"ratio {ratio:.3f} (target >= 0.90) {'PASS' if ratio >= 0.9 else 'FAIL'}")
    return 0 if ratio >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
