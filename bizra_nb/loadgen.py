"""Open-loop HTTP load and a WebSocket latency probe, measured the honest way.

Requests are scheduled at a constant rate and each latency is measured from
the request's *intended* send time: when the server stalls, the requests that
should have gone out meanwhile count their waiting too (a closed-loop client
would wait politely and under-report the tail, "coordinated omission"). Only
the generator's own lateness is left out: asyncio wakes a timer up to a
millisecond late (epoll's resolution), and a generator busy with its own work
issues a request late; such a request counts from when it was issued, still
with its wait for a free connection (benchmarks/loadgen_vs_wrk.py: counting
that lateness read 1.0 ms at the median where wrk read 0.3 ms). That lateness
is kept apart (``late_ms`` per request, ``generator_late_p99_ms`` in
:meth:`LoadResult.stats`): a generator that cannot keep its schedule shows it.

The HTTP client is a small keep-alive HTTP/1.1 client over asyncio streams
(``http://`` only), fast enough to drive thousands of requests a second from
one core; responses need a Content-Length or chunked encoding.

Offered and achieved rates: the achieved rate counts successful responses over
the time from the first scheduled send to the last response, so it includes the
open loop's ramp-down (the last responses arrive after the sending window) and
the client's own scheduling lag. Offering exactly the throughput target therefore
reads a few req/s under it (996 of 1000) even from a server that keeps up: the
default offered rate is :data:`RATE_HEADROOM` (10 %) above the throughput target
(:func:`default_rate`), and the verdict says so when a run offered less than the
target.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from bizra_nb.errors import InvalidInput, Unavailable

RUNBOOK_TARGETS = {"p50_ms": 20.0, "p95_ms": 50.0, "p99_ms": 100.0, "error_rate": 0.01,
                   "throughput_rps": 1000.0, "ws_latency_ms": 10.0}
RATE_HEADROOM = 1.1  # the default offered rate: 10 % above the throughput target (see the module docstring)
UNITS = {"p50_ms": "ms", "p95_ms": "ms", "p99_ms": "ms", "ws_latency_ms": "ms", "throughput_rps": "req/s",
         "error_rate": ""}
HTTP_LATENCIES = ("p50_ms", "p95_ms", "p99_ms", "max_ms")  # over successful responses; None without one
LABELS = {"p50_ms": "P50 latency", "p95_ms": "P95 latency", "p99_ms": "P99 latency", "error_rate": "error rate",
          "throughput_rps": "throughput (achieved)", "ws_latency_ms": "WebSocket latency"}


def default_rate(targets: dict | None = None) -> float:
    """The rate to offer by default: :data:`RATE_HEADROOM` times the throughput target (1100 req/s for 1000)."""
    return round({**RUNBOOK_TARGETS, **(targets or {})}["throughput_rps"] * RATE_HEADROOM, 1)


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
    errors, or falls behind, does not reach the rate it was offered. The latency
    quantiles (``p50_ms`` .. ``max_ms``) are those of the successful responses
    only, None when there was none: a refused connection fails fast, and its
    "latency" is no answer's.
    """

    samples: pd.DataFrame
    duration: float
    rate: float
    ws_latency_ms: list[float] = field(default_factory=list)
    elapsed: float | None = None  # None: as long as ``duration``
    ws_error: str | None = None  # why the WebSocket probe measured nothing, when it failed

    def stats(self) -> dict:
        lat = self.samples["latency_ms"].to_numpy()
        status = self.samples["status"].to_numpy()
        good = (status >= 200) & (status < 400)
        successes = int(good.sum())
        errors = len(status) - successes  # the client is us: a 4xx, a 5xx or no answer (0) is an error
        elapsed = max(self.elapsed or 0.0, self.duration, 1e-9)
        ok = len(lat) > 0
        answered = lat[good]  # latencies are those of successful responses: a refused connection is no answer
        measured = len(answered) > 0
        out = {
            "requests": int(len(lat)),
            "successes": successes,
            "p50_ms": round(float(np.percentile(answered, 50)), 3) if measured else None,
            "p95_ms": round(float(np.percentile(answered, 95)), 3) if measured else None,
            "p99_ms": round(float(np.percentile(answered, 99)), 3) if measured else None,
            "max_ms": round(float(answered.max()), 3) if measured else None,
            "error_rate": round(errors / len(lat), 5) if ok else None,
            "offered_rps": round(len(lat) / self.duration, 1) if self.duration else None,
            "throughput_rps": round(successes / elapsed, 1),  # achieved: successful responses a second
            "target_rate_rps": self.rate,
            "elapsed_s": round(elapsed, 3),
        }
        if ok and "late_ms" in self.samples:  # how late the generator itself issued its requests
            out["generator_late_p99_ms"] = round(float(np.percentile(self.samples["late_ms"].to_numpy(), 99)), 3)
        if errors:  # what the errors were: HTTP status codes, "no answer" (connection refused, reset, timed out)
            codes, counts = np.unique(status[~good], return_counts=True)
            out["errors_by_status"] = {("no answer" if code == 0 else str(int(code))): int(count)
                                       for code, count in zip(codes, counts)}
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
            if name == "ws_latency_ms" and value is None and self.ws_error is None:
                continue  # no WebSocket probe was asked for (ws_clients=0): nothing to judge
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
                if stats["offered_rps"] is not None and stats["offered_rps"] < target * RATE_HEADROOM and not passed:
                    detail += (f"; offer at least {target * RATE_HEADROOM:g} req/s ({RATE_HEADROOM - 1:.0%} above the "
                               f"target, for the open loop's ramp-down) to show it")
            elif name == "ws_latency_ms" and value is None:
                detail = f"not measured: {self.ws_error}" if self.ws_error else "not measured (no WebSocket probe)"
            elif value is None and name in HTTP_LATENCIES and stats["requests"]:
                passed = False  # requests were sent and none was answered successfully: no latency is no pass
                detail = f"no successful response ({stats['error_rate']:.0%} errors)"
            rows.append({"metric": name, "target": ("> " if higher_is_better else "< ") + f"{target:g}",
                         "measured": value, "pass": passed, "detail": detail})
        return pd.DataFrame(rows).set_index("metric")

    def verdict(self, targets: dict | None = None) -> str:
        """One line: PASS or FAIL, which targets were missed, offered vs achieved rate."""
        verdicts = self.verdicts(targets)
        stats = self.stats()
        missed = [LABELS.get(name, name) for name, passed in verdicts["pass"].items() if passed is not True]
        rates = f"{stats['offered_rps']:g} req/s offered, {stats['throughput_rps']:g} achieved"
        if not missed:
            return f"PASS: all {len(verdicts)} targets met ({rates})"
        return f"FAIL: {len(missed)} of {len(verdicts)} targets missed: {', '.join(missed)} ({rates})"

    def table(self, targets: dict | None = None) -> str:
        """The verdicts as a plain-text table for a terminal: target, measured, pass/FAIL, details."""
        verdicts = self.verdicts(targets)
        stats = self.stats()
        rows = [("target", "limit", "measured", "result", "")]
        rows.append(("offered rate", "", f"{stats['offered_rps']:g} req/s" if stats["offered_rps"] is not None
                     else "-", "", f"{stats['requests']} requests in {self.duration:g} s"))
        for name, row in verdicts.iterrows():
            passed = verdicts.at[name, "pass"]  # not row["pass"]: a row of mixed types turns None into NaN (truthy)
            unit = UNITS.get(name, "")
            value = row["measured"]
            if value is None or (isinstance(value, float) and np.isnan(value)):
                shown = "-"
            elif name == "error_rate":
                shown = f"{value:.2%}"
            else:
                shown = f"{value:g} {unit}".strip()
            limit = row["target"] if name != "error_rate" else row["target"][:2] + f"{float(row['target'][2:]):.2%}"
            result = {True: "pass", False: "FAIL"}.get(passed, "not measured")
            rows.append((LABELS.get(name, name), f"{limit} {unit}".strip() if name != "error_rate" else limit,
                         shown, result, row["detail"]))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join(("  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths)) + "  " + r[4]).rstrip()
                         for r in rows)


def target_address(url: str) -> tuple[str, int, str]:
    """Host, port and base path ("") of a server's base ``http://`` URL; :class:`InvalidInput` naming
    ``target_url`` otherwise (a URL with a path: the endpoints are given apart, so ``/health`` is no base)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise InvalidInput(f"target_url must be an http:// URL, got {url!r}", field="target_url")
    try:
        port = parts.port or 80
    except ValueError:
        raise InvalidInput(f"target_url has an invalid port: {url!r}", field="target_url") from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidInput(f"target_url {url!r} has a path: give the server's base URL and --endpoint PATH "
                           f"(e.g. http://{parts.netloc} --endpoint {parts.path or '/'})", field="target_url")
    return parts.hostname, port, ""


_check = target_address


async def check_reachable(target_url: str, *, path: str = "/health", timeout: float = 5.0) -> int:
    """One request to ``target_url`` before the load: its HTTP status, or :class:`Unavailable` saying why not."""
    host, port, base = _check(target_url)
    conn = _Connection(host, port)
    try:
        return await conn.request(base + path, timeout)
    except asyncio.TimeoutError:
        raise Unavailable(f"cannot reach {target_url}: no answer within {timeout:g} s", field="target_url") from None
    except ConnectionRefusedError:
        raise Unavailable(f"cannot reach {target_url}: connection refused (nothing listens on {host}:{port})",
                          field="target_url") from None
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else (str(exc) or type(exc).__name__)
        raise Unavailable(f"cannot reach {target_url}: {reason}", field="target_url") from None
    finally:
        conn.close()


async def run_load(target_url: str, *, endpoints: list[str] = ("/health",), duration: float = 10.0,
                   rate: float | None = None, concurrency: int = 64, timeout: float = 5.0,
                   ws_clients: int = 0, ws_probes: int = 50,
                   progress: Callable[[dict], None] | None = None) -> LoadResult:
    """Send ``rate`` requests a second for ``duration`` seconds, round-robin over ``endpoints``.

    At most ``concurrency`` requests are in flight; the others wait for a
    connection, and their waiting counts in their latency. ``rate`` defaults to
    :func:`default_rate` (10 % above the runbook's throughput target).
    ``progress``, when given, is called about once a second with ``elapsed_s``,
    ``sent``, ``answered``, ``ok`` and ``errors`` so far.
    """
    host, port, base = _check(target_url)
    rate = default_rate() if rate is None else rate
    if duration <= 0 or rate <= 0 or concurrency <= 0:
        raise InvalidInput("duration, rate and concurrency must be positive", field="rate")
    total = int(duration * rate)
    pool: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(concurrency):
        pool.put_nowait(_Connection(host, port))
    sent_at = np.zeros(total)
    latency = np.zeros(total)
    late = np.zeros(total)
    status = np.zeros(total, dtype=np.int32)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05

    counts = {"sent": 0, "answered": 0, "ok": 0, "errors": 0}

    async def one(i: int) -> None:
        intended = start + i / rate
        issued = max(intended, loop.time())  # the generator's own lateness is not the server's (module docstring)
        conn = await pool.get()
        try:
            code = await conn.request(base + endpoints[i % len(endpoints)], timeout)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
            conn.close()
            code = 0
        finally:
            pool.put_nowait(conn)
        sent_at[i] = intended - start
        latency[i] = (loop.time() - issued) * 1000
        late[i] = (issued - intended) * 1000
        status[i] = code
        counts["answered"] += 1
        counts["ok" if 200 <= code < 400 else "errors"] += 1

    async def report() -> None:
        while True:
            await asyncio.sleep(1.0)
            progress({"elapsed_s": round(loop.time() - start, 1), **counts})

    ws_task = asyncio.ensure_future(probe_websocket(target_url, clients=ws_clients, probes=ws_probes)) \
        if ws_clients else None
    reporter = asyncio.ensure_future(report()) if progress is not None else None
    tasks = []
    try:
        for i in range(total):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(i)))
            counts["sent"] += 1
        await asyncio.gather(*tasks)
    finally:
        if reporter is not None:
            reporter.cancel()
    elapsed = loop.time() - start
    while not pool.empty():
        pool.get_nowait().close()
    ws, ws_error = [], None
    if ws_task is not None:
        try:
            ws = await ws_task
        except Exception as exc:  # noqa: BLE001 - the probe failing is a missing measurement, not a crash
            ws_error = f"{type(exc).__name__}: {exc}"[:200]
        if not ws and ws_error is None:
            ws_error = "no round trip was measured"  # asked for, not measured: never a pass
    samples = pd.DataFrame({"sent_at": sent_at, "latency_ms": latency, "late_ms": late, "status": status,
                            "endpoint": [endpoints[i % len(endpoints)] for i in range(total)]})
    return LoadResult(samples=samples, duration=duration, rate=rate, ws_latency_ms=ws, elapsed=elapsed,
                      ws_error=ws_error)


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


def bench(target_url: str, *, check: bool = True, **kwargs) -> LoadResult:
    """:func:`run_load` from synchronous code (a script, ``bizra-nb bench``); in a notebook ``await run_load``.

    With ``check`` (the default), one request first: a server that cannot be reached raises
    :class:`~bizra_nb.errors.Unavailable` at once instead of a run of failed requests.
    """
    async def go() -> LoadResult:
        if check:
            endpoints = kwargs.get("endpoints") or ["/health"]
            await check_reachable(target_url, path=endpoints[0], timeout=kwargs.get("timeout", 5.0))
        return await run_load(target_url, **kwargs)

    return asyncio.run(go())
