"""Several processes (replicas) on one database: what must happen once happens once; an outage is Unavailable.

Each racer is a process of its own (multiprocessing, spawn) with its own Store and engine; a barrier
lines them up before the store is opened (concurrent migrations) and again before the race.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import random
import socket
import threading
import traceback
from collections import Counter

import pytest
import sqlalchemy as sa

from bizra_nb.errors import Conflict, Unavailable
from bizra_nb.store import MIGRATIONS, Store

SPAWN = multiprocessing.get_context("spawn")
GROUPS = 50


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """A new database on each backend: a SQLite file (shared by processes), a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bizra.sqlite3'}"
    return request.getfixturevalue("postgres_url")


def _child(task: str, url: str, barrier, results, index: int, args: tuple) -> None:
    try:
        barrier.wait(timeout=120)
        store = Store(url, busy_timeout=30.0)  # all processes open (and migrate) the store at once
        barrier.wait(timeout=120)
        results.put((index, "ok", globals()[task](store, barrier, index, *args)))
        store.close()
    except BaseException as exc:  # noqa: BLE001 - reported to the test, which fails with it
        results.put((index, "error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def in_processes(task: str, url: str, args_per_process: list[tuple]) -> list:
    """Run ``task(store, barrier, index, *args)`` in one spawned process per ``args``; their results in order."""
    barrier, results = SPAWN.Barrier(len(args_per_process)), SPAWN.Queue()
    procs = [SPAWN.Process(target=_child, args=(task, url, barrier, results, i, args))
             for i, args in enumerate(args_per_process)]
    for proc in procs:
        proc.start()
    outcomes = dict((i, (status, value)) for i, status, value in (results.get(timeout=300) for _ in procs))
    for proc in procs:
        proc.join(timeout=60)
    errors = [value for status, value in outcomes.values() if status == "error"]
    assert not errors, errors[0]
    return [outcomes[i][1] for i in range(len(procs))]


# -- the racers (run in the child processes) ------------------------------------------------------------


def _alert_payload(group: int, fingerprint: str) -> dict:
    labels = {"alertname": "HighErrorRate", "severity": "warning", "service": f"svc-{group}"}
    return {"version": "4", "groupKey": f"group-{group}", "status": "firing", "receiver": "bizra",
            "groupLabels": {"alertname": "HighErrorRate"}, "commonLabels": labels, "commonAnnotations": {},
            "alerts": [{"status": "firing", "labels": {**labels, "instance": fingerprint}, "annotations": {},
                        "startsAt": "2026-10-01T12:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                        "fingerprint": fingerprint}]}


def deliver_storm(store: Store, barrier, index: int, seed: int) -> list[tuple[int, str, str]]:
    """Each group twice with the alert every process sends, twice with this process's own alert."""
    from bizra_nb.incidents import apply_alert_group, parse_alertmanager

    deliveries = [(g, fp) for g in range(GROUPS) for fp in ("shared", f"p{index}") for _ in range(2)]
    random.Random(seed).shuffle(deliveries)
    return [(g, fp, apply_alert_group(store, parse_alertmanager(_alert_payload(g, fp))).action)
            for g, fp in deliveries]


def change_all(store: Store, barrier, index: int, status: str, ids: list[int]) -> dict[int, object]:
    from bizra_nb.incidents import change_status

    out: dict[int, object] = {}
    for incident_id in ids:
        try:
            out[incident_id] = change_status(store, incident_id, status)
        except Conflict as exc:
            out[incident_id] = f"conflict: {exc.message}"
    return out


def claim_all(store: Store, barrier, index: int, ids: list[str]) -> list[str]:
    return [run_id for run_id in ids if store.claim_run(run_id, f"replica-{index}") is not None]


def end_runs(store: Store, barrier, index: int, ids: list[str]) -> list[str]:
    """Process 0 is the runs' owner finishing them; process 1 the leader failing their owners as dead."""
    if index == 0:
        return [run_id for run_id in ids if store.finish_run(run_id, owner=f"owner-{run_id}", status="succeeded")]
    return [failed for run_id in reversed(ids)
            for failed in store.fail_runs_of_owners([f"owner-{run_id}"], "its replica stopped")]


def open_only(store: Store, barrier, index: int) -> int:
    return store.schema_version


def claim_schedule(store: Store, barrier, index: int, rounds: int) -> list[int]:
    """Each round every process sees the same last due time and tries to claim the next (a leader's race)."""
    won = []
    for due in range(1, rounds + 1):
        barrier.wait(timeout=120)
        last = store.get_meta("schedule:audit")
        if last is None or int(last) < due:
            if store.claim_meta("schedule:audit", last, str(due)):
                won.append(due)
    return won


# -- the tests --------------------------------------------------------------------------------------------


def test_a_storm_of_deliveries_from_four_processes_opens_one_incident_per_group(store_url):
    outcomes = in_processes("deliver_storm", store_url, [(seed,) for seed in range(4)])
    store = Store(store_url)
    incidents = store.list_incidents(limit=1000)
    assert len(incidents) == GROUPS
    assert sorted(i["group_key"] for i in incidents) == sorted(f"group-{g}" for g in range(GROUPS))
    actions = Counter(action for per_process in outcomes for _, _, action in per_process)
    # 50 groups × 5 alerts ("shared" + one per process): each first arrival opens or changes, exactly once
    assert actions["opened"] == GROUPS and actions["opened"] + actions["updated"] == GROUPS * 5, actions
    assert actions["unchanged"] == 4 * GROUPS * 4 - GROUPS * 5
    for incident in incidents:  # no change lost: every alert of every process is on its incident
        assert set(incident["alerts"]) == {"shared", "p0", "p1", "p2", "p3"}
        assert incident["version"] == 4 and incident["status"] == "open"


def test_acknowledge_and_resolve_at_once_never_reopens_nor_loses_a_change(store_url):
    store = Store(store_url)
    ids = [store.create_incident(title=f"t{n}", severity="P2", source="api")["id"] for n in range(40)]
    acked, resolved = in_processes("change_all", store_url, [("acknowledged", ids), ("resolved", ids)])
    conflicts = 0
    for incident_id in ids:
        final = store.get_incident(incident_id)
        assert final["status"] == "resolved" and isinstance(resolved[incident_id], dict)
        assert final["acknowledged_at"] is not None and final["acknowledged_at"] <= final["resolved_at"]
        ack = acked[incident_id]
        if isinstance(ack, dict):  # acknowledged first: its time kept by the resolution, two changes
            assert ack["status"] == "acknowledged" and final["acknowledged_at"] == ack["acknowledged_at"]
            assert final["version"] == 2
        else:  # resolved first: the late acknowledgement is refused, the resolution stands alone
            assert "is resolved" in ack and final["acknowledged_at"] == final["resolved_at"]
            assert final["version"] == 1
            conflicts += 1
    assert store.recent_violations() == []  # nothing else wrote
    print(f"{conflicts} of {len(ids)} acknowledgements came after the resolution")


def queued_runs(store: Store, count: int = 120) -> list[str]:
    """``count`` queued runs (``run000``...) in ``store``; their ids."""
    ids = [f"run{n:03d}" for n in range(count)]
    for run_id in ids:
        store.create_run(id=run_id, notebook="x.ipynb", kind="other", status="queued", trigger="api",
                         parameters={}, created_at=1.0)
    return ids


def test_two_processes_claim_each_queued_run_once(store_url):
    store = Store(store_url)
    ids = queued_runs(store)
    claims = in_processes("claim_all", store_url, [(ids,), (list(reversed(ids)),), (ids[60:] + ids[:60],)])
    everything = [run_id for claimed in claims for run_id in claimed]
    assert sorted(everything) == ids  # each run claimed, and by one process only
    for index, claimed in enumerate(claims):
        assert all(store.get_run(run_id)["owner"] == f"replica-{index}" for run_id in claimed)


def test_a_run_is_ended_once_by_its_owner_or_by_the_leader_never_both(store_url):
    store = Store(store_url)
    ids = queued_runs(store)
    for run_id in ids:
        store.claim_run(run_id, f"owner-{run_id}")
        store.request_cancel(run_id)
    finished, failed = in_processes("end_runs", store_url, [(ids,), (ids,)])
    assert sorted(finished + failed) == ids and not set(finished) & set(failed)  # each ended once
    for run_id in ids:
        run = store.get_run(run_id)
        expected = ("succeeded", None) if run_id in finished else ("failed", "its replica stopped")
        assert (run["status"], run["error"]) == expected and run["finished_at"]
        assert not store.cancel_requested(run_id)
    print(f"{len(finished)} finished by their owner, {len(failed)} failed by the leader")


def test_four_processes_migrate_a_new_database_at_once(store_url):
    versions = in_processes("open_only", store_url, [()] * 4)
    assert versions == [len(MIGRATIONS)] * 4
    store = Store(store_url)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT key, value FROM meta WHERE key = 'schema_version'")).all()
    assert rows == [("schema_version", str(len(MIGRATIONS)))]


def test_a_new_sqlite_file_opened_while_another_process_writes_it_waits_for_the_lock(tmp_path, monkeypatch):
    """Switching a new file to WAL while another connection holds the write lock fails at once in SQLite
    (no busy handler); the store retries it (the cause of a CI failure of the migration race above)."""
    import sqlite3

    import bizra_nb.store as store_module

    path = tmp_path / "bizra.sqlite3"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE elsewhere (x)")  # a rollback-journal file: the store switches it to WAL
    other.execute("BEGIN IMMEDIATE")
    pauses = []

    def pause_then_release(attempt):  # the store found the file locked: the other writer commits now
        pauses.append(attempt)
        if other.in_transaction:
            other.execute("COMMIT")

    monkeypatch.setattr(store_module, "_lock_pause", pause_then_release)
    store = Store(f"sqlite:///{path}", busy_timeout=30.0)
    assert pauses == [0] and store.schema_version == len(MIGRATIONS)
    other.close()
    with contextlib.closing(sqlite3.connect(path)) as fresh:
        assert fresh.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    store.close()


def test_a_due_schedule_is_claimed_by_one_process_only(store_url):
    rounds = 25
    won = in_processes("claim_schedule", store_url, [(rounds,)] * 3)
    winners = Counter(due for per_process in won for due in per_process)
    assert sorted(winners) == list(range(1, rounds + 1)) and set(winners.values()) == {1}, winners
    assert Store(store_url).get_meta("schedule:audit") == str(rounds)


# -- outages (PostgreSQL) -----------------------------------------------------------------------------------


def _every_call(store: Store, incident_id: int):
    return {
        "get_incident": lambda: store.get_incident(incident_id),
        "list_incidents": lambda: store.list_incidents(),
        "list_runs": lambda: store.list_runs(),
        "get_meta": lambda: store.get_meta("k"),
        "load_cmdb": lambda: store.load_cmdb(),
        "recent_violations": lambda: store.recent_violations(),
        "schema_version": lambda: store.schema_version,
        "log_violation": lambda: store.log_violation("http_error", "x"),
        "create_incident": lambda: store.create_incident(title="t", severity="P1", source="api"),
        "update_incident": lambda: store.update_incident(incident_id, severity="P0"),
        "group": lambda: store.open_or_change_group_incident("g", create={"title": "t", "severity": "P1",
                                                                          "source": "api"}, change=lambda i: None),
        "claim_run": lambda: store.claim_run("r", "a"),
        "claim_meta": lambda: store.claim_meta("k", None, "v"),
        "heartbeat": lambda: store.heartbeat_replica("a", {}),
        "fail_stale": lambda: store.fail_runs_of_stale_replicas(10, "x"),
    }


def test_postgresql_stopped_is_unavailable_then_the_same_store_works_again(postgres, postgres_url):
    url = postgres_url.replace("postgres@", "postgres:s3cret-pw@")  # trust: any password is accepted
    store = Store(url)
    incident_id = store.create_incident(title="before", severity="P2", source="api")["id"]
    postgres.stop()
    try:
        for name, call in _every_call(store, incident_id).items():
            with pytest.raises(Unavailable) as info:
                call()
            message = info.value.message
            assert "s3cret-pw" not in message, (name, message)
            assert message.startswith(f"the store {url.replace(':s3cret-pw', ':***')} is unavailable (") and \
                "Connection refused" in message and message.endswith("; retry shortly"), (name, message)
            assert info.value.field == "store_url"
        with pytest.raises(Unavailable, match="not writable"):
            store.check_writable()
        with pytest.raises(Unavailable, match="is unavailable"):
            Store(url)  # a replica starting during the outage: one clear line, no driver error
    finally:
        postgres.start()
    assert store.get_incident(incident_id)["title"] == "before"  # the pool reconnects (pre-ping)
    assert store.update_incident(incident_id, severity="P1")["version"] == 1
    store.check_writable()


def test_a_database_that_accepts_but_never_answers_fails_within_the_connect_timeout():
    """A server that hangs (a full backlog, a frozen host) must not hang the caller: the connect timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes the handshake; nobody ever reads or answers
        port = silent.getsockname()[1]
        outcome: list[BaseException] = []

        def connect() -> None:
            try:
                Store(f"postgresql+psycopg://bizra:pw@127.0.0.1:{port}/db", connect_timeout=1)
            except BaseException as exc:  # noqa: BLE001 - examined below
                outcome.append(exc)

        caller = threading.Thread(target=connect, daemon=True)
        caller.start()
        caller.join(timeout=60)  # a bound on a hang, not a timing target: it returns in about a second
        assert not caller.is_alive(), "the store hung on a database that does not answer"
    assert isinstance(outcome[0], Unavailable) and "pw" not in outcome[0].message.replace("postgresql", "")
