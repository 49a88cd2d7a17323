"""The runbook's latency and throughput targets on `bizra-nb serve`, with a stalled WebSocket client connected.

Usage: python benchmarks/runbook_latency.py [--rate 1100] [--duration 10] [--ws-clients 10]
The timing targets the tests no longer assert (P50 < 20 ms, P95 < 50 ms, P99 < 100 ms, throughput > 1000
successful responses a second with errors < 1 %, WebSocket round trip < 10 ms) are measured here: an
open-loop load on /health from this process (bizra_nb.loadgen), the server a separate process, and one
WebSocket client that completed its handshake and never reads, so a stalled client is present throughout.
Throughput is reported offered and achieved side by side; only the achieved rate can pass.
"""
from __future__ import annotations

import argparse
import base64
import os
import socket
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from bizra_nb.demo import start_server, stop_server
from bizra_nb.loadgen import bench


def stalled_client(base: str) -> socket.socket:
    """A WebSocket client with a small receive buffer that never reads after the handshake."""
    parts = urlsplit(base)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parts.hostname, parts.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /ws/live-updates HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    if b" 101 " not in head.split(b"\r\n")[0]:
        raise RuntimeError(f"the WebSocket handshake failed: {head[:80]!r}")
    return sock


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1100.0, help="requests a second offered")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--ws-clients", type=int, default=10)
    args = parser.parse_args()
    proc, base = start_server(Path(tempfile.mkdtemp(prefix="bizra-runbook-")), "--heartbeat-interval", "1",
                              "--kernel-pool", "0")  # no runs here: no warm kernels competing for the cores
    try:
        stalled = stalled_client(base)
        result = bench(base, duration=args.duration, rate=args.rate, concurrency=args.concurrency,
                       ws_clients=args.ws_clients)
        stalled.close()
    finally:
        stop_server(proc)
    stats, verdicts = result.stats(), result.verdicts()
    print(verdicts.to_string())
    print(f"offered {stats['offered_rps']} req/s, achieved {stats['throughput_rps']} req/s "
          f"({stats['successes']} of {stats['requests']} successful), P99 {stats['p99_ms']} ms: "
          f"{'PASS' if verdicts['pass'].all() else 'FAIL'}")
    return 0 if verdicts["pass"].all() else 1


if __name__ == "__main__":
    sys.exit(main())
