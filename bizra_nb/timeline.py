"""An incident's timeline in words: what each event says, the bounded copy a diagnosis notebook gets, its table.

The events are those of :meth:`bizra_nb.store.Store.incident_timeline`. Their details come from outside
(alert labels, notes): the words made here are plain text, escaped by whoever renders them (the report's
table template autoescapes; :mod:`bizra_nb.postmortem` escapes for HTML and Markdown).
"""
from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from bizra_nb.errors import one_line

if TYPE_CHECKING:  # pandas is imported by the table alone: the server imports this module at its start
    from bizra_nb.tables import PeopleTable

KIND_WORDS = {
    "opened": "Opened", "alert_updated": "Alert updated", "diagnosis_started": "Diagnosis started",
    "diagnosis_finished": "Diagnosis finished", "diagnosis_failed": "Diagnosis failed",
    "acknowledged": "Acknowledged", "note": "Note", "silence_created": "Silence created",
    "silence_expired": "Silence expired", "resolved": "Resolved", "reopened": "Reopened", "omitted": "…",
}
ORIGIN_TIMES = (("opened", "opened_at"), ("acknowledged", "acknowledged_at"), ("resolved", "resolved_at"))
ERROR_TEXT = 300  # characters of an error's first line in an event's words
_CELL_SOURCE = re.compile(r"( in cell [0-9]+) \(.*\)\s*$")
NOTEBOOK_EVENTS = 200  # the newest events a diagnosis notebook gets
NOTEBOOK_TEXT = 500  # characters of one event's words in what a notebook gets


