"""The overall status rule (bizra_nb.status): the worst condition wins, every condition is a reason."""
from __future__ import annotations

import pytest

from bizra_nb.status import STATUSES, overall_status

OK = {"store": {"ok": True, "detail": "writable"}}


def incident(severity: str, id_: int = 1, title: str = "checkout slow") -> dict:
    return {"id": id_, "severity": severity, "title": title}


@pytest.mark.parametrize("score, incidents, components, expected", [
    (100.0, [], OK, "operational"),
    (97.0, [], OK, "operational"),  # the P2 line itself is still fine
    (96.9, [], OK, "degraded_performance"),
    (95.0, [], OK, "degraded_performance"),
    (94.9, [], OK, "partial_outage"),
    (100.0, [incident("P3")], OK, "degraded_performance"),
    (100.0, [incident("P2")], OK, "degraded_performance"),
    (100.0, [incident("P1")], OK, "partial_outage"),  # a perfect platform score does not hide a fleet P1
    (100.0, [incident("P0")], OK, "major_outage"),
    (90.0, [incident("P0"), incident("P2", 2)], OK, "major_outage"),
    (100.0, [], {"store": {"ok": False, "detail": "database is locked"}}, "partial_outage"),
    (None, [], {}, "operational"),  # an unknown score is no reason either way
])
def test_the_worst_condition_wins(score, incidents, components, expected):
    assert overall_status(score, None, incidents, components)["status"] == expected


def test_reasons_name_every_condition_worst_first():
    verdict = overall_status(96.0, "degraded", [incident("P2", 4, "disk"), incident("P1", 7, "api down")],
                             {"metric_backend": {"ok": False, "detail": "no answer"}})
    assert verdict["status"] == "partial_outage"
    reasons = verdict["reasons"]
    assert reasons[0] == "open P1 incident 7 in the fleet: api down"
    assert "component metric_backend down: no answer" in reasons
    assert reasons[-2:] == ["open P2 incident 4 in the fleet: disk",
                            "platform API score 96.0 (degraded), below the P2 line 97"]


def test_operational_has_no_reasons():
    assert overall_status(100.0, "perfect", [], OK) == {"status": "operational", "reasons": []}


def test_maintenance_hides_degradation_but_not_an_outage():
    assert overall_status(96.0, "degraded", [], OK, maintenance=True)["status"] == "under_maintenance"
    assert overall_status(100.0, "perfect", [incident("P1")], OK, maintenance=True)["status"] == "partial_outage"


def test_every_status_is_the_status_page_vocabulary():
    assert set(STATUSES) == {"operational", "degraded_performance", "partial_outage", "major_outage",
                             "under_maintenance"}
