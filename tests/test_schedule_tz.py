"""Schedules in a time zone: due and next fire times, daylight-saving changes, the month a scheduled audit covers."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bizra_nb.audit import audited_month, when_made
from bizra_nb.errors import InvalidInput, InvalidSetting
from bizra_nb.schedule import CronError, iso_utc, parse_cron, parse_scheduled_for, previous_month_of
from bizra_nb.settings import load_settings


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def fires(expr: str, tz: str, first: datetime, last: datetime) -> list[datetime]:
    """Every fire time in [first, last), walking forward with next_fire."""
    cron, found, t = parse_cron(expr, tz), [], first - timedelta(minutes=1)
    while (t := cron.next_fire(t)) is not None and t < last:
        found.append(t)
    return found


def test_utc_is_the_default_and_a_zone_moves_the_due_time():
    assert parse_cron("0 6 1 * *").tz == "UTC"
    assert parse_cron("0 6 1 * *").last_due(utc(2026, 11, 30)) == utc(2026, 11, 1, 6)
    # 06:00 in Berlin is 05:00 UTC in November (CET), 04:00 UTC in July (CEST); in New York 11:00 UTC (EST)
    assert parse_cron("0 6 1 * *", "Europe/Berlin").last_due(utc(2026, 11, 30)) == utc(2026, 11, 1, 5)
    assert parse_cron("0 6 1 * *", "Europe/Berlin").last_due(utc(2026, 7, 30)) == utc(2026, 7, 1, 4)
    assert parse_cron("0 6 1 * *", "America/New_York").next_fire(utc(2026, 11, 30)) == utc(2026, 12, 1, 11)
    due = parse_cron("0 6 1 * *", "Asia/Riyadh").last_due(utc(2026, 11, 30))
    assert due == utc(2026, 11, 1, 3) and due.tzinfo == timezone.utc  # due times are UTC


def test_next_fire_is_strictly_after_now_and_last_due_at_or_before():
    cron = parse_cron("0 6 * * *", "Europe/Berlin")  # 05:00 UTC in winter
    assert cron.next_fire(utc(2026, 11, 30, 4, 59, 59)) == utc(2026, 11, 30, 5)
    assert cron.next_fire(utc(2026, 11, 30, 5)) == utc(2026, 12, 1, 5)  # at the fire time: the next one
    assert cron.next_fire(utc(2026, 11, 30, 5, 0, 30)) == utc(2026, 12, 1, 5)
    assert cron.last_due(utc(2026, 11, 30, 5)) == utc(2026, 11, 30, 5)
    assert cron.last_due(utc(2026, 11, 30, 4, 59)) == utc(2026, 11, 29, 5)
    assert cron.matches(utc(2026, 11, 30, 5, 0, 42)) and not cron.matches(utc(2026, 11, 30, 6))


def test_a_time_skipped_by_spring_forward_runs_once_right_after_the_gap():
    # Europe/Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day
    days = fires("30 2 * * *", "Europe/Berlin", utc(2026, 3, 27), utc(2026, 4, 1))
    assert days == [utc(2026, 3, 27, 1, 30), utc(2026, 3, 28, 1, 30),
                    utc(2026, 3, 29, 1, 0),  # 03:00 CEST: the first minute after the gap, not skipped
                    utc(2026, 3, 30, 0, 30), utc(2026, 3, 31, 0, 30)]
    assert parse_cron("30 2 * * *", "Europe/Berlin").last_due(utc(2026, 3, 29, 12)) == utc(2026, 3, 29, 1)


def test_a_time_repeated_by_fall_back_runs_once_at_its_first_occurrence():
    # America/New_York, 2026-11-01: 02:00 EDT becomes 01:00 EST; 01:30 happens twice (05:30 and 06:30 UTC)
    days = fires("30 1 * * *", "America/New_York", utc(2026, 10, 31), utc(2026, 11, 3))
    assert days == [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]
    cron = parse_cron("30 1 * * *", "America/New_York")
    # from inside the repeated hour (01:10 EST = 06:10 UTC): the 01:30 EDT run is past, the next is tomorrow
    assert cron.last_due(utc(2026, 11, 1, 6, 10)) == utc(2026, 11, 1, 5, 30)
    assert cron.next_fire(utc(2026, 11, 1, 6, 10)) == utc(2026, 11, 2, 6, 30)
    assert not cron.matches(utc(2026, 11, 1, 6, 30))  # 01:30 EST: not a second run


def test_expressions_with_a_wildcard_hour_fire_on_real_minutes_through_both_changes():
    spring = fires("*/30 * * * *", "Europe/Berlin", utc(2026, 3, 29), utc(2026, 3, 29, 3))
    assert spring == [utc(2026, 3, 29, h, m) for h in range(3) for m in (0, 30)]  # no gap in real time
    fall = fires("*/30 * * * *", "Europe/Berlin", utc(2026, 10, 24, 23), utc(2026, 10, 25, 2))
    assert fall == [utc(2026, 10, 24, 23), utc(2026, 10, 24, 23, 30)] + \
        [utc(2026, 10, 25, h, m) for h in range(2) for m in (0, 30)]  # both 02:xx hours


@pytest.mark.parametrize("expr, tz, first", [
    ("30 1 * * *", "America/New_York", utc(2026, 10, 31, 12)),
    ("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12)),
    ("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12)),
    ("*/20 1-3 * * *", "Europe/Berlin", utc(2026, 10, 24, 12)),
    ("15 0 * * *", "Australia/Lord_Howe", utc(2026, 4, 4)),  # a 30-minute change
])
def test_last_due_and_next_fire_agree_with_the_fire_times_at_every_minute_of_a_change(expr, tz, first):
    cron = parse_cron(expr, tz)
    every = fires(expr, tz, first - timedelta(days=2), first + timedelta(days=3))
    t = first
    while t < first + timedelta(hours=24):
        assert cron.last_due(t, horizon=timedelta(days=3)) == max(f for f in every if f <= t), t
        assert cron.next_fire(t) == min(f for f in every if f > t), t
        t += timedelta(minutes=10)


def test_previous_month_in_a_zone():
    # 2026-10-31 23:30 UTC is already November 1st in Berlin: its previous month is October, not September
    assert previous_month_of(utc(2026, 10, 31, 23, 30)) == "2026-09"
    assert previous_month_of(utc(2026, 10, 31, 23, 30), "Europe/Berlin") == "2026-10"
    assert previous_month_of(utc(2026, 1, 1, 3), "America/New_York") == "2025-11"  # still Dec 31 there


def test_time_zone_settings():
    settings = load_settings({"audit_schedule_tz": "Europe/Berlin"}, environ={"BIZRA_BENCHMARK_SCHEDULE_TZ": "Asia/Riyadh"})
    assert (settings.audit_schedule_tz, settings.benchmark_schedule_tz) == ("Europe/Berlin", "Asia/Riyadh")
    assert load_settings({}, environ={}).audit_schedule_tz == "UTC"
    for bad in ("Mars/Olympus", "", "../../etc/passwd", "/etc/localtime", "Europe/Berlin\x00"):
        with pytest.raises(InvalidSetting, match="audit_schedule_tz must be an IANA time zone name") as info:
            load_settings({"audit_schedule_tz": bad}, environ={})
        assert info.value.field == "audit_schedule_tz"
    with pytest.raises(CronError, match="not an IANA time zone"):
        parse_cron("0 6 * * *", "Nowhere/Special")


def test_scheduled_for_is_checked_and_names_the_parameter():
    assert parse_scheduled_for("") is None
    assert parse_scheduled_for("2026-11-01T06:00:00+00:00") == utc(2026, 11, 1, 6)
    assert parse_scheduled_for("2026-11-01T07:00:00+01:00") == utc(2026, 11, 1, 6)
    assert parse_scheduled_for("2026-11-01T06:00:00Z") == utc(2026, 11, 1, 6)
    assert iso_utc(utc(2026, 11, 1, 6)) == "2026-11-01T06:00:00+00:00"
    for bad in ("2026-11-01T06:00:00", "yesterday", "2026-13-01T00:00:00Z", "x" * 200, 5):
        with pytest.raises(InvalidInput) as info:
            parse_scheduled_for(bad)
        assert info.value.field == "scheduled_for" and len(info.value.message) < 200


def test_the_audited_month():
    now = utc(2026, 12, 15)
    assert audited_month("2026-07", scheduled_for="2026-11-01T06:00:00+00:00", now=now) == "2026-07"  # given: kept
    assert audited_month("", scheduled_for="2026-11-01T06:00:00+00:00", now=now) == "2026-10"  # late: still October
    assert audited_month("", now=now) == "2026-11"  # not scheduled: the month before now
    # scheduled 00:30 on Nov 1st in Berlin (23:30 UTC on Oct 31st): October, in the schedule's zone
    assert audited_month("", scheduled_for="2026-10-31T23:30:00+00:00", tz="Europe/Berlin", now=now) == "2026-10"
    assert audited_month("", scheduled_for="2026-10-31T23:30:00+00:00", tz="UTC", now=now) == "2026-09"
    for kwargs, field in [({"month": "2026-7"}, "month"), ({"scheduled_for": "soon"}, "scheduled_for"),
                          ({"month": "2026-07", "scheduled_for": "soon"}, "scheduled_for"),
                          ({"scheduled_for": "2026-11-01T06:00:00Z", "tz": "Nowhere/X"}, "tz")]:
        with pytest.raises(InvalidInput) as info:
            audited_month(**{"month": "", **kwargs}, now=now)
        assert info.value.field == field


def test_when_made_shows_the_scheduled_time_in_utc_and_in_the_zone():
    import pandas as pd

    now = pd.Timestamp("2026-11-03T09:15Z")
    assert when_made("", now=now) == "Made 2026-11-03 09:15 UTC."
    assert when_made("2026-11-01T05:00:00+00:00", "Europe/Berlin", now=now) == \
        "Made 2026-11-03 09:15 UTC, scheduled for 2026-11-01 05:00 UTC (2026-11-01 06:00 Europe/Berlin)."


def test_the_audit_notebook_given_only_scheduled_for_audits_the_month_before_it_in_the_zone(runner, tmp_path):
    """Real papermill: no month, a scheduled_for just after midnight of October 1st in Berlin (still September 30th
    in UTC): the notebook audits September, the only month with data (August, the UTC reading, would fail)."""
    from pathlib import Path

    from bizra_nb.dataset import write_dataset
    from bizra_nb.fleet import platform_month
    from bizra_nb.store import Store

    data = tmp_path / "audit"
    write_dataset(platform_month("2026-09"), data / "platform.parquet")
    Store.open(data)
    common = {"source": str(data / "platform.parquet"), "data_dir": str(data)}
    run = runner.run("compliance_audit", {**common, "scheduled_for": "2026-09-30T22:30:00+00:00",
                                          "tz": "Europe/Berlin"})
    assert run["summary"]["month"] == "2026-09"
    assert run["parameters"]["month"] == "2026-09"  # settled before it ran: the title and the folder name it
    assert Path(run["folder"]).name.startswith("2026-09-")
    html = (Path(run["folder"]) / "report.html").read_text()
    assert "scheduled for 2026-09-30 22:30 UTC (2026-10-01 00:30 Europe/Berlin)" in html
    assert "Compliance audit — September 2026" in html
    before = len(runner.store.list_runs())
    for bad, field in (("last tuesday", "scheduled_for"), ("2026-09-30T22:30:00", "scheduled_for")):
        with pytest.raises(InvalidInput) as info:  # refused before anything is recorded or run
            runner.run("compliance_audit", {**common, "scheduled_for": bad})
        assert info.value.field == field and "ISO-8601" in info.value.message
    with pytest.raises(InvalidInput) as info:
        runner.run("compliance_audit", {**common, "scheduled_for": "2026-09-30T22:30:00Z", "tz": "Mars/Olympus"})
    assert info.value.field == "tz"
    assert len(runner.store.list_runs()) == before


def test_the_benchmark_summary_says_when_it_was_scheduled_for():
    import pandas as pd

    from bizra_nb.summaries import benchmark_summary

    verdicts = pd.DataFrame({"pass": [None]}, index=["p99_ms"])
    stats = {"requests": 0, "target_rate_rps": 10.0}
    assert benchmark_summary(stats, verdicts, "http://x").endswith(" UTC.")
    text = benchmark_summary(stats, verdicts, "http://x", scheduled_for="2026-11-02T04:00:00+01:00")
    assert text.endswith(" UTC, scheduled for 2026-11-02 03:00 UTC.")
    with pytest.raises(InvalidInput):
        benchmark_summary(stats, verdicts, "http://x", scheduled_for="<b>soon</b>")
