"""Open-loop HTTP load and a WebSocket latency probe, measured the honest way.

Requests are scheduled at a constant rate and each latency is measured from
the request's *intended* send time: when the server stalls, the requests that
should have gone out meanwhile count their waiting too (a closed-loop client
would wait politely and under-report the tail, "coordinated omission").

The HTTP client is a small keep-alive HTTP/1.1 client over asyncio streams
(``http://`` only), fast enough to drive thousands of requests a second from
one core; responses need a Content-Length or chunked encoding.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from bizra_nb.errors import InvalidInput

RUNBOOK_TARGETS = {"p50_ms": 20.0, "p95_ms": 50.0, "p99_ms": 100.0, "error_rate": 0.01,
                   "throughput_rps": 1000.0, "ws_latency_ms": 10.0}


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, path: str, timeout: float) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), timeout)
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUser-Agent: bizra-nb-bench\r\n"
                          "Accept: */*\r\n\r\n".encode())
        return await asyncio.wait_for(self._response(), timeout)

    async def _response(self) -> int:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" in headers:
            await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class LoadResult:
    """Per-request samples (``sent_at``, ``latency_ms``, ``status``, ``endpoint``) and the headline numbers.

    ``duration`` is the scheduled sending time and ``elapsed`` the time from the
    first scheduled send to the last response. The *offered* rate is what the
    client sent (requests / ``duration``); the *achieved* rate, reported as
    ``throughput_rps``, counts successful responses only (2xx and 3xx) over
    ``elapsed`` (at least ``duration``): a server that answers fast with
    errors, or falls behind, does not reach the rate it was offered.
    """

    samples: pd.DataFrame
    duration: float
    rate: float
    ws_latency_ms: list[float] = field(default_factory=list)
    elapsed: float | None = None  # None: as long as ``duration``

    def stats(self) -> dict:
        lat = self.samples["latency_ms"].to_numpy()
        status = self.samples["status"].to_numpy()
        errors = int(((status >= 500) | (status == 0)).sum())
        successes = int(((status >= 200) & (status < 400)).sum())
        elapsed = max(self.elapsed or 0.0, self.duration, 1e-9)
        ok = len(lat) > 0
        out = {
            "requests": int(len(lat)),
            "successes": successes,
            "p50_ms": round(float(np.percentile(lat, 50)), 3) if ok else None,
            "p95_ms": round(float(np.percentile(lat, 95)), 3) if ok else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 3) if ok else None,
            "max_ms": round(float(lat.max()), 3) if ok else None,
            "error_rate": round(errors / len(lat), 5) if ok else None,
            "offered_rps": round(len(lat) / self.duration, 1) if self.duration else None,
            "throughput_rps": round(successes / elapsed, 1),  # achieved: successful responses a second
            "target_rate_rps": self.rate,
            "elapsed_s": round(elapsed, 3),
        }
        if self.ws_latency_ms:
            out["ws_latency_ms"] = round(float(np.percentile(self.ws_latency_ms, 50)), 3)
            out["ws_latency_p99_ms"] = round(float(np.percentile(self.ws_latency_ms, 99)), 3)
        return out

    def verdicts(self, targets: dict | None = None) -> pd.DataFrame:
        """Each target of the runbook's table, measured value, pass/fail.

        Throughput passes only when the *achieved* rate (successful responses)
        reaches its target and the error rate is within its own target: the
        offered rate is shown beside it but is no evidence.
        """
        targets = {**RUNBOOK_TARGETS, **(targets or {})}
        stats = self.stats()
        rows = []
        for name, target in targets.items():
            value = stats.get(name)
            higher_is_better = name == "throughput_rps"
            passed = None if value is None else (value >= target if higher_is_better else value <= target)
            detail = ""
            if name == "throughput_rps":
                error_target = targets.get("error_rate")
                errors_ok = error_target is None or (stats["error_rate"] is not None
                                                     and stats["error_rate"] <= error_target)
                passed = bool(passed) and errors_ok
                detail = (f"achieved (successful responses) of {stats['offered_rps']:g} req/s offered; "
                          f"error rate {stats['error_rate']:.2%}" if stats["error_rate"] is not None else "no requests")
                if not errors_ok:
                    detail += f" over its target {error_target:.2%}"
            rows.append({"metric": name, "target": ("> " if higher_is_better else "< ") + f"{target:g}",
                         "measured": value, "pass": passed, "detail": detail})
        return pd.DataFrame(rows).set_index("metric")


def _check(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise InvalidInput(f"target_url must be an http:// URL, got {url!r}", field="target_url")
    return parts.hostname, parts.port or 80, parts.path.rstrip("/")


async def run_load(target_url: str, *, endpoints: list[str] = ("/health",), duration: float = 10.0,
                   rate: float = 500.0, concurrency: int = 64, timeout: float = 5.0,
                   ws_clients: int = 0, ws_probes: int = 50) -> LoadResult:
    """Send ``rate`` requests a second for ``duration`` seconds, round-robin over ``endpoints``.

    At most ``concurrency`` requests are in flight; the others wait for a
    connection, and their waiting counts in their latency.
    """
    host, port, base = _check(target_url)
    if duration <= 0 or rate <= 0 or concurrency <= 0:
        raise InvalidInput("duration, rate and concurrency must be positive", field="rate")
    total = int(duration * rate)
    pool: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(concurrency):
        pool.put_nowait(_Connection(host, port))
    sent_at = np.zeros(total)
    latency = np.zeros(total)
    status = np.zeros(total, dtype=np.int32)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05

    async def one(i: int) -> None:
        intended = start + i / rate
        conn = await pool.get()
        try:
            code = await conn.request(base + endpoints[i % len(endpoints)], timeout)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
            conn.close()
            code = 0
        finally:
            pool.put_nowait(conn)
        sent_at[i] = intended - start
        latency[i] = (loop.time() - intended) * 1000
        status[i] = code

    ws_task = asyncio.ensure_future(probe_websocket(target_url, clients=ws_clients, probes=ws_probes)) \
        if ws_clients else None
    tasks = []
    for i in range(total):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    while not pool.empty():
        pool.get_nowait().close()
    ws = await ws_task if ws_task else []
    samples = pd.DataFrame({"sent_at": sent_at, "latency_ms": latency, "status": status,
                            "endpoint": [endpoints[i % len(endpoints)] for i in range(total)]})
    return LoadResult(samples=samples, duration=duration, rate=rate, ws_latency_ms=ws, elapsed=elapsed)


async def probe_websocket(target_url: str, *, clients: int = 10, probes: int = 50) -> list[float]:
    """Round trips of a subscribe message through ``/ws/live-updates`` on ``clients`` connections (ms)."""
    from tornado.websocket import websocket_connect

    ws_url = target_url.replace("http://", "ws://", 1).rstrip("/") + "/ws/live-updates"
    connections = [await websocket_connect(ws_url) for _ in range(max(1, clients))]
    times: list[float] = []
    try:
        for n in range(probes):
            conn = connections[n % len(connections)]
            began = time.perf_counter()
            await conn.write_message(json.dumps({"subscribe": ["heartbeat"]}))
            while True:
                message = await conn.read_message()
                if message is None:
                    raise ConnectionError("the server closed the WebSocket during the probe")
                if json.loads(message).get("type") == "subscribed":
                    break
            times.append((time.perf_counter() - began) * 1000)
            await asyncio.sleep(0.01)
    finally:
        for conn in connections:
            conn.close()
    return times


def bench(target_url: str, **kwargs) -> LoadResult:
    """:func:`run_load` from synchronous code (a script, ``bizra-nb bench``); in a notebook ``await run_load``."""
    return asyncio.run(run_load(target_url, **kwargs))
