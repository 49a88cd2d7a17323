"""`bizra-nb store migrate | copy | backup`: a laptop's SQLite moved to PostgreSQL with verified contents,
an online backup while the store is written, one-line errors naming the parameter."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from bizra_nb import store_admin
from bizra_nb.store import MIGRATIONS, Store, metadata

CLI_WIRED = "store_admin" in (Path(__file__).parent.parent / "bizra_nb" / "cli.py").read_text()


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """``bizra-nb store …`` in this process (through the CLI once it has the store commands)."""
    if CLI_WIRED:
        from bizra_nb.cli import main
    else:
        main = store_admin.main
    try:
        code = main(["store", *argv])
    except SystemExit as exc:  # a usage error, as argparse reports it
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def make_data_dir(folder: Path) -> Path:
    """A laptop's data dir: incidents (one resolved, one diagnosed), runs, a CMDB, violations, meta, a replica."""
    store = Store.open(folder)
    first = store.create_incident(title="HighErrorRate on api", severity="P1", source="alertmanager",
                                  group_key="g1", service="api", labels={"team": "sre"}, alerts={"fp": {"x": 1}})
    store.update_incident(first["id"], status="resolved", resolved_at=first["opened_at"] + 60.25)
    store.add_incident_event(first["id"], "opened", actor="alertmanager", detail={"alertname": "HighErrorRate"},
                             ts=first["opened_at"])
    store.add_incident_event(first["id"], "note", actor="ops", detail={"text": "ünïcode <b>note</b>"})
    store.create_incident(title="Latency on db", severity="P2", source="api", diagnosis={"ranking": [{"s": 0.5}]})
    store.create_incident(title="ünïcode ✓", severity="P3", source="api", group_key="g2", service="s" * 200)
    for n, status in enumerate(("succeeded", "failed")):
        store.create_run(id=f"run{n}", notebook="nb.ipynb", kind="audit", status=status, trigger="schedule",
                         parameters={"month": "2026-09", "n": n}, created_at=1000.5 + n, summary={"headline": "h"},
                         incident_id=first["id"])
    store.save_cmdb({"items": [{"id": "api", "kind": "service", "owner": "sre"}, {"id": "db", "kind": "database"}],
                     "relations": [{"source": "api", "target": "db", "type": "depends_on"}]})
    for n in range(5):
        store.log_violation("http_error", f"GET /x {n}", ts=100.0 + n)
    store.put_meta("schedule:audit", "2026-09-01T06:00:00+00:00")
    store.heartbeat_replica("laptop:8000", {"pid": 1})
    store.close()
    return folder


def table_rows(url: str) -> dict[str, list[tuple]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = {t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))]
                for t in metadata.sorted_tables}
    engine.dispose()
    return rows


def test_copy_moves_a_sqlite_data_dir_to_postgresql_with_equal_contents(tmp_path, postgres_url, capsys):
    source = f"sqlite:///{make_data_dir(tmp_path / 'data') / 'bizra.sqlite3'}"
    code, out, err = run(["copy", "--from", source, "--to", postgres_url], capsys)
    assert (code, err) == (0, ""), err
    assert "  incidents               3 → 3" in out and "  violations              5 → 5" in out
    assert "counts verified" in out
    before, after = table_rows(source), table_rows(postgres_url)
    assert after == before and len(after["runs"]) == 2 and len(after["cmdb_relations"]) == 1
    moved = Store(postgres_url)  # the copy is a working store: its ids go on after the copied ones
    assert moved.create_incident(title="new", severity="P2", source="api")["id"] == 4
    moved.log_violation("http_error", "after the move")
    assert len(after["incident_events"]) == 2  # the timelines are copied, and their ids go on too
    assert moved.add_incident_event(1, "resolved", actor="ops")["id"] == 3
    assert [e["kind"] for e in moved.incident_timeline(1)] == ["opened", "note", "resolved"]
    assert moved.get_incident(1)["labels"] == {"team": "sre"} and moved.get_meta("schedule:audit")
    assert moved.list_incidents(status="resolved")[0]["group_key"] == "g1"
    moved.close()
    code, _, err = run(["copy", "--from", source, "--to", postgres_url], capsys)  # a target with data
    assert code == 2 and "--to: the target store already holds data (" in err and "--force" in err
    assert "incidents: 4" in err and len(err.strip().splitlines()) == 1
    code, out, err = run(["copy", "--from", source, "--to", postgres_url, "--force"], capsys)
    assert code == 0 and table_rows(postgres_url) == before, err


