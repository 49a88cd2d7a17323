"""/health throughput with 1 and 2 server processes (target: 2 processes >= 1.5x one), beside Node/Express 4.

Usage: python benchmarks/processes_throughput.py [--duration 10] [--rounds 2] [--express DIR]

Each configuration runs alone, as `bizra-nb serve` subprocesses with their default logging,
measured with `wrk -t2 -c100` after a warm-up:

- ``1 process``: the embedded default (no Redis);
- ``1 process + Redis``: the same with ``--redis-url`` (the score's deltas batched to Redis every
  100 ms: the hot path must not get slower);
- ``2 processes + Redis``: ``--processes 2`` sharing the port;
- ``express 4``: Node/Express 4 answering the same JSON body with ``res.json`` in one process,
  when ``--express DIR`` names a folder where ``npm install express@4`` was run (outside the repo).

Needs `wrk` and `redis-server` (Debian packages). The best of the rounds counts.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from health_throughput import free_port, wait_for  # noqa: E402

EXPRESS_APP = """
const express = require('express');
const body = JSON.parse(process.env.BODY);
const app = express();
app.get('/health', (req, res) => res.json(body));
app.listen(Number(process.env.PORT), '127.0.0.1');
"""


def wrk(url: str, duration: int) -> float:
    out = subprocess.run(["wrk", "-t2", "-c100", f"-d{duration}s", url], capture_output=True, text=True,
                         check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} non-2xx responses\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def measure(cmd: list[str], port: int, duration: int, log_path: Path, env: dict | None = None) -> float:
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, **(env or {})})
    try:
        wait_for(port)
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)  # every process up (the parent forked them)
        wrk(f"http://127.0.0.1:{port}/health", 2)  # warm-up
        return wrk(f"http://127.0.0.1:{port}/health", duration)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def serve_cmd(port: int, data_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bizra_nb.cli", "serve", "--port", str(port), "--ws-port", "-1",
            "--data-dir", str(data_dir), "--audit-schedule", "", "--benchmark-schedule", "",
            "--kernel-pool", "0", *extra]  # no runs here: no warm kernels competing for the cores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--express", type=Path, help="a folder with node_modules/express (npm install express@4)")
    args = parser.parse_args()
    for tool in ("wrk", "redis-server"):
        if not shutil.which(tool):
            print(f"error: {tool} is not installed (apt-get install {tool})", file=sys.stderr)
            return 2
    tmp = Path(tempfile.mkdtemp(prefix="bizra-procs-"))
    redis_port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    results: dict[str, list[float]] = {"1 process": [], "1 process + Redis": [], "2 processes + Redis": []}
    express = args.express and (args.express / "node_modules" / "express").is_dir() and shutil.which("node")
    if express:
        results["express 4 (1 process)"] = []
    try:
        wait_for(redis_port)
        for round_ in range(1, args.rounds + 1):
            configs = {
                "1 process": (),
                "1 process + Redis": ("--redis-url", redis_url),
                "2 processes + Redis": ("--redis-url", redis_url, "--processes", "2"),
            }
            for name, extra in configs.items():
                port = free_port()
                data = tmp / f"data-{round_}-{len(results[name])}-{name.split()[0]}{'r' if extra else ''}"
                results[name].append(measure(serve_cmd(port, data, *extra), port, args.duration, tmp / "serve.log"))
            if express:
                port = free_port()
                body = _health_body(tmp)
                script = tmp / "express_app.js"
                script.write_text(EXPRESS_APP)
                results["express 4 (1 process)"].append(measure(
                    ["node", str(script)], port, args.duration, tmp / "express.log",
                    env={"BODY": body, "PORT": str(port), "NODE_PATH": str(args.express / "node_modules")}))
            print(f"round {round_}: " + "   ".join(f"{name} {values[-1]:7.0f}" for name, values in results.items()),
                  flush=True)
    finally:
        redis.terminate()
        redis.wait(timeout=10)
    best = {name: max(values) for name, values in results.items()}
    one, two = best["1 process"], best["2 processes + Redis"]
    print(f"\nbest of {args.rounds} rounds, wrk -t2 -c100 -d{args.duration}s, req/s:")
    for name, value in best.items():
        print(f"  {name:24s} {value:8.0f}   {value / one:5.2f}x one process")
    ratio = two / one
    redis_ratio = best["1 process + Redis"] / one
    print(f"2 processes / 1 process = {ratio:.2f} (target >= 1.5) {'PASS' if ratio >= 1.5 else 'FAIL'}; "
          f"1 process with Redis / without = {redis_ratio:.2f}")
    return 0 if ratio >= 1.5 else 1


def _health_body(tmp: Path) -> str:
    """The JSON body our /health answers, for Express to send the same bytes' worth."""
    port = free_port()
    proc = subprocess.Popen(serve_cmd(port, tmp / "data-body"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(port)
        for _ in range(50):
            try:
                return json.dumps(httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json())
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("no /health body")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
