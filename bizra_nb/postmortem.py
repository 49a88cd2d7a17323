"""An incident's postmortem draft, as a self-contained HTML page or as Markdown, from plain dicts.

What it holds: the summary, the impact window (opened → resolved, or ongoing), severity, time to
acknowledge (none when it was resolved directly: MTTA counts the resolution then, the draft says so) and to
resolve, the timeline, the root-cause candidates of the stored diagnosis with their
evidence and confidence, links to the reports, and the sections people write: what went well, what to
improve, action items.

The timeline is completed from the incident's record (:func:`bizra_nb.timeline.complete`): an incident
older than its timeline (no ``opened`` event) still starts with its opening.

Everything shown comes from outside at some point (alert labels, notes, titles, service names): the HTML
escapes every value (:func:`markupsafe.escape`); the Markdown escapes only what Markdown gives a meaning to
where the value stands (:func:`md_text`, :func:`md_cell`), so it stays easy to edit in a wiki while a note
can become neither a tag, nor a link or an image, nor formatting. Only links the platform itself made
(``/reports/…``, ``/rca/…``, or ``http(s)://`` without spaces, quotes or brackets) become links; anything
else is shown as text.
"""
from __future__ import annotations

import re
import time
from typing import Any

from markupsafe import Markup

from bizra_nb.incidents import durations
from bizra_nb.timeline import complete, describe_event, first_line, kind_words, resolved_directly, when

