"""What a metric's name says: which way is bad, and whether it is a resource or a symptom."""
from __future__ import annotations

import re

import numpy as np

from bizra_nb.dataset import split_column

_RISE_BAD = re.compile(r"lat|latency|duration|time|err|error|fail|cpu|mem|memory|gc|queue|restart|retr|loss|p9\d", re.I)
_DROP_BAD = re.compile(r"rate|load|workload|throughput|qps|rps|tps|requests|success|avail|hit", re.I)
_SYMPTOM = re.compile(r"lat|latency|duration|err|error|fail|p9\d", re.I)
_RESOURCE = re.compile(r"^(cpu|mem|memory|gc|threads?|disk|fds?|heap|swap|io|iops|oom)", re.I)  # a name token


def is_resource(metric: str) -> bool:
    """A resource metric (CPU, memory, GC, threads, disk, file descriptors…), by whole name tokens: not
    ``duration`` nor ``error_ratio`` (their ``io`` is no I/O); a latency or error metric never is one."""
    if _SYMPTOM.search(metric):
        return False
    return any(_RESOURCE.match(token) for token in re.split(r"[_\-.]", metric) if token)


def metric_direction(metric: str) -> str:
    """``"up"`` when a rise is bad, ``"down"`` when a drop is bad, ``"both"`` when unknown."""
    if _DROP_BAD.search(metric) and not _RISE_BAD.search(metric):
        return "down"
    if _RISE_BAD.search(metric):
        return "up"
    return "both"


def _badness(columns) -> np.ndarray:
    """+1 where a rise of the column is bad, -1 where a drop is, 0.5 where unknown (either way counts)."""
    dirs = [metric_direction(split_column(c)[1]) for c in columns]
    return np.array([1.0 if d == "up" else -1.0 if d == "down" else 0.0 for d in dirs])
