"""The demo fleet: a CMDB of services with dependencies, and their metrics with injected faults of known cause.

Seeded and vectorised. Metrics per service, named ``<service>_<metric>`` in wide
frames: ``rate`` (req/s), ``error`` (error ratio), ``lat_50`` and ``lat_99`` (ms),
``cpu`` (% of a core), ``mem`` (MB). A fault at one service changes its own
metrics first and reaches the services that depend on it (their callers) with a
delay and an attenuation per hop, as real latency and errors propagate.

Besides the resource faults of ``FAULT_KINDS``, a code fault (``CODE_FAULT_KINDS``)
leaves the service's own resources alone and shows in its callers' latency and
errors, and a network delay (``NETWORK_FAULT_KINDS``) slows the calls into a
service (from one caller, or from all) while the service itself looks healthy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from bizra_nb.cmdb import Cmdb

METRICS = ("rate", "error", "lat_50", "lat_99", "cpu", "mem")
FAULT_KINDS = ("cpu_hog", "memory_leak", "latency", "error_burst", "packet_loss")
CODE_FAULT_KINDS = ("code_error", "code_latency")  # only the callers see it clearly
NETWORK_FAULT_KINDS = ("network_delay",)  # calls into the service slowed; the service looks healthy

# id, kind, owner, tier, base rate (req/s), base p50 latency (ms)
_ITEMS = [
    ("frontend", "service", "web", 1, 220.0, 35.0),
    ("api-gateway", "service", "platform", 1, 240.0, 22.0),
    ("catalog", "service", "shop", 2, 150.0, 14.0),
    ("search", "service", "shop", 2, 60.0, 28.0),
    ("recommendation", "service", "ml", 3, 45.0, 40.0),
    ("cart", "service", "shop", 1, 80.0, 9.0),
    ("checkout", "service", "payments", 1, 25.0, 60.0),
    ("payment", "service", "payments", 1, 22.0, 45.0),
    ("shipping", "service", "logistics", 2, 20.0, 18.0),
    ("user", "service", "identity", 1, 90.0, 11.0),
    ("catalog-db", "database", "dba", 1, 300.0, 3.0),
    ("payments-db", "database", "dba", 1, 40.0, 4.0),
    ("user-db", "database", "dba", 1, 110.0, 2.5),
    ("cart-cache", "cache", "platform", 1, 160.0, 0.8),
    ("orders-queue", "queue", "platform", 2, 30.0, 1.5),
]
# source depends on (calls) target
_DEPENDS_ON = [
    ("frontend", "api-gateway"),
    ("api-gateway", "catalog"), ("api-gateway", "search"), ("api-gateway", "recommendation"),
    ("api-gateway", "cart"), ("api-gateway", "checkout"), ("api-gateway", "user"),
    ("search", "catalog"), ("recommendation", "catalog"),
    ("catalog", "catalog-db"),
    ("cart", "cart-cache"),
    ("checkout", "cart"), ("checkout", "payment"), ("checkout", "shipping"), ("checkout", "user"),
    ("payment", "payments-db"),
    ("shipping", "orders-queue"),
    ("user", "user-db"),
]
_HOSTS = {"node-a": ["frontend", "api-gateway", "catalog", "search", "recommendation"],
          "node-b": ["cart", "checkout", "payment", "shipping", "user", "cart-cache", "orders-queue"],
          "node-c": ["catalog-db", "payments-db", "user-db"]}


def demo_cmdb() -> Cmdb:
    """The demo fleet's CMDB: 15 services, databases, a cache and a queue on 3 hosts."""
    items = [{"id": i, "kind": k, "owner": o, "tier": t,
              "slo": {"availability": 0.999, "latency_p99_ms": round(lat * 6)}}
             for i, k, o, t, _, lat in _ITEMS]
    items += [{"id": host, "kind": "host"} for host in _HOSTS]
    relations = [{"source": s, "target": t, "type": "depends_on"} for s, t in _DEPENDS_ON]
    relations += [{"source": svc, "target": host, "type": "runs_on"} for host, svcs in _HOSTS.items() for svc in svcs]
    return Cmdb.from_dict({"items": items, "relations": relations})