def test_copy_back_from_postgresql_to_sqlite(tmp_path, postgres_url, capsys):
    source = f"sqlite:///{make_data_dir(tmp_path / 'data') / 'bizra.sqlite3'}"
    assert run(["copy", "--from", source, "--to", postgres_url], capsys)[0] == 0
    back = f"sqlite:///{tmp_path / 'back.sqlite3'}"
    code, out, err = run(["copy", "--from", postgres_url, "--to", back], capsys)
    assert code == 0, err
    assert table_rows(back) == table_rows(source)


def test_copy_refuses_a_source_at_an_older_schema_version(tmp_path, postgres_url, capsys):
    old = tmp_path / "old.sqlite3"
    engine = sa.create_engine(f"sqlite:///{old}")
    with engine.begin() as conn:
        from bizra_nb import store as store_module

        store_module._v0_meta(conn)
        for migration in MIGRATIONS[:3]:
            migration(conn)
        conn.execute(sa.text("INSERT INTO meta (key, value) VALUES ('schema_version', '3')"))
    engine.dispose()
    code, _, err = run(["copy", "--from", f"sqlite:///{old}", "--to", postgres_url], capsys)
    assert code == 2 and f"--from: the store is at schema version 3, this bizra-nb copies version {len(MIGRATIONS)}" \
        in err and "bizra-nb store migrate --store-url sqlite:///" in err
    with sqlite3.connect(old) as conn:  # the source is left as it was (no migration)
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("3",)


def test_migrate_prints_the_version_reached(tmp_path, postgres_url, capsys):
    code, out, _ = run(["migrate", "--store-url", postgres_url], capsys)
    assert code == 0 and out.strip().endswith(f"at schema version {len(MIGRATIONS)}")
    assert "postgresql+psycopg://postgres@127.0.0.1" in out
    code, out, _ = run(["migrate", "--data-dir", str(tmp_path / "new" / "data")], capsys)
    assert code == 0 and f"at schema version {len(MIGRATIONS)}" in out
    assert (tmp_path / "new" / "data" / "bizra.sqlite3").is_file()
    code, _, err = run(["migrate", "--data-dir", str(tmp_path), "--store-url", postgres_url], capsys)
    assert code == 2 and "not allowed with argument" in err  # one or the other


