"""Fetch an incident window from a metric source and rank its root causes: the call the CLI, server and notebooks share."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd

from bizra_nb.cmdb import Cmdb
from bizra_nb.errors import InvalidInput
from bizra_nb.rca import Diagnosis, rank_root_causes
from bizra_nb.sources import Fetch, MetricSource, open_source, to_timestamp

_DAYS = re.compile(r"(\d)\s*d(?![a-z])", re.I)  # "2d", "1d12h": days, as pandas wants them ("2D")


def incident_window(incident: dict | None = None, *, start=None, end=None, lookback_minutes: float = 60,
                    after_minutes: float = 30, now: float | None = None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The window to diagnose: ``start``/``end`` when given, else around the incident's start.

    From ``lookback_minutes`` before the incident's anomaly start (or its opening) to
    ``after_minutes`` after it, but not past ``now``.
    """
    incident = incident or {}
    began = incident.get("anomaly_start") or incident.get("opened_at")
    first = to_timestamp(start or None, name="start")
    last = to_timestamp(end or None, name="end")
    if began is not None:
        began = to_timestamp(began, name="incident")
        first = first or began - pd.Timedelta(minutes=lookback_minutes)
        latest = pd.Timestamp(now if now is not None else time.time(), unit="s", tz="UTC")
        last = last or min(began + pd.Timedelta(minutes=after_minutes), max(latest, began + pd.Timedelta(minutes=1)))
    return first, last


def diagnose(
    source: MetricSource | str | Path,
    *,
    start=None,
    end=None,
    anomaly_start=None,
    services: list[str] | None = None,
    cmdb: Cmdb | str | Path | None = None,
    history=None,
) -> tuple[Diagnosis, Fetch]:
    """Fetch ``[start, end]`` (and ``history`` before it) from ``source`` and rank every service as a
    root-cause candidate.

    Parameters
    ----------
    source
        A metric source (:func:`bizra_nb.sources.open_source`), or what ``open_source`` takes:
        a dataset file path (relative: in the data dir, see :mod:`bizra_nb.paths`) or a
        Prometheus URL.
    start, end
        The window: unix seconds, ISO-8601 text or Timestamps (None: the whole dataset).
    anomaly_start
        When the anomaly began; None: detected from the data.
    services
        Only these services (None: all in the data).
    cmdb
        The dependency graph, a :class:`~bizra_nb.cmdb.Cmdb` or a CMDB file path as the
        notebooks' ``cmdb`` parameter; None or ``""``: rank without topology.
    history
        How much data before ``start`` to fetch as history: a Timedelta or a length such as ``"12h"`` or
        ``"2d"`` (None: none). The examined window still begins at ``start``; with a day or more of history,
        every series is compared with its usual value at the same time of day (a daily dip is no anomaly).
        Needs ``start``.

    Returns
    -------
    (Diagnosis, Fetch)
        The diagnosis (``.ranking``, ``.table()``; its warnings include the data checks') and
        the fetch (frame and exact queries; with ``history``, the history too) for plots and the
        report's appendix.

    Raises
    ------
    InvalidInput
        ``history`` not a positive length (field ``history``), or given without ``start``.

    Examples
    --------
    >>> diagnosis, fetched = diagnose("demo/metrics.parquet", cmdb="demo/cmdb.yaml",
    ...                               start="2026-10-27T15:40Z", end="2026-10-27T17:40Z")  # doctest: +SKIP
    >>> diagnosis.table(5)                                                                  # doctest: +SKIP
    """
    if isinstance(cmdb, (str, Path)):
        cmdb = Cmdb.load(cmdb) if str(cmdb).strip() else None
    if isinstance(source, (str, Path)):
        source = open_source(source, cmdb=cmdb)
    span = history_span(history)
    window_start = to_timestamp(start or None, name="start")
    if span is not None and window_start is None:
        raise InvalidInput("history needs start: the history is the data before the window's start",
                           field="history")
    fetch_from = window_start - span if span is not None else start
    fetched = source.fetch(start=fetch_from, end=end, services=services)
    diagnosis = rank_root_causes(fetched.frame, anomaly_start=anomaly_start, end=end, cmdb=cmdb,
                                 start=window_start if span is not None else None)
    diagnosis.warnings = fetched.warnings + diagnosis.warnings
    return diagnosis, fetched


MAX_HISTORY = pd.Timedelta(days=14)
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def history_span(history) -> pd.Timedelta | None:
    """``history`` (a Timedelta, a length such as ``"12h"`` or ``"2d"``, or seconds) as a positive Timedelta;
    None and ``""`` stay None.

    Raises
    ------
    InvalidInput
        Anything else, naming the field ``history`` and the accepted form.
    """
    if history is None or (isinstance(history, str) and not history.strip()):
        return None
    try:
        if isinstance(history, bool):
            raise TypeError("a flag is no length")
        if isinstance(history, str) and _NUMBER.fullmatch(history.strip()):
            history = float(history)  # a bare number is seconds, as a Python number is (not pandas' nanoseconds)
        if isinstance(history, (int, float)):
            span = pd.Timedelta(seconds=history)
        else:
            span = pd.Timedelta(_DAYS.sub(r"\1D", history.strip()) if isinstance(history, str) else history)
    except (ValueError, TypeError, OverflowError):
        span = None
    if span is None or pd.isna(span) or span <= pd.Timedelta(0):
        raise InvalidInput(f"history must be a positive length such as 12h or 2d, got {history!r}", field="history")
    if span > MAX_HISTORY:
        raise InvalidInput(f"history must be at most 14d (the same-time-of-day baseline uses the last 14 days; "
                           f"more only coarsens a Prometheus fetch), got {history!r}", field="history")
    return span