@dataclass(frozen=True)
class Fault:
    """An injected fault: the truth a diagnosis should find.

    ``caller`` (kind ``network_delay`` only): the one caller whose calls into
    ``service`` are slowed; None slows every caller (the delay sits at the
    service's network interface). ``amplify``: the service's direct callers see
    this many times its latency and error change (retries, fan-out); 1 is the
    usual attenuation.
    """

    service: str
    kind: str
    start: pd.Timestamp
    end: pd.Timestamp | None = None
    magnitude: float = 1.0
    caller: str | None = None
    amplify: float = 1.0

    def as_dict(self) -> dict:
        out = {"service": self.service, "kind": self.kind, "start": self.start.isoformat(),
               "end": self.end.isoformat() if self.end is not None else None, "magnitude": self.magnitude}
        if self.caller is not None:
            out["caller"] = self.caller
        if self.amplify != 1.0:
            out["amplify"] = self.amplify
        return out


@dataclass
class FleetData:
    """Generated metrics (wide frame, UTC index), the CMDB and the injected faults."""

    metrics: pd.DataFrame
    cmdb: Cmdb
    faults: list[Fault] = field(default_factory=list)


def _callers_by_hop(cmdb: Cmdb, root: str) -> dict[str, int]:
    """Services that (transitively) depend on ``root``, with their distance in hops."""
    hops = {root: 0}
    frontier = [root]
    while frontier:
        nxt = []
        for node in frontier:
            for caller in cmdb.dependents(node):
                if caller not in hops:
                    hops[caller] = hops[node] + 1
                    nxt.append(caller)
        frontier = nxt
    return hops


