"""The dependency graph's word: symptoms below their cause, the callers' view of quiet or unmonitored
dependencies, call edges inferred from traffic without a CMDB, and independent anomalies weighed."""
from __future__ import annotations

import numpy as np
import pandas as pd

from bizra_nb.cmdb import Cmdb
from bizra_nb.dataset import split_column
from bizra_nb.rca.metrics import metric_direction
from bizra_nb.rca.model import Candidate
from bizra_nb.rca.scoring import ANOMALOUS

WEAK_SHIFT = 3.0  # a steady change in standard errors: weak evidence at a quiet dependency (callers' view)
LATE_WEIGHT = 0.5  # an independent anomaly that began minutes after the first one counts this much
ISOLATED_WEIGHT = 0.5  # an anomaly that reached none of its callers while another did counts this much
CO_MOVING = 0.4  # correlation of traffic changes above which two services are taken as calling each other


def refine_with_topology(candidates: list[Candidate], cmdb: Cmdb, *, tolerance: pd.Timedelta) -> list[Candidate]:
    """Rank a service explained by an earlier (or simultaneous) anomalous dependency below that dependency.

    A fault spreads from a dependency to its callers. When service S and one of
    its transitive dependencies D are both anomalous and D's onset is no later
    than S's (within ``tolerance``), S is more likely a symptom of D: S's score
    is capped below D's. Dependencies are handled before their callers.
    """
    by_id = {c.service: c for c in candidates}
    anomalous = {c.service for c in candidates if c.score >= ANOMALOUS and c.onset is not None}
    adjusted = {c.service: c.score for c in candidates}
    order = _dependencies_first([c.service for c in candidates], cmdb)
    for service in order:
        cand = by_id[service]
        if service not in anomalous or service not in cmdb.items:
            continue
        explainers = [d["id"] for d in cmdb.upstream(service)
                      if d["id"] in anomalous and by_id[d["id"]].onset <= cand.onset + tolerance]
        if explainers:
            strongest = max(explainers, key=lambda d: adjusted[d])
            cand.explained_by = strongest
            adjusted[service] = min(adjusted[service], 0.9 * adjusted[strongest])
    for cand in candidates:
        cand.score = adjusted[cand.service]
    candidates.sort(key=lambda c: -c.score)
    return _with_paths(candidates, cmdb)


