"""Resident memory of `bizra-nb serve` with N idle WebSocket clients connected (target: < 150 MB at 1,000).

Usage: python benchmarks/ws_memory.py [--clients 1000]
The clients live in this process (one asyncio loop); the server is a separate process.
"""
from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import sys
import tempfile
from pathlib import Path

from tornado.websocket import websocket_connect

from bizra_nb.demo import start_server


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def connect_all(url: str, n: int) -> list:
    clients = []
    for start in range(0, n, 100):
        batch = await asyncio.gather(*(websocket_connect(url) for _ in range(start, min(n, start + 100))))
        clients.extend(batch)
    return clients


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.clients * 2 + 100)), hard))
    proc, base = start_server(Path(tempfile.mkdtemp(prefix="bizra-ws-")))
    try:
        before = rss_mb(proc.pid)

        async def run() -> float:
            clients = await connect_all(base.replace("http", "ws") + "/ws/live-updates", args.clients)
            await asyncio.sleep(3)  # a few cycles and heartbeats with everyone connected
            after = rss_mb(proc.pid)
            for client in clients:
                client.close()
            return after

        after = asyncio.run(run())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    ok = after < 150
    print(f"server RSS: {before:.1f} MB idle, {after:.1f} MB with {args.clients} WebSocket clients "
          f"({(after - before) * 1024 / args.clients:.1f} KB per client) (target < 150 MB) {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
