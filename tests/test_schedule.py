"""Cron parsing, due times, and the scheduler: on-time runs, late runs as silent failures, no replay at first start."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bizra_nb.schedule import CronError, parse_cron, previous_month_of
from bizra_nb.settings import load_settings
from bizra_nb.errors import InvalidSetting


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@pytest.mark.parametrize("expr, now, due", [
    ("0 6 1 * *", utc(2026, 11, 30, 12), utc(2026, 11, 1, 6)),
    ("0 6 1 * *", utc(2026, 12, 1, 5, 59), utc(2026, 11, 1, 6)),
    ("0 3 * * 1", utc(2026, 11, 30, 12), utc(2026, 11, 30, 3)),
    ("*/15 9-17 * * 1-5", utc(2026, 11, 28, 12), utc(2026, 11, 27, 17, 45)),
    ("30 2 * * 7", utc(2026, 11, 30), utc(2026, 11, 29, 2, 30)),
])
def test_last_due(expr, now, due):
    assert parse_cron(expr).last_due(now) == due


@pytest.mark.parametrize("expr", ["* * *", "61 * * * *", "0 24 * * *", "a b c d e", "*/0 * * * *"])
def test_bad_cron(expr):
    with pytest.raises(CronError):
        parse_cron(expr)
    with pytest.raises(InvalidSetting, match="audit_schedule is not a cron expression"):
        load_settings({"audit_schedule": expr}, environ={})


def test_previous_month():
    assert previous_month_of(utc(2026, 11, 1, 6)) == "2026-10"
    assert previous_month_of(utc(2026, 1, 1, 6)) == "2025-12"


class FakeRunner:
    def __init__(self):
        self.created = []

    def create(self, notebook, parameters, **kwargs):
        self.created.append((notebook, parameters, kwargs))
        return {"id": str(len(self.created))}

    def submit(self, run):
        pass


def test_scheduler_runs_on_time_and_scores_a_late_start(tmp_path):
    import types

    from bizra_nb.score import ScoreKeeper
    from bizra_nb.store import Store
    from server.scheduler import Scheduler

    settings = load_settings({"data_dir": tmp_path, "audit_schedule": "0 6 1 * *",
                              "audit_source": "data/platform.parquet", "benchmark_schedule": "0 3 * * 1"}, environ={})
    fake = FakeRunner()
    services = types.SimpleNamespace(settings=settings, store=Store.open(tmp_path), runner=fake,
                                     scorekeeper=ScoreKeeper())
    scheduler = Scheduler.from_settings(services, lambda: "http://127.0.0.1:1")
    assert [s.name for s in scheduler.schedules] == ["audit", "benchmark"]
    assert scheduler.tick(utc(2026, 10, 31, 12)) == []  # first start: nothing replayed
    scheduler.tick(utc(2026, 11, 1, 6, 2))  # two minutes after the audit's time: on time
    notebook, params, kwargs = fake.created[0]
    assert notebook == "compliance_audit" and params["month"] == "2026-10" and kwargs["trigger"] == "schedule:audit"
    assert services.scorekeeper.snapshot()["violations"]["silent_failure"] == 0
    scheduler.tick(utc(2026, 11, 1, 6, 3))  # the same due time does not run twice
    assert len(fake.created) == 1
    scheduler.tick(utc(2026, 11, 2, 9, 0))  # Monday 03:00 passed six hours ago: late
    assert fake.created[-1][0] == "benchmark" and fake.created[-1][1]["target_url"] == "http://127.0.0.1:1"
    assert services.scorekeeper.snapshot()["violations"]["silent_failure"] == 1


def test_an_audit_schedule_without_a_source_is_off(tmp_path, caplog):
    import types

    from server.scheduler import Scheduler

    caplog.set_level("INFO")
    settings = load_settings({"data_dir": tmp_path, "benchmark_schedule": ""}, environ={})
    scheduler = Scheduler.from_settings(types.SimpleNamespace(settings=settings), lambda: "")
    assert scheduler.schedules == [] and "scheduled audits are off" in caplog.text
