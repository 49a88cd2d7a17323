"""The Prometheus source: instant and range queries over the Prometheus HTTP API (Thanos, Mimir, VictoriaMetrics too).

Range queries choose their step so that no series exceeds ``MAX_POINTS`` per
request (Prometheus refuses more than 11,000), and split long ranges into
chunks that are merged on their shared timestamps. Failures raise
:class:`~bizra_nb.errors.Unavailable` (server unreachable) or
:class:`~bizra_nb.errors.InvalidInput` (the PromQL error as Prometheus words it).
"""
from __future__ import annotations

import json
import math
from typing import Mapping

import pandas as pd
import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect

from bizra_nb.cmdb import Cmdb
from bizra_nb.datachecks import check_frame, record_checks
from bizra_nb.errors import InvalidInput, Unavailable
from bizra_nb.score import ScoreKeeper
from bizra_nb.sources import Fetch, to_timestamp

MAX_POINTS = 10_000  # per series per request, under Prometheus' 11,000 limit
NICE_STEPS = (15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
# PromQL of the demo fleet's exported metrics, by metric name; {selector} is the label matcher
DEFAULT_QUERIES = {m: "fleet_" + m + "{{{selector}}}" for m in ("rate", "error", "lat_50", "lat_99", "cpu", "mem")}


def choose_step(start: pd.Timestamp, end: pd.Timestamp, *, minimum: float = 15.0, max_points: int = MAX_POINTS) -> int:
    """The smallest nice step (seconds, at least ``minimum``) that keeps the range under ``max_points``."""
    needed = max(minimum, (end - start).total_seconds() / max_points)
    for step in NICE_STEPS:
        if step >= needed:
            return step
    return int(math.ceil(needed))


def chunks(start: pd.Timestamp, end: pd.Timestamp, step: float, *, max_points: int = MAX_POINTS):
    """``(chunk_start, chunk_end)`` pairs covering ``[start, end]`` on the step grid, each ≤ ``max_points``."""
    span = pd.Timedelta(seconds=step * (max_points - 1))
    cursor = start
    while cursor <= end:
        stop = min(cursor + span, end)
        yield cursor, stop
        cursor = stop + pd.Timedelta(seconds=step)


class PrometheusSource:
    """Metrics from a server speaking the Prometheus HTTP query API.

    Parameters
    ----------
    url
        Base URL, e.g. ``http://localhost:9090``.
    token
        Bearer token sent as ``Authorization``.
    tenant
        Tenant id sent as ``X-Scope-OrgID`` (Mimir, Cortex, Thanos receive).
    headers
        Any other headers.
    timeout
        Seconds per HTTP request.
    cmdb
        Items with ``selectors: {metric: PromQL}`` are queried with those instead of :data:`DEFAULT_QUERIES`.
    """

    def __init__(self, url: str, *, token: str | None = None, tenant: str | None = None,
                 headers: Mapping[str, str] | None = None, timeout: float = 30.0,
                 cmdb: Cmdb | None = None, keeper: ScoreKeeper | None = None) -> None:
        self.url = url.rstrip("/")
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        if tenant:
            all_headers["X-Scope-OrgID"] = tenant
        self.timeout = timeout
        self.cmdb = cmdb
        self.keeper = keeper
        self.client = PrometheusConnect(url=self.url, headers=all_headers or None, timeout=timeout,
                                        retry=requests.adapters.Retry(total=0))

    # -- raw queries ------------------------------------------------------------------

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PrometheusApiClientException as exc:
            raise InvalidInput(f"Prometheus at {self.url} rejected the query: {_promql_error(str(exc))}",
                               field="query") from None
        except requests.exceptions.RequestException as exc:
            raise Unavailable(f"Prometheus at {self.url} does not answer: {type(exc).__name__}") from None

    def query(self, promql: str, at=None) -> pd.Series:
        """An instant query; returns one value per series, indexed by its label set."""
        params = {"time": to_timestamp(at).timestamp()} if at is not None else None
        result = self._call(self.client.custom_query, promql, params=params)
        return pd.Series({_label_key(r["metric"]): float(r["value"][1]) for r in result}, dtype="float64")

    def query_range(self, promql: str, start, end, step: float | None = None, *, name_by: str | None = None,
                    max_points: int = MAX_POINTS) -> pd.DataFrame:
        """A range query as a wide frame (one column per series, named by labels or by label ``name_by``).

        Ranges longer than ``max_points`` steps are fetched in chunks and merged.
        """
        start, end = to_timestamp(start, name="start"), to_timestamp(end, name="end")
        if start is None or end is None or end <= start:
            raise InvalidInput("a range query needs start < end", field="end")
        step = float(step) if step else float(choose_step(start, end, max_points=max_points))
        parts: list[pd.DataFrame] = []
        for chunk_start, chunk_end in chunks(start, end, step, max_points=max_points):
            result = self._call(self.client.custom_query_range, promql, start_time=chunk_start.to_pydatetime(),
                                end_time=chunk_end.to_pydatetime(), step=f"{step:g}s")
            columns = {}
            for series in result:
                key = series["metric"].get(name_by) if name_by else _label_key(series["metric"])
                key = key or _label_key(series["metric"])
                values = series["values"]
                columns[key] = pd.Series([float(v) for _, v in values],
                                         index=pd.to_datetime([float(t) for t, _ in values], unit="s", utc=True))
            parts.append(pd.DataFrame(columns))
        frame = pd.concat(parts) if parts else pd.DataFrame()
        if len(frame):
            frame = frame[~frame.index.duplicated(keep="first")].sort_index()
        frame.index.name = "time"
        return frame

    # -- the source interface ------------------------------------------------------------

    def queries_for(self, services: list[str] | None) -> dict[str, str]:
        """PromQL per metric for the fleet's default series, restricted to ``services``."""
        selector = 'service=~"' + "|".join(services) + '"' if services else ""
        return {metric: template.format(selector=selector) for metric, template in DEFAULT_QUERIES.items()}

    def fetch(self, *, start=None, end=None, services=None, step=None) -> Fetch:
        start, end = to_timestamp(start, name="start"), to_timestamp(end, name="end")
        if start is None or end is None:
            raise InvalidInput("a Prometheus fetch needs --start and --end", field="start")
        columns: dict[str, pd.Series] = {}
        used: list[str] = []
        custom = {}
        if self.cmdb is not None:
            custom = {i: item["selectors"] for i, item in self.cmdb.items.items()
                      if isinstance(item.get("selectors"), dict) and (not services or i in services)}
        default_services = [s for s in services or [] if s not in custom] if services else None
        if services is None or default_services:
            for metric, promql in self.queries_for(default_services).items():
                used.append(promql)
                frame = self.query_range(promql, start, end, step, name_by="service")
                for service in frame.columns:
                    columns[f"{service}_{metric}"] = frame[service]
        for service, selectors in custom.items():
            for metric, promql in selectors.items():
                used.append(promql)
                frame = self.query_range(promql, start, end, step)
                if len(frame.columns):
                    columns[f"{service}_{metric}"] = frame.iloc[:, 0] if len(frame.columns) == 1 else frame.sum(axis=1)
        if not columns:
            raise InvalidInput(f"Prometheus at {self.url} returned no series for {len(used)} queries "
                               f"between {start.isoformat()} and {end.isoformat()}", field="services")
        frame = pd.DataFrame(columns).sort_index()
        frame.index.name = "time"
        results = check_frame(frame, source=self.url, end=end)
        warnings = record_checks(results, self.keeper)
        return Fetch(frame, warnings, used, [r.as_dict() for r in results])


def _label_key(labels: Mapping[str, str]) -> str:
    name = labels.get("__name__", "")
    rest = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}" if rest or not name else name


def _promql_error(text: str) -> str:
    """The ``error`` field of Prometheus' JSON answer inside the client's exception text."""
    start = text.find("{")
    if start >= 0:
        body = text[start:].rstrip(")'\"")
        try:
            return json.loads(body.encode().decode("unicode_escape"))["error"]
        except (ValueError, KeyError, UnicodeDecodeError):
            pass
    return text
