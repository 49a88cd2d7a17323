"""Cron schedules (five fields, UTC): when a scheduled run is due, and the previous-month rule of the audit.

Parsing and matching are the maintained ``cronsim`` library's (the cron of
healthchecks.io): fields minute hour day-of-month month day-of-week, each
``*``, a number, a range ``a-b``, a list ``a,b`` or a step ``*/n``, ``a/n``
(``5/15`` is 5, 20, 35, 50), ``a-b/n``; month and day names (``JAN``,
``MON-FRI``, any case); day-of-week 0-7 with 0 and 7 = Sunday. As in Vixie and
Debian cron, when neither day field starts with ``*`` a day matches either
(``0 0 1 * MON``: the 1st and every Monday).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cronsim import CronSim, CronSimError

FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")


class CronError(ValueError):
    """An expression that is not a five-field cron expression; the message names the field at fault."""


@dataclass(frozen=True)
class Cron:
    """A parsed five-field cron expression, evaluated in UTC."""

    expression: str

    def matches(self, t: datetime) -> bool:
        """Whether the minute of ``t`` (UTC) is one of the expression's."""
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
        due = next(CronSim(self.expression, minute + timedelta(seconds=1), reverse=True), None)
        return due if due is not None and due >= minute - horizon else None


def parse_cron(expression: str) -> Cron:
    """Validate a five-field cron expression.

    Raises
    ------
    CronError
        When it does not have five fields, or a field is not a valid value, range, list, step or name.
    """
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
    return Cron(" ".join(parts))


def _explain(message: str, parts: list[str]) -> str:
    """``Bad minute`` (the library's words) → ``minute field '61' is not valid ...``."""
    for name, part in zip(FIELD_NAMES, parts):
        if message.lower() == f"bad {name}":
            return (f"{name} field {part!r} is not a valid value, range (a-b), list (a,b) or step (*/n, a/n, a-b/n)"
                    + (" (names: SUN-SAT)" if name == "day-of-week" else " (names: JAN-DEC)" if name == "month" else ""))
    return f"{' '.join(parts)!r}: {message}"


def previous_month_of(t: datetime) -> str:
    """``YYYY-MM`` of the month before ``t``'s (UTC): the month a scheduled audit covers."""
    first = t.astimezone(timezone.utc).replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")
