"""Incidents: severity rules, status changes with MTTA/MTTR timestamps, and Alertmanager webhook payloads.

Severity (PRODUCT.md)::

    P0  monitoring down, API unresponsive          immediate
    P1  score < 95, or error rate > 10 %           15 minutes
    P2  score < 97, or error rate > 5 %            1 hour
    P3  minor performance degradation              next business day

An alert's labels decide first: ``priority`` (P0..P3) as given, then the alert
names of the runbook, then ``severity`` (critical → P1, warning → P2, info → P3).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from bizra_nb.errors import BizraError, Conflict, InvalidInput, one_line
from bizra_nb.times import parse_time
from bizra_nb.store import Store

SEVERITIES = ("P0", "P1", "P2", "P3")
STATUSES = ("open", "acknowledged", "resolved")
P0_ALERTS = {"MonitoringDown", "ApiUnresponsive", "BizraApiDown"}
P1_ALERTS = {"AhsanScoreBelowThreshold", "HighViolationRate", "ErrorBudgetBurnPage"}
SEVERITY_LABELS = {"critical": "P1", "page": "P1", "error": "P2", "warning": "P2", "ticket": "P3", "info": "P3"}
ALERTMANAGER = "alertmanager"  # the actor of the timeline events an Alertmanager webhook records
NOTE_LIMIT = 4000  # characters of a note on an incident's timeline
STATUS_EVENTS = {"acknowledged": "acknowledged", "resolved": "resolved", "open": "reopened"}

log = logging.getLogger("bizra.incidents")


def severity_from_signals(*, score: float | None = None, error_rate: float | None = None,
                          monitoring_up: bool = True, api_responsive: bool = True) -> str:
    """The severity level for the measured signals (error rate as a fraction, 0.1 = 10 %)."""
    if not monitoring_up or not api_responsive:
        return "P0"
    if (score is not None and score < 95) or (error_rate is not None and error_rate > 0.10):
        return "P1"
    if (score is not None and score < 97) or (error_rate is not None and error_rate > 0.05):
        return "P2"
    return "P3"


def severity_from_labels(labels: dict[str, str]) -> str:
    priority = str(labels.get("priority", "")).upper()
    if priority in SEVERITIES:
        return priority
    name = labels.get("alertname", "")
    if name in P0_ALERTS:
        return "P0"
    if name in P1_ALERTS:
        return "P1"
    return SEVERITY_LABELS.get(str(labels.get("severity", "")).lower(), "P3")


def most_severe(levels) -> str:
    return min(levels, key=SEVERITIES.index)


def record_event(store: Store, incident_id: int, kind: str, *, actor: str | None = None,
                 detail: dict | None = None, ts: float | None = None, keeper=None) -> dict | None:
    """Append an event to the incident's timeline without ever failing the action it records.

    Parameters
    ----------
    store
        The store.
    incident_id, kind, actor, detail, ts
        As :meth:`Store.add_incident_event`.
    keeper
        The platform's score keeper (anything with ``record_violation``): a failed write is scored there
        as a ``silent_failure``; None: logged only.

    Returns
    -------
    dict or None
        The event, or None when it could not be written (logged, and scored).
    """
    try:
        return store.add_incident_event(incident_id, kind, actor=actor, detail=detail, ts=ts)
    except Exception as exc:  # noqa: BLE001 - the incident changed; its timeline missing a line must not undo that
        message = exc.message if isinstance(exc, BizraError) else f"{type(exc).__name__}: {exc}"
        log.warning("incident %s: its %s event was not recorded: %s", incident_id, kind, message,
                    exc_info=None if isinstance(exc, BizraError) else exc)
        if keeper is not None:
            keeper.record_violation("silent_failure", f"timeline of incident {incident_id}: {kind}: {message}"[:500])
        return None


def change_status(store: Store, incident_id: int, status: str, *, note: str | None = None,
                  actor: str | None = None, keeper=None) -> dict:
    """Acknowledge or resolve (or reopen) an incident; the first time of each is kept for MTTA/MTTR.

    Decided on the incident as stored at the moment of the write (a compare-and-swap, see
    :meth:`Store.update_incident`): when two replicas acknowledge and resolve at once, the incident
    ends resolved with its acknowledgement kept, and an acknowledgement that comes after the
    resolution is a :class:`Conflict`, never a silent reopen.

    The timeline records what changed (:func:`record_event`): ``acknowledged``, ``resolved`` or
    ``reopened`` when the status changed, and a ``note`` with ``note``'s text; by ``actor``. A failed
    timeline write is logged and scored on ``keeper``, the change stays.
    """
    if status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not {status!r}", field="status")
    seen: dict[str, Any] = {}

    def transition(incident: dict) -> dict | None:
        seen.clear()
        seen["from"] = incident["status"]
        now = time.time()
        if status == "acknowledged" and incident["status"] == "resolved":
            raise Conflict(f"incident {incident_id} is resolved; reopen it (status 'open') first", field="status")
        if incident["status"] == status and not note:
            return None
        changes: dict[str, Any] = {"status": status}
        if status == "acknowledged":
            changes["acknowledged_at"] = incident["acknowledged_at"] or now
        elif status == "resolved":
            changes["resolved_at"] = incident["resolved_at"] or now
            changes["acknowledged_at"] = incident["acknowledged_at"] or changes["resolved_at"]
        elif status == "open":
            changes["resolved_at"] = None
        if note:
            changes["notes"] = [*incident.get("notes", []), {"at": now, "status": status, "note": note}]
        seen["at"] = now
        return changes

    incident = store.update_incident(incident_id, transition=transition)
    if "at" in seen:  # this call changed it
        if seen["from"] != status:
            record_event(store, incident_id, STATUS_EVENTS[status], actor=actor, keeper=keeper, ts=seen["at"],
                         detail={"from": seen["from"], "to": status})
        if note:
            record_event(store, incident_id, "note", actor=actor, keeper=keeper, ts=seen["at"],
                         detail={"text": note, "status": status})
    return incident


def durations(incident: dict) -> dict:
    """Seconds to acknowledge (MTTA) and to resolve (MTTR) this incident, None while not reached."""
    opened = incident["opened_at"]
    ack, res = incident.get("acknowledged_at"), incident.get("resolved_at")
    return {"tta_seconds": None if ack is None else round(ack - opened, 3),
            "ttr_seconds": None if res is None else round(res - opened, 3)}


# -- the Alertmanager webhook --------------------------------------------------------------


@dataclass
class Alert:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float
    ends_at: float | None
    fingerprint: str
    generator_url: str = ""


@dataclass
class AlertGroup:
    """One Alertmanager notification (payload version 4)."""

    receiver: str
    status: str
    group_key: str
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    alerts: list[Alert] = field(default_factory=list)

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "firing"]

    @property
    def service(self) -> str | None:
        for labels in (self.common_labels, self.group_labels, *(a.labels for a in self.alerts)):
            for key in ("service", "job_service", "app"):
                if labels.get(key):
                    return labels[key]
        return None

    @property
    def title(self) -> str:
        name = self.common_labels.get("alertname") or self.group_labels.get("alertname") or "alert"
        summary = self.common_annotations.get("summary")
        where = f" on {self.service}" if self.service else ""
        return f"{name}{where}" + (f": {summary}" if summary else "")


def _mapping(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InvalidInput(f"{where} must be an object of strings", field=where)
    return {k: str(v) for k, v in value.items()}


def _time(value: Any, where: str, *, required: bool) -> float | None:
    if value in (None, "") or (isinstance(value, str) and value.startswith("0001-01-01")):
        if required:
            raise InvalidInput(f"{where} is required (RFC 3339 time)", field=where)
        return None
    try:
        return parse_time(value, name=where)
    except InvalidInput:
        raise InvalidInput(f"{where}: {value!r} is not an RFC 3339 time", field=where) from None


def parse_alertmanager(payload: Any) -> AlertGroup:
    """Validate an Alertmanager webhook payload; errors name the offending field."""
    if not isinstance(payload, dict):
        raise InvalidInput("the body must be a JSON object (Alertmanager webhook payload)", field="body")
    version = str(payload.get("version", ""))
    if version != "4":
        raise InvalidInput(f"version: expected \"4\" (Alertmanager webhook payload version 4), got {version!r}",
                           field="version")
    status = payload.get("status")
    if status not in ("firing", "resolved"):
        raise InvalidInput(f"status: expected 'firing' or 'resolved', got {status!r}", field="status")
    group_key = payload.get("groupKey")
    if not isinstance(group_key, str) or not group_key:
        raise InvalidInput("groupKey: a non-empty string is required", field="groupKey")
    raw_alerts = payload.get("alerts")
    if not isinstance(raw_alerts, list) or not raw_alerts:
        raise InvalidInput("alerts: a non-empty list is required", field="alerts")
    alerts = []
    for n, raw in enumerate(raw_alerts):
        where = f"alerts[{n}]"
        if not isinstance(raw, dict):
            raise InvalidInput(f"{where} must be an object", field=where)
        alert_status = raw.get("status", status)
        if alert_status not in ("firing", "resolved"):
            raise InvalidInput(f"{where}.status: expected 'firing' or 'resolved', got {alert_status!r}",
                               field=f"{where}.status")
        labels = _mapping(raw.get("labels"), f"{where}.labels")
        fingerprint = raw.get("fingerprint") or _fingerprint(labels)
        if not isinstance(fingerprint, str):
            raise InvalidInput(f"{where}.fingerprint must be a string", field=f"{where}.fingerprint")
        alerts.append(Alert(
            status=alert_status, labels=labels, annotations=_mapping(raw.get("annotations"), f"{where}.annotations"),
            starts_at=_time(raw.get("startsAt"), f"{where}.startsAt", required=True),
            ends_at=_time(raw.get("endsAt"), f"{where}.endsAt", required=False),
            fingerprint=fingerprint, generator_url=str(raw.get("generatorURL", "")),
        ))
    receiver = payload.get("receiver", "")
    return AlertGroup(
        receiver=str(receiver), status=status, group_key=group_key,
        group_labels=_mapping(payload.get("groupLabels"), "groupLabels"),
        common_labels=_mapping(payload.get("commonLabels"), "commonLabels"),
        common_annotations=_mapping(payload.get("commonAnnotations"), "commonAnnotations"),
        alerts=alerts,
    )


def _fingerprint(labels: dict[str, str]) -> str:
    return "labels:" + ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


@dataclass
class WebhookOutcome:
    action: str  # "opened", "updated", "resolved", "unchanged", "ignored"
    incident: dict | None


def apply_alert_group(store: Store, group: AlertGroup, *, keeper=None) -> WebhookOutcome:
    """Open, update or resolve the one incident of this alert group; a repeated delivery changes nothing.

    Atomic in the store (:meth:`Store.open_or_change_group_incident`): concurrent deliveries of one
    group, from threads or from several server processes, open one incident.

    A delivery that changed the incident adds one event to its timeline (actor ``alertmanager``):
    ``opened``, ``alert_updated`` or ``resolved``, its detail from :func:`alert_group_summary`; a failed
    timeline write is logged and scored on ``keeper`` (:func:`record_event`), the change stays.
    """
    alerts_doc = {a.fingerprint: {"status": a.status, "labels": a.labels, "annotations": a.annotations,
                                  "starts_at": a.starts_at, "ends_at": a.ends_at} for a in group.alerts}
    create = None
    if group.firing:
        severity = most_severe(severity_from_labels(a.labels) for a in group.firing)
        create = dict(title=one_line(group.title), severity=severity, status="open", service=group.service,
                      source="alertmanager", opened_at=min(a.starts_at for a in group.firing), alerts=alerts_doc,
                      labels=group.common_labels, annotations=group.common_annotations, receiver=group.receiver)

    def change(active: dict) -> dict | None:
        merged = {**active.get("alerts", {}), **alerts_doc}
        if group.firing:
            worst = most_severe([severity, active["severity"]])
            if merged == active.get("alerts") and worst == active["severity"]:
                return None
            return {"alerts": merged, "severity": worst}
        ends = [a.ends_at for a in group.alerts if a.ends_at]  # every alert of the group resolved
        resolved_at = max(ends) if ends else time.time()
        return {"alerts": merged, "status": "resolved", "resolved_at": resolved_at,
                "acknowledged_at": active["acknowledged_at"] or resolved_at}

    action, incident = store.open_or_change_group_incident(group.group_key, create=create, change=change)
    if action == "changed":
        action = "updated" if group.firing else "resolved"
    elif action == "none":
        action = "unchanged" if incident else "ignored"
    kind = {"opened": "opened", "updated": "alert_updated", "resolved": "resolved"}.get(action)
    if kind is not None:
        now = time.time()
        ts = min(incident["opened_at"], now) if kind == "opened" else now
        detail = alert_group_summary(group, incident)
        if kind == "resolved":
            detail["resolved_at"] = incident.get("resolved_at")  # as the alerts say (their end), maybe earlier
        record_event(store, incident["id"], kind, actor=ALERTMANAGER, detail=detail, ts=ts, keeper=keeper)
    return WebhookOutcome(action, incident)


def alert_group_summary(group: AlertGroup, incident: dict | None = None, *, max_labels: int = 30,
                        max_alerts: int = 20) -> dict:
    """A bounded summary of one Alertmanager delivery for the timeline.

    ``alertname``, ``status``, ``firing``/``resolved`` counts, the common ``labels`` (at most
    ``max_labels``, values clipped), the incident's ``severity``, and per alert (at most ``max_alerts``)
    its ``fingerprint``, ``status`` and ``alertname``.
    """
    labels = dict(list(sorted(group.common_labels.items()))[:max_labels])
    alertname = group.common_labels.get("alertname") or group.group_labels.get("alertname") or (
        group.alerts[0].labels.get("alertname") if group.alerts else None)
    summary: dict[str, Any] = {
        "alertname": one_line(alertname, 200) if alertname else None, "status": group.status,
        "firing": len(group.firing), "resolved": len(group.alerts) - len(group.firing),
        "labels": {one_line(k, 100): one_line(v, 200) for k, v in labels.items()},
        "alerts": [{"fingerprint": one_line(a.fingerprint, 100), "status": a.status,
                    "alertname": one_line(a.labels.get("alertname", ""), 200)} for a in group.alerts[:max_alerts]],
    }
    if len(group.common_labels) > max_labels:
        summary["labels_omitted"] = len(group.common_labels) - max_labels
    if len(group.alerts) > max_alerts:
        summary["alerts_omitted"] = len(group.alerts) - max_alerts
    if incident is not None:
        summary["severity"] = incident.get("severity")
    return summary
