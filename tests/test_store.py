"""The store, on SQLite and on PostgreSQL (one parametrised fixture): migrations, the violations log, the
writability probe, one active incident per group, compare-and-swap changes, run claims, replicas, meta claims."""
from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys

import pytest
import sqlalchemy as sa

from bizra_nb import store as store_module
from bizra_nb.errors import Conflict, InvalidSetting, NotFound, Unavailable
from bizra_nb.store import MIGRATIONS, Store


class Backend:
    """One database of one backend for a test: ``open()`` a Store on it, ``raw()`` engine, ``locked()``."""

    def __init__(self, name: str, url: str) -> None:
        self.name, self.url = name, url
        self._opened: list[Store] = []
        self._engines: list[sa.Engine] = []

    def open(self, **kwargs) -> Store:
        store = Store(self.url, **kwargs)
        self._opened.append(store)
        return store

    def raw(self) -> sa.Engine:
        """An engine without the store (no migration): to build or damage a database as a test needs."""
        engine = sa.create_engine(self.url)
        self._engines.append(engine)
        return engine

    @contextlib.contextmanager
    def locked(self):
        """Another client holds the write lock of the whole database (SQLite) or of its tables (PostgreSQL)."""
        if self.name == "sqlite":
            locker = sqlite3.connect(self.url[len("sqlite:///"):], isolation_level=None)
            locker.execute("BEGIN EXCLUSIVE")
            try:
                yield
            finally:
                locker.execute("ROLLBACK")
                locker.close()
            return
        with self.raw().connect() as conn:
            conn.execute(sa.text("LOCK TABLE meta, incidents IN ACCESS EXCLUSIVE MODE"))
            try:
                yield
            finally:
                conn.rollback()

    def close(self) -> None:
        for store in self._opened:
            store.close()
        for engine in self._engines:
            engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    """The store's database on each backend: SQLite in ``tmp_path``, a new PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'bizra.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    db = Backend(request.param, url)
    yield db
    db.close()


@pytest.fixture
def store(backend) -> Store:
    return backend.open()


def test_migrates_to_the_latest_version_once(backend):
    store = backend.open()
    assert store.schema_version == len(MIGRATIONS) == 7
    store.close()
    again = backend.open()  # reopening applies nothing twice
    assert again.schema_version == len(MIGRATIONS)
    columns = {c["name"] for c in sa.inspect(again.engine).get_columns("incidents")}
    assert {"active_group_key", "version"} <= columns
    assert "owner" in {c["name"] for c in sa.inspect(again.engine).get_columns("runs")}
    assert "replicas" in sa.inspect(again.engine).get_table_names()


def test_uses_wal(tmp_path):
    Store.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "bizra.sqlite3")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_violations_log(store):
    store.log_violation("http_error", "GET /boom 500", ts=10.0)
    store.log_violation("silent_failure", "controller", ts=20.0)
    rows = store.recent_violations()
    assert [r["kind"] for r in rows] == ["silent_failure", "http_error"]
    assert [r["kind"] for r in store.recent_violations(since=15)] == ["silent_failure"]


def test_long_values_fit_on_both_backends(store):
    """PostgreSQL enforces VARCHAR lengths, SQLite does not: v5 makes them TEXT so both take the same data."""
    kind = "k" * 100
    store.log_violation(kind, "d")
    incident = store.create_incident(title="t", severity="P1-long", source="s" * 50, service="x" * 300)
    assert store.recent_violations()[0]["kind"] == kind
    assert store.get_incident(incident["id"])["service"] == "x" * 300


def test_check_writable_fails_while_another_writer_holds_the_lock(backend):
    store = backend.open()
    store.check_writable()
    with backend.locked():
        with pytest.raises(Unavailable, match="not writable"):
            store.check_writable(timeout=0.1)
    store.check_writable()


def test_a_write_while_another_writer_holds_the_lock_is_unavailable(backend):
    store = backend.open(busy_timeout=0.1)
    with backend.locked():
        with pytest.raises(Unavailable, match="retry shortly"):
            store.create_incident(title="t", severity="P1", source="api")
    assert store.create_incident(title="t", severity="P1", source="api")["id"] == 1


def test_an_unknown_database_is_refused_naming_the_setting(tmp_path):
    for url in ("mysql://u@h/db", "not a url", "postgresql+asyncpg://u@h/db"):
        with pytest.raises(InvalidSetting) as info:
            Store.from_url(url)
        assert info.value.field == "store_url" and "sqlite:///PATH" in info.value.message
    with pytest.raises(InvalidSetting, match="--store-url or --data-dir"):
        Store.from_url("")
    store = Store.from_url("", data_dir=tmp_path)
    assert store.url == f"sqlite:///{tmp_path / 'bizra.sqlite3'}" and store.data_dir == tmp_path


def test_postgresql_url_without_driver_means_psycopg(postgres_url):
    store = Store.from_url(postgres_url.replace("postgresql+psycopg://", "postgresql://"))
    assert store.engine.dialect.driver == "psycopg" and store.schema_version == len(MIGRATIONS)
    store.close()


# -- migrations stay correct (issue 9, item 18) ---------------------------------------------------


def _database_at_v3(engine: sa.Engine) -> None:
    """A database as bizra-nb with migrations v1..v3 left it, with the duplicates the dedup race made."""
    with engine.begin() as conn:
        store_module._v0_meta(conn)
        for migration in MIGRATIONS[:3]:
            migration(conn)
        conn.execute(sa.text("INSERT INTO meta (key, value) VALUES ('schema_version', '3')"))
        for status in ("resolved", "open", "open"):  # two active incidents of one group: the race's leftovers
            conn.execute(sa.text(
                "INSERT INTO incidents (title, severity, status, source, group_key, doc, opened_at, updated_at) "
                "VALUES ('t', 'P1', :status, 'alertmanager', 'g', '{}', 1, 1)"), {"status": status})


def test_a_v3_database_migrates_to_the_current_schema(backend):
    _database_at_v3(backend.raw())
    store = backend.open()
    assert store.schema_version == len(MIGRATIONS) >= 4
    columns = {c["name"] for c in sa.inspect(store.engine).get_columns("incidents")}
    assert "active_group_key" in columns
    with store.engine.connect() as conn:
        active = conn.execute(sa.text("SELECT id FROM incidents WHERE active_group_key = 'g'")).scalars().all()
    assert active == [3]  # the newest active incident of the group stays the group's incident
    assert store.get_incident(3)["version"] == 0
    action, incident = store.open_or_change_group_incident(
        "g", create={"title": "t", "severity": "P1", "source": "alertmanager"}, change=lambda i: {"severity": "P0"})
    assert (action, incident["id"], incident["severity"], incident["version"]) == ("changed", 3, "P0", 1)


def test_a_database_newer_than_the_code_is_refused(backend):
    backend.open().close()
    with backend.raw().begin() as conn:
        conn.execute(sa.text("UPDATE meta SET value = '99' WHERE key = 'schema_version'"))
    with pytest.raises(Unavailable) as info:
        backend.open()
    assert f"schema version 99, this code knows up to {len(MIGRATIONS)}: upgrade bizra-nb" in info.value.message


def test_the_server_refuses_a_newer_database_in_one_line(tmp_path):
    Store.open(tmp_path).close()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'bizra.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE meta SET value = '99' WHERE key = 'schema_version'"))
    engine.dispose()
    done = subprocess.run([sys.executable, "-m", "bizra_nb.cli", "serve", "--port", "0", "--ws-port", "-1",
                           "--data-dir", str(tmp_path), "--api-token", "t"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "schema version 99" in lines[0] and "upgrade bizra-nb" in lines[0], done.stderr


def test_one_active_incident_per_group_is_enforced_by_the_store(store):
    first = store.create_incident(title="t", severity="P1", source="alertmanager", group_key="g")
    with pytest.raises(Conflict):
        store.create_incident(title="t", severity="P1", source="alertmanager", group_key="g")
    store.update_incident(first["id"], status="resolved")
    second = store.create_incident(title="t", severity="P1", source="alertmanager", group_key="g")
    with pytest.raises(Conflict):
        store.update_incident(first["id"], status="open")  # reopening would make two active
    assert second["id"] != first["id"]


def test_resolved_incidents_list_the_most_recently_resolved_first(store):
    old = store.create_incident(title="old", severity="P2", source="api")
    new = store.create_incident(title="new", severity="P2", source="api")
    store.update_incident(new["id"], status="resolved", resolved_at=1_000.0)
    store.update_incident(old["id"], status="resolved", resolved_at=2_000.0)  # the older incident, resolved later
    assert [i["title"] for i in store.list_incidents(status="resolved")] == ["old", "new"]
    assert [i["title"] for i in store.list_incidents()] == ["new", "old"]  # otherwise by id, newest first


# -- compare-and-swap changes (issue 11) ----------------------------------------------------------------


def test_each_change_of_an_incident_bumps_its_version(store):
    incident = store.create_incident(title="t", severity="P2", source="api", note="a")
    assert incident["version"] == 0
    changed = store.update_incident(incident["id"], severity="P1", note="b", version=42, id=7)
    assert (changed["version"], changed["severity"], changed["note"], changed["id"]) == (1, "P1", "b", incident["id"])
    same = store.update_incident(incident["id"], transition=lambda i: None)  # no change: no write
    assert same["version"] == 1
    assert store.update_incident(incident["id"], transition=lambda i: {"severity": i["severity"] + "!"})["version"] == 2
    with pytest.raises(Conflict, match="nope"):
        store.update_incident(incident["id"], transition=lambda i: (_ for _ in ()).throw(Conflict("nope")))
    with pytest.raises(TypeError):
        store.update_incident(incident["id"], transition=lambda i: None, severity="P0")
    with pytest.raises(NotFound):
        store.update_incident(999, severity="P0")
    assert store.get_incident(incident["id"])["version"] == 2


def test_a_change_computed_from_a_stale_incident_is_never_written(backend):
    """Another process changes the incident between our read and our write: our change is computed again."""
    store, other = backend.open(busy_timeout=0.2), backend.open(busy_timeout=0.2)
    incident = store.create_incident(title="t", severity="P2", source="api", tags=["a"])
    seen: list[list[str]] = []

    def add_b(current: dict) -> dict:
        seen.append(current["tags"])
        if len(seen) == 1:  # the other writer comes in now
            try:
                other.update_incident(incident["id"], tags=[*current["tags"], "x"])
            except Unavailable:  # SQLite: our transaction holds the write lock from its start
                assert backend.name == "sqlite"
        return {"tags": [*current["tags"], "b"]}

    final = store.update_incident(incident["id"], transition=add_b)
    if backend.name == "sqlite":
        assert seen == [["a"]] and final["tags"] == ["a", "b"] and final["version"] == 1
    else:  # the lost race is retried with the fresh incident: neither change is lost
        assert seen == [["a"], ["a", "x"]] and final["tags"] == ["a", "x", "b"] and final["version"] == 2


def test_change_status_never_reopens_and_keeps_the_first_times(store):
    from bizra_nb.incidents import change_status

    incident = store.create_incident(title="t", severity="P2", source="api")
    acked = change_status(store, incident["id"], "acknowledged")
    resolved = change_status(store, incident["id"], "resolved")
    assert resolved["acknowledged_at"] == acked["acknowledged_at"] and resolved["resolved_at"]
    with pytest.raises(Conflict, match="is resolved"):
        change_status(store, incident["id"], "acknowledged")
    assert change_status(store, incident["id"], "resolved")["version"] == resolved["version"]  # unchanged: no write
    noted = change_status(store, incident["id"], "resolved", note="root cause found")
    assert noted["notes"][0]["note"] == "root cause found" and noted["resolved_at"] == resolved["resolved_at"]


# -- run claims, replicas, meta claims (issue 11) -------------------------------------------------------


def _run(store: Store, run_id: str, status: str = "queued", owner: str | None = None, **fields) -> dict:
    return store.create_run(id=run_id, notebook="x.ipynb", kind="other", status=status, trigger="api",
                            parameters={}, created_at=1.0, owner=owner, **fields)


def test_a_queued_run_is_claimed_once(store):
    _run(store, "r1")
    claimed = store.claim_run("r1", "replica-a")
    assert (claimed["status"], claimed["owner"]) == ("running", "replica-a") and claimed["started_at"]
    assert store.claim_run("r1", "replica-b") is None
    assert store.get_run("r1")["owner"] == "replica-a"
    _run(store, "r2", status="cancelled")
    assert store.claim_run("r2", "replica-a") is None and store.claim_run("nope", "replica-a") is None


def test_fail_unfinished_runs_of_one_owner_or_of_all(store):
    for run_id, status, owner in (("a1", "running", "a"), ("a2", "queued", "a"), ("b1", "running", "b"),
                                  ("n1", "running", None), ("a3", "succeeded", "a")):
        _run(store, run_id, status, owner)
    assert sorted(store.fail_unfinished_runs("restarted", owner="a")) == ["a1", "a2"]
    assert store.get_run("a1")["error"] == "restarted" and store.get_run("b1")["status"] == "running"
    assert sorted(store.fail_unfinished_runs("restarted")) == ["b1", "n1"]
    assert store.get_run("a3")["status"] == "succeeded"


def test_runs_of_replicas_that_stopped_their_heartbeat_are_failed(backend):
    store = backend.open()
    store.heartbeat_replica("a", {"pid": 1})
    store.heartbeat_replica("b", {"pid": 2})
    first = {r["name"]: r for r in store.list_replicas()}
    store.heartbeat_replica("b", {"pid": 3})  # a later heartbeat keeps started_at, updates seen_at and info
    b = {r["name"]: r for r in store.list_replicas()}["b"]
    assert b["started_at"] == first["b"]["started_at"] and b["seen_at"] >= first["b"]["seen_at"]
    assert b["info"] == {"pid": 3}
    with backend.raw().begin() as conn:  # b's last heartbeat was a minute ago
        conn.execute(sa.text("UPDATE replicas SET seen_at = seen_at - 60 WHERE name = 'b'"))
    for run_id, status, owner in (("a1", "running", "a"), ("b1", "running", "b"), ("b2", "queued", "b"),
                                  ("b3", "succeeded", "b"), ("c1", "running", "c"), ("n1", "running", None)):
        _run(store, run_id, status, owner)
    assert sorted(store.fail_runs_of_stale_replicas(30, "its replica stopped")) == ["b1", "b2", "c1"]
    assert store.get_run("b1")["error"] == "its replica stopped" and store.get_run("b1")["finished_at"]
    assert {r: store.get_run(r)["status"] for r in ("a1", "b3", "n1")} == {
        "a1": "running", "b3": "succeeded", "n1": "running"}
    assert store.fail_runs_of_stale_replicas(30, "again") == []


def test_claim_meta_is_a_compare_and_set(store):
    assert store.claim_meta("schedule:audit", None, "2026-01-01") is True
    assert store.claim_meta("schedule:audit", None, "2026-01-01") is False  # present already
    assert store.claim_meta("schedule:audit", "2025-12-01", "2026-02-01") is False  # stale expectation
    assert store.claim_meta("schedule:audit", "2026-01-01", "2026-02-01") is True
    assert store.get_meta("schedule:audit") == "2026-02-01"
    store.put_meta("k", "1")
    store.put_meta("k", "2")
    assert store.get_meta("k") == "2"


# -- review fixes (issue 11): odd URLs, ids out of range, the conditional end of a run ------------------


@pytest.mark.parametrize("url", ["postgresql://u:s3cret@127.0.0.1:bad/a", "postgresql+psycopg://u:s3cret@h:99999/a",
                                 "postgresql://u:s3cret@[::1/a", "sqlite://:0/x.db"])
def test_a_url_sqlalchemy_cannot_read_is_an_invalid_setting_without_its_password(url):
    with pytest.raises(InvalidSetting) as info:
        Store.from_url(url)
    message = info.value.message
    assert info.value.field == "store_url" and message.startswith("--store-url")
    assert "s3cret" not in message and "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB" in message
    if "s3cret" in url:
        assert "u:***@" in message


@pytest.mark.parametrize("incident_id", [0, -1, 2**31, 3_000_000_000, 2**70])
def test_an_id_no_integer_key_holds_is_not_found_on_both_backends(store, incident_id):
    """PostgreSQL refuses to compare an INTEGER key with 3000000000 (a DataError), SQLite overflows past 2**63:
    such an id names no incident, as an unused one does."""
    store.create_incident(title="t", severity="P1", source="api")
    with pytest.raises(NotFound, match=f"no incident {incident_id}"):
        store.get_incident(incident_id)
    with pytest.raises(NotFound):
        store.update_incident(incident_id, severity="P0")
    with pytest.raises(NotFound):
        store.update_incident(incident_id, transition=lambda i: {"severity": "P0"})
    assert store.list_runs(incident_id=incident_id) == []
    assert store.get_incident(1)["version"] == 0  # the real one is untouched


def test_a_value_the_database_cannot_hold_is_invalid_input_saying_why_generically(backend):
    from bizra_nb.errors import InvalidInput

    store = backend.open()
    writes = {"an integer out of range": lambda: _run(store, "big", incident_id=3_000_000_000),
              "a NUL in text": lambda: store.create_incident(title="bad\x00title", severity="P1", source="api")}
    for what, write in writes.items():
        if backend.name == "sqlite":  # SQLite holds both
            write()
            continue
        with pytest.raises(InvalidInput) as info:
            write()
        assert info.value.message == "a value the database cannot hold: out of range, or a NUL character", what


def test_finish_run_writes_only_an_active_run_of_its_owner(backend):
    store = backend.open()
    _run(store, "r1")
    assert store.claim_run("r1", "a")["status"] == "running"
    assert store.finish_run("r1", owner="b", status="succeeded") is None  # another owner's: nothing written
    assert store.finish_run("r1", owner=None, status="succeeded") is None  # None matches NULL only
    assert store.get_run("r1")["status"] == "running" and store.get_run("r1")["finished_at"] is None
    done = store.finish_run("r1", owner="a", status="succeeded", summary={"headline": "h"}, folder="/r/1")
    assert (done["status"], done["summary"], done["folder"], done["owner"]) == ("succeeded", {"headline": "h"},
                                                                                "/r/1", "a")
    assert done["finished_at"] and done == store.get_run("r1")
    assert store.finish_run("r1", owner="a", status="failed", error="late") is None  # ended: written once
    assert (store.get_run("r1")["status"], store.get_run("r1")["error"]) == ("succeeded", None)

    _run(store, "n1", status="running")  # no owner (one process owns the store)
    assert store.finish_run("n1", owner="a", status="failed") is None
    assert store.finish_run("n1", owner=None, status="failed", error="boom", finished_at=5.0)["finished_at"] == 5.0
    _run(store, "q1")  # still queued: its owner may end it (a failure before it started)
    assert store.finish_run("q1", owner=None, status="failed", error="no kernel")["status"] == "failed"
    assert store.finish_run("nope", owner="a", status="succeeded") is None


def test_a_run_the_reaper_failed_is_not_finished_by_its_late_owner(backend):
    store, leader = backend.open(), backend.open()  # two replicas
    for run_id, status, owner in (("a1", "running", "a"), ("a2", "queued", "a"), ("b1", "running", "b"),
                                  ("c1", "running", "c"), ("n1", "running", None), ("a3", "succeeded", "a")):
        _run(store, run_id, status, owner)
    store.request_cancel("a1")
    assert leader.fail_runs_of_owners([], "gone") == []
    assert sorted(leader.fail_runs_of_owners(["a", "b"], "its replica stopped")) == ["a1", "a2", "b1"]
    failed = store.get_run("a1")
    assert (failed["status"], failed["error"]) == ("failed", "its replica stopped") and failed["finished_at"]
    assert {r: store.get_run(r)["status"] for r in ("c1", "n1", "a3")} == {
        "c1": "running", "n1": "running", "a3": "succeeded"}
    assert not store.cancel_requested("a1")  # the request ended with the run
    assert store.finish_run("a1", owner="a", status="succeeded") is None
    assert store.get_run("a1")["status"] == "failed"
    assert leader.fail_runs_of_owners(["a"], "again") == []


def test_a_queued_run_is_cancelled_only_while_queued(store):
    _run(store, "q1")
    cancelled = store.cancel_queued_run("q1")
    assert (cancelled["status"], cancelled["error"]) == ("cancelled", "cancelled") and cancelled["finished_at"]
    assert store.cancel_queued_run("q1") is None and store.claim_run("q1", "a") is None
    _run(store, "q2")
    store.claim_run("q2", "a")
    assert store.cancel_queued_run("q2") is None and store.get_run("q2")["status"] == "running"
    assert store.cancel_queued_run("nope") is None


def test_a_cancel_request_is_seen_by_another_replica_until_the_run_ends(backend):
    store, owner = backend.open(), backend.open()
    _run(store, "r1")
    owner.claim_run("r1", "a")
    assert not owner.cancel_requested("r1")
    store.request_cancel("r1")
    store.request_cancel("r1")  # twice is once
    assert owner.cancel_requested("r1") and not owner.cancel_requested("r2")
    assert owner.finish_run("r1", owner="a", status="cancelled", error="cancelled")["status"] == "cancelled"
    assert not owner.cancel_requested("r1") and store.get_meta("cancel:r1") is None
    store.request_cancel("r1")  # ended: nothing to ask
    assert not owner.cancel_requested("r1")
    _run(store, "q1")
    store.request_cancel("q1")
    assert store.cancel_requested("q1") and store.cancel_queued_run("q1") and not store.cancel_requested("q1")
    with pytest.raises(NotFound):
        store.request_cancel("nope")
