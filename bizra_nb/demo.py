"""`bizra-nb demo`: the main job on the embedded defaults (for now: the server up, its /health shown)."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx


def start_server(data_dir: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """Start ``bizra-nb serve`` on free ports; returns the process and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bizra_nb.cli", "serve", "--port", "0", "--ws-port", "0",
         "--data-dir", str(data_dir), "--log-level", "warning", *extra],
        stdout=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 30
    for line in proc.stdout:
        found = re.search(r"serving (http://[\d.]+:\d+)/health", line)
        if found:
            return proc, found.group(1)
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError("the server did not start (see its output above)")


def run_demo(*, out: str = "reports", seconds: float = 3.0) -> int:
    data_dir = Path("data") / "demo"
    print(f"[demo] starting the server (data in {data_dir}) ...", flush=True)
    proc, base = start_server(data_dir)
    try:
        time.sleep(seconds)
        health = httpx.get(f"{base}/health", timeout=5).json()
        print(f"[demo] GET {base}/health", flush=True)
        print(json.dumps(health, ensure_ascii=False, indent=2), flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    print("[demo] server stopped", flush=True)
    return 0