def callers_view(candidates: list[Candidate], cmdb: "Cmdb | InferredCalls", *, tolerance: pd.Timedelta,
                 anomaly_start: pd.Timestamp) -> list[Candidate]:
    """Blame a quiet or unmonitored dependency that the anomalies of its callers point at.

    A code fault, a network delay or a database without an exporter shows in the *callers*: their latency
    and errors rise while the service at fault looks normal or has no data. A *pointing caller* is a
    service that no anomalous dependency explains and whose evidence is latency or errors only: anomalous,
    or with a weak but steady change of its latency or errors at the start (at least ``WEAK_SHIFT``
    standard errors). For each pointing caller, strongest first, its direct dependencies are examined:

    1. a weak but steady change at the dependency from the start (its shift at least ``WEAK_SHIFT``):
       latency or errors (kind ``code``), or only its traffic (kind ``dependency_edge``: the calls from
       the caller to it slowed);
    2. a dependency without any metric in the data (kind ``no_metrics``);
    3. a quiet dependency of which at least two pointing callers changed together (kind ``code``).

    Among several, the one with the stronger class of evidence wins, then the one more callers point at.
    The dependency is ranked just above its callers, which become its symptoms; a dependency blamed for
    a change of its own latency is examined in turn (the fault may sit deeper). With one caller and no
    evidence at the dependency, a fault in the caller and one in the dependency look the same: the
    caller keeps the blame.
    """
    by_id = {c.service: c for c in candidates}
    anomalous = {c.service for c in candidates if c.score >= ANOMALOUS and c.onset is not None}
    directed = not isinstance(cmdb, InferredCalls)

    def pointing(c: Candidate) -> bool:
        if c.service not in cmdb.items or c.explained_by is not None:
            return False
        if c.service in anomalous:
            return c.kind == "code"
        return c.symptom_shift >= WEAK_SHIFT and not any(d["id"] in anomalous for d in cmdb.upstream(c.service))

    def onset(c: Candidate) -> pd.Timestamp:
        return c.onset if c.onset is not None else anomaly_start

    queue = sorted((c for c in candidates if pointing(c)), key=lambda c: -c.score)
    done: list[Candidate] = []
    while queue:
        caller = queue.pop(0)
        if caller.explained_by is not None or caller in done:
            continue
        done.append(caller)
        pointers = [c for c in candidates if pointing(c) or c is caller]
        options = []
        for dep in cmdb.dependencies(caller.service):
            if cmdb.items.get(dep, {}).get("kind") == "host" or dep in anomalous:
                continue
            known = by_id.get(dep)
            if known is not None and known.callers:
                continue
            group = [c for c in pointers if dep in cmdb.dependencies(c.service)
                     and abs(onset(c) - onset(caller)) <= tolerance]
            # its own latency or errors moved a little: its code (only along a known direction: with inferred
            # edges the quiet neighbour may be the caller, whose latency also rises a little); only its
            # traffic fell: the calls into it
            code_shift = known.symptom_shift if known is not None and directed else 0.0
            if known is not None and max(code_shift, known.traffic_shift) >= WEAK_SHIFT:
                kind = "code" if code_shift >= WEAK_SHIFT else "dependency_edge"
                options.append((3, len(group), max(code_shift, known.traffic_shift), dep, kind, group))
            elif known is None:
                options.append((2, len(group), 0.0, dep, "no_metrics", group))
            elif len(group) >= 2 and directed:
                options.append((1, len(group), 0.0, dep, "code", group))
        if not options:
            continue
        _, _, _, dep, kind, group = max(options, key=lambda o: o[:3])
        blamed = by_id.get(dep)
        if blamed is None:
            blamed = Candidate(service=dep, score=0.0, metric="-", onset=None, kind=kind)
            candidates.append(blamed)
            by_id[dep] = blamed
        blamed.kind = kind
        blamed.onset = min(onset(c) for c in group)
        blamed.callers = sorted(c.service for c in group)
        if kind == "dependency_edge" and len(group) == 1:
            blamed.edge = (caller.service, dep)
        blamed.score = max(blamed.score, 1.05 * max(c.score for c in group))
        for symptom in group:
            symptom.explained_by = dep
            symptom.score = min(symptom.score, 0.9 * blamed.score)
        if pointing(blamed) and blamed not in done:  # its own latency moved: the fault may sit deeper
            queue.insert(0, blamed)
    candidates.sort(key=lambda c: (not c.anomalous, -c.score))  # blamed or anomalous first
    return candidates


class InferredCalls:
    """Call edges inferred from co-moving traffic, for the callers' view when no CMDB is given.

    Traffic flows along calls: a service's request rate follows its callers'. Over the normal window,
    the successive differences of the services' rate series (differences: the shared daily rhythm
    drops out) are correlated pairwise; a pair at ``CO_MOVING`` or more is taken as a call edge of
    unknown direction. Limits: only services that report a rate series take part; shared upstream
    traffic also correlates services that do not call each other (two callees of one caller); direction
    is unknown, so a quiet neighbour of an anomalous service is blamed only for a dip of its traffic,
    never for a weak rise of its latency (the caller of a slow service shows that too) nor because two
    anomalous neighbours share it (traffic from a common caller correlates them); at least 30 normal
    points are needed.
    """

    def __init__(self, neighbours: dict[str, list[str]]):
        self.neighbours = neighbours
        self.items = {s: {"kind": "service"} for s in neighbours}

    def dependencies(self, service: str) -> list[str]:
        return list(self.neighbours.get(service, ()))

    def upstream(self, service: str) -> list[dict]:
        return [{"id": s, "distance": 1} for s in self.neighbours.get(service, ())]

    @property
    def edges(self) -> list[tuple[str, str]]:
        return sorted({tuple(sorted((a, b))) for a, ns in self.neighbours.items() for b in ns})


