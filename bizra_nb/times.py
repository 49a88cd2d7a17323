"""Time values as the API, the CLI and the webhook accept them: unix seconds or ISO-8601, always UTC.

Kept free of pandas so that the server can parse times without loading it.
"""
from __future__ import annotations

from datetime import datetime, timezone

from bizra_nb.errors import InvalidInput

MAX_SECONDS = 1e11  # unix seconds beyond this are after the year 5000: a value in milliseconds (or finer)


def parse_time(value, *, name: str = "time") -> float | None:
    """Unix seconds (number or text), ISO-8601 text or a datetime → unix seconds (UTC); None/"" stay None.

    A number above :data:`MAX_SECONDS` (after the year 5000) is refused as what it most
    likely is, milliseconds, with the seconds it would mean ("did you mean seconds?").
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"{name}: {value!r} is neither unix seconds nor ISO-8601", field=name)
    if isinstance(value, (int, float)):
        return _seconds(float(value), value, name)
    if isinstance(value, datetime):
        stamp = value
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            return _seconds(number, value, name)
        try:
            stamp = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"{name}: {value!r} is neither unix seconds nor ISO-8601", field=name) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


def _seconds(number: float, value, name: str) -> float:
    if number != number or number in (float("inf"), float("-inf")):  # NaN, infinity: no moment
        raise InvalidInput(f"{name}: {value!r} is not a time; give unix seconds or ISO-8601", field=name)
    if abs(number) > MAX_SECONDS:
        scale = 1000.0
        while abs(number) / scale > MAX_SECONDS and scale < 1e9:
            scale *= 1000.0
        unit = {1e3: "milliseconds", 1e6: "microseconds", 1e9: "nanoseconds"}.get(scale, "milliseconds")
        guess = number / scale
        try:
            shown = datetime.fromtimestamp(guess, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OverflowError, OSError, ValueError):
            raise InvalidInput(f"{name}: {value!r} is out of range; give unix seconds or ISO-8601",
                               field=name) from None
        raise InvalidInput(f"{name}: {value!r} looks like {unit}; did you mean seconds ({guess:.0f} = {shown})? "
                           "Give unix seconds or ISO-8601", field=name)
    return number