WRITE_SECTIONS = ("What went well", "What to improve", "Action items")
MAX_CANDIDATES = 5
MAX_EVIDENCE = 3
# Markdown (CommonMark + GFM) inline punctuation that may start formatting, a link, an image, code, raw HTML,
# a table cell or an entity; escaped with a backslash (``<`` as ``&lt;``) wherever a value stands
_MD_INLINE = re.compile(r"([\\`*_\[\]|~])|(<)|&(?=#?[A-Za-z0-9]+;)")
# what makes a line a heading, a quote, a list item, a thematic break or a setext underline at its start
_MD_LINE_START = re.compile(r"^([#>+\-=]|[0-9]+(?=[.)]))")
CAUSE_KINDS = {  # a candidate's ``kind`` (bizra_nb.rca.model.KINDS) in plain words
    "resource": "resource use", "code": "its own latency or errors", "dependency_edge": "calls into it slowed",
    "no_metrics": "no metrics of its own",
}
_SAFE_URL = re.compile(r"(https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|)/[A-Za-z0-9._~/%?&=+\-#]*")
_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
color:#1d2330;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d8dce5}
table{border-collapse:collapse;width:100%;font-size:.92rem}th,td{border:1px solid #d8dce5;padding:.3rem .5rem;
text-align:left;vertical-align:top}th{background:#f2f4f8}td.what{white-space:pre-wrap;word-break:break-word}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}
.draft{color:#6b7385;font-style:italic}.write{min-height:3rem;border:1px dashed #c3c9d6;padding:.5rem;color:#6b7385}
"""


def humanise(seconds: float | None) -> str | None:
    """``45 s``, ``1 min 12 s`` (seconds below 10 minutes), ``16 min``, ``1 h 35 min``
    (:func:`bizra_nb.tables.humanise_seconds`); None stays None.

    Examples
    --------
    >>> humanise(72), humanise(180), humanise(3600 + 35 * 60)
    ('1 min 12 s', '3 min', '1 h 35 min')
    """
    if seconds is None:
        return None
    if 60 <= abs(seconds) < 600:
        minutes, rest = divmod(round(abs(seconds)), 60)
        return ("-" if seconds < 0 else "") + (f"{minutes} min {rest} s" if rest else f"{minutes} min")
    from bizra_nb.tables import humanise_seconds  # pandas: imported at the first postmortem, not at the start

    return humanise_seconds(seconds)


def md_text(text: Any, *, line_start: bool = False) -> str:
    r"""``text`` as Markdown prose that shows as it is, on one line: only what Markdown would read escaped.

    Inline ``\\ ` * _ [ ] | ~`` get a backslash, ``<`` becomes ``&lt;`` (no raw HTML), an ``&`` that would
    start an entity gets a backslash; with ``line_start``, also a leading ``#``, ``>``, ``-``, ``+``, ``=``
    or ``1.`` / ``1)``. Ordinary text (``api-gateway``, ``2026-12-01 01:43:07 UTC``, ``p99 = 120 ms``,
    quotes) is left alone.

    Examples
    --------
    >>> md_text("api-gateway: p99 = 120 ms, \"slow\"")
    'api-gateway: p99 = 120 ms, "slow"'
    >>> md_text("[x](javascript:alert(1)) <b>")
    '\\[x\\](javascript:alert(1)) &lt;b>'
    """
    value = " ".join(("" if text is None else str(text)).split())
    value = _MD_INLINE.sub(lambda m: "\\" + m.group(1) if m.group(1) else "&lt;" if m.group(2) else "\\&", value)
    if line_start:
        value = _MD_LINE_START.sub(lambda m: m.group(1) + "\\" if m.group(1).isdigit() else "\\" + m.group(1), value)
    return value


def md_cell(text: Any) -> str:
    """``text`` for a GFM table cell: :func:`md_text` (newlines folded, ``|`` as ``\\|``), ``–`` when empty."""
    return md_text(text) or "–"


def cause_words(candidate: dict) -> str:
    """What a candidate's evidence points at, in plain words (its ``kind``; the slowed calls' ends when known)."""
    kind = candidate.get("kind")
    edge = candidate.get("edge") if isinstance(candidate.get("edge"), dict) else None
    if kind == "dependency_edge" and edge and edge.get("caller") and edge.get("callee"):
        return f"calls from {edge['caller']} to {edge['callee']} slowed"
    return CAUSE_KINDS.get(str(kind), str(kind or "its own metrics").replace("_", " "))


def safe_url(url: Any, base_url: str = "") -> str | None:
    """``url`` when it is a link the platform makes (a path, or http(s) without spaces, quotes or brackets),
    prefixed by ``base_url`` when it is a path; else None (shown as text, never as a link)."""
    if not isinstance(url, str) or not _SAFE_URL.fullmatch(url) or url.startswith("//"):
        return None
    if url.startswith("/") and base_url and _SAFE_URL.fullmatch(base_url.rstrip("/") + "/"):
        return base_url.rstrip("/") + url
    return url


def postmortem(incident: dict, events: list[dict], *, reports: list[dict] | None = None,
               now: float | None = None) -> dict:
    """The postmortem's content as plain data, for :func:`render_html` and :func:`render_markdown`.

    Parameters
    ----------
    incident
        The incident as the store returns it (``id``, ``title``, ``severity``, ``status``, ``opened_at``,
        ``acknowledged_at``, ``resolved_at``, ``service``, ``diagnosis``, ``report_url``...).
    events
        Its timeline (:meth:`bizra_nb.store.Store.incident_timeline`), oldest first.
    reports
        Its diagnosis reports, each ``{"run_id", "status", "url", "created_at"}`` (``url`` may be None).
    now
        The time "ongoing" is measured to (unix seconds); now when None.

    Returns
    -------
    dict
        ``title``, ``facts`` (label → text, in order), ``summary`` (lines), ``timeline`` (rows of ``when``,
        ``event``, ``actor``, ``what``), ``diagnosis`` (``verdict``, ``confidence``, ``candidates`` each with
        ``evidence``), ``links`` (``label``, ``url``), ``sections`` (the headings to write under).
    """
    now = time.time() if now is None else now
    events = complete(incident, events)
    spans = durations(incident)
    resolved = incident.get("resolved_at")
    start = impact_start(incident)
    window_end = when(resolved) if resolved is not None else "ongoing"
    impact = (resolved if resolved is not None else now) - start if start is not None else None
    opener = next((e for e in events if e.get("kind") == "opened"), None)
    opened_by = (opener or {}).get("actor") or incident.get("source")
    diagnosis = _diagnosis(incident.get("diagnosis"))
    facts = {
        "Incident": f"#{incident.get('id')}",
        "Severity": incident.get("severity"),
        "Status": incident.get("status"),
        "Service": incident.get("service") or "–",
        "Opened by": opened_by or "–",
        "Impact window": f"{when(start) or '–'} → {window_end}",
        "Impact duration": (humanise(impact) or "–") + (" so far" if resolved is None else ""),
        "Time to acknowledge (TTA)": "not acknowledged (resolved directly)" if resolved_directly(incident) else
                                     humanise(spans["tta_seconds"]) or "not acknowledged",
        "Time to resolve (TTR)": humanise(spans["ttr_seconds"]) or "not resolved",
    }
    summary = [f"{incident.get('title', '')}"]
    top = diagnosis["candidates"][:1]
    if top:
        summary.append(f"Most likely root cause: {top[0]['service']} ({top[0]['cause']}), "
                       f"confidence {diagnosis['confidence'] or 'unknown'}.")
    elif diagnosis["verdict"] == "nothing_to_blame":
        summary.append("The diagnosis found no service to blame.")
    else:
        summary.append("No diagnosis is stored for this incident.")
    notes = [e for e in events if e.get("kind") == "note"]
    recorded = sum((e.get("detail") or {}).get("count", 0) if e.get("kind") == "omitted" else 1
                   for e in events if not e.get("from_record"))
    hidden = sum((e.get("detail") or {}).get("count", 0) for e in events if e.get("kind") == "omitted")
    summary.append(f"{recorded} timeline event{'' if recorded == 1 else 's'}"
                   + (f" ({hidden} of them not shown below)" if hidden else "")
                   + f", {len(notes)} note{'' if len(notes) == 1 else 's'}" + (" shown" if hidden else "") + ".")
    if any(e.get("from_record") for e in events):
        summary.append("Events marked \"from the incident's record\" were not recorded when they happened: "
                       "they are the incident's own times.")
    return {
        "title": f"Postmortem draft: incident #{incident.get('id')} — {incident.get('title', '')}",
        "facts": facts, "summary": summary,
        "timeline": [{"when": "…" if e.get("kind") == "omitted" else when(e.get("ts")) or "–",
                      "event": kind_words(str(e.get("kind", ""))),
                      "actor": e.get("actor") or "–", "what": describe_event(e)} for e in events],
        "diagnosis": diagnosis, "links": _links(incident, events, reports or []),
        "sections": list(WRITE_SECTIONS),
    }


def _diagnosis(doc: Any) -> dict:
    """The stored diagnosis's verdict, confidence and anomalous candidates (evidence clipped)."""
    doc = doc if isinstance(doc, dict) else {}
    confidence = doc.get("confidence") if isinstance(doc.get("confidence"), dict) else {}
    candidates = []
    if doc.get("verdict") != "nothing_to_blame":
        for c in doc.get("ranking") or []:
            if not isinstance(c, dict) or not (c.get("evidence") or c.get("callers")):
                continue
            evidence = [{"metric": e.get("metric"), "direction": e.get("direction"), "magnitude": e.get("magnitude"),
                         "onset": when(e.get("onset")), "normal": e.get("normal"), "peak": e.get("peak")}
                        for e in (c.get("evidence") or [])[:MAX_EVIDENCE] if isinstance(e, dict)]
            candidates.append({"service": c.get("service"), "kind": c.get("kind"), "cause": cause_words(c),
                               "score": c.get("score"),
                               "metric": c.get("metric"), "explanation": c.get("explanation") or "",
                               "callers": list(c.get("callers") or []), "evidence": evidence})
            if len(candidates) == MAX_CANDIDATES:
                break
    return {"present": bool(doc), "verdict": doc.get("verdict"), "confidence": confidence.get("level"),
            "confidence_score": confidence.get("score"), "confidence_reason": confidence.get("reason") or "",
            "anomaly_start": when(doc.get("anomaly_start")), "candidates": candidates}


def _links(incident: dict, events: list[dict], reports: list[dict]) -> list[dict]:
    """The reports (newest diagnosis report first), then the incident's evidence and timeline in the API."""
    links: list[dict] = []
    seen: set[str] = set()

    def add(label: str, url: Any) -> None:
        if isinstance(url, str) and url and url not in seen:
            seen.add(url)
            links.append({"label": label, "url": url})

    failed = _failed_report(incident, events, reports)
    if failed is not None:
        add(f"The diagnosis report failed: {failed} (the failed run's report)", incident.get("report_url"))
    else:
        add("Latest diagnosis report", incident.get("report_url"))
    for report in reports:
        add(f"Diagnosis report of run {report.get('run_id')} ({report.get('status')}, "
            f"{when(report.get('created_at')) or '–'})", report.get("url"))
    for event in events:
        detail = event.get("detail") or {}
        if event.get("kind") == "diagnosis_finished" and detail.get("report_url"):
            add(f"Diagnosis report of run {detail.get('run_id')}", detail["report_url"])
    add("Evidence (the quick diagnosis, JSON)", f"/rca/incidents/{incident.get('id')}/evidence")
    add("Timeline (JSON)", f"/rca/incidents/{incident.get('id')}/timeline")
    return links


def impact_start(incident: dict) -> float | None:
    """When the impact began: the incident's ``anomaly_start``, else its earliest alert's start, else
    ``opened_at`` (the earliest of them all: an incident is opened after its anomaly began)."""
    times = [incident.get("anomaly_start")]
    alerts = incident.get("alerts")
    if isinstance(alerts, dict):
        times += [a.get("starts_at") for a in alerts.values() if isinstance(a, dict)]
    known = [float(t) for t in times if isinstance(t, (int, float)) and not isinstance(t, bool)]
    opened = incident.get("opened_at")
    if known:
        return min(known + ([float(opened)] if isinstance(opened, (int, float)) else []))
    return float(opened) if isinstance(opened, (int, float)) else None


def _failed_report(incident: dict, events: list[dict], reports: list[dict]) -> str | None:
    """Why the incident's latest report (``report_url``) is that of a failed run, or None when it is not."""
    url, run_id = incident.get("report_url"), incident.get("report_run")
    if not url:
        return None
    run = next((r for r in reports if (run_id and r.get("run_id") == run_id) or r.get("url") == url), None)
    event = next((e for e in reversed(events) if (e.get("detail") or {}).get("report_url") == url
                  or (run_id and (e.get("detail") or {}).get("run_id") == run_id and
                      e.get("kind") in ("diagnosis_finished", "diagnosis_failed"))), None)
    failed = (run or {}).get("status") == "failed" or (event or {}).get("kind") == "diagnosis_failed"
    if not failed:
        return None
    reason = (event or {}).get("detail", {}).get("error") if event and event.get("kind") == "diagnosis_failed" else None
    return first_line(reason) if reason else "the run failed"


# -- HTML ---------------------------------------------------------------------------------------------------


def render_html(incident: dict, events: list[dict], *, reports: list[dict] | None = None,
                now: float | None = None, base_url: str = "") -> str:
    """The postmortem draft as one self-contained HTML page (inline style, no script, every value escaped).

    Parameters are those of :func:`postmortem`; ``base_url`` prefixes the platform's own links (``/reports/…``)
    so that the saved page still links to them.
    """
    doc = postmortem(incident, events, reports=reports, now=now)
    parts = [Markup("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"),
             Markup("<title>{}</title><style>{}</style></head><body>").format(doc["title"], Markup(_STYLE)),
             Markup("<h1>{}</h1><p class=\"draft\">A draft made by bizra-nb at {}: edit it before you share it."
                    "</p>").format(doc["title"], when(now if now is not None else time.time())),
             Markup("<h2 id=\"summary\">Summary</h2>")]
    parts += [Markup("<p>{}</p>").format(line) for line in doc["summary"]]
    parts.append(Markup("<h2 id=\"impact\">Impact</h2><dl>"))
    parts += [Markup("<dt>{}</dt><dd>{}</dd>").format(k, v) for k, v in doc["facts"].items()]
    parts.append(Markup("</dl><h2 id=\"timeline\">Timeline</h2>"))
    if doc["timeline"]:
        parts.append(Markup("<table><thead><tr><th>Time (UTC)</th><th>Event</th><th>By</th><th>Details</th>"
                            "</tr></thead><tbody>"))
        parts += [Markup("<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"what\">{}</td></tr>").format(
            row["when"], row["event"], row["actor"], row["what"]) for row in doc["timeline"]]
        parts.append(Markup("</tbody></table>"))
    else:
        parts.append(Markup("<p>No events recorded.</p>"))
    parts += _html_diagnosis(doc["diagnosis"])
    parts.append(Markup("<h2 id=\"reports\">Reports</h2><ul>"))
    for link in doc["links"]:
        url = safe_url(link["url"], base_url)
        parts.append(Markup("<li><a href=\"{}\">{}</a></li>").format(url, link["label"]) if url else
                     Markup("<li>{}: {}</li>").format(link["label"], link["url"]))
    parts.append(Markup("</ul>"))
    for heading in doc["sections"]:
        anchor = heading.lower().replace(" ", "-")
        parts.append(Markup("<h2 id=\"{}\">{}</h2><div class=\"write\">To be written.</div>").format(anchor, heading))
    parts.append(Markup("</body></html>\n"))
    return str(Markup("").join(parts))


def _html_diagnosis(diagnosis: dict) -> list[Markup]:
    parts = [Markup("<h2 id=\"root-cause\">Root-cause candidates</h2>")]
    if not diagnosis["present"]:
        return parts + [Markup("<p>No diagnosis is stored for this incident.</p>")]
    parts.append(Markup("<p>Verdict: {}; confidence: {}{}. {}</p>").format(
        (diagnosis["verdict"] or "–").replace("_", " "), diagnosis["confidence"] or "unknown",
        f" ({diagnosis['confidence_score']})" if diagnosis["confidence_score"] is not None else "",
        diagnosis["confidence_reason"]))
    if not diagnosis["candidates"]:
        return parts + [Markup("<p>No candidate: no service changed beyond its usual behaviour.</p>")]
    parts.append(Markup("<ol>"))
    for c in diagnosis["candidates"]:
        parts.append(Markup("<li><strong>{}</strong> ({}; score {}; metric {})<br>{}").format(
            c["service"], c["cause"], c["score"], c["metric"], c["explanation"]))
        if c["callers"]:
            parts.append(Markup("<br>Blamed from its callers: {}").format(", ".join(map(str, c["callers"]))))
        if c["evidence"]:
            parts.append(Markup("<ul>"))
            parts += [Markup("<li>Evidence: {} {} ×{} (normal {}, peak {}), since {}</li>").format(
                e["metric"], e["direction"], e["magnitude"], e["normal"], e["peak"], e["onset"] or "–")
                for e in c["evidence"]]
            parts.append(Markup("</ul>"))
        parts.append(Markup("</li>"))
    parts.append(Markup("</ol>"))
    return parts


# -- Markdown -----------------------------------------------------------------------------------------------


def render_markdown(incident: dict, events: list[dict], *, reports: list[dict] | None = None,
                    now: float | None = None, base_url: str = "") -> str:
    """The postmortem draft as Markdown (CommonMark + GFM tables), every value escaped where Markdown would
    read it (:func:`md_text`, :func:`md_cell`), and nothing more: the draft is meant to be edited.

    Parameters are those of :func:`render_html`.
    """
    doc = postmortem(incident, events, reports=reports, now=now)
    lines = [f"# {md_text(doc['title'])}", "",
             f"*A draft made by bizra-nb at {md_text(when(now if now is not None else time.time()))}: "
             "edit it before you share it.*", "", "## Summary", ""]
    lines += [md_text(line, line_start=True) + "  " for line in doc["summary"]]
    lines += ["", "## Impact", ""]
    lines += [f"- **{md_text(k)}**: {md_text(v)}" for k, v in doc["facts"].items()]
    lines += ["", "## Timeline", ""]
    if doc["timeline"]:
        lines += ["| Time (UTC) | Event | By | Details |", "| --- | --- | --- | --- |"]
        lines += [f"| {md_cell(r['when'])} | {md_cell(r['event'])} | {md_cell(r['actor'])} | {md_cell(r['what'])} |"
                  for r in doc["timeline"]]
    else:
        lines.append("No events recorded.")
    lines += ["", "## Root-cause candidates", ""]
    diagnosis = doc["diagnosis"]
    if not diagnosis["present"]:
        lines.append("No diagnosis is stored for this incident.")
    else:
        score = f" ({diagnosis['confidence_score']})" if diagnosis["confidence_score"] is not None else ""
        lines.append(f"Verdict: {md_text((diagnosis['verdict'] or '–').replace('_', ' '))}; confidence: "
                     f"{md_text((diagnosis['confidence'] or 'unknown') + score)}. "
                     f"{md_text(diagnosis['confidence_reason'])}")
        lines.append("")
        if not diagnosis["candidates"]:
            lines.append("No candidate: no service changed beyond its usual behaviour.")
        for n, c in enumerate(diagnosis["candidates"], 1):
            lines.append(f"{n}. **{md_text(c['service'])}** ({md_text(c['cause'])}; score {md_text(c['score'])}; "
                         f"metric {md_text(c['metric'])}): {md_text(c['explanation'])}")
            if c["callers"]:
                lines.append(f"   - Blamed from its callers: {md_text(', '.join(map(str, c['callers'])))}")
            lines += [f"   - Evidence: {md_text(e['metric'])} {md_text(e['direction'])} ×{md_text(e['magnitude'])} "
                      f"(normal {md_text(e['normal'])}, peak {md_text(e['peak'])}), "
                      f"since {md_text(e['onset'] or '–')}"
                      for e in c["evidence"]]
    lines += ["", "## Reports", ""]
    for link in doc["links"]:
        url = safe_url(link["url"], base_url)
        lines.append(f"- [{md_text(link['label'])}](<{url}>)" if url else
                     f"- {md_text(link['label'])}: {md_text(link['url'])}")
    for heading in doc["sections"]:
        lines += ["", f"## {md_text(heading)}", "", "*To be written.*"]
    return "\n".join(lines) + "\n"
