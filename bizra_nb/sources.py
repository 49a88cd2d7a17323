"""Metric sources: one interface, dataset files or the Prometheus HTTP API, returning wide frames.

A source's :meth:`fetch` returns a :class:`Fetch`: the wide frame (UTC index,
one ``<service>_<metric>`` column per series), the data-check warnings and the
exact queries used. Sources are chosen by :func:`open_source` from a path or a
URL; :func:`register_source` adds a kind.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import pandas as pd

from bizra_nb.dataset import read_dataset, split_column
from bizra_nb.datachecks import check_frame, record_checks
from bizra_nb.errors import InvalidInput
from bizra_nb.score import ScoreKeeper
from bizra_nb.times import parse_time


@dataclass
class Fetch:
    """What a fetch returns: the wide frame, warnings from the data checks, the queries used."""

    frame: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)

    def long(self) -> pd.DataFrame:
        """The frame in long form: ``time, service, metric, value``."""
        stacked = self.frame.rename_axis("time").reset_index().melt(id_vars="time", var_name="column")
        parts = stacked["column"].str.split("_", n=1, expand=True)
        return pd.DataFrame({"time": stacked["time"], "service": parts[0], "metric": parts[1],
                             "value": stacked["value"]}).dropna(subset=["value"])


class MetricSource(Protocol):
    def fetch(self, *, start=None, end=None, services=None, step=None) -> Fetch: ...


def to_timestamp(value, *, name: str = "time") -> pd.Timestamp | None:
    """Unix seconds, ISO-8601 text, datetime or Timestamp → a UTC Timestamp (None stays None)."""
    if isinstance(value, pd.Timestamp):
        return value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")
    seconds = parse_time(value, name=name)
    if seconds is None:
        return None
    try:
        return pd.Timestamp(seconds, unit="s", tz="UTC")
    except (ValueError, OverflowError):
        raise InvalidInput(f"{name}: {value!r} is out of range", field=name) from None


def select(frame: pd.DataFrame, *, start=None, end=None, services=None) -> pd.DataFrame:
    """The rows in ``[start, end]`` and the columns of ``services`` (all when None)."""
    start, end = to_timestamp(start, name="start"), to_timestamp(end, name="end")
    if start is not None and end is not None and end <= start:
        raise InvalidInput(f"end ({end.isoformat()}) must be after start ({start.isoformat()})", field="end")
    out = frame
    if start is not None or end is not None:
        out = out.loc[start:end]
    if services:
        wanted = set(services)
        known = {split_column(c)[0] for c in frame.columns}
        unknown = sorted(wanted - known)
        if unknown:
            raise InvalidInput(f"unknown service(s) {', '.join(unknown)}; the data has: {', '.join(sorted(known))}",
                               field="services")
        out = out[[c for c in out.columns if split_column(c)[0] in wanted]]
    return out


class DatasetSource:
    """Metrics from a dataset file (the embedded default); the file is read once."""

    def __init__(self, path: str | Path, *, keeper: ScoreKeeper | None = None, cmdb=None) -> None:
        self.path = Path(path)  # (cmdb is accepted for symmetry with PrometheusSource; files need no selectors)
        self.keeper = keeper
        self._frame: pd.DataFrame | None = None
        self._in_order = True

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame, self._in_order = read_dataset(self.path)
        return self._frame

    def services(self) -> list[str]:
        return sorted({split_column(c)[0] for c in self.frame.columns})

    def fetch(self, *, start=None, end=None, services=None, step=None) -> Fetch:
        frame = select(self.frame, start=start, end=end, services=services)
        if frame.empty:
            span = f"{self.frame.index[0].isoformat()} .. {self.frame.index[-1].isoformat()}"
            raise InvalidInput(f"{self.path}: no data in the requested window; the file covers {span}", field="start")
        if step is not None:
            frame = frame.resample(pd.Timedelta(step)).mean()
        results = check_frame(frame, time_was_sorted=self._in_order, source=str(self.path))
        warnings = record_checks(results, self.keeper)
        query = f"file {self.path} [{frame.index[0].isoformat()} .. {frame.index[-1].isoformat()}]"
        return Fetch(frame, warnings, [query], [r.as_dict() for r in results])


_KINDS: dict[str, Callable[..., MetricSource]] = {"dataset": DatasetSource}


def register_source(kind: str, factory: Callable[..., MetricSource]) -> None:
    """Make ``open_source(..., kind=kind)`` build sources with ``factory(location, **options)``."""
    _KINDS[kind] = factory


def open_source(location: str | Path, *, kind: str | None = None, **options) -> MetricSource:
    """A metric source for a URL or a dataset file: the first call of a notebook or a script.

    Parameters
    ----------
    location
        ``http(s)://...``: a Prometheus (or compatible) HTTP API base URL. Anything else: a
        dataset file (CSV or Parquet, wide or long); a relative path is read from the data
        dir (``$BIZRA_DATA_DIR``, see :mod:`bizra_nb.paths`), not the kernel's working directory.
    kind
        Force a registered kind (``"dataset"``, ``"prometheus"``, or one added with
        :func:`register_source`); default: from ``location``.
    **options
        Passed to the source (e.g. ``cmdb=``, ``token=``, ``timeout=`` for Prometheus).

    Returns
    -------
    MetricSource
        Call ``.fetch(start=..., end=..., services=...)`` for a :class:`Fetch`.

    Raises
    ------
    InvalidInput
        An empty location, a dataset file that does not exist (named, with where it was
        looked for), an unknown kind.

    Examples
    --------
    >>> metrics = open_source("demo/metrics.parquet")          # doctest: +SKIP
    >>> frame = metrics.fetch(start="2026-10-27T16:00Z").frame  # doctest: +SKIP
    """
    if location is None or str(location).strip() == "":
        raise InvalidInput("no metric source given: pass a dataset file or a Prometheus URL", field="source")
    if kind is None:
        kind = "prometheus" if str(location).startswith(("http://", "https://")) else "dataset"
    if kind == "dataset":
        from bizra_nb.paths import data_path, describe

        resolved = data_path(location)
        if not resolved.is_file():
            raise InvalidInput(f"dataset file {location} not found{describe(location)}", field="source")
        location = resolved
    if kind == "prometheus" and kind not in _KINDS:
        from bizra_nb.prometheus import PrometheusSource  # registers itself; import only when used

        _KINDS["prometheus"] = PrometheusSource
    try:
        factory = _KINDS[kind]
    except KeyError:
        raise InvalidInput(f"unknown source kind {kind!r}; known: {', '.join(sorted(_KINDS))}", field="source") from None
    return factory(location, **options)
