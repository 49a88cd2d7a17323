"""Incidents: severity rules, status changes, Alertmanager payload validation and deduplication."""
from __future__ import annotations

import pytest

from bizra_nb.errors import Conflict, InvalidInput
from bizra_nb.incidents import (apply_alert_group, change_status, durations, parse_alertmanager,
                                severity_from_labels, severity_from_signals)
from bizra_nb.store import Store


def payload(status="firing", alerts=None, group_key="{}:{alertname=\"AhsanScoreBelowThreshold\"}", **labels):
    labels = {"alertname": "AhsanScoreBelowThreshold", "severity": "critical", "service": "api-gateway", **labels}
    return {
        "version": "4", "groupKey": group_key, "status": status, "receiver": "bizra",
        "groupLabels": {"alertname": labels["alertname"]}, "commonLabels": labels,
        "commonAnnotations": {"summary": "score under 95"}, "externalURL": "http://am:9093",
        "alerts": alerts or [{"status": status, "labels": labels, "annotations": {"summary": "score under 95"},
                              "startsAt": "2026-10-01T12:00:00Z",
                              "endsAt": "2026-10-01T12:30:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
                              "fingerprint": "abc123", "generatorURL": "http://prom:9090/graph"}],
    }


@pytest.mark.parametrize("kwargs, level", [
    (dict(monitoring_up=False), "P0"), (dict(score=94.9), "P1"), (dict(error_rate=0.11), "P1"),
    (dict(score=96.5), "P2"), (dict(error_rate=0.06), "P2"), (dict(score=99.0, error_rate=0.01), "P3"),
])
def test_severity_from_signals(kwargs, level):
    assert severity_from_signals(**kwargs) == level


@pytest.mark.parametrize("labels, level", [
    ({"priority": "P0", "severity": "warning"}, "P0"), ({"alertname": "MonitoringDown"}, "P0"),
    ({"alertname": "AhsanScoreBelowThreshold"}, "P1"), ({"severity": "critical"}, "P1"),
    ({"severity": "warning"}, "P2"), ({"severity": "info"}, "P3"), ({}, "P3"),
])
def test_severity_from_labels(labels, level):
    assert severity_from_labels(labels) == level


@pytest.mark.parametrize("mutate, field", [
    (lambda p: p.update(version="3"), "version"),
    (lambda p: p.update(status="burning"), "status"),
    (lambda p: p.pop("groupKey"), "groupKey"),
    (lambda p: p.update(alerts=[]), "alerts"),
    (lambda p: p["alerts"][0].update(labels=["x"]), "alerts[0].labels"),
    (lambda p: p["alerts"][0].update(startsAt="noon"), "alerts[0].startsAt"),
    (lambda p: p["alerts"][0].pop("startsAt"), "alerts[0].startsAt"),
    (lambda p: p["alerts"][0].update(status="maybe"), "alerts[0].status"),
])
def test_malformed_payloads_name_the_field(mutate, field):
    body = payload()
    mutate(body)
    with pytest.raises(InvalidInput) as info:
        parse_alertmanager(body)
    assert info.value.field == field and field in info.value.message


def test_firing_opens_once_repeat_changes_nothing_resolved_resolves(tmp_path):
    store = Store.open(tmp_path)
    first = apply_alert_group(store, parse_alertmanager(payload()))
    assert first.action == "opened" and first.incident["severity"] == "P1"
    assert first.incident["service"] == "api-gateway" and first.incident["status"] == "open"
    repeat = apply_alert_group(store, parse_alertmanager(payload()))
    assert repeat.action == "unchanged" and repeat.incident["updated_at"] == first.incident["updated_at"]
    assert len(store.list_incidents()) == 1
    resolved = apply_alert_group(store, parse_alertmanager(payload(status="resolved")))
    assert resolved.action == "resolved" and resolved.incident["status"] == "resolved"
    assert durations(resolved.incident)["ttr_seconds"] == 1800.0
    assert apply_alert_group(store, parse_alertmanager(payload(status="resolved"))).action == "unchanged"
    again = apply_alert_group(store, parse_alertmanager(payload()))
    assert again.action == "opened" and again.incident["id"] != first.incident["id"]


def test_status_changes_keep_first_times(tmp_path):
    store = Store.open(tmp_path)
    incident = store.create_incident(title="t", severity="P2", source="api", opened_at=100.0)
    acked = change_status(store, incident["id"], "acknowledged", note="looking")
    assert acked["acknowledged_at"] is not None and acked["notes"][0]["note"] == "looking"
    resolved = change_status(store, incident["id"], "resolved")
    assert resolved["acknowledged_at"] == acked["acknowledged_at"]
    with pytest.raises(Conflict):
        change_status(store, incident["id"], "acknowledged")
    with pytest.raises(InvalidInput, match="status must be one of"):
        change_status(store, incident["id"], "closed")
