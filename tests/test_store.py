"""The store: migrations, WAL, the violations log, the writability probe."""
from __future__ import annotations

import sqlite3

import pytest

from bizra_nb.errors import Unavailable
from bizra_nb.store import MIGRATIONS, Store


def test_migrates_to_the_latest_version_once(tmp_path):
    store = Store.open(tmp_path)
    assert store.schema_version == len(MIGRATIONS)
    store.close()
    again = Store.open(tmp_path)  # reopening applies nothing twice
    assert again.schema_version == len(MIGRATIONS)


def test_uses_wal(tmp_path):
    Store.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "bizra.sqlite3")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_violations_log(tmp_path):
    store = Store.open(tmp_path)
    store.log_violation("http_error", "GET /boom 500", ts=10.0)
    store.log_violation("silent_failure", "controller", ts=20.0)
    rows = store.recent_violations()
    assert [r["kind"] for r in rows] == ["silent_failure", "http_error"]
    assert [r["kind"] for r in store.recent_violations(since=15)] == ["silent_failure"]


def test_check_writable_fails_while_another_writer_holds_the_lock(tmp_path):
    store = Store.open(tmp_path)
    store.check_writable()
    locker = sqlite3.connect(tmp_path / "bizra.sqlite3", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(Unavailable, match="not writable"):
            store.check_writable(timeout=0.1)
    finally:
        locker.execute("ROLLBACK")
    store.check_writable()


def test_a_write_while_another_writer_holds_the_lock_is_unavailable(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'b.sqlite3'}", busy_timeout=0.1)
    locker = sqlite3.connect(tmp_path / "b.sqlite3", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(Unavailable, match="retry shortly"):
            store.create_incident(title="t", severity="P1", source="api")
    finally:
        locker.execute("ROLLBACK")
    assert store.create_incident(title="t", severity="P1", source="api")["id"] == 1


# -- migrations stay correct (issue 9, item 18) ---------------------------------------------------


def _database_at_v3(path):
    """A database as bizra-nb with migrations v1..v3 left it, with the duplicates the dedup race made."""
    import sqlalchemy as sa

    from bizra_nb import store as store_module

    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        store_module._v0_meta(conn)
        for migration in MIGRATIONS[:3]:
            migration(conn)
        conn.execute(sa.text("INSERT INTO meta (key, value) VALUES ('schema_version', '3')"))
        for status in ("resolved", "open", "open"):  # two active incidents of one group: the race's leftovers
            conn.execute(sa.text(
                "INSERT INTO incidents (title, severity, status, source, group_key, doc, opened_at, updated_at) "
                "VALUES ('t', 'P1', :status, 'alertmanager', 'g', '{}', 1, 1)"), {"status": status})
    engine.dispose()


def test_a_v3_database_migrates_to_the_current_schema(tmp_path):
    import sqlalchemy as sa

    _database_at_v3(tmp_path / "bizra.sqlite3")
    store = Store.open(tmp_path)
    assert store.schema_version == len(MIGRATIONS) >= 4
    columns = {c["name"] for c in sa.inspect(store.engine).get_columns("incidents")}
    assert "active_group_key" in columns
    with store.engine.connect() as conn:
        active = conn.execute(sa.text("SELECT id FROM incidents WHERE active_group_key = 'g'")).scalars().all()
    assert active == [3]  # the newest active incident of the group stays the group's incident
    action, incident = store.open_or_change_group_incident(
        "g", create={"title": "t", "severity": "P1", "source": "alertmanager"}, change=lambda i: {"severity": "P0"})
    assert (action, incident["id"], incident["severity"]) == ("changed", 3, "P0")


def test_a_database_newer_than_the_code_is_refused(tmp_path):
    import sqlalchemy as sa

    Store.open(tmp_path).close()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'bizra.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE meta SET value = '99' WHERE key = 'schema_version'"))
    engine.dispose()
    with pytest.raises(Unavailable) as info:
        Store.open(tmp_path)
    assert f"schema version 99, this code knows up to {len(MIGRATIONS)}: upgrade bizra-nb" in info.value.message


def test_the_server_refuses_a_newer_database_in_one_line(tmp_path):
    import subprocess
    import sys

    import sqlalchemy as sa

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


def test_one_active_incident_per_group_is_enforced_by_the_store(tmp_path):
    from bizra_nb.errors import Conflict

    store = Store.open(tmp_path)
    first = store.create_incident(title="t", severity="P1", source="alertmanager", group_key="g")
    with pytest.raises(Conflict):
        store.create_incident(title="t", severity="P1", source="alertmanager", group_key="g")
    store.update_incident(first["id"], status="resolved")
    second = store.create_incident(title="t", severity="P1", source="alertmanager", group_key="g")
    with pytest.raises(Conflict):
        store.update_incident(first["id"], status="open")  # reopening would make two active
    assert second["id"] != first["id"]
