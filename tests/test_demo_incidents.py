"""The demo's recorded incidents are fleet symptom alerts, never the platform's own score alert."""
from __future__ import annotations

import pandas as pd

from bizra_nb.demo import record_history
from bizra_nb.fleet import Fault, demo_cmdb
from bizra_nb.store import Store


def test_demo_incidents_are_fleet_alerts_with_severity_and_no_fake_runbook(tmp_path):
    start = pd.Timestamp("2026-10-01", tz="UTC")
    faults = [Fault(s, k, start + pd.Timedelta(days=d), start + pd.Timedelta(days=d, minutes=35), 1.0)
              for s, k, d in (("payments-db", "latency", 4), ("catalog-db", "cpu_hog", 11),
                              ("cart-cache", "error_burst", 26))]
    incidents = record_history(Store.open(tmp_path / "store"), faults, demo_cmdb())
    assert [i["severity"] for i in incidents] == ["P1", "P2", "P1"]  # the demo's severities, P1 headline
    headline = incidents[-1]
    assert headline["title"] == "HighErrorRate on api-gateway" and headline["status"] != "resolved"
    for incident in incidents:
        assert "Ahsan" not in incident["title"]
        labels = incident["labels"]
        assert labels["alertname"] in ("HighErrorRate", "HighLatency") and labels["service"] == "api-gateway"
        assert labels["priority"] == incident["severity"] and labels["severity"] in ("critical", "warning")
        assert "runbook_url" not in incident.get("annotations", {})
