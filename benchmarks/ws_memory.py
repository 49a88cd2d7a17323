"""Resident memory of `bizra-nb serve` with N idle WebSocket clients connected (targets: < 150 MB at 1,000, < 400 MB at 10,000).

Usage: python benchmarks/ws_memory.py [--clients 1000,10000] [--per-process 2500]

The server is a subprocess (its controller broadcasting every second, so the clients'
streams carry messages); the clients live in separate processes, --per-process each
(light raw-socket clients that read every frame and answer pings: see ws_fanout.py).
The counts are reached one after the other on the same server, adding clients; the
server's RSS is read from /proc a few seconds after each count is connected.
Exit 0 when every target of the counts run is met, 1 otherwise.
"""
from __future__ import annotations

import argparse
import multiprocessing
import shutil
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from ws_fanout import LightClients, raise_fd_limit, spread

TARGETS_MB = {1000: 150.0, 10000: 400.0}  # clients -> server RSS target
SETTLE_SECONDS = 3.0  # a few controller cycles (broadcasts) with everyone connected before reading the RSS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def holder(url: str, n: int, conn) -> None:
    """A client process: connect ``n`` idle clients, say so, keep reading until told to stop; report closures."""
    raise_fd_limit(n + 64)
    parts = urlsplit(url)
    clients = LightClients()
    clients.connect(parts.hostname, parts.port, n)
    conn.send("connected")
    while not conn.poll(0):
        clients.pump(0.1)
    conn.recv()
    conn.send(clients.closed)
    for sock in clients.socks.values():
        sock.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1000,10000", help="comma-separated client counts (default: %(default)s)")
    parser.add_argument("--per-process", type=int, default=2500, help="clients per client process (default: %(default)s)")
    args = parser.parse_args()
    counts = sorted(int(c) for c in args.clients.split(",") if c.strip())

    from bizra_nb.demo import start_server, stop_server  # here: the client processes re-import this module

    raise_fd_limit(max(counts) * 2 + 256)  # the server subprocess inherits it
    proc, base = start_server(work := Path(tempfile.mkdtemp(prefix="bizra-ws-")), "--controller-interval", "1",
                              "--kernel-pool", "0")  # no runs here: no warm kernels competing for the cores
    ws_url = base.replace("http", "ws", 1) + "/ws/live-updates"
    ctx = multiprocessing.get_context("spawn")
    workers: list = []
    ok = True
    try:
        time.sleep(SETTLE_SECONDS)
        idle = rss_mb(proc.pid)
        print(f"server RSS idle: {idle:.1f} MB")
        connected = 0
        for n in counts:
            added = []
            for share in spread(n - connected, args.per_process):
                ours, theirs = ctx.Pipe()
                worker = ctx.Process(target=holder, args=(ws_url, share, theirs), daemon=True)
                worker.start()
                added.append((worker, ours))
            workers += added
            for _, conn in added:
                if conn.poll(180):
                    if conn.recv() != "connected":
                        raise RuntimeError("a client process failed")
                else:
                    raise RuntimeError("a client process did not connect its clients within 180 s")
            connected = n
            time.sleep(SETTLE_SECONDS)
            rss = rss_mb(proc.pid)
            target = TARGETS_MB.get(n)
            passed = target is None or rss < target
            ok &= passed
            print(f"server RSS with {n:>6} idle WebSocket clients: {rss:6.1f} MB "
                  f"({(rss - idle) * 1024 / n:.1f} KB per client)"
                  + (f" (target < {target:g} MB) {'PASS' if passed else 'FAIL'}" if target else ""), flush=True)
        closed = 0
        for _, conn in workers:
            conn.send("stop")
            closed += conn.recv() if conn.poll(60) else 0
        if closed:
            print(f"FAIL: the server closed {closed} idle clients")
            ok = False
    finally:
        for worker, _ in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
        stop_server(proc)
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