def test_backup_of_sqlite_is_consistent_while_another_connection_writes(tmp_path, capsys):
    data = make_data_dir(tmp_path / "data")
    db = data / "bizra.sqlite3"
    with sqlite3.connect(db) as conn:  # several MB, so the backup takes many steps
        conn.executemany("INSERT INTO violations (ts, kind, detail) VALUES (?, 'bulk', ?)",
                         [(float(n), "x" * 2000) for n in range(3000)])
    stop, commits = threading.Event(), [0]

    def write_pairs() -> None:  # each transaction adds one 'pair-a' and one 'pair-b': a consistent copy has as many of each
        writer = sqlite3.connect(db, timeout=30, isolation_level=None)
        while not stop.is_set():
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("INSERT INTO violations (ts, kind, detail) VALUES (1, 'pair-a', '')")
            writer.execute("INSERT INTO violations (ts, kind, detail) VALUES (1, 'pair-b', '')")
            writer.execute("COMMIT")
            commits[0] += 1
        writer.close()

    writer = threading.Thread(target=write_pairs)
    writer.start()
    try:
        from tests.conftest import wait_until

        wait_until(lambda: commits[0] > 0)
        at_start = commits[0]
        code, out, err = run(["backup", "--data-dir", str(data), "--to", str(tmp_path / "backup.sqlite3")], capsys)
        during = commits[0] - at_start
    finally:
        stop.set()
        writer.join()
    assert code == 0, err
    assert "backed up to" in out and "3 incidents" in out and f"schema version {len(MIGRATIONS)}" in out
    assert during > 0  # the store was written while it was backed up
    with sqlite3.connect(tmp_path / "backup.sqlite3") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        a, b = (conn.execute("SELECT COUNT(*) FROM violations WHERE kind = ?", (k,)).fetchone()[0]
                for k in ("pair-a", "pair-b"))
        assert a == b >= at_start
    restored = Store(f"sqlite:///{tmp_path / 'backup.sqlite3'}")
    assert len(restored.list_incidents()) == 3 and restored.schema_version == len(MIGRATIONS)
    restored.close()
    assert not list(tmp_path.glob(".*.partial"))
    code, _, err = run(["backup", "--data-dir", str(data), "--to", str(tmp_path / "backup.sqlite3")], capsys)
    assert code == 2 and "--to:" in err and "exists; give --force" in err


def test_backup_of_postgresql_says_the_pg_dump_command(postgres_url, capsys):
    url = postgres_url.replace("postgres@", "postgres:s3cret-pw@")
    code, out, err = run(["backup", "--store-url", url, "--to", "bizra.dump"], capsys)
    plain = url.replace("postgresql+psycopg", "postgresql").replace(":s3cret-pw", "")
    assert code == 2 and out == ""
    assert f"pg_dump --format=custom --file bizra.dump '{plain}'" in err and "s3cret-pw" not in err


