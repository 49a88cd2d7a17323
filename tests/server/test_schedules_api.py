"""GET /schedules and POST /schedules/{name}/run on a real server; the scheduler's scheduled_for and time zones."""
from __future__ import annotations

import types
from datetime import datetime, timezone

import httpx
import pytest

from bizra_nb.schedule import iso_utc, parse_cron, previous_month_of
from bizra_nb.settings import load_settings
from tests.conftest import wait_until


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@pytest.fixture
def sched_server(make_server, settings):
    (settings.data_dir / "audit").mkdir(parents=True)
    (settings.data_dir / "audit" / "platform.parquet").write_bytes(b"")  # it exists: the run's pre-flight passes
    return make_server(audit_schedule="0 6 1 * *", audit_schedule_tz="Europe/Berlin",
                       audit_source="audit/platform.parquet", benchmark_schedule="0 3 * * 1",
                       schedule_check_interval=3600)  # one tick at start (the baseline), then none in the test


def test_the_schedules_with_zone_next_fire_last_due_and_a_run_now(sched_server, auth):
    http = httpx.Client(base_url=sched_server.url, timeout=30)
    audit_cron = parse_cron("0 6 1 * *", "Europe/Berlin")
    before = datetime.now(timezone.utc)
    # the first tick at start records the last due time (nothing replayed): last_due shows it
    listed = wait_until(lambda: (r := http.get("/schedules").json())["schedules"][0]["last_due"] and r, timeout=20)
    after = datetime.now(timezone.utc)
    assert [s["name"] for s in listed["schedules"]] == ["audit", "benchmark"]
    audit, benchmark = listed["schedules"]
    assert {k: audit[k] for k in ("notebook", "cron", "tz", "enabled", "reason")} == \
        {"notebook": "compliance_audit", "cron": "0 6 1 * *", "tz": "Europe/Berlin", "enabled": True, "reason": None}
    assert audit["next_fire"] in {iso_utc(audit_cron.next_fire(t)) for t in (before, after)}
    local = datetime.fromisoformat(audit["next_fire_local"])
    assert local == datetime.fromisoformat(audit["next_fire"]) and (local.day, local.hour, local.minute) == (1, 6, 0)
    assert local.utcoffset().total_seconds() in (3600, 7200)  # CET or CEST, not UTC
    assert audit["next_fire_at"] == datetime.fromisoformat(audit["next_fire"]).timestamp()
    assert audit["last_due"] in {iso_utc(audit_cron.last_due(t)) for t in (before, after)}
    assert audit["last_run"] is None and benchmark["last_run"] is None
    assert benchmark["tz"] == "UTC" and benchmark["next_fire"].endswith("T03:00:00+00:00")

    assert http.post("/schedules/audit/run").status_code == 401
    assert http.post("/schedules/audit/run").json()["error"]["code"] == "unauthorized"
    before = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    response = http.post("/schedules/audit/run", headers=auth)
    after = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    assert response.status_code == 201, response.text
    run = response.json()
    assert response.headers["Location"] == f"/runs/{run['id']}"
    assert run["trigger"] == "manual:audit" and run["notebook"] == "compliance_audit"
    params = run["parameters"]
    due = datetime.fromisoformat(params["scheduled_for"])
    assert due in (before, after) and params["scheduled_for"].endswith("+00:00")  # now, down to the minute
    assert params["month"] == previous_month_of(due, "Europe/Berlin") and params["tz"] == "Europe/Berlin"
    assert params["source"] == "audit/platform.parquet"

    listed = http.get("/schedules").json()["schedules"]
    assert listed[0]["last_run"]["id"] == run["id"] and listed[0]["last_run"]["trigger"] == "manual:audit"
    assert listed[0]["last_run"]["scheduled_for"] == params["scheduled_for"]
    assert listed[1]["last_run"] is None  # the audit's run is not the benchmark's
    assert listed[0]["last_due"] == audit["last_due"]  # a run now leaves the schedule's due times alone
    assert sched_server.services.scorekeeper.total_violations["silent_failure"] == 0  # and is never late
    http.post(f"/runs/{run['id']}/cancel", headers=auth)  # its notebook is not the point here

    missing = http.post("/schedules/nope/run", headers=auth)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert "audit, benchmark" in missing.json()["error"]["message"]


def test_schedules_that_are_off_are_listed_with_the_reason_and_cannot_run(make_server, server, auth):
    http = httpx.Client(base_url=server.url, timeout=30)  # the test settings: both crons empty
    listed = http.get("/schedules").json()["schedules"]
    assert [(s["name"], s["enabled"], s["cron"], s["next_fire"]) for s in listed] == \
        [("audit", False, "", None), ("benchmark", False, "", None)]
    assert "--audit-schedule is empty" in listed[0]["reason"] and "--benchmark-schedule" in listed[1]["reason"]
    refused = http.post("/schedules/benchmark/run", headers={**auth})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "schedule_off"
    assert "--benchmark-schedule is empty" in refused.json()["error"]["message"]

    no_source = make_server(audit_schedule="0 6 1 * *")  # a cron, but no --audit-source nor --prometheus-url
    http = httpx.Client(base_url=no_source.url, timeout=30)
    audit = http.get("/schedules").json()["schedules"][0]
    assert audit["enabled"] is False and audit["cron"] == "0 6 1 * *" and audit["next_fire"] is None
    assert "--audit-source" in audit["reason"]
    refused = http.post("/schedules/audit/run", headers=auth)
    assert refused.status_code == 409 and "--audit-source" in refused.json()["error"]["message"]
    assert no_source.services.store.list_runs() == []


