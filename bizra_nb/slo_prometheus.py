"""Measuring SLOs from Prometheus: the PromQL of an interval and its burn-rate windows, run within a deadline.

The counts of an interval come from instant queries at its end: events are rates × seconds (about: ``rate``
extrapolates to the window's edges), time slices are subqueries whose step is the slice (one subquery gives
both a slice's presence and its badness, see :data:`_ENCODE`). The counts of a period's whole past days are
cached for :data:`CACHE_SECONDS`, so a call evaluates only the day so far and the burn-rate windows. The queries
of one call run concurrently (at most :data:`MAX_CONCURRENT`), each with a timeout (:data:`QUERY_TIMEOUT`), and
all of them within :data:`EVALUATION_DEADLINE`. A source that does not answer gives a :class:`Measurement`
with ``error`` set (naming the URL without credentials), never an exception.

This module returns raw measurements (counts and error ratios); :mod:`bizra_nb.slo_budget` turns them into
budgets. It does not import that module (the arrows point one way): what both need about an SLO's budgeting
lives here (:func:`slice_length`) or in the model (:func:`~bizra_nb.slo_model.timesliced`).
"""
from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx
import pandas as pd

from bizra_nb import slo_spec
from bizra_nb.slo_fields import WINDOW_VAR
from bizra_nb.slo_spec import DEFAULT_SLICE, FAILING, SLO, WINDOWS, timesliced
from bizra_nb.url_login import login, public_url

QUERY_TIMEOUT = 10.0  # seconds per Prometheus query
EVALUATION_DEADLINE = 15.0  # seconds for all the Prometheus queries of one call (the gate must answer in time)
MAX_CONCURRENT = 6  # Prometheus queries in flight per call
CACHE_SECONDS = 600.0  # how long the counts of whole past days are reused (late data shows within this)
FRESH_WINDOWS = ("5m", "1h")  # a status with no data in both of these windows is stale (the source sees nothing now)
_CACHE_SIZE = 256
_cache: dict[tuple, tuple[float, float | None]] = {}
_cache_lock = threading.Lock()

#: one subquery gives both counts of a Timeslices interval: each present slice adds 1, each bad one 2**32 more
#: (exact in a float64 up to 2**21 slices: four years of minutes)
_ENCODE = 2 ** 32


@dataclass
class Measurement:
    """What Prometheus said about one SLO over ``[start, end)`` (no budget arithmetic yet).

    Occurrences: ``total`` = ``measured`` = events (rate × seconds), ``bad`` events. Timeslices: ``total`` =
    slices of the whole period, ``measured`` slices with data, ``bad`` bad slices, ``no_data`` and ``future``
    slices. error_ratio: ``ratio``. ``error_ratios``: the error ratio over each burn-rate window (None: no data).
    ``fresh``: whether the SLO's query had data in any of :data:`FRESH_WINDOWS` before ``end`` (None: not asked).
    """

    error: str | None = None  # the source failed or refused a query: no figures
    ratio: float | None = None
    total: float | None = None
    measured: float | None = None
    bad: float | None = None
    no_data: float = 0.0
    future: float = 0.0
    error_ratios: dict = field(default_factory=lambda: {w: None for w in WINDOWS})
    fresh: bool | None = None


def slice_length(slo: SLO) -> pd.Timedelta:
    """The SLO's time slice (:data:`~bizra_nb.slo_model.DEFAULT_SLICE` when the spec names none)."""
    return slo_spec.duration(slo.timeslice_window or DEFAULT_SLICE)