def generate(
    *,
    start: str | pd.Timestamp = "2026-10-01",
    duration: str | pd.Timedelta = "1h",
    step: str | pd.Timedelta = "15s",
    faults: list[Fault] = (),
    seed: int = 0,
    cmdb: Cmdb | None = None,
    traffic: Callable[[pd.DatetimeIndex], np.ndarray] | None = None,
    coupling: float = 0.0,
) -> FleetData:
    """Metrics of the demo fleet over ``[start, start + duration)`` with ``faults`` injected.

    Parameters
    ----------
    start, duration, step
        The time grid (UTC).
    faults
        Faults to inject; each reaches its callers with a delay and attenuation per hop.
    seed
        Seeds the noise, per-service noise levels and the propagation parameters.
    traffic
        A multiplier of every service's request rate per time step (a surge: a function of the
        time index returning one factor a step); latency and CPU follow the load as usual.
    coupling
        0: every service's traffic fluctuates on its own (the demo). Above 0: traffic flows along the
        calls, so a service's request rate also follows its callers' fluctuations (this share of them),
        as in a real system; what lets co-movement reveal call edges without a CMDB.

    Returns
    -------
    FleetData
    """
    rng = np.random.default_rng(seed)
    cmdb = cmdb or demo_cmdb()
    index = pd.date_range(pd.Timestamp(start, tz="UTC") if pd.Timestamp(start).tzinfo is None else pd.Timestamp(start),
                          periods=int(pd.Timedelta(duration) / pd.Timedelta(step)), freq=pd.Timedelta(step))
    n = len(index)
    seconds = index.as_unit("s").asi8.astype(np.float64)
    hour_of_day = (seconds % 86400) / 3600.0
    daily = 1.0 + 0.35 * np.sin(2 * np.pi * (hour_of_day - 9.0) / 24.0)  # peak mid-afternoon UTC
    weekly = 1.0 - 0.15 * (((seconds // 86400 + 3) % 7) >= 5)  # quieter weekends
    surge = np.ones(n) if traffic is None else np.asarray(traffic(index), dtype="float64")
    flows = _flows(cmdb, n, seed, coupling)
    services = [row[0] for row in _ITEMS]
    columns: dict[str, np.ndarray] = {}
    base = {}
    for sid, kind, _, _, rate0, lat0 in _ITEMS:
        noise = rng.uniform(0.03, 0.08)  # relative noise level of this service
        rate = rate0 * daily * weekly * surge * (1 + rng.normal(0, noise, n) + flows.get(sid, 0.0))
        load = rate / rate0
        lat50 = lat0 * (0.85 + 0.15 * load) * (1 + rng.normal(0, noise, n))
        lat99 = lat50 * rng.uniform(2.5, 4.0) * (1 + np.abs(rng.normal(0, 2 * noise, n)))
        cpu = np.clip(rng.uniform(8, 25) + rng.uniform(10, 25) * load + rng.normal(0, 2.0, n), 0, 100)
        mem0 = {"database": 2048.0, "cache": 900.0, "queue": 400.0}.get(kind, 300.0) * rng.uniform(0.7, 1.3)
        mem = mem0 * (1 + rng.normal(0, 0.01, n)) + np.linspace(0, mem0 * 0.01, n)
        error = np.clip(0.002 + rng.normal(0, 0.0008, n), 0, 1)
        base[sid] = {"rate": rate, "error": error, "lat_50": lat50, "lat_99": lat99, "cpu": cpu, "mem": mem}
    # deviations added by faults, accumulated per service and metric
    delta = {sid: {m: np.zeros(n) for m in METRICS} for sid in services}
    for fault in faults:
        _inject(fault, index, base, delta, cmdb, rng)
    for sid in services:
        for metric in METRICS:
            value = base[sid][metric] + delta[sid][metric]
            if metric in ("error",):
                value = np.clip(value, 0, 1)
            elif metric == "cpu":
                value = np.clip(value, 0, 100)
            else:
                value = np.maximum(value, 0)
            columns[f"{sid}_{metric}"] = np.round(value, 4)
    frame = pd.DataFrame(columns, index=index)
    frame.index.name = "time"
    return FleetData(metrics=frame, cmdb=cmdb, faults=list(faults))


def _flows(cmdb: Cmdb, n: int, seed: int, coupling: float) -> dict[str, np.ndarray]:
    """Per service, the traffic fluctuation it receives from its callers (relative): its own (5 %) plus
    ``coupling`` times the mean of its callers', from the entry points down. None when ``coupling`` is 0
    (and then no random number is drawn: the data stay what they were)."""
    if coupling <= 0:
        return {}
    rng = np.random.default_rng([seed, 7])
    own = {sid: rng.normal(0, 0.05, n) for sid, *_ in _ITEMS}
    flows: dict[str, np.ndarray] = {}

    def flow(sid: str) -> np.ndarray:
        if sid not in flows:
            callers = [c for c in cmdb.dependents(sid) if c in own]
            flows[sid] = own[sid] + (coupling * np.mean([flow(c) for c in callers], axis=0) if callers else 0.0)
        return flows[sid]

    for sid in own:
        flow(sid)
    return flows


def _ramp(index: pd.DatetimeIndex, start: pd.Timestamp, end: pd.Timestamp | None, rise: float) -> np.ndarray:
    """0 before ``start``, rising linearly to 1 over ``rise`` seconds, 0 again after ``end``."""
    t = (index - start).total_seconds().to_numpy()
    shape = np.clip(t / max(rise, 1e-9), 0, 1) * (t >= 0)
    if end is not None:
        shape = shape * (index < end)
    return shape


def noise_sd(values: np.ndarray) -> float:
    """The noise standard deviation of a series, from its successive differences (robust to steps and trends)."""
    diffs = np.diff(np.asarray(values, dtype="float64"))
    diffs = diffs[np.isfinite(diffs)]
    if len(diffs) == 0:
        return 0.0
    return float(np.median(np.abs(diffs - np.median(diffs))) * 1.4826 / np.sqrt(2))


def _inject(fault: Fault, index, base, delta, cmdb: Cmdb, rng) -> None:
    root, m = fault.service, fault.magnitude
    if root not in base:
        raise ValueError(f"fault at unknown service {fault.service!r}")
    b = base[root]
    on = _ramp(index, fault.start, fault.end, rise=30)
    if fault.kind in CODE_FAULT_KINDS:
        _inject_code(fault, index, on, base, delta, cmdb, rng)
        return
    if fault.kind in NETWORK_FAULT_KINDS:
        _inject_network_delay(fault, index, on, base, delta, cmdb, rng)
        return
    lat_factor = 0.0  # extra latency at the root, as a fraction of its p50
    err_add = 0.0
    if fault.kind == "cpu_hog":
        delta[root]["cpu"] += on * m * rng.uniform(35, 60)
        lat_factor = m * rng.uniform(0.6, 1.5)
    elif fault.kind == "memory_leak":
        leak = _ramp(index, fault.start, fault.end, rise=rng.uniform(300, 900))
        delta[root]["mem"] += leak * m * np.median(b["mem"]) * rng.uniform(0.6, 1.2)
        lat_factor = m * rng.uniform(0.2, 0.6)
        on = leak
    elif fault.kind == "latency":
        lat_factor = m * rng.uniform(2.0, 6.0)
    elif fault.kind == "error_burst":
        err_add = m * rng.uniform(0.08, 0.3)
        lat_factor = m * rng.uniform(0.0, 0.2)
    elif fault.kind == "packet_loss":
        lat_factor = m * rng.uniform(1.0, 3.0)
        err_add = m * rng.uniform(0.02, 0.08)
        delta[root]["rate"] -= on * np.median(b["rate"]) * m * rng.uniform(0.05, 0.15)
    else:
        known = FAULT_KINDS + CODE_FAULT_KINDS + NETWORK_FAULT_KINDS
        raise ValueError(f"unknown fault kind {fault.kind!r}; known: {', '.join(known)}")
    lat_ms = lat_factor * np.median(b["lat_50"])
    for service, hop in _callers_by_hop(cmdb, root).items():
        if service not in base:
            continue
        if fault.amplify == 1.0:
            attenuation = 1.0 if hop == 0 else rng.uniform(0.35, 0.8) ** hop
        else:  # direct callers amplify the root's change; further hops attenuate from there
            attenuation = 1.0 if hop == 0 else fault.amplify * rng.uniform(0.35, 0.8) ** (hop - 1)
        delay = pd.Timedelta(seconds=float(sum(rng.uniform(10, 40) for _ in range(hop))))
        shape = on if hop == 0 else _ramp(index, fault.start + delay, fault.end, rise=45)
        delta[service]["lat_50"] += shape * lat_ms * attenuation
        delta[service]["lat_99"] += shape * lat_ms * attenuation * rng.uniform(2.0, 3.5)
        delta[service]["error"] += shape * err_add * attenuation
        if hop > 0 and (lat_ms > 0 or err_add > 0):
            delta[service]["cpu"] += shape * rng.uniform(0, 3) * min(attenuation, 1.0)  # callers wait, barely work


def _inject_code(fault: Fault, index, on, base, delta, cmdb: Cmdb, rng) -> None:
    """A code fault: the service's cpu, mem and rate stay as they are; in half the cases its own latency
    and errors do not move either (measured only at its callers), else they shift by 0.5–2 noise sigmas;
    its direct callers see a strong change, further callers an attenuated one."""
    root, m = fault.service, fault.magnitude
    b = base[root]
    p50 = float(np.median(b["lat_50"]))
    if fault.kind == "code_latency":
        lat_ms, err_add, own = m * rng.uniform(2.0, 6.0) * p50, 0.0, ("lat_50", "lat_99")
    else:
        err_add, own = m * rng.uniform(0.05, 0.2), ("error", "lat_50", "lat_99")
        lat_ms = m * rng.uniform(0.0, 0.3) * p50
    if rng.random() < 0.5:
        for metric in own:
            delta[root][metric] += on * rng.uniform(0.5, 2.0) * noise_sd(b[metric])
    _to_callers(root, fault, index, base, delta, cmdb, rng, lat_ms=lat_ms, err_add=err_add, lead=1.0)


def _inject_network_delay(fault: Fault, index, on, base, delta, cmdb: Cmdb, rng) -> None:
    """Calls into ``fault.service`` slowed, from ``fault.caller`` or from every caller: each slowed caller's
    latency rises (and reaches its own callers attenuated); the callee's latency, errors, cpu and mem do not
    move, and its rate drops a little (its callers wait, so they send a little less)."""
    callee, m = fault.service, fault.magnitude
    callers = [c for c in cmdb.dependents(callee) if c in base]
    if fault.caller is not None:
        if fault.caller not in callers:
            raise ValueError(f"{fault.caller!r} does not call {callee!r}; its callers: {', '.join(callers) or 'none'}")
        callers = [fault.caller]
    b = base[callee]
    extra = max(5.0, m * rng.uniform(1.0, 4.0) * float(np.median(b["lat_50"])))
    delta[callee]["rate"] -= on * rng.uniform(0.5, 1.5) * noise_sd(b["rate"])
    for caller in callers:
        delta[caller]["lat_50"] += on * extra
        delta[caller]["lat_99"] += on * extra * rng.uniform(2.0, 3.5)
        delta[caller]["cpu"] += on * rng.uniform(0, 3)
        _to_callers(caller, fault, index, base, delta, cmdb, rng, lat_ms=extra, err_add=0.0,
                    lead=rng.uniform(0.35, 0.8))


def _to_callers(origin: str, fault: Fault, index, base, delta, cmdb: Cmdb, rng, *, lat_ms: float, err_add: float,
                lead: float) -> None:
    """Add ``lat_ms`` and ``err_add`` to the (transitive) callers of ``origin``: ``lead`` of it at the first hop,
    attenuated by 0.35–0.8 per further hop, each hop 10–40 s later."""
    for service, hop in _callers_by_hop(cmdb, origin).items():
        if hop == 0 or service not in base:
            continue
        attenuation = lead * rng.uniform(0.35, 0.8) ** (hop - 1)
        delay = pd.Timedelta(seconds=float(sum(rng.uniform(10, 40) for _ in range(hop))))
        shape = _ramp(index, fault.start + delay, fault.end, rise=45)
        delta[service]["lat_50"] += shape * lat_ms * attenuation
        delta[service]["lat_99"] += shape * lat_ms * attenuation * rng.uniform(2.0, 3.5)
        delta[service]["error"] += shape * err_add * attenuation
        delta[service]["cpu"] += shape * rng.uniform(0, 3) * min(attenuation, 1.0)


def random_case(seed: int, *, duration: str = "1h", step: str = "15s",
                start: str = "2026-10-01", magnitude: tuple[float, float] = (0.5, 1.5)) -> FleetData:
    """One evaluation case: a random fault at a random service, in the last third of the window.

    ``magnitude`` bounds the fault's strength (1: typical; 0.2: hard to see in the noise).
    """
    rng = np.random.default_rng(seed)
    services = [row[0] for row in _ITEMS]
    index_start = pd.Timestamp(start, tz="UTC") + pd.Timedelta(hours=int(rng.integers(0, 24 * 28)))
    span = pd.Timedelta(duration)
    at = index_start + span * rng.uniform(0.55, 0.75)
    at = at.floor(pd.Timedelta(step))
    fault = Fault(service=str(rng.choice(services)), kind=str(rng.choice(FAULT_KINDS)),
                  start=at, magnitude=float(rng.uniform(*magnitude)))
    return generate(start=index_start, duration=duration, step=step, faults=[fault], seed=seed + 1_000_000)


PLATFORM_KINDS = ("http_error", "validation_failed", "run_failed", "assumption_violated", "silent_failure")


def platform_month(month: str, *, seed: int = 0, step: str = "1min", faults: list[Fault] = (),
                   rate_rps: float = 40.0) -> pd.DataFrame:
    """A month of the platform's own metrics: per-step counts and latency quantiles.

    Columns (service ``bizra``): ``requests``, ``errors`` (5xx), ``events`` (every checked
    operation), ``violations_<kind>`` for each violation kind, ``lat_p50`` and ``lat_p99`` (ms).
    Counts are per step, not cumulative. Each fault adds an error burst (and for
    some kinds silent failures) lasting 20–50 minutes, as incidents do.
    """
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(month + "-01", tz="UTC")
    end = start + pd.offsets.MonthBegin(1)
    index = pd.date_range(start, end, freq=step, inclusive="left")
    n = len(index)
    seconds_per_step = pd.Timedelta(step).total_seconds()
    hour = index.hour.to_numpy() + index.minute.to_numpy() / 60
    load = 1.0 + 0.35 * np.sin(2 * np.pi * (hour - 9.0) / 24.0)
    requests = rng.poisson(rate_rps * seconds_per_step * load).astype(float)
    error_ratio = np.full(n, 0.0004)
    lat_p50 = 3.0 + 1.2 * load + rng.normal(0, 0.3, n)
    lat_p99 = 18.0 + 10 * load + np.abs(rng.normal(0, 4, n))
    silent = np.zeros(n)
    validation = rng.poisson(0.002, n).astype(float)
    for fault in faults:
        length = pd.Timedelta(minutes=float(rng.uniform(20, 50)))
        on = ((index >= fault.start) & (index < fault.start + length)).astype(float)
        error_ratio += on * fault.magnitude * rng.uniform(0.04, 0.15)
        lat_p99 += on * fault.magnitude * rng.uniform(30, 120)
        lat_p50 += on * fault.magnitude * rng.uniform(2, 10)
        if fault.kind in ("memory_leak", "packet_loss"):
            silent += on * (rng.random(n) < 0.05)
    errors = rng.binomial(requests.astype(int), np.clip(error_ratio, 0, 1)).astype(float)
    runs = (index.minute == 0).astype(float) * (index.hour % 6 == 0)  # a scheduled run every 6 h
    run_failed = runs * (rng.random(n) < 0.05)
    cycles = seconds_per_step / 5.0  # the controller's cycles
    frame = pd.DataFrame({
        "bizra_requests": requests,
        "bizra_errors": errors,
        "bizra_events": requests + runs + cycles + rng.poisson(2.0, n) + validation + silent,
        "bizra_violations_http_error": errors,
        "bizra_violations_validation_failed": validation,
        "bizra_violations_run_failed": run_failed,
        "bizra_violations_assumption_violated": np.zeros(n),
        "bizra_violations_silent_failure": silent,
        "bizra_lat_p50": np.round(lat_p50, 3),
        "bizra_lat_p99": np.round(lat_p99, 3),
    }, index=index)
    frame.index.name = "time"
    return frame
