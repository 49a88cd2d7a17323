"""How long `bizra-nb demo --serve` takes to serve its page and to print each report (a new user's wait).

``python benchmarks/demo_timing.py [--out DIR]``: starts the demo in a temporary folder, timestamps
its output lines, polls the page URL it prints until it answers, then stops it with SIGTERM.
"""
from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="the demo's folder (default: a temporary one)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="bizra-demo-")) / "demo"
    bizra = Path(sys.executable).parent / "bizra-nb"
    start = time.monotonic()
    proc = subprocess.Popen([str(bizra), "demo", "--serve", "--out", str(out), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    marks: dict[str, float] = {}
    reports: list[float] = []
    url: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            if not url and (found := re.search(r"status page: (http://\S+?)/?\s", line)):
                url.append(found.group(1))
            if "report:" in line:
                reports.append(time.monotonic() - start)
            if line.startswith("  index"):
                marks["index"] = time.monotonic() - start

    threading.Thread(target=read, daemon=True).start()
    while not url:
        if proc.poll() is not None:
            sys.exit("the demo stopped before printing its page URL")
        time.sleep(0.05)
    while True:
        try:
            if httpx.get(url[0] + "/", timeout=2).status_code == 200:
                marks["page"] = time.monotonic() - start
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    while "index" not in marks and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    print(f"page answering: {marks['page']:.1f} s")
    print("reports printed: " + ", ".join(f"{t:.1f} s" for t in reports))
    print(f"all reports and the index: {marks.get('index', float('nan')):.1f} s")


if __name__ == "__main__":
    main()
