"""Fetch an incident window from a metric source and rank its root causes: the call the CLI, server and notebooks share."""
from __future__ import annotations

from bizra_nb.cmdb import Cmdb
from bizra_nb.rca import Diagnosis, rank_root_causes
from bizra_nb.sources import Fetch, MetricSource


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
