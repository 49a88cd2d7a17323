"""Cron parsing, due times, and the scheduler: on-time runs, late runs as silent failures, no replay at first start."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

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


def minutes_of(expr: str, hour_start: datetime) -> list[int]:
    """The minutes of one hour at which ``expr`` is due (walking back from the hour's last minute)."""
    cron, found, t = parse_cron(expr), [], hour_start.replace(minute=59)
    while (due := cron.last_due(t)) is not None and due >= hour_start:
        found.append(due.minute)
        t = due - timedelta(minutes=1)
    return sorted(found)


@pytest.mark.parametrize("expr, minutes", [
    ("5/15 * * * *", [5, 20, 35, 50]),  # a start with a step: not just 5
    ("*/20 * * * *", [0, 20, 40]),
    ("10-40/10 * * * *", [10, 20, 30, 40]),
    ("10-12 * * * *", [10, 11, 12]),
    ("0,7,59 * * * *", [0, 7, 59]),
    ("1-3,30/15 * * * *", [1, 2, 3, 30, 45]),
])
def test_minute_steps_ranges_and_lists(expr, minutes):
    assert minutes_of(expr, utc(2026, 11, 30, 12)) == minutes


def days_due(expr: str, first: datetime, last: datetime) -> list[datetime]:
    cron, found, t = parse_cron(expr), [], last
    while (due := cron.last_due(t, horizon=timedelta(days=366))) is not None and due >= first:
        found.append(due)
        t = due - timedelta(minutes=1)
    return sorted(found)


def test_day_of_week_names_and_sunday():
    # November 2026: the 1st is a Sunday
    weekdays = days_due("0 9 * * MON-FRI", utc(2026, 11, 1), utc(2026, 11, 8))
    assert [d.day for d in weekdays] == [2, 3, 4, 5, 6]
    assert [d.day for d in days_due("0 9 * * sun", utc(2026, 11, 1), utc(2026, 11, 30))] == [1, 8, 15, 22, 29]
    assert days_due("0 9 * * 0", utc(2026, 11, 1), utc(2026, 11, 30)) == \
        days_due("0 9 * * 7", utc(2026, 11, 1), utc(2026, 11, 30))
    assert [d.month for d in days_due("0 0 1 jan,JUL *", utc(2026, 1, 1), utc(2026, 12, 31))] == [1, 7]


def test_day_of_month_or_day_of_week():
    # both restricted: the 1st OR a Monday (cron's rule), not the 1st only when it is a Monday
    due = days_due("0 0 1 * MON", utc(2026, 11, 1), utc(2026, 12, 31, 23, 59))
    assert [(d.month, d.day) for d in due] == [(11, 1), (11, 2), (11, 9), (11, 16), (11, 23), (11, 30),
                                               (12, 1), (12, 7), (12, 14), (12, 21), (12, 28)]
    # one of them is "*": both must match (a Monday in November)
    assert [d.day for d in days_due("0 0 * 11 MON", utc(2026, 11, 1), utc(2026, 11, 30, 23, 59))] == [2, 9, 16, 23, 30]


def test_due_times_are_utc_whole_minutes():
    from datetime import timedelta as td
    from datetime import timezone as tz

    riyadh = tz(td(hours=3))
    due = parse_cron("0 6 * * *").last_due(datetime(2026, 11, 30, 8, 59, 30, 5, tzinfo=riyadh))
    assert due == utc(2026, 11, 29, 6) and due.tzinfo == timezone.utc
    assert parse_cron("0 6 * * *").last_due(utc(2026, 11, 30, 6, 0, 0)) == utc(2026, 11, 30, 6)  # at "now" itself
    assert parse_cron("0 0 1 1 *").last_due(utc(2026, 11, 30)) is None  # beyond the 62-day horizon


@pytest.mark.parametrize("expr, message", [
    ("* * *", "needs 5 fields"),
    ("* * * * * *", "needs 5 fields"),
    ("61 * * * *", "minute field '61'"),
    ("0 24 * * *", "hour field '24'"),
    ("a b c d e", "minute field 'a'"),
    ("*/0 * * * *", "minute field '[*]/0'"),
    ("0 0 0 * *", "day-of-month field '0'"),
    ("0 0 * 13 *", "month field '13'"),
    ("0 0 * * FUNDAY", "day-of-week field 'FUNDAY'"),
    ("40-10 * * * *", "minute field '40-10'"),
])
def test_bad_cron(expr, message):
    with pytest.raises(CronError, match=message):
        parse_cron(expr)
    with pytest.raises(InvalidSetting, match=f"audit_schedule is not a cron expression .*{message}"):
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
    from bizra_server.scheduler import Scheduler

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

    from bizra_server.scheduler import Scheduler

    caplog.set_level("INFO")
    settings = load_settings({"data_dir": tmp_path, "benchmark_schedule": ""}, environ={})
    scheduler = Scheduler.from_settings(types.SimpleNamespace(settings=settings), lambda: "")
    assert scheduler.schedules == [] and "scheduled audits are off" in caplog.text


def test_scheduled_parameters_are_accepted_by_the_real_notebooks(tmp_path):
    """What the scheduler passes is checked against each real notebook's declared parameters (names and types)."""
    import types

    from bizra_nb.runner import check_parameters, declared_parameters, resolve_notebook
    from bizra_server.scheduler import Scheduler

    settings = load_settings({"data_dir": tmp_path, "audit_schedule": "0 6 1 * *",
                              "audit_source": "data/platform.parquet", "benchmark_schedule": "0 3 * * 1"}, environ={})
    scheduler = Scheduler.from_settings(types.SimpleNamespace(settings=settings), lambda: "http://127.0.0.1:8080")
    assert {s.notebook for s in scheduler.schedules} == {"compliance_audit", "benchmark"}
    for schedule in scheduler.schedules:
        path = resolve_notebook(schedule.notebook)
        parameters = schedule.parameters(utc(2026, 11, 1, 6))
        assert set(parameters) <= set(declared_parameters(path)), schedule.name
        assert check_parameters(path, parameters) == parameters, schedule.name


def test_a_schedule_that_cannot_start_is_a_silent_failure_and_the_others_still_start(tmp_path):
    import types

    from bizra_nb.errors import InvalidInput
    from bizra_nb.score import ScoreKeeper
    from bizra_nb.store import Store
    from bizra_server.scheduler import Scheduler

    class RefusingAudits(FakeRunner):
        def create(self, notebook, parameters, **kwargs):
            if notebook == "compliance_audit":
                raise InvalidInput("source: http://prometheus:9090 does not answer", field="source")
            return super().create(notebook, parameters, **kwargs)

    settings = load_settings({"data_dir": tmp_path, "audit_schedule": "0 6 * * *",
                              "audit_source": "http://prometheus:9090", "benchmark_schedule": "0 6 * * *"},
                             environ={})
    runner = RefusingAudits()
    services = types.SimpleNamespace(settings=settings, store=Store.open(tmp_path), runner=runner,
                                     scorekeeper=ScoreKeeper())
    scheduler = Scheduler.from_settings(services, lambda: "http://127.0.0.1:1")
    scheduler.tick(utc(2026, 11, 2, 5, 0))  # first start
    started = scheduler.tick(utc(2026, 11, 2, 6, 1))
    assert [notebook for notebook, _, _ in runner.created] == ["benchmark"] and len(started) == 1
    assert services.scorekeeper.snapshot()["violations"]["silent_failure"] == 1


class StoreRunner:
    """Records runs in a real store (queued), as Runner.create does; remembers what was submitted."""

    def __init__(self, store, pause=None):
        self.store, self.pause, self.submitted = store, pause, []

    def create(self, notebook, parameters, **kwargs):
        import time
        import uuid

        run = self.store.create_run(id=uuid.uuid4().hex[:10], notebook=notebook, kind="audit", status="queued",
                                    trigger=kwargs["trigger"], parameters=parameters, created_at=time.time())
        if self.pause is not None:
            self.pause.wait(10)  # both replicas have recorded their run before either claims the due time
        return run

    def submit(self, run):
        self.submitted.append(run["id"])


def _replica_scheduler(tmp_path, runner):
    import types

    from bizra_nb.score import ScoreKeeper
    from bizra_nb.store import Store
    from bizra_server.scheduler import Scheduler

    settings = load_settings({"data_dir": tmp_path, "audit_schedule": "0 6 1 * *", "audit_source": "x.parquet",
                              "benchmark_schedule": ""}, environ={})
    store = Store.open(tmp_path)  # its own engine: like another replica on the same database
    runner.store = store if runner.store is None else runner.store
    services = types.SimpleNamespace(settings=settings, store=store, runner=runner, scorekeeper=ScoreKeeper())
    return Scheduler.from_settings(services, lambda: "http://127.0.0.1:1"), store


def test_two_replicas_ticking_one_due_time_at_once_start_one_run(tmp_path):
    import threading

    barrier = threading.Barrier(2)
    runners = [StoreRunner(None, pause=barrier), StoreRunner(None, pause=barrier)]
    schedulers = [_replica_scheduler(tmp_path, r)[0] for r in runners]
    schedulers[0].tick(utc(2026, 10, 31, 12))  # the first start: the due time is counted from here
    threads = [threading.Thread(target=s.tick, args=(utc(2026, 11, 1, 6, 1),)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(len(r.submitted) for r in runners) == 1
    runs = runners[0].store.list_runs()
    assert sorted(r["status"] for r in runs) == ["cancelled", "queued"]  # the loser's record never runs
    assert [r["id"] for r in runs if r["status"] == "queued"] == [i for r in runners for i in r.submitted]


def test_a_leader_killed_while_starting_a_run_leaves_the_due_time_to_the_next(tmp_path):
    first, second = StoreRunner(None), StoreRunner(None)
    dying, store = _replica_scheduler(tmp_path, first)
    dying.tick(utc(2026, 10, 31, 12))
    record = first.create

    def killed(*args, **kwargs):
        record(*args, **kwargs)
        raise SystemExit("killed")  # the process dies while it starts the run

    first.create = killed
    with pytest.raises(SystemExit):
        dying.tick(utc(2026, 11, 1, 6, 1))
    assert first.submitted == []
    successor, _ = _replica_scheduler(tmp_path, second)
    successor.tick(utc(2026, 11, 1, 6, 2))
    assert len(second.submitted) == 1  # the due time was still free: the next leader starts it
