"""Incident timelines in the store (issue 15), on SQLite and PostgreSQL: migration v7 from a v6 database,
events oldest first, bounded details, unknown incidents."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from bizra_nb import store as store_module
from bizra_nb.errors import NotFound
from bizra_nb.store import EVENT_DETAIL_LIMIT, EVENT_TEXT_LIMIT, MIGRATIONS
from tests.test_store import Backend, backend, store  # noqa: F401  (the both-backends fixtures)


def _database_at_v6(engine: sa.Engine) -> None:
    """A database as bizra-nb with migrations v1..v6 left it, holding one incident."""
    with engine.begin() as conn:
        store_module._v0_meta(conn)
        for migration in MIGRATIONS[:6]:
            migration(conn)
        conn.execute(sa.text("INSERT INTO meta (key, value) VALUES ('schema_version', '6')"))
        conn.execute(sa.text(
            "INSERT INTO incidents (title, severity, status, source, group_key, doc, opened_at, updated_at, "
            "active_group_key, version) VALUES ('old', 'P1', 'open', 'alertmanager', 'g', '{}', 1, 1, 'g', 0)"))


def test_a_v6_database_migrates_and_its_incidents_get_timelines(backend):  # noqa: F811
    engine = backend.raw()
    _database_at_v6(engine)
    assert "incident_events" not in sa.inspect(engine).get_table_names()
    store = backend.open()
    assert store.schema_version == len(MIGRATIONS) == 7
    inspector = sa.inspect(store.engine)
    assert {c["name"] for c in inspector.get_columns("incident_events")} == {
        "id", "incident_id", "ts", "kind", "actor", "doc"}
    assert any(ix["column_names"] == ["incident_id"] for ix in inspector.get_indexes("incident_events"))
    assert store.incident_timeline(1) == []
    event = store.add_incident_event(1, "note", actor="ops", detail={"text": "after the upgrade"}, ts=5.0)
    assert store.incident_timeline(1) == [event]
    assert store.get_incident(1)["title"] == "old"
    store.close()
    assert backend.open().schema_version == 7  # reopening applies nothing twice


def test_events_come_back_oldest_first_with_their_detail(store):  # noqa: F811
    first = store.create_incident(title="a", severity="P1", source="api")["id"]
    other = store.create_incident(title="b", severity="P2", source="api")["id"]
    store.add_incident_event(first, "opened", actor="ops", ts=100.0)
    store.add_incident_event(other, "opened", actor="alertmanager", ts=101.0)
    store.add_incident_event(first, "resolved", actor="ops", ts=300.0)
    store.add_incident_event(first, "acknowledged", actor=None, ts=200.0)  # written late, happened earlier
    note = store.add_incident_event(first, "note", actor="ops", detail={"text": "ünï <b>", "n": [1, 2]}, ts=200.0)
    events = store.incident_timeline(first)
    assert [(e["kind"], e["ts"]) for e in events] == [("opened", 100.0), ("acknowledged", 200.0), ("note", 200.0),
                                                     ("resolved", 300.0)]
    assert events[2] == note == {"id": note["id"], "incident_id": first, "ts": 200.0, "kind": "note", "actor": "ops",
                                 "detail": {"text": "ünï <b>", "n": [1, 2]}}
    assert events[1]["actor"] is None and events[1]["detail"] == {}
    assert [e["kind"] for e in store.incident_timeline(other)] == ["opened"]
    assert [e["kind"] for e in store.incident_timeline(first, limit=2)] == ["note", "resolved"]  # the newest two


def test_an_unknown_incident_has_no_timeline_and_takes_no_event(store):  # noqa: F811
    with pytest.raises(NotFound) as info:
        store.add_incident_event(42, "note", detail={"text": "x"})
    assert info.value.field == "id"
    with pytest.raises(NotFound):
        store.add_incident_event(2**40, "note")  # no INTEGER key holds it: NotFound on PostgreSQL too
    assert store.incident_timeline(42) == [] and store.incident_timeline(2**40) == []


def test_details_are_bounded(store):  # noqa: F811
    incident = store.create_incident(title="a", severity="P1", source="api")["id"]
    long_text = store.add_incident_event(incident, "note", detail={"text": "x" * 10_000})
    assert len(long_text["detail"]["text"]) == EVENT_TEXT_LIMIT and long_text["detail"]["text"].endswith("…")
    huge = {f"label{n}": "v" * 400 for n in range(100)} | {"alertname": "A", "big": ["y" * 300] * 50}
    event = store.add_incident_event(incident, "alert_updated", detail=huge)
    stored = store.incident_timeline(incident)[-1]
    assert stored == event and stored["detail"]["truncated"] is True
    assert stored["detail"]["alertname"] == "A" and "big" not in stored["detail"]
    assert len(json.dumps(stored["detail"])) <= EVENT_DETAIL_LIMIT


class BrokenTimeline:
    """A store whose timeline writes fail (the database went away between the change and its event)."""

    def __init__(self, store) -> None:
        self.store = store

    def __getattr__(self, name):
        return getattr(self.store, name)

    def add_incident_event(self, *args, **kwargs):
        from bizra_nb.errors import Unavailable

        raise Unavailable("the store is unavailable (test); retry shortly", field="store_url")


class Keeper:
    def __init__(self) -> None:
        self.violations: list[tuple[str, str]] = []

    def record_violation(self, kind: str, detail: str = "") -> None:
        self.violations.append((kind, detail))


def test_a_failed_event_write_never_fails_the_change_it_records(tmp_path, caplog):
    from bizra_nb.incidents import apply_alert_group, change_status, parse_alertmanager
    from bizra_nb.store import Store
    from tests.test_incidents import payload

    store, keeper = Store.open(tmp_path), Keeper()
    broken = BrokenTimeline(store)
    outcome = apply_alert_group(broken, parse_alertmanager(payload()), keeper=keeper)
    assert outcome.action == "opened" and store.get_incident(outcome.incident["id"])["status"] == "open"
    acked = change_status(broken, outcome.incident["id"], "acknowledged", note="on it", actor="ops", keeper=keeper)
    assert acked["status"] == "acknowledged" and acked["notes"][0]["note"] == "on it"  # the change stays
    assert store.incident_timeline(outcome.incident["id"]) == []
    assert [k for k, _ in keeper.violations] == ["silent_failure"] * 3  # opened, acknowledged, note: each scored
    assert "timeline of incident 1: opened: the store is unavailable" in keeper.violations[0][1]
    assert "its note event was not recorded" in caplog.text
    # with a working store the same calls record one event each, the alert's detail bounded and summarised
    apply_alert_group(store, parse_alertmanager(payload(status="resolved")), keeper=keeper)
    events = store.incident_timeline(outcome.incident["id"])
    assert [(e["kind"], e["actor"]) for e in events] == [("resolved", "alertmanager")]
    assert events[0]["detail"]["alertname"] == "AhsanScoreBelowThreshold" and events[0]["detail"]["resolved"] == 1
    assert len(keeper.violations) == 3


def test_a_long_timeline_read_with_its_first_events(store):  # noqa: F811
    incident_id = store.create_incident(title="long", severity="P2", source="api")["id"]
    for n in range(30):
        store.add_incident_event(incident_id, "opened" if n == 0 else "note", actor="ops",
                                 detail={"text": str(n)}, ts=1000.0 + n)
    events = store.incident_timeline(incident_id, first=3, limit=10)
    assert [e["kind"] for e in events[:4]] == ["opened", "note", "note", "omitted"]  # where the story begins
    assert [e["detail"]["text"] for e in events[:3]] == ["0", "1", "2"]
    omitted = events[3]
    assert omitted["detail"] == {"count": 17} and omitted["id"] is None and omitted["ts"] == 1002.0
    assert [e["detail"]["text"] for e in events[4:]] == [str(n) for n in range(20, 30)]  # and the newest ten
    # nothing left out: no marker, no event twice, with or without `first`
    assert store.incident_timeline(incident_id, first=20, limit=10) == store.incident_timeline(incident_id, limit=30)
    assert store.incident_timeline(incident_id, first=5, limit=100) == store.incident_timeline(incident_id, limit=100)
    assert "omitted" not in [e["kind"] for e in store.incident_timeline(incident_id, limit=10)]  # first=0: as before