def safe_url(url: str) -> str:
    """``url`` without any ``user:password@`` (for messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an invalid URL)"
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def measure(jobs: list, url: str, *, timeout: float = QUERY_TIMEOUT, deadline: float | None = None,
            fresh: bool = False) -> list[Measurement]:
    """Measure each job ``(slo, start, end, period)`` from Prometheus, every query of them run together.

    Parameters
    ----------
    jobs
        ``(slo, start, end, (period_start, period_end))`` with UTC Timestamps.
    url
        The Prometheus HTTP API base URL (``user:password@`` in it is sent as basic auth, never shown nor put in
        the URL requested).
    timeout
        Seconds per query.
    deadline
        Seconds for all the queries (default :data:`EVALUATION_DEADLINE`).
    fresh
        Also ask whether each SLO's query had data in the last :data:`FRESH_WINDOWS` (``Measurement.fresh``).

    Returns
    -------
    list[Measurement]
        In the order of ``jobs``; ``error`` names the URL (without credentials) when Prometheus does not answer
        or refuses one of the job's queries.
    """
    plans = [(slo, start, end, period, _queries(slo, start, end, fresh=fresh)) for slo, start, end, period in jobs]
    everything = {(i, key): spec for i, plan in enumerate(plans) for key, spec in plan[4].items()}
    results = _run_queries(url, everything, timeout=timeout, deadline=deadline)
    return [_measurement(slo, {key: results[(i, key)] for key in queries}, start, end, period)
            for i, (slo, start, end, period, queries) in enumerate(plans)]


def _measurement(slo: SLO, results: dict, start, end, period) -> Measurement:
    failures = [r for r in results.values() if isinstance(r, _QueryFailed)]
    if failures:
        return Measurement(error=str(failures[0]) if failures[0].down else f"{failures[0]} (measuring {slo.name})")
    m = Measurement(error_ratios={w: results[f"burn:{w}"] for w in WINDOWS})
    if "fresh" in results:
        m.fresh = results["fresh"] is not None
    if slo.indicator.kind == "error_ratio":
        m.ratio = results["ratio"]
    elif timesliced(slo):
        slice_ = slice_length(slo)
        encoded = [results[k] or 0.0 for k in ("counts:past", "counts:today") if k in results]
        m.bad = float(sum(math.floor(v / _ENCODE) for v in encoded))
        m.measured = float(sum(v - math.floor(v / _ENCODE) * _ENCODE for v in encoded))
        elapsed = math.floor((end - start) / slice_)
        m.total = float(math.floor((period[1] - period[0]) / slice_))
        m.no_data, m.future = max(0.0, elapsed - m.measured), max(0.0, m.total - elapsed)
    else:
        seconds = _seconds(start, end)
        m.total = m.measured = None if results["total"] is None else results["total"] * seconds
        m.bad = max(0.0, (results["bad"] or 0.0) * seconds)
    return m


def _range(start, end) -> str:
    """A PromQL range covering ``(start, end]`` exactly: a subquery's range includes both ends, so 1 ms less."""
    return f"{max(1, int(round((end - start).total_seconds() * 1000)) - 1)}ms"


def _seconds(start, end) -> int:
    return max(1, int(round((end - start).total_seconds())))


def _error_ratio(ind, window: str) -> str:
    total = ind.total.replace(WINDOW_VAR, window)
    if ind.bad:
        return f"((sum({ind.bad.replace(WINDOW_VAR, window)}) or vector(0)) / sum({total}))"
    return f"(1 - (sum({ind.good.replace(WINDOW_VAR, window)}) or vector(0)) / sum({total}))"


def _fresh_query(slo: SLO) -> str:
    """Non-empty when the SLO's query (a ratio's total) has series over one of :data:`FRESH_WINDOWS`.

    A series counts even when its value is NaN (an idle service is still scraped: that is data). A query with
    its own fixed range (no ``{{.window}}``, e.g. "the score over 5 minutes") has data over the last hour when
    it had a value at any minute of it.
    """
    ind = slo.indicator
    source = ind.query if ind.kind in ("error_ratio", "threshold") else ind.total
    if WINDOW_VAR in source:
        return " or ".join(f"count({source.replace(WINDOW_VAR, w)})" for w in FRESH_WINDOWS)
    longest = FRESH_WINDOWS[-1]
    return f"count({source}) or count(count_over_time(({source})[{longest}:1m]))"


def _queries(slo: SLO, start, end, *, fresh: bool = False) -> dict[str, tuple[str, pd.Timestamp, bool]]:
    """``{key: (PromQL, evaluation time, cacheable)}`` measuring ``slo`` over ``[start, end)`` and its burn rates.

    A Timeslices interval longer than a day is split at the last midnight: the whole days before it are the
    past, whose counts are cached for :data:`CACHE_SECONDS`; only the day so far is queried on every call.
    ``fresh``: one more query, ``"fresh"`` (:func:`_fresh_query` at ``end``).
    """
    queries = {"fresh": (_fresh_query(slo), end, False)} if fresh else {}
    ind = slo.indicator
    if ind.kind == "error_ratio":
        queries["ratio"] = (ind.query.replace(WINDOW_VAR, f"{_seconds(start, end)}s"), end, False)
        queries.update({f"burn:{w}": (ind.query.replace(WINDOW_VAR, w), end, False) for w in WINDOWS})
        return queries
    if ind.kind == "ratio" and not timesliced(slo):
        period = f"{_seconds(start, end)}s"
        total = f"sum({ind.total.replace(WINDOW_VAR, period)})"
        queries["total"] = (total, end, False)
        if ind.bad:
            queries["bad"] = (f"sum({ind.bad.replace(WINDOW_VAR, period)})", end, False)
        else:
            queries["bad"] = (f"{total} - (sum({ind.good.replace(WINDOW_VAR, period)}) or vector(0))", end, False)
        for w in WINDOWS:
            queries[f"burn:{w}"] = (_error_ratio(ind, w), end, False)
        return queries
    window = f"{int(slice_length(slo).total_seconds())}s"
    if ind.kind == "threshold":
        present = f"(({ind.query.replace(WINDOW_VAR, window)}) >= -Inf)"  # drops NaN (no data)
        # one value per slice: a query keeping labels has several series; bad when any is (none: no data)
        bad = f"max({present} {FAILING[ind.op]} bool {ind.value!r})"
    else:
        present = f"((1 - {_error_ratio(ind, window)}) >= -Inf)"  # the good ratio; 0/0 is NaN: dropped
        bad = f"({present} < bool {slo.timeslice_target!r})"

    def counts(a, b):
        return f"sum(sum_over_time(({bad} * {_ENCODE} + 1)[{_range(a, b)}:{window}]))"

    cut = end.floor("1D")
    if cut - start >= pd.Timedelta(days=1):
        queries["counts:past"] = (counts(start, cut), cut, True)
        if end > cut:
            queries["counts:today"] = (counts(cut, end), end, False)
    else:
        queries["counts:today"] = (counts(start, end), end, False)
    for w in WINDOWS:
        since = end - slo_spec.duration(w)
        queries[f"burn:{w}"] = (f"avg(avg_over_time({bad}[{_range(since, end)}:{window}]))", end, False)
    return queries


