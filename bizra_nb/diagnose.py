"""Fetch an incident window from a metric source and rank its root causes: the call the CLI, server and notebooks share."""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from bizra_nb.cmdb import Cmdb
from bizra_nb.rca import Diagnosis, rank_root_causes
from bizra_nb.sources import Fetch, MetricSource, open_source, to_timestamp


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
) -> tuple[Diagnosis, Fetch]:
    """Fetch ``[start, end]`` from ``source`` and rank every service as a root-cause candidate.

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

    Returns
    -------
    (Diagnosis, Fetch)
        The diagnosis (``.ranking``, ``.table()``; its warnings include the data checks') and
        the fetch (frame and exact queries) for plots and the report's appendix.

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
    fetched = source.fetch(start=start, end=end, services=services)
    diagnosis = rank_root_causes(fetched.frame, anomaly_start=anomaly_start, end=end, cmdb=cmdb)
    diagnosis.warnings = fetched.warnings + diagnosis.warnings
    return diagnosis, fetched