class FakeRunner:
    def __init__(self):
        self.created, self.submitted = [], []

    def create(self, notebook, parameters, **kwargs):
        self.created.append((notebook, parameters, kwargs))
        return {"id": str(len(self.created))}

    def submit(self, run):
        self.submitted.append(run["id"])


def _scheduler(tmp_path, **overrides):
    from bizra_nb.score import ScoreKeeper
    from bizra_nb.store import Store
    from bizra_server.scheduler import Scheduler

    settings = load_settings({"data_dir": tmp_path, "audit_schedule": "0 0 1 * *", "audit_source": "x.parquet",
                              "benchmark_schedule": "0 3 * * 1", **overrides}, environ={})
    services = types.SimpleNamespace(settings=settings, store=Store.open(tmp_path), runner=FakeRunner(),
                                     scorekeeper=ScoreKeeper(),
                                     leadership=types.SimpleNamespace(is_leader=False))  # not the leader
    return Scheduler.from_settings(services, lambda: "http://127.0.0.1:1"), services


def test_a_scheduled_run_gets_its_due_time_and_the_month_in_the_schedules_zone(tmp_path):
    scheduler, services = _scheduler(tmp_path, audit_schedule_tz="Europe/Berlin")
    scheduler.tick(utc(2026, 10, 31, 12))  # first start
    scheduler.tick(utc(2026, 10, 31, 23, 1))  # midnight of Nov 1st in Berlin (CET) is 23:00 UTC on Oct 31st
    notebook, params, kwargs = services.runner.created[0]
    assert notebook == "compliance_audit" and kwargs["trigger"] == "schedule:audit"
    assert params["scheduled_for"] == "2026-10-31T23:00:00+00:00"
    assert params["month"] == "2026-10" and params["tz"] == "Europe/Berlin"  # October, though October 31st in UTC
    scheduler.tick(utc(2026, 11, 2, 3, 0, 30))
    notebook, params, kwargs = services.runner.created[1]
    assert notebook == "benchmark" and params["scheduled_for"] == "2026-11-02T03:00:00+00:00"


def test_run_now_works_on_any_replica_and_counts_nothing(tmp_path):
    scheduler, services = _scheduler(tmp_path)
    scheduler.tick(utc(2026, 11, 15))  # the baseline
    key = scheduler.key(scheduler.find("audit"))
    last = services.store.get_meta(key)
    run = scheduler.run_now("audit", utc(2026, 12, 1, 0, 42, 59, 999))
    notebook, params, kwargs = services.runner.created[-1]
    assert services.runner.submitted == [run["id"]] and kwargs["trigger"] == "manual:audit"
    assert params["scheduled_for"] == "2026-12-01T00:42:00+00:00" and params["month"] == "2026-11"
    assert services.store.get_meta(key) == last  # the schedule's own next run still happens
    snapshot = services.scorekeeper.snapshot()
    assert snapshot["violations"]["silent_failure"] == 0 and snapshot["events"] == 0
    from bizra_nb.errors import NotFound

    with pytest.raises(NotFound):
        scheduler.run_now("../audit")


def test_run_now_answers_the_schedules_unfinished_run_instead_of_a_second(tmp_path):
    """A double click on "Run now", or "Run now" while the scheduled run still runs: one run, answered twice."""
    scheduler, services = _scheduler(tmp_path)
    store = services.store
    store.create_run(id="sched00001", notebook="/n/compliance_audit.ipynb", kind="audit", status="running",
                     trigger="schedule:audit", parameters={}, created_at=1.0)
    store.create_run(id="other00001", notebook="/n/benchmark.ipynb", kind="benchmark", status="queued",
                     trigger="manual:benchmark", parameters={}, created_at=2.0)
    run = scheduler.run_now("audit", utc(2026, 12, 1))
    assert run["id"] == "sched00001" and run["existing"] and services.runner.created == []
    store.finish_run("sched00001", owner=None, status="succeeded", finished_at=3.0)
    run = scheduler.run_now("audit", utc(2026, 12, 1))  # finished: a new one starts
    assert run == {"id": "1"} and len(services.runner.created) == 1
    assert scheduler.run_now("benchmark", utc(2026, 12, 1))["id"] == "other00001"  # its own schedule's only


def test_run_now_twice_on_a_real_server_starts_one_run(sched_server, auth, settings):
    http = httpx.Client(base_url=sched_server.url, timeout=30)
    sched_server.services.store.create_run(id="manual0001", notebook="/n/compliance_audit.ipynb", kind="audit",
                                           status="queued", trigger="manual:audit", parameters={}, created_at=1.0)
    again = http.post("/schedules/audit/run", headers=auth)
    assert again.status_code == 200 and again.json()["id"] == "manual0001" and again.json()["deduplicated"]
    assert http.get("/runs", params={"notebook": "compliance_audit"}).json()["count"] == 1