@pytest.mark.parametrize("argv, words", [
    (["copy", "--from", "ftp://host/db", "--to", "sqlite:///x.sqlite3"],
     ["--from: must be sqlite:///PATH or postgresql+psycopg://", "not ftp://…"]),
    (["copy", "--from", "sqlite:///{tmp}/missing.sqlite3", "--to", "sqlite:///{tmp}/x.sqlite3"],
     ["--from: no such SQLite file:", "missing.sqlite3"]),
    (["copy", "--from", "sqlite:///{tmp}/d/bizra.sqlite3", "--to", "mysql://u@h/db"], ["--to: must be sqlite:///PATH"]),
    (["copy", "--from", "sqlite:///{tmp}/d/bizra.sqlite3", "--to", "sqlite:///{tmp}/no/such/dir/x.sqlite3"],
     ["--to: no such folder:"]),
    (["copy", "--from", "sqlite:///{tmp}/d/bizra.sqlite3", "--to", "sqlite:///{tmp}/d/bizra.sqlite3"],
     ["--to: is the same store as --from"]),
    (["backup", "--data-dir", "{tmp}/nowhere", "--to", "{tmp}/b.sqlite3"], ["--data-dir: no such SQLite file:"]),
    (["backup", "--store-url", "redis://h", "--to", "{tmp}/b.sqlite3"], ["--store-url", "sqlite:///PATH", "redis://h"]),
    (["backup", "--data-dir", "{tmp}/d", "--to", "{tmp}/no/dir/b.sqlite3"], ["--to: no such folder:"]),
    (["frob"], ["invalid choice: 'frob'", "migrate", "copy", "backup"]),
    (["copy", "--from", "sqlite:///x"], ["--to"]),
])
def test_bad_arguments_are_one_line_naming_the_parameter(tmp_path, argv, words):
    Store.open(tmp_path / "d").close()
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    done = subprocess.run([sys.executable, "-m", "bizra_nb.cli" if CLI_WIRED else "bizra_nb.store_admin", "store",
                           *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout.count("error") == 0, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bizra-nb store") and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in lines[0], lines[0]


# -- review fixes (issue 11) ----------------------------------------------------------------------------


def test_migrate_creates_the_folder_of_a_sqlite_url(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'newdir' / 'x.db'}"
    code, out, err = run(["migrate", "--store-url", url], capsys)
    assert (code, err) == (0, ""), err
    assert out.strip() == f"store {url} at schema version {len(MIGRATIONS)}"
    assert (tmp_path / "newdir" / "x.db").is_file()
    code, _, err = run(["backup", "--store-url", f"sqlite:///{tmp_path / 'other' / 'x.db'}", "--to",
                        str(tmp_path / "b.sqlite3")], capsys)  # a backup needs the store: still refused
    assert code == 2 and "--store-url: no such SQLite file:" in err and not (tmp_path / "other").exists()


@pytest.mark.parametrize("command", [["store", "migrate"], ["store", "backup", "--to", "b.sqlite3"],
                                     ["serve", "--port", "0", "--ws-port", "-1", "--api-token", "t"]])
def test_a_url_with_a_bad_port_is_one_line_without_the_password(tmp_path, command):
    url = "postgresql://u:s3cret-pw@127.0.0.1:bad/a"
    done = subprocess.run([sys.executable, "-m", "bizra_nb.cli", *command, "--store-url", url],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--store-url" in lines[0] and "port must be a number" in lines[0], lines
    assert "s3cret-pw" not in done.stderr and "u:***@127.0.0.1:bad/a" in lines[0]


def _sqlite_store(folder: Path) -> tuple[str, Store]:
    store = Store.open(folder)
    return f"sqlite:///{folder / 'bizra.sqlite3'}", store


def test_copy_to_postgresql_replaces_nul_characters_and_says_where(tmp_path, postgres_url, capsys):
    """Older versions stored a NUL in SQLite text; PostgreSQL refuses it: the copy puts U+FFFD in its place."""
    source, store = _sqlite_store(tmp_path / "data")
    store.create_incident(title="bad\x00title", severity="P1", source="api", service="a\x00b\x00")
    store.create_incident(title="fine", severity="P2", source="api")
    store.log_violation("http_error", "GET /\x00")
    store.close()
    code, out, err = run(["copy", "--from", source, "--to", postgres_url], capsys)
    assert (code, err) == (0, ""), err
    assert "  incidents: 2 values held a NUL character" in out and "U+FFFD" in out
    assert "  violations: 1 value held a NUL character" in out and "runs:" not in out
    assert "bad" not in out and "GET /" not in out  # never the rows themselves
    moved = Store(postgres_url)
    assert moved.get_incident(1)["title"] == "bad\ufffdtitle" and moved.get_incident(1)["service"] == "a\ufffdb\ufffd"
    assert moved.get_incident(2)["title"] == "fine" and moved.recent_violations()[0]["detail"] == "GET /\ufffd"
    moved.close()
    back = f"sqlite:///{tmp_path / 'back.sqlite3'}"  # into SQLite, as it is
    code, out, err = run(["copy", "--from", source, "--to", back], capsys)
    assert code == 0 and "NUL" not in out and table_rows(back) == table_rows(source), err


def test_a_row_postgresql_refuses_is_one_line_naming_the_table_without_the_row(tmp_path, postgres_url, capsys):
    source, store = _sqlite_store(tmp_path / "data")
    store.create_incident(title="copied before the runs", severity="P1", source="api")
    store.create_run(id="r1", notebook="nb.ipynb", kind="audit", status="succeeded", trigger="api",
                     parameters={"secret": "incident-data"}, created_at=1.0, incident_id=3_000_000_000)
    store.close()
    code, out, err = run(["copy", "--from", source, "--to", postgres_url], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--to: the target refuses a row of the table runs (numeric value out of range)" in err
    assert "nothing was copied" in err
    assert "incident-data" not in out + err and "3000000000" not in out + err and "INSERT" not in err
    rows = table_rows(postgres_url)  # one transaction: nothing of the copy stays
    assert rows["incidents"] == rows["runs"] == [] and [key for key, _ in rows["meta"]] == ["schema_version"]
