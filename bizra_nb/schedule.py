"""Cron schedules (five fields, UTC): when a scheduled run is due, and the previous-month rule of the audit.

Fields: minute hour day-of-month month day-of-week, each ``*``, a number, a
range ``a-b``, a list ``a,b`` or a step ``*/n`` / ``a-b/n``; day-of-week 0-6
with 0 = Sunday (7 is Sunday too). As in cron, when both day fields are
restricted a day matches either.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))


class CronError(ValueError):
    pass


@dataclass(frozen=True)
class Cron:
    minutes: frozenset
    hours: frozenset
    days: frozenset
    months: frozenset
    weekdays: frozenset
    any_day: bool
    any_weekday: bool

    def matches(self, t: datetime) -> bool:
        if t.minute not in self.minutes or t.hour not in self.hours or t.month not in self.months:
            return False
        day_ok, weekday_ok = t.day in self.days, (t.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day_ok and weekday_ok
        return day_ok or weekday_ok

    def last_due(self, now: datetime, *, horizon: timedelta = timedelta(days=62)) -> datetime | None:
        """The latest matching minute at or before ``now`` (within ``horizon``)."""
        t = now.astimezone(timezone.utc).replace(second=0, microsecond=0)
        stop = t - horizon
        while t >= stop:
            if t.month in self.months and (self.any_day or t.day in self.days or not self.any_weekday):
                if t.hour in self.hours:
                    if self.matches(t):
                        return t
                    t -= timedelta(minutes=1)
                    continue
                t = t.replace(minute=0) - timedelta(minutes=1)
                continue
            t = t.replace(hour=0, minute=0) - timedelta(minutes=1)
        return None


def _field(text: str, name: str, low: int, high: int) -> tuple[frozenset, bool]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if body == "*":
                start, end = low, high
            elif "-" in body:
                start, end = (int(x) for x in body.split("-", 1))
            else:
                start = end = int(body)
        except ValueError:
            raise CronError(f"{name}: {part!r} is not a number, range, list or step") from None
        if step < 1 or start < low or end > high or start > end:
            raise CronError(f"{name}: {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values), text == "*"


def parse_cron(expression: str) -> Cron:
    parts = expression.split()
    if len(parts) != 5:
        raise CronError(f"{expression!r} needs 5 fields (minute hour day-of-month month day-of-week)")
    parsed = [_field(p, *spec) for p, spec in zip(parts, FIELDS)]
    weekdays = frozenset(d % 7 for d in parsed[4][0])
    return Cron(parsed[0][0], parsed[1][0], parsed[2][0], parsed[3][0], weekdays, parsed[2][1], parsed[4][1])


def previous_month_of(t: datetime) -> str:
    first = t.astimezone(timezone.utc).replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")