def infer_calls(frame: pd.DataFrame, anomaly_start: pd.Timestamp) -> InferredCalls | None:
    """The call edges that co-moving traffic suggests (see :class:`InferredCalls`); None with too little data."""
    rates = [c for c in frame.columns if metric_direction(split_column(c)[1]) == "down"]
    normal = frame.loc[frame.index < anomaly_start, rates]
    if len(normal) < 30 or len(rates) < 2:
        return None
    services = [split_column(c)[0] for c in rates]
    with np.errstate(all="ignore"):
        corr = np.nan_to_num(normal.diff().iloc[1:].corr().to_numpy())
    neighbours: dict[str, list[str]] = {}
    for i, j in zip(*np.nonzero(np.triu(corr, 1) >= CO_MOVING)):
        a, b = services[i], services[j]
        if a != b:
            neighbours.setdefault(a, []).append(b)
            neighbours.setdefault(b, []).append(a)
    return InferredCalls(neighbours) if neighbours else None


def prefer_what_spread(candidates: list[Candidate], cmdb: Cmdb) -> list[Candidate]:
    """Rank an isolated anomaly below one that reached its callers.

    A fault spreads to the callers of the service at fault. When one unexplained anomalous candidate
    reached its callers (or was blamed from them) and another, which has callers in the CMDB, reached
    none of them, the isolated one is more likely an unrelated event in the same window: its score
    counts ``ISOLATED_WEIGHT``.
    """
    anomalous = {c.service for c in candidates if c.anomalous}
    roots = [c for c in candidates if c.anomalous and c.explained_by is None and c.service in cmdb.items]
    spread = {c.service for c in roots if c.callers or any(d in anomalous for d in cmdb.dependents(c.service))}
    if spread:
        for cand in roots:
            if cand.service not in spread and cmdb.dependents(cand.service):
                cand.score *= ISOLATED_WEIGHT
    candidates.sort(key=lambda c: (not c.anomalous, -c.score))
    return candidates


def prefer_the_first(candidates: list[Candidate], cmdb: Cmdb, *, late: pd.Timedelta) -> list[Candidate]:
    """Rank an independent anomaly that began ``late`` or more after the first one below it.

    With a CMDB, the anomalous candidates that no dependency explains are independent of each other; the
    incident began with the first of them, and one that started minutes later is more likely a second
    event in the same window: its score counts ``LATE_WEIGHT``.
    """
    roots = [c for c in candidates if c.anomalous and c.explained_by is None and c.service in cmdb.items
             and c.onset is not None]
    if len(roots) > 1:
        first = min(c.onset for c in roots)
        for cand in roots:
            if cand.onset - first >= late:
                cand.score *= LATE_WEIGHT
    candidates.sort(key=lambda c: (not c.anomalous, -c.score))
    return candidates


def _with_paths(candidates: list[Candidate], cmdb: Cmdb) -> list[Candidate]:
    """Propagation paths of the unexplained anomalous candidates (after the callers' view)."""
    anomalous = {c.service for c in candidates if c.onset is not None and (c.score >= ANOMALOUS or c.callers)}
    for cand in candidates:
        cand.path = None
        if cand.service in anomalous and cand.explained_by is None and cand.service in cmdb.items:
            cand.path = _propagation_path(cand.service, cmdb, anomalous)
    return candidates


def _dependencies_first(services: list[str], cmdb: Cmdb) -> list[str]:
    known = [s for s in services if s in cmdb.items]
    depth = {s: max((d["distance"] for d in cmdb.upstream(s)), default=0) for s in known}
    return sorted(known, key=lambda s: depth[s]) + [s for s in services if s not in cmdb.items]


def _propagation_path(root: str, cmdb: Cmdb, anomalous: set[str]) -> list[str]:
    """The longest chain of anomalous callers starting at ``root`` (root first)."""
    best = [root]
    stack = [[root]]
    while stack:
        path = stack.pop()
        extended = False
        for caller in cmdb.dependents(path[-1]):
            if caller in anomalous and caller not in path:
                stack.append(path + [caller])
                extended = True
        if not extended and len(path) > len(best):
            best = path
    return best
