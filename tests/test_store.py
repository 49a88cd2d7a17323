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
