"""One unfinished run per incident (issue 12): duplicate requests for an incident's diagnosis collapse into one
run, in the store (SQLite and PostgreSQL, threads racing), through the v6 migration, and through POST /runs."""
from __future__ import annotations

import threading

import httpx
import pytest
import sqlalchemy as sa

from bizra_nb import store as store_module
from bizra_nb.store import MIGRATIONS, Store
from tests.conftest import wait_until



@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """A new database on each backend: a SQLite file, a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bizra.sqlite3'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url):
    opened = Store(store_url)
    yield opened
    opened.close()


def _create(store: Store, run_id: str, incident_id: int | None = 7, **fields) -> dict:
    fields.setdefault("status", "queued")
    return store.create_run(id=run_id, notebook="incident_diagnosis.ipynb", kind="incident", trigger="incident",
                            parameters={"incident_id": incident_id}, created_at=1.0, incident_id=incident_id,
                            **fields)


def _ids(store: Store, **filters) -> list[str]:
    return sorted(r["id"] for r in store.list_runs(limit=1000, **filters))


def test_a_second_run_of_an_incident_with_an_unfinished_one_is_that_run(store):
    first = _create(store, "r1")
    assert first["id"] == "r1" and first["status"] == "queued" and "existing" not in first
    again = _create(store, "r2")
    assert (again["id"], again["existing"], again["status"]) == ("r1", True, "queued")
    store.claim_run("r1", "replica-a")
    running = _create(store, "r3")  # running is unfinished too
    assert (running["id"], running["existing"], running["status"], running["owner"]) == \
        ("r1", True, "running", "replica-a")
    other = _create(store, "r4", incident_id=8)  # another incident: its own run
    assert other["id"] == "r4" and "existing" not in other
    assert _ids(store, incident_id=7) == ["r1"] and _ids(store) == ["r1", "r4"]  # r2, r3 never stored


def test_runs_without_an_incident_or_already_ended_never_collide(store):
    assert "existing" not in _create(store, "n1", incident_id=None)
    assert "existing" not in _create(store, "n2", incident_id=None)
    assert "existing" not in _create(store, "done", status="succeeded")  # an ended run of incident 7...
    assert "existing" not in _create(store, "live")  # ...leaves room for an unfinished one
    assert _ids(store) == ["done", "live", "n1", "n2"]


def test_another_integrity_error_still_raises(store):
    _create(store, "same", incident_id=None)
    with pytest.raises(sa.exc.IntegrityError):  # the same id: not taken for a duplicate request
        _create(store, "same", incident_id=None)
    _create(store, "r1")
    with pytest.raises(sa.exc.IntegrityError):  # the id clashes too, whatever its incident
        _create(store, "r1", incident_id=9)


def test_once_the_run_ends_a_new_request_makes_a_new_run(store):
    _create(store, "r1")
    store.finish_run("r1", owner=None, status="succeeded")
    second = _create(store, "r2")
    assert second["id"] == "r2" and "existing" not in second
    assert store.cancel_queued_run("r2")["status"] == "cancelled"
    third = _create(store, "r3")
    assert third["id"] == "r3" and "existing" not in third
    store.claim_run("r3", "a")
    assert store.fail_unfinished_runs("restarted") == ["r3"]
    assert "existing" not in _create(store, "r4")
    assert _ids(store, incident_id=7) == ["r1", "r2", "r3", "r4"]


def test_eight_replicas_creating_at_once_make_one_run_and_all_get_its_id(store_url):
    """Each thread has its own Store (engine, connections, in-process lock), as replicas would."""
    racers = 8
    stores = [Store(store_url, busy_timeout=30.0) for _ in range(racers)]
    try:
        for incident_id in (11, 12, 13):  # a few rounds: a lucky interleaving must not hide a race
            barrier = threading.Barrier(racers)
            results: list = [None] * racers

            def race(i: int) -> None:
                barrier.wait(timeout=30)
                try:
                    results[i] = _create(stores[i], f"i{incident_id}r{i}", incident_id=incident_id)
                except Exception as exc:  # noqa: BLE001 - the test fails with it below
                    results[i] = exc

            threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            errors = [r for r in results if isinstance(r, BaseException)]
            assert not errors, errors
            assert len({r["id"] for r in results}) == 1
            assert sum(1 for r in results if "existing" not in r) == 1  # one created it, seven were given it
            assert _ids(stores[0], incident_id=incident_id) == [results[0]["id"]]
    finally:
        for opened in stores:
            opened.close()


# -- the v6 migration ------------------------------------------------------------------------------------


def _database_at_v5(url: str) -> None:
    """A database as migrations v1..v5 left it, with the duplicate unfinished runs racing requests made."""
    engine = sa.create_engine(url)
    insert = sa.text("INSERT INTO runs (id, notebook, kind, status, trigger, parameters, created_at, incident_id) "
                     "VALUES (:id, 'n.ipynb', 'incident', :status, 'incident', '{}', :created_at, :incident_id)")
    with engine.begin() as conn:
        store_module._v0_meta(conn)
        for migration in MIGRATIONS[:5]:
            migration(conn)
        conn.execute(sa.text("INSERT INTO meta (key, value) VALUES ('schema_version', '5')"))
        for run_id, status, created_at, incident_id in (
                ("old", "queued", 1.0, 7), ("mid", "running", 2.0, 7), ("new", "queued", 3.0, 7),
                ("ended", "succeeded", 4.0, 7), ("alone", "running", 1.0, 8),
                ("free1", "queued", 1.0, None), ("free2", "queued", 2.0, None)):
            conn.execute(insert, {"id": run_id, "status": status, "created_at": created_at,
                                  "incident_id": incident_id})
        conn.execute(sa.text("INSERT INTO meta (key, value) VALUES ('cancel:old', '1.0'), ('cancel:alone', '1.0')"))
    engine.dispose()


def test_a_v5_database_with_duplicate_unfinished_runs_migrates_keeping_the_running_one(store_url):
    _database_at_v5(store_url)
    store = Store(store_url)
    try:
        assert store.schema_version == len(MIGRATIONS) >= 6
        runs = {r["id"]: r for r in store.list_runs(limit=100)}
        assert {i: r["status"] for i, r in runs.items()} == {
            "old": "failed", "mid": "running", "new": "failed", "ended": "succeeded", "alone": "running",
            "free1": "queued", "free2": "queued"}  # the one executing is kept, though a newer one is queued
        for superseded in ("old", "new"):
            assert runs[superseded]["error"] == "superseded by run mid" and runs[superseded]["finished_at"]
        assert runs["ended"]["error"] is None and runs["ended"]["finished_at"] is None  # left as it was
        assert not store.cancel_requested("old") and store.cancel_requested("alone")
        assert _create(store, "later")["id"] == "mid"  # the index holds from now on
        assert _create(store, "later8", incident_id=8)["id"] == "alone"
        indexes = {i["name"] for i in sa.inspect(store.engine).get_indexes("runs")}
        assert "ux_runs_active_incident" in indexes
    finally:
        store.close()


# -- POST /runs --------------------------------------------------------------------------------------------


@pytest.fixture
def one_slot_server(make_nb_server):
    """A server with one run slot, whose notebooks folder also holds the tiny test notebooks."""
    return make_nb_server(run_workers=1, cell_timeout=120)


def test_posting_an_incident_diagnosis_twice_answers_201_then_200_with_the_same_run(one_slot_server, auth):
    http = httpx.Client(base_url=one_slot_server.url, timeout=30)
    store = one_slot_server.services.store
    five, six = (store.create_incident(title=f"incident {n}", severity="P2", source="api", opened_at=100.0)["id"]
                 for n in (5, 6))
    blocker = http.post("/runs", json={"notebook": "sleeps_past_timeout"}, headers=auth).json()["id"]
    wait_until(lambda: http.get(f"/runs/{blocker}").json()["status"] == "running", timeout=60)
    body = {"notebook": "incident_diagnosis", "parameters": {"incident_id": five}}
    first = http.post("/runs", json=body, headers=auth)  # queued behind the blocker: unfinished
    assert first.status_code == 201 and "deduplicated" not in first.json() and "existing" not in first.json()
    run_id = first.json()["id"]
    second = http.post("/runs", json=body, headers=auth)
    assert second.status_code == 200 and second.headers["Location"] == f"/runs/{run_id}"
    assert second.json()["id"] == run_id and second.json()["deduplicated"] is True
    assert "existing" not in second.json() and second.json()["status"] == "queued"
    assert [r["id"] for r in store.list_runs(incident_id=five)] == [run_id]
    other = http.post("/runs", json={"notebook": "incident_diagnosis", "parameters": {"incident_id": six}},
                      headers=auth)
    assert other.status_code == 201 and other.json()["id"] != run_id
    assert http.post(f"/runs/{run_id}/cancel", headers=auth).status_code == 202
    wait_until(lambda: http.get(f"/runs/{run_id}").json()["status"] == "cancelled", timeout=30)
    after = http.post("/runs", json=body, headers=auth)  # the first ended: a new run
    assert after.status_code == 201 and after.json()["id"] != run_id
    for queued in (other.json()["id"], after.json()["id"], blocker):
        http.post(f"/runs/{queued}/cancel", headers=auth)
    http.close()


def test_an_api_diagnosis_of_an_incident_diagnoses_the_incident_as_stored(one_slot_server, auth):
    http = httpx.Client(base_url=one_slot_server.url, timeout=30)
    store = one_slot_server.services.store
    incident = store.create_incident(title="checkout latency", severity="P1", source="api", opened_at=100.0)
    forged = {"notebook": "incident_diagnosis",
              "parameters": {"incident_id": incident["id"], "incident": {"title": "FORGED: all fine, close it"}}}
    created = http.post("/runs", json=forged, headers=auth)
    assert created.status_code == 201
    assert created.json()["parameters"]["incident"]["title"] == "checkout latency"  # not the caller's
    missing = http.post("/runs", json={"notebook": "incident_diagnosis", "parameters": {"incident_id": 424242}},
                        headers=auth)
    assert missing.status_code == 404 and "424242" in missing.json()["error"]["message"]
    assert [r["id"] for r in store.list_runs()] == [created.json()["id"]]  # nothing recorded for the missing one
    http.post(f"/runs/{created.json()['id']}/cancel", headers=auth)
    http.close()
