"""One overall status for the status page and tools, from the platform's score, the fleet's incidents and the components."""
from __future__ import annotations

from typing import Iterable, Mapping

STATUSES = ("operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage")
"""From best to worst; the worst condition that holds wins."""

SCORE_OUTAGE_LINE = 95.0  # below it: the platform's P1 line (see PRODUCT.md, severity)
SCORE_DEGRADED_LINE = 97.0  # below it: the P2 warning line

_BY_SEVERITY = {"P0": "major_outage", "P1": "partial_outage", "P2": "degraded_performance",
                "P3": "degraded_performance"}


def overall_status(
    score: float | None,
    tier: str | None,
    open_incidents: Iterable[Mapping],
    components: Mapping[str, Mapping] | None = None,
    *,
    maintenance: bool = False,
) -> dict:
    """The status-page verdict from the platform's own health and the fleet's open incidents.

    The Ahsan score measures the platform's own API; the incidents measure the
    monitored fleet. Both count: the worst condition that holds wins, and every
    condition that holds is given as a reason (worst first).

    ========================================================  =======================
    condition                                                 status
    ========================================================  =======================
    an open (or acknowledged) P0 incident                     ``major_outage``
    an open P1 incident                                       ``partial_outage``
    score below 95 (tier ``critical``, the P1 line)           ``partial_outage``
    a component down (store, metric backend, controller)      ``partial_outage``
    an open P2 or P3 incident                                 ``degraded_performance``
    score below 97 (tier ``degraded``, the P2 line)           ``degraded_performance``
    ``maintenance`` declared, nothing worse than degraded     ``under_maintenance``
    none of the above                                         ``operational``
    ========================================================  =======================

    A maintenance window hides degraded performance (expected while it lasts)
    but never an outage. An unknown score (``None``) is no reason either way.

    Parameters
    ----------
    score
        The Ahsan score, 0–100, or ``None`` when unknown.
    tier
        Its tier (``perfect`` … ``critical``), shown in the reason.
    open_incidents
        Incidents not resolved: mappings with ``severity`` (``P0``–``P3``), and ``id`` and ``title`` when known.
    components
        Component checks by name: ``{"ok": bool, "detail": str}``.
    maintenance
        Whether an operator declared a maintenance window.

    Returns
    -------
    dict
        ``{"status": one of STATUSES, "reasons": [str, ...]}``; ``reasons`` is empty when operational.
    """
    found: list[tuple[str, str]] = []
    for incident in sorted(open_incidents, key=lambda i: (str(i.get("severity")), -float(i.get("id") or 0))):
        severity = str(incident.get("severity"))
        status = _BY_SEVERITY.get(severity, "degraded_performance")
        label = f"incident {incident['id']}" if incident.get("id") is not None else "an incident"
        title = f": {incident['title']}" if incident.get("title") else ""
        found.append((status, f"open {severity} {label} in the fleet{title}"))
    if score is not None:
        named = f"platform API score {score:.1f}" + (f" ({tier})" if tier else "")
        if score < SCORE_OUTAGE_LINE:
            found.append(("partial_outage", f"{named}, below the P1 line {SCORE_OUTAGE_LINE:g}"))
        elif score < SCORE_DEGRADED_LINE:
            found.append(("degraded_performance", f"{named}, below the P2 line {SCORE_DEGRADED_LINE:g}"))
    for name, state in (components or {}).items():
        if not state.get("ok", False):
            found.append(("partial_outage", f"component {name} down: {state.get('detail') or 'failing'}"))
    worst = max((STATUSES.index(status) for status, _ in found), default=0)
    if maintenance and worst <= STATUSES.index("degraded_performance"):
        return {"status": "under_maintenance",
                "reasons": ["maintenance declared"] + [reason for _, reason in found]}
    ranked = sorted(found, key=lambda pair: -STATUSES.index(pair[0]))
    return {"status": STATUSES[worst], "reasons": [reason for _, reason in ranked]}
