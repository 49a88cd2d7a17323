"""Time values as the API, the CLI and the webhook accept them: unix seconds or ISO-8601, always UTC.

Kept free of pandas so that the server can parse times without loading it.
"""
from __future__ import annotations

from datetime import datetime, timezone

from bizra_nb.errors import InvalidInput


def parse_time(value, *, name: str = "time") -> float | None:
    """Unix seconds (number or text), ISO-8601 text or a datetime → unix seconds (UTC); None/"" stay None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"{name}: {value!r} is neither unix seconds nor ISO-8601", field=name)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        stamp = value
    else:
        text = str(value).strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            stamp = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"{name}: {value!r} is neither unix seconds nor ISO-8601", field=name) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()