class _QueryFailed(Exception):
    """A query that did not give a number; ``down`` when the source itself did not answer."""

    def __init__(self, message: str, *, down: bool) -> None:
        super().__init__(message)
        self.down = down


def _cached(key: tuple):
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return True, hit[1]
    return False, None


def _remember(key: tuple, value) -> None:
    with _cache_lock:
        _cache[key] = (time.monotonic(), value)
        while len(_cache) > _CACHE_SIZE:
            _cache.pop(next(iter(_cache)))


def _run_queries(url: str, queries: dict, *, timeout: float, deadline: float | None = None) -> dict:
    """Each query's value (None: no data) or a _QueryFailed, at most MAX_CONCURRENT in flight.

    ``queries``: ``{key: (PromQL, time, cacheable)}``. Once the source does not answer, the queries not yet
    sent fail with the same message without being sent. ``deadline``: seconds for all of them (default
    :data:`EVALUATION_DEADLINE`): a query is sent with what is left of it as its timeout (at most ``timeout``),
    and none is sent once it has passed.
    """
    shown = safe_url(url)
    try:
        base, credentials = public_url(url), login(url)
    except ValueError:  # not a URL: httpx refuses it below, as before
        base, credentials = url, None
    endpoint = base.rstrip("/") + "/api/v1/query"  # the login goes as basic auth, never in a URL httpx logs
    auth = httpx.BasicAuth(*credentials) if credentials and any(credentials) else None
    down: list[_QueryFailed] = []
    lock = threading.Lock()
    allowed = EVALUATION_DEADLINE if deadline is None else float(deadline)
    ends = time.monotonic() + allowed
    late = f"Prometheus at {shown} did not answer all queries within {allowed:g} s"

    def one(query: str, at: pd.Timestamp, cacheable: bool):
        key = (url, query, at.value)
        if cacheable:
            hit, value = _cached(key)
            if hit:
                return value
        with lock:
            if down:
                return down[0]
        left = ends - time.monotonic()
        if left <= 0:
            failure = _QueryFailed(late, down=True)
            with lock:
                down.append(failure)
            return failure
        wait = min(timeout, left)
        try:
            response = client.get(endpoint, params={"query": query, "time": f"{at.timestamp():.3f}",
                                                    "timeout": f"{max(1, int(wait * 1000))}ms"}, timeout=wait)
        except httpx.TimeoutException:
            failure = _QueryFailed(late if wait < timeout else f"Prometheus at {shown} did not answer within "
                                   f"{timeout:g} s", down=True)
        except (httpx.HTTPError, ValueError) as exc:
            failure = _QueryFailed(f"Prometheus at {shown} does not answer ({type(exc).__name__})", down=True)
        else:
            value = _parse(response, shown)
            if cacheable and not isinstance(value, _QueryFailed):
                _remember(key, value)
            return value
        with lock:
            down.append(failure)
        return failure

    with httpx.Client(timeout=timeout, auth=auth) as client, \
            ThreadPoolExecutor(max_workers=max(1, min(MAX_CONCURRENT, len(queries)))) as pool:
        futures = {key: pool.submit(one, *spec) for key, spec in queries.items()}
        return {key: future.result() for key, future in futures.items()}


def _parse(response: httpx.Response, shown: str):
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code >= 400 or body.get("status") != "success":
        if response.status_code in (401, 403):
            return _QueryFailed(f"Prometheus at {shown} refused the credentials (HTTP {response.status_code})",
                                down=True)
        if response.status_code >= 500 and "error" not in body:
            return _QueryFailed(f"Prometheus at {shown} failed (HTTP {response.status_code})", down=True)
        error = str(body.get("error") or f"HTTP {response.status_code}")[:300]
        return _QueryFailed(f"Prometheus at {shown} rejected a query: {error}", down=False)
    data = body.get("data") or {}
    if data.get("resultType") == "scalar":
        values = [data["result"][1]]
    else:
        values = [r["value"][1] for r in data.get("result") or []]
    numbers = [float(v) for v in values if math.isfinite(float(v))]
    return max(numbers) if numbers else None  # one series when the query sums; the worst when it does not
