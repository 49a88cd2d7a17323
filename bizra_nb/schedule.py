"""Cron schedules (five fields, in a time zone): when a scheduled run is due, and the previous-month rule of the audit.

Parsing and matching are the maintained ``cronsim`` library's (the cron of
healthchecks.io): fields minute hour day-of-month month day-of-week, each
``*``, a number, a range ``a-b``, a list ``a,b`` or a step ``*/n``, ``a/n``
(``5/15`` is 5, 20, 35, 50), ``a-b/n``; month and day names (``JAN``,
``MON-FRI``, any case); day-of-week 0-7 with 0 and 7 = Sunday. As in Vixie and
Debian cron, when neither day field starts with ``*`` a day matches either
(``0 0 1 * MON``: the 1st and every Monday).

A schedule is evaluated in its time zone (an IANA name, ``UTC`` by default);
due times are returned in UTC. On a daylight-saving change, cronsim's rules
(those of Debian cron) for an expression whose minute and hour fields are
fixed (neither starts with ``*``): a time the clocks skip runs once, at the
first minute after the gap (``30 2 * * *`` in Europe/Berlin on the
spring-forward day runs at 03:00 CEST); a time the clocks repeat runs once, at
its first occurrence (``30 1 * * *`` in America/New_York on the fall-back day
runs at 01:30 EDT, not again at 01:30 EST). An expression whose minute or hour
starts with ``*`` (``*/30 * * * *``, ``*/10 1-3 * * *``) fires at each real
minute it names: in both repeated hours, none in the skipped one.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from bizra_nb.errors import InvalidInput

FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")


class CronError(ValueError):
    """An expression that is not a five-field cron expression; the message names the field at fault."""


@dataclass(frozen=True)
class Cron:
    """A parsed five-field cron expression, evaluated in the time zone ``tz`` (an IANA name)."""

    expression: str
    tz: str = "UTC"

    @property
    def zone(self) -> ZoneInfo:
        return parse_zone(self.tz)

    def matches(self, t: datetime) -> bool:
        """Whether the minute of ``t`` is one of the expression's (in the schedule's zone)."""
        minute = t.astimezone(timezone.utc).replace(second=0, microsecond=0)
        return self.last_due(minute, horizon=timedelta(0)) == minute

    def last_due(self, now: datetime, *, horizon: timedelta = timedelta(days=62)) -> datetime | None:
        """The latest matching minute at or before ``now``; None when there is none within ``horizon``.

        Parameters
        ----------
        now
            An aware datetime (a naive one is taken as local time, as :meth:`datetime.astimezone` does).
        horizon
            How far back to look.

        Returns
        -------
        datetime or None
            A UTC datetime on a whole minute.
        """
        minute = now.astimezone(timezone.utc).replace(second=0, microsecond=0)
        # cronsim steps back one second before it searches: start one second after the minute to include it
        start = (minute + timedelta(seconds=1)).astimezone(self.zone)
        due = next(CronSim(self.expression, start, reverse=True), None)
        if due is None:
            return None
        due = due.astimezone(timezone.utc)
        # searching back from the repeated hour of a fall-back day (01:10 EST), cronsim skips that hour's first
        # occurrence (01:30 EDT, 40 real minutes earlier): step forward over what it skipped
        for _ in range(120):
            later = self.next_fire(due)
            if later is None or later > minute:
                break
            due = later
        return due if due >= minute - horizon else None

    def next_fire(self, now: datetime) -> datetime | None:
        """The first matching minute after ``now`` (strictly: ``last_due(now) <= now < next_fire(now)``).

        Parameters
        ----------
        now
            An aware datetime.

        Returns
        -------
        datetime or None
            A UTC datetime on a whole minute; None for an expression that never matches again.
        """
        minute = now.astimezone(timezone.utc).replace(second=0, microsecond=0)
        # from the repeated hour of a fall-back day (01:10 EST) cronsim may answer that hour's first
        # occurrence (01:30 EDT, already past): skip what is not after now
        for _, fire in zip(range(120), CronSim(self.expression, minute.astimezone(self.zone))):
            if fire.astimezone(timezone.utc) > minute:
                return fire.astimezone(timezone.utc)
        return None


@lru_cache(maxsize=64)
def parse_zone(name: str) -> ZoneInfo:
    """The time zone of an IANA name (``UTC``, ``Europe/Berlin``).

    Raises
    ------
    CronError
        When it is not a time zone name the system's tz database knows.
    """
    if not isinstance(name, str) or not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise CronError(f"{str(name)[:64]!r} is not an IANA time zone name (e.g. UTC, Europe/Berlin)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(f"{name!r} is not an IANA time zone name (e.g. UTC, Europe/Berlin)") from None


def parse_cron(expression: str, tz: str = "UTC") -> Cron:
    """Validate a five-field cron expression, evaluated in the time zone ``tz`` (IANA name; default UTC).

    Raises
    ------
    CronError
        When it does not have five fields, or a field is not a valid value, range, list, step or name,
        or ``tz`` is not a time zone name.
    """
    parse_zone(tz)
    parts = expression.split() if isinstance(expression, str) else []
    if len(parts) != 5:
        raise CronError(f"{expression!r} needs 5 fields (minute hour day-of-month month day-of-week), "
                        f"got {len(parts)}")
    try:
        CronSim(expression, datetime(2000, 1, 1, tzinfo=timezone.utc))
    except CronSimError as exc:
        raise CronError(_explain(str(exc), parts)) from None
    except (ValueError, IndexError, TypeError):  # a malformed field the library did not anticipate
        raise CronError(f"{expression!r} is not a valid cron expression") from None
    return Cron(" ".join(parts), tz)


def _explain(message: str, parts: list[str]) -> str:
    """``Bad minute`` (the library's words) → ``minute field '61' is not valid ...``."""
    for name, part in zip(FIELD_NAMES, parts):
        if message.lower() == f"bad {name}":
            return (f"{name} field {part!r} is not a valid value, range (a-b), list (a,b) or step (*/n, a/n, a-b/n)"
                    + (" (names: SUN-SAT)" if name == "day-of-week" else " (names: JAN-DEC)" if name == "month" else ""))
    return f"{' '.join(parts)!r}: {message}"


def previous_month_of(t: datetime, tz: str = "UTC") -> str:
    """``YYYY-MM`` of the month before ``t``'s in the time zone ``tz``: the month a scheduled audit covers."""
    first = t.astimezone(parse_zone(tz)).replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


def iso_utc(t: datetime) -> str:
    """``2026-11-01T06:00:00+00:00``: a time as the ``scheduled_for`` parameter carries it."""
    return t.astimezone(timezone.utc).isoformat()


def parse_scheduled_for(value: str, *, field: str = "scheduled_for") -> datetime | None:
    """The fire time a run was scheduled for (an ISO-8601 time with its offset), or None for ``""``.

    Raises
    ------
    InvalidInput
        Naming ``field``, when the value is not an ISO-8601 time with an offset (``Z`` or ``+00:00``).
    """
    if value is None or value == "":
        return None
    problem = (f"{field} must be an ISO-8601 time with its offset, e.g. 2026-11-01T06:00:00+00:00 "
               f"(or empty), got {str(value)[:40]!r}")
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidInput(problem, field=field)
    try:
        t = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(problem, field=field) from None
    if t.tzinfo is None or t.utcoffset() is None:
        raise InvalidInput(problem, field=field)
    return t.astimezone(timezone.utc)
