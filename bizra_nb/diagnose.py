"""Fetch an incident window from a metric source and rank its root causes: the call the CLI, server and notebooks share."""
from __future__ import annotations

import time

import pandas as pd

from bizra_nb.cmdb import Cmdb
from bizra_nb.rca import Diagnosis, rank_root_causes
from bizra_nb.sources import Fetch, MetricSource, to_timestamp


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
    source: MetricSource,
    *,
    start=None,
    end=None,
    anomaly_start=None,
    services: list[str] | None = None,
    cmdb: Cmdb | None = None,
) -> tuple[Diagnosis, Fetch]:
    """Fetch ``[start, end]`` (for ``services``) from ``source`` and rank the root causes.

    Returns the diagnosis, whose warnings include the data checks', and the fetch
    (frame, exact queries) for plotting and for the report's appendix.
    """
    fetched = source.fetch(start=start, end=end, services=services)
    diagnosis = rank_root_causes(fetched.frame, anomaly_start=anomaly_start, end=end, cmdb=cmdb)
    diagnosis.warnings = fetched.warnings + diagnosis.warnings
    return diagnosis, fetched
