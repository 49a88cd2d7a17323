"""One sentence per candidate saying why it ranks where it does, in the units people read."""
from __future__ import annotations

import numpy as np

from bizra_nb.cmdb import Cmdb
from bizra_nb.rca.model import Candidate, Evidence
from bizra_nb.units import unit_of, with_unit


def explain(c: Candidate, ranking: list[Candidate], cmdb: Cmdb | None) -> str:
    """One sentence saying why a candidate ranks where it does."""
    if c.callers:
        return _explain_from_callers(c, ranking, cmdb)
    if not c.evidence:
        return (f"{c.service}: no metric changed for the worse beyond its normal range (its strongest change, "
                f"{c.metric}, is {c.score:.1f}x the normal spread).")
    e = c.evidence[0]
    head = _head(c, e, cmdb)
    blamed = next((x for x in ranking if x.service == c.explained_by), None)
    if blamed is not None and blamed.callers:
        return head + f"; it points at its dependency {c.explained_by} (see there), so it is likely a symptom."
    if c.explained_by:
        return head + f", after its dependency {c.explained_by} was already anomalous, so it is likely a symptom."
    if cmdb is not None and c.path and len(c.path) > 1:
        return head + f", before its dependents {' -> '.join(c.path[1:])}; no anomalous dependency explains it."
    if cmdb is not None and c.service in cmdb.items:
        return head + "; no anomalous dependency explains it."
    return head + "."


def _head(c: Candidate, e: Evidence, cmdb: Cmdb | None) -> str:
    moved = "rose" if e.direction == "up" else "fell"
    when = f" from {c.onset:%H:%M:%S} UTC" if c.onset is not None else ""
    unit = unit_of(e.metric, cmdb.items.get(c.service) if cmdb is not None else None)
    return (f"{c.service}: {e.metric} {moved} to {_fmt(e.peak, unit)} (normally {_fmt(e.normal, unit)}, "
            f"{e.magnitude:.1f}x the normal spread){when}")


def _explain_from_callers(c: Candidate, ranking: list[Candidate], cmdb: Cmdb | None) -> str:
    """A dependency blamed from its callers' view: what the callers show and what it points at."""
    by_id = {x.service: x for x in ranking}
    shown = [by_id[name] for name in c.callers if name in by_id and by_id[name].evidence]
    seen = "; ".join(_head(x, x.evidence[0], cmdb).split(": ", 1)[1].split(" (normally")[0] + f" at {x.service}"
                     for x in shown[:2])
    seen = f" ({seen})" if seen else ""
    when = f" from {c.onset:%H:%M:%S} UTC" if c.onset is not None else ""
    one = len(c.callers) == 1
    callers = f"its caller {c.callers[0]}" if one else f"its callers {', '.join(c.callers)}"
    changed = ("turned slow or failing" if shown else "changed a little but steadily (latency or errors)") + (
        "" if one else " together")
    if c.kind == "no_metrics":
        return (f"{c.service}: reports no metrics, but {callers} {changed}{when}{seen} and nothing else "
                f"{'it depends' if one else 'they depend'} on explains it: likely {c.service} (an exporter would "
                "confirm it).")
    if c.kind == "dependency_edge" and c.edge is not None:
        return (f"{c.service}: calls from {c.edge[0]} to {c.service} slowed{when}{seen} while {c.service} itself "
                f"looks healthy except that its traffic fell a little: the network or the client path between "
                "them is likely at fault.")
    if c.kind == "dependency_edge":
        return (f"{c.service}: {callers} {changed}{when}{seen} while {c.service} itself looks healthy except that its "
                "traffic fell a little: the network into it is likely at fault.")
    return (f"{c.service}: its own metrics barely moved, but {callers} {changed}{when}{seen} and no other "
            f"dependency explains it: likely a fault in {c.service}'s code or its network (exceptions, slow or "
            "wrong answers) seen by its callers.")


def _fmt(x: float, unit: str = "") -> str:
    """``x`` in the unit the tables and plots use (a ratio as %: "13.27 %"); a bare number without a unit."""
    if not np.isfinite(x):
        return "n/a"
    return with_unit(x, unit) if unit else f"{x:.4g}"