def when(ts: Any) -> str | None:
    """Unix seconds as ``2026-10-27 16:40:05 UTC`` (seconds matter on a timeline); None when missing."""
    if ts is None:
        return None
    try:
        return dt.datetime.fromtimestamp(float(ts), dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def kind_words(kind: str) -> str:
    """``alert_updated`` → ``Alert updated``; an unknown kind reads as itself, underscores as spaces."""
    return KIND_WORDS.get(kind) or str(kind).replace("_", " ").capitalize()


def first_line(text: Any, limit: int = ERROR_TEXT) -> str:
    """An error's first non-empty line, clipped: no traceback, no notebook cell source (a run's error
    ``Type: message in cell 4 (its source)`` keeps ``in cell 4``)."""
    lines = [line for line in str(text).splitlines() if line.strip()]
    return one_line(_CELL_SOURCE.sub(r"\1", lines[0]) if lines else "", limit)


def complete(incident: dict | None, events: list[dict], *, hidden_before: float | None = None) -> list[dict]:
    """The timeline with what the incident's record says but no event does, oldest first.

    An incident opened before timelines were recorded (or whose events were lost) has no ``opened``,
    ``acknowledged`` or ``resolved`` event: each is added at the incident's ``opened_at``,
    ``acknowledged_at``, ``resolved_at`` (when set), its actor the incident's ``source``, marked
    ``"from_record": true``. Only for such an incident: events that hold an ``opened`` event are the
    incident's whole story, and nothing is added to them. Nor is an acknowledgement added when ``acknowledged_at`` equals
    ``resolved_at``: the incident was resolved without one (a resolution sets both, for MTTA; see
    :func:`resolved_directly`). Events stand for themselves: nothing is added of a kind they already hold,
    nor at a time where events were left out (an ``omitted`` entry's gap, or before ``hidden_before``:
    a read of the newest events only), where the event may well exist.

    Parameters
    ----------
    incident
        The incident as the store returns it; None adds nothing.
    events
        Its events (:meth:`bizra_nb.store.Store.incident_timeline`), oldest first.
    hidden_before
        The events before this time (unix seconds) were not read.

    Returns
    -------
    list of dict
        The events and the added entries, ordered by time (an added entry before an event at the same time).
    """
    if not isinstance(incident, dict):
        return list(events)
    kinds = {e.get("kind") for e in events}
    if "opened" in kinds:  # recorded since its opening: what the record adds would only be made up
        return list(events)
    gaps = [(None, hidden_before)] if hidden_before is not None else []  # (low, high): times not read
    for n, e in enumerate(events):
        if e.get("kind") == "omitted":
            high = next((x.get("ts") for x in events[n + 1:] if x.get("ts") is not None), None)
            gaps.append((e.get("ts"), high))

    def hidden(ts: float) -> bool:
        return any((low is None or ts > low) and (high is None or ts < high) for low, high in gaps)

    added = []
    for kind, column in ORIGIN_TIMES:
        ts = incident.get(column)
        if kind in kinds or not isinstance(ts, (int, float)) or hidden(float(ts)):
            continue
        if kind == "acknowledged" and resolved_directly(incident):
            continue
        detail: dict = {"from_record": True}
        if kind == "opened":
            detail.update({k: incident[k] for k in ("title", "severity", "service", "source") if incident.get(k)})
            if isinstance(incident.get("labels"), dict) and incident["labels"]:
                detail["labels"] = incident["labels"]
        added.append({"id": None, "incident_id": incident.get("id"), "ts": float(ts), "kind": kind,
                      "actor": incident.get("source"), "detail": detail, "from_record": True})
    if not added:
        return list(events)
    merged = [(e["ts"] if isinstance(e.get("ts"), (int, float)) else float("-inf"), 1, n, e)
              for n, e in enumerate(events)] + [(e["ts"], 0, n, e) for n, e in enumerate(added)]
    return [item[3] for item in sorted(merged, key=lambda item: item[:3])]


def resolved_directly(incident: dict) -> bool:
    """Whether the incident was resolved without an acknowledgement: its ``acknowledged_at`` is its
    ``resolved_at``, as a resolution sets it when there was none (MTTA then counts the resolution).

    Examples
    --------
    >>> resolved_directly({"acknowledged_at": 200.0, "resolved_at": 200.0}), resolved_directly({"resolved_at": 200.0})
    (True, False)
    """
    ack, res = incident.get("acknowledged_at"), incident.get("resolved_at")
    return isinstance(ack, (int, float)) and isinstance(res, (int, float)) and float(ack) == float(res)


def _labels(labels: Any, limit: int = 8) -> str:
    if not isinstance(labels, dict) or not labels:
        return ""
    shown = [f"{k}={one_line(str(v), 60)}" for k, v in list(labels.items())[:limit]]
    return ", ".join(shown) + (", …" if len(labels) > limit else "")


def _confidence(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("level")
    return f"confidence {value}" if value not in (None, "") else ""


def describe_event(event: dict) -> str:
    """What an event says, in one plain-text line (untrusted parts included as they are: escape when rendering).

    Examples
    --------
    >>> describe_event({"kind": "diagnosis_finished", "detail": {"top_cause": "db", "confidence": "high"}})
    'top cause db; confidence high'
    """
    kind, detail = event.get("kind"), event.get("detail") or {}
    parts: list[str] = []
    if kind in ("opened", "alert_updated", "resolved") and detail.get("alertname") is not None:
        counts = f"{detail.get('firing', 0)} firing, {detail.get('resolved', 0)} resolved"
        parts += [f"alert {detail['alertname']} {detail.get('status', '')}".strip(), counts]
        if detail.get("severity"):
            parts.append(f"severity {detail['severity']}")
        if _labels(detail.get("labels")):
            parts.append(_labels(detail.get("labels")))
    elif kind == "opened":
        parts += [str(detail[k]) for k in ("title",) if detail.get(k)]
        parts += [f"{k} {detail[k]}" for k in ("severity", "service") if detail.get(k)]
        if detail.get("from_record") and _labels(detail.get("labels")):
            parts.append(_labels(detail.get("labels")))
    elif kind in ("acknowledged", "resolved", "reopened") and detail.get("from"):
        parts.append(f"was {detail['from']}")
    elif kind == "note":
        parts.append(str(detail.get("text", "")))
    elif kind in ("diagnosis_started", "diagnosis_finished", "diagnosis_failed"):
        if detail.get("mode"):
            parts.append("diagnosis report" if detail["mode"] == "report" else "quick diagnosis")
        if detail.get("top_cause"):
            parts.append(f"top cause {detail['top_cause']}")
        elif kind == "diagnosis_finished" and detail.get("verdict"):
            parts.append(str(detail["verdict"]).replace("_", " "))
        parts.append(_confidence(detail.get("confidence")))
        if detail.get("error"):
            parts.append(first_line(detail["error"]))
        if detail.get("run_id"):
            parts.append(f"run {detail['run_id']}")
    elif kind == "silence_created":
        parts.append(f"silence {detail.get('silence_id', '')}".strip())
        if detail.get("ends_at"):
            parts.append(f"until {_until(detail['ends_at'])}")
        matchers = detail.get("matchers")
        if isinstance(matchers, list) and matchers:
            parts.append(", ".join(_matcher(m) for m in matchers[:8]))
        if detail.get("comment"):
            parts.append(str(detail["comment"]))
    elif kind == "silence_expired":
        parts.append(f"silence {detail.get('silence_id', '')}".strip())
    elif kind == "omitted":
        count = detail.get("count")
        parts.append(f"… {count} event{'' if count == 1 else 's'} not shown …" if isinstance(count, int) else
                     "… events not shown …")
    elif not (event.get("from_record") or detail.get("from_record")):
        parts += [f"{k} {one_line(str(v), 100)}" for k, v in list(detail.items())[:6]]
    if event.get("from_record") or detail.get("from_record"):
        parts.append("from the incident's record (no event was recorded)")
    return "; ".join(p for p in parts if p)


def _until(value: Any) -> str:
    """A silence's end as :func:`when` writes times (unix seconds or ISO-8601); as given when neither."""
    if isinstance(value, str):
        try:
            stamp = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            value = (stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.timezone.utc)).timestamp()
        except ValueError:
            return one_line(value, 40)
    return when(value) or one_line(str(value), 40)


def _matcher(matcher: Any) -> str:
    if not isinstance(matcher, dict):
        return one_line(str(matcher), 100)
    op = ("=~" if matcher.get("isRegex") else "=") if matcher.get("isEqual", True) else (
        "!~" if matcher.get("isRegex") else "!=")
    return f"{matcher.get('name', '')}{op}{one_line(str(matcher.get('value', '')), 60)}"


def for_notebook(events: list[dict], *, limit: int = NOTEBOOK_EVENTS, incident: dict | None = None) -> list[dict]:
    """The newest ``limit`` events, each ``{"ts", "kind", "actor", "what"}`` with ``what`` at most
    :data:`NOTEBOOK_TEXT` characters: bounded, JSON-able, for a notebook's ``incident`` parameter.

    ``incident`` given: completed from its record first (:func:`complete`; an added entry also has
    ``"from_record": true``), ``events`` being the newest ``limit`` when there are that many.
    """
    if incident is not None:
        truncated = limit > 0 and len(events) >= limit and events
        events = complete(incident, events, hidden_before=events[0].get("ts") if truncated else None)
    out = []
    for e in events[-limit:] if limit > 0 else []:
        item = {"ts": e.get("ts"), "kind": e.get("kind"), "actor": e.get("actor"),
                "what": one_line(str(e["what"]) if "what" in e else describe_event(e), NOTEBOOK_TEXT)}
        if e.get("from_record"):
            item["from_record"] = True
        out.append(item)
    return out


def timeline_table(events: list[dict] | None) -> "PeopleTable":
    """The timeline as a table for the report: time (UTC), event, by whom, what it says; oldest first.

    Takes the events of :meth:`~bizra_nb.store.Store.incident_timeline` or of :func:`for_notebook`.
    """
    import pandas as pd

    from bizra_nb.tables import for_people

    rows = [{"ts": when(e.get("ts")), "event": kind_words(str(e.get("kind", ""))), "actor": e.get("actor"),
             "what": e["what"] if "what" in e else describe_event(e)} for e in events or []]
    frame = pd.DataFrame(rows, columns=["ts", "event", "actor", "what"])
    return for_people(frame, {"ts": ("Time", "text"), "event": "Event", "actor": "By", "what": "Details"},
                      empty="No timeline: this run diagnoses no stored incident, or nothing happened to it yet.")
