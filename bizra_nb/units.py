"""Units of metric values: from the metric's name by a suffix convention, or from the CMDB item's ``units:``.

The convention (:data:`BY_NAME`, first match wins; the metric is the part of a
column after ``<service>_``):

=============================================  ========
metric name                                    unit
=============================================  ========
``*_ms``, ``lat``, ``lat_50``, ``lat_99``,     ms
``latency*``, ``*_p50``/``*_p95``/``*_p99``
``*_seconds``, ``*_s``                         s
``*_pct``, ``*_percent``                       %
``error``, ``*_ratio``, ``*_rate_ratio``       % (a ratio 0..1 shown ×100)
``cpu`` (the fleet's: % of one core)           %
``*_cores``                                    cores
``mem``, ``*_mb``                              MB
``*_bytes``                                    bytes
``rate``, ``*_rps``, ``throughput``            req/s
=============================================  ========

A CMDB item overrides it per metric: ``units: {cpu: "% of a core", queue_depth: messages}``.
Unknown metrics have no unit (``""``).
"""
from __future__ import annotations

import math
import re

BY_NAME: list[tuple[str, str]] = [
    (r"(^|_)(lat(ency)?)(_\d+)?$|_ms$|_p(50|90|95|99)$|^p(50|90|95|99)$", "ms"),
    (r"_(seconds|s)$", "s"),
    (r"_(pct|percent)$", "%"),
    (r"^error$|^errors?_ratio$|_ratio$", "ratio"),
    (r"^cpu$", "%"),
    (r"_cores$", "cores"),
    (r"^mem$|_mb$", "MB"),
    (r"_bytes$", "bytes"),
    (r"^rate$|_rps$|^throughput", "req/s"),
]


def unit_of(metric: str, item: dict | None = None) -> str:
    """The unit of ``metric`` (``"lat_99"``, ``"cpu"``...): the CMDB ``item``'s ``units:`` entry, else the
    naming convention of this module; ``"ratio"`` means a 0..1 share shown as %; ``""`` when unknown."""
    units = (item or {}).get("units")
    if isinstance(units, dict) and isinstance(units.get(metric), str):
        return units[metric]
    for pattern, unit in BY_NAME:
        if re.search(pattern, metric):
            return unit
    return ""


def shown_unit(unit: str) -> str:
    """The unit as written next to values and on axes: ``"%"`` for a ratio (shown ×100), else ``unit``."""
    return "%" if unit == "ratio" else unit


def with_unit(value, unit: str, *, digits: int | None = None) -> str:
    """``value`` formatted with ``unit``: ``"412 ms"``, ``"4.20 %"`` (a ratio ×100), ``"1.5 cores"``; ``"–"`` when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if unit == "ratio":
        return f"{value * 100:.{2 if digits is None else digits}f} %"
    if unit == "%":
        return f"{value:.{2 if digits is None else digits}f} %"
    if digits is None:
        digits = 0 if abs(value) >= 100 else (1 if abs(value) >= 10 else 2)
    return f"{value:,.{digits}f} {unit}".rstrip()
