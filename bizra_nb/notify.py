"""Notifications: the routes file (channels, and which events go to them), the events, and their messages.

The routes file (YAML, ``--notify-routes``)::

    channels:                     # a name for each destination
      oncall-email: {type: email, to: [oncall@example.com]}
      slack: {type: slack, url: https://hooks.slack.com/services/...}
      pager: {type: webhook, url: https://example.com/hook}
    routes:                       # an event goes to the channels of every route it matches
      - {event: run_failed, channel: slack}
      - {event: run_succeeded, kind: audit, channel: oncall-email}
      - {event: incident_opened, severity: [P1, P2], channel: [slack, pager]}
      - {event: incident_resolved, channel: slack}
      - {event: audit_not_compliant, channel: oncall-email}

Channels: ``email`` (``to``: an address or a list; needs ``--smtp-host``), ``slack`` (``url``: a Slack
incoming webhook, or anything that takes its JSON), ``webhook`` (``url``: a generic JSON body, see
:func:`webhook_body`). Routes: ``event`` (one of :data:`EVENTS`) and ``channel`` (a name or a list) are
required; ``kind`` (run events: :data:`RUN_KINDS`; ``diagnosis`` is another name of ``incident``) and
``severity`` (incident events: :data:`~bizra_nb.incidents.SEVERITIES`) narrow it, each a value or a list of
values; absent, any matches.

One change, one message per channel: a succeeded audit that is not compliant is both ``run_succeeded``
and ``audit_not_compliant``; a channel both route to gets the ``audit_not_compliant`` message only.
Every untrusted string (incident titles from alert labels, run errors, summary headlines) is escaped
where it becomes HTML (a Jinja template, autoescaped) or Slack mrkdwn (:func:`mrkdwn`).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from bizra_nb.errors import InvalidSetting, one_line
from bizra_nb.incidents import SEVERITIES
from bizra_nb.runner import KINDS

EVENTS = ("run_failed", "run_succeeded", "incident_opened", "incident_resolved", "audit_not_compliant")
RUN_EVENTS = ("run_failed", "run_succeeded", "audit_not_compliant")
INCIDENT_EVENTS = ("incident_opened", "incident_resolved")
RUN_KINDS = tuple(dict.fromkeys([*KINDS.values(), "other"]))  # incident, benchmark, audit, explore, other
KIND_ALIASES = {"diagnosis": "incident"}  # a route's kind: the name people call a diagnosis run by
CHANNEL_TYPES = {"email": ("to",), "slack": ("url",), "webhook": ("url",)}  # type -> required keys
_OPTIONAL = {"email": ("from",), "slack": (), "webhook": ()}
ROUTE_KEYS = ("event", "channel", "kind", "severity")
KEY_FIGURES = {  # summary.json keys shown first, by run kind; other scalar values follow
    "audit": ("verdict", "score", "tier", "availability", "error_budget_used", "latency_attainment", "incidents",
              "benchmarks", "coverage"),
    "benchmark": ("passed", "p50_ms", "p95_ms", "p99_ms", "throughput_rps", "error_rate", "requests"),
    "incident": ("verdict", "anomaly_start", "incident_id"),
}
PERCENT = {"availability", "error_budget_used", "latency_attainment", "coverage", "error_rate"}
MAX_FIGURES = 10


@dataclass(frozen=True)
class Channel:
    """A destination: ``email`` (``to``), ``slack`` or ``webhook`` (``url``)."""

    name: str
    type: str
    to: tuple[str, ...] = ()
    url: str = ""
    sender: str = ""  # an email channel's own From, else --smtp-from


@dataclass(frozen=True)
class Route:
    """One line of ``routes``: an event, optionally narrowed by run kinds or severities, to channels."""

    event: str
    channels: tuple[str, ...]
    kinds: tuple[str, ...] | None = None
    severities: tuple[str, ...] | None = None

    def matches(self, event: "Event") -> bool:
        return (event.name == self.event and (self.kinds is None or event.kind in self.kinds)
                and (self.severities is None or event.severity in self.severities))


@dataclass
class Event:
    """Something to tell people: what happened (``name``), a one-line ``title``, a ``summary`` and a ``link``."""

    name: str
    title: str
    summary: str
    link: str
    key: str  # the same change gives the same key (sent once per channel)
    kind: str | None = None
    severity: str | None = None
    run: dict | None = None
    incident: dict | None = None
    figures: list[tuple[str, str]] = field(default_factory=list)
    attachment: Path | None = None  # the report to attach to emails (audits); else linked
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Routes:
    """The channels and routes of a routes file (:func:`load_routes`)."""

    channels: dict[str, Channel]
    routes: tuple[Route, ...]
    source: str = ""

    def deliveries(self, events: list[Event]) -> list[tuple[Event, Channel]]:
        """Each channel the ``events`` of one change are routed to, once, with the first event routed to it.

        Parameters
        ----------
        events
            The events of one change, most specific first (as :func:`run_events` gives them).

        Returns
        -------
        list of (Event, Channel)
            In the order of the events, then of the routes.
        """
        chosen: dict[str, tuple[Event, Channel]] = {}
        for event in events:
            for route in self.routes:
                if route.matches(event):
                    for name in route.channels:
                        chosen.setdefault(name, (event, self.channels[name]))
        return list(chosen.values())


def load_routes(path: str | Path, *, email_ready: bool = True) -> Routes:
    """Read and check a routes file.

    Parameters
    ----------
    path
        The YAML file (see the module's docstring for its format).
    email_ready
        False when no SMTP server is configured: an email channel is then a problem.

    Raises
    ------
    InvalidSetting
        ``field="notify_routes"``; one line per problem, each naming the file, the place in it and
        what is allowed there.
    """
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidSetting(f"notify_routes: cannot read {path}: {exc.strerror or exc}", field="notify_routes") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise InvalidSetting(f"{path}{line}: not valid YAML: {getattr(exc, 'problem', None) or exc}",
                             field="notify_routes") from None
    return parse_routes(doc, source=str(path), email_ready=email_ready)


def parse_routes(doc: Any, *, source: str = "routes", email_ready: bool = True) -> Routes:
    """Check a routes document (the parsed YAML); see :func:`load_routes`."""
    problems: list[str] = []

    def problem(where: str, what: str) -> None:
        problems.append(f"{source}: {where}: {what}")

    if not isinstance(doc, dict):
        raise InvalidSetting(f"{source}: the file must be a mapping with 'channels' and 'routes'", field="notify_routes")
    for key in doc:
        if key not in ("channels", "routes"):
            problem(str(key), "unknown key; allowed: channels, routes")
    channels = _parse_channels(doc.get("channels"), problem, email_ready)
    routes = _parse_routes(doc.get("routes"), problem, channels)
    if problems:
        raise InvalidSetting("\n".join(problems), field="notify_routes")
    return Routes(channels, tuple(routes), source)


def _parse_channels(raw: Any, problem, email_ready: bool) -> dict[str, Channel]:
    if not isinstance(raw, dict) or not raw:
        problem("channels", "required: a mapping of channel names to {type: email|slack|webhook, ...}")
        return {}
    channels = {}
    for name, spec in raw.items():
        where = f"channels.{name}"
        if not isinstance(spec, dict):
            problem(where, "must be a mapping such as {type: slack, url: https://...}")
            continue
        kind = spec.get("type")
        if kind not in CHANNEL_TYPES:
            problem(f"{where}.type", f"{kind!r} is not a channel type; allowed: {', '.join(CHANNEL_TYPES)}")
            continue
        allowed = ("type", *CHANNEL_TYPES[kind], *_OPTIONAL[kind])
        for key in spec:
            if key not in allowed:
                problem(f"{where}.{key}", f"unknown key for a {kind} channel; allowed: {', '.join(allowed)}")
        for key in CHANNEL_TYPES[kind]:
            if key not in spec:
                problem(f"{where}.{key}", f"required for a {kind} channel")
        if kind == "email":
            to = spec.get("to")
            to = [to] if isinstance(to, str) else to
            if "to" in spec and (not isinstance(to, list) or not to or not all(map(_is_address, to))):
                problem(f"{where}.to", "must be an email address or a list of them (name@example.com)")
            if "from" in spec and not _is_address(spec["from"]):
                problem(f"{where}.from", "must be an email address (name@example.com)")
            if not email_ready:
                problem(where, "an email channel needs an SMTP server: set --smtp-host (BIZRA_SMTP_HOST)")
            channels[str(name)] = Channel(str(name), kind, to=tuple(to) if isinstance(to, list) else (),
                                          sender=str(spec.get("from") or ""))
        else:
            url = spec.get("url")
            if "url" in spec and not (isinstance(url, str) and re.fullmatch(r"https?://[^\s/]+\S*", url)):
                problem(f"{where}.url", "must be an http:// or https:// URL")
            elif "url" in spec and (wrong := _url_problem(url)):
                problem(f"{where}.url", f"not a valid URL ({wrong}); must be an http:// or https:// URL")
            channels[str(name)] = Channel(str(name), kind, url=str(url or ""))
    return channels


def _parse_routes(raw: Any, problem, channels: dict[str, Channel]) -> list[Route]:
    if not isinstance(raw, list):
        problem("routes", "required: a list of {event: ..., channel: ...}")
        return []
    routes = []
    for i, spec in enumerate(raw):
        where = f"routes[{i}]"
        if not isinstance(spec, dict):
            problem(where, "must be a mapping such as {event: run_failed, channel: slack}")
            continue
        for key in spec:
            if key not in ROUTE_KEYS:
                problem(f"{where}.{key}", f"unknown key; allowed: {', '.join(ROUTE_KEYS)}")
        event = spec.get("event")
        if event not in EVENTS:
            problem(f"{where}.event", ("required" if event is None else f"{event!r} is not an event")
                    + f"; allowed: {', '.join(EVENTS)}")
        names = _values(spec.get("channel"))
        if names is None or not names:
            problem(f"{where}.channel", f"required: a channel name or a list of them; defined: {', '.join(channels) or 'none'}")
            names = []
        for name in names:
            if name not in channels:
                problem(f"{where}.channel", f"{name!r} is not a channel of this file; defined: {', '.join(channels) or 'none'}")
        kinds = _narrowing(spec, "kind", RUN_KINDS, RUN_EVENTS, event, where, problem, KIND_ALIASES)
        severities = _narrowing(spec, "severity", SEVERITIES, INCIDENT_EVENTS, event, where, problem)
        routes.append(Route(str(event), tuple(n for n in names if n in channels), kinds, severities))
    return routes


def _narrowing(spec: dict, key: str, allowed: tuple, events: tuple, event, where: str, problem,
               aliases: dict[str, str] | None = None) -> tuple | None:
    if key not in spec:
        return None
    values = _values(spec[key])
    if values and aliases:
        values = list(dict.fromkeys(aliases.get(v, v) for v in values))
    if event in EVENTS and event not in events:
        problem(f"{where}.{key}", f"{event} has no {key}; only {', '.join(events)} do")
    if not values:
        problem(f"{where}.{key}", f"must be one of {', '.join(allowed)} or a list of them")
        return ()
    for value in values:
        if value not in allowed:
            problem(f"{where}.{key}", f"{value!r} is not allowed; allowed: {', '.join(allowed)}")
    return tuple(values)


def _values(raw: Any) -> list[str] | None:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(v, str) for v in raw):
        return list(raw)
    return None


def _url_problem(url: str) -> str:
    """Why httpx could not send to ``url`` (a bad host, port or character), or ``""``; the URL is not repeated."""
    import httpx

    try:
        parsed = httpx.URL(url)
        host, port = parsed.host, parsed.port  # the host is decoded (IDNA) here
    except (httpx.InvalidURL, ValueError) as exc:  # idna's IDNAError is a ValueError
        return one_line(exc, 100)
    if not host:
        return "no host"
    if port is not None and not 0 < port < 65536:
        return f"port {port} is out of range"
    return ""


def _is_address(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[^@\s<>,;]+@[^@\s<>,;]+", value) is not None


def iso(ts: float | None) -> str | None:
    """Unix seconds as ISO-8601 UTC (``2026-11-30T06:00:00+00:00``), None for None."""
    return None if ts is None else datetime.fromtimestamp(float(ts), timezone.utc).isoformat(timespec="seconds")


def _absolute(base: str, path: str) -> str:
    return path if path.startswith(("http://", "https://")) else base.rstrip("/") + "/" + path.lstrip("/")


def _figure(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in PERCENT and isinstance(value, (int, float)):
        return f"{value * 100:.6g} %"
    if isinstance(value, float):
        return f"{value:.4g}"
    return one_line(value, 100)


def key_figures(summary: dict, kind: str | None) -> list[tuple[str, str]]:
    """The summary's scalar values as ``(label, text)``, the kind's :data:`KEY_FIGURES` first, at most 10."""
    first = [k for k in KEY_FIGURES.get(kind or "", ()) if k in summary]
    rest = [k for k in summary if k not in first and k != "headline"]
    shown = [(k, summary[k]) for k in first + rest
             if isinstance(summary[k], (str, int, float, bool)) and summary[k] is not None]
    return [(k.replace("_", " "), _figure(k, v)) for k, v in shown[:MAX_FIGURES]]


def run_events(run: dict, *, public_url: str) -> list[Event]:
    """The events of a finished run (its store record), most specific first; none unless it succeeded or failed.

    Parameters
    ----------
    run
        ``id``, ``notebook``, ``kind``, ``status``, ``parameters``, ``summary``, ``error``, ``folder``, times.
    public_url
        Where people reach the server: the report's link is made absolute with it.
    """
    from bizra_nb.runner import report_links

    status = run.get("status")
    if status not in ("succeeded", "failed"):
        return []
    notebook = Path(str(run.get("notebook") or "run")).stem
    kind = run.get("kind") or "other"
    summary = run.get("summary") if isinstance(run.get("summary"), dict) else {}
    month = str((run.get("parameters") or {}).get("month") or summary.get("month") or "")
    links = report_links(run)
    link = _absolute(public_url, links["html"]) if links else public_url
    folder = Path(run["folder"]) if run.get("folder") else None
    report = folder / "report.html" if folder is not None and kind == "audit" else None
    shown = {k: run.get(k) for k in ("id", "notebook", "kind", "status", "trigger", "incident_id", "error",
                                     "created_at", "started_at", "finished_at")}
    shown |= {"notebook": notebook, "headline": summary.get("headline"), "links":
              {k: _absolute(public_url, v) for k, v in links.items()},
              "finished_at_iso": iso(run.get("finished_at"))}
    common = dict(link=link, kind=kind, run=shown, figures=key_figures(summary, kind),
                  attachment=report if report is not None and report.is_file() else None)
    subject = f"audit {month}" if kind == "audit" and month else f"{notebook} run"
    if status == "failed":
        return [Event("run_failed", one_line(f"{subject}: failed" if kind == "audit" else f"{subject} failed"),
                      one_line(run.get("error") or "the run failed", 1000), key=f"run:{run['id']}:failed", **common)]
    headline = one_line(summary.get("headline") or "the run succeeded", 1000)
    reasons = summary.get("reasons") if kind == "audit" and isinstance(summary.get("reasons"), list) else []
    if reasons:  # an audit's failed checks: the part of its executive summary a reader acts on
        headline = one_line(f"{headline} Why: " + "; ".join(one_line(r, 200) for r in reasons[:5])
                            + (f"; and {len(reasons) - 5} more" if len(reasons) > 5 else ""), 1500)
    events = []
    if kind == "audit" and summary.get("compliant") is False:
        events.append(Event("audit_not_compliant", one_line(f"{subject}: not compliant"), headline,
                            key=f"run:{run['id']}:succeeded", **common))
    verdict = summary.get("verdict") if kind == "audit" else None
    title = f"{subject}: {verdict}" if verdict else f"{subject} succeeded"
    events.append(Event("run_succeeded", one_line(title), headline, key=f"run:{run['id']}:succeeded", **common))
    return events


def _link_words(link: str) -> str:
    """What a message's link opens, in words: "open the report", "open the incident", "open the status page"."""
    return ("open the report" if "/reports/" in link else "open the incident" if "#incident=" in link
            else "open the status page")


def incident_events(incident: dict, action: str, *, public_url: str) -> list[Event]:
    """The event of an incident change (an ``incident`` hub message: its fields and ``action``): opened or resolved.

    Parameters
    ----------
    incident
        ``id``, ``title``, ``severity``, ``service``, ``source``, ``opened_at``, ``resolved_at``, ``report_url``, ...
    action
        ``opened`` or ``resolved`` give an event; any other action none.
    public_url
        Where people reach the server (the link: the diagnosis report when there is one, else the status page).
    """
    if action not in ("opened", "resolved"):
        return []
    severity = incident.get("severity")
    title = one_line(incident.get("title") or "untitled", 150)
    incident_id = incident.get("id")
    view = f"#incident={incident_id}" if isinstance(incident_id, int) and not isinstance(incident_id, bool) else ""
    link = (_absolute(public_url, incident["report_url"]) if incident.get("report_url")
            else public_url.rstrip("/") + "/" + view)  # the page's view of the incident: timeline, notes, silences
    service = incident.get("service") or "unknown service"
    if action == "opened":
        name, when = "incident_opened", incident.get("opened_at")
        summary = f"Incident {incident.get('id')} on {service}, opened {iso(when) or 'now'}"
        summary += f" by {incident['source']}" if incident.get("source") else ""
    else:
        name, when = "incident_resolved", incident.get("resolved_at")
        summary = f"Incident {incident.get('id')} on {service}, resolved {iso(when) or 'now'}"
        if incident.get("opened_at") and when:
            summary += f" after {max(0.0, (float(when) - float(incident['opened_at'])) / 60):.0f} min"
    if incident.get("top_cause"):
        summary += f"; top cause so far: {incident['top_cause']}"
    figures = [(label, one_line(incident.get(k), 100)) for label, k in
               (("severity", "severity"), ("service", "service"), ("status", "status"), ("verdict", "verdict"),
                ("confidence", "confidence")) if incident.get(k)]
    shown = {k: incident.get(k) for k in ("id", "title", "severity", "status", "service", "source", "opened_at",
                                          "acknowledged_at", "resolved_at", "report_url", "top_cause", "verdict")}
    shown |= {"opened_at_iso": iso(incident.get("opened_at")), "resolved_at_iso": iso(incident.get("resolved_at"))}
    return [Event(name, one_line(f"{severity} incident {action}: {title}"), one_line(summary + ".", 1000), link,
                  key=f"incident:{incident.get('id')}:{action}:{when}", severity=severity, incident=shown,
                  figures=figures)]


def mrkdwn(text: Any) -> str:
    """``text`` inert in Slack mrkdwn: ``&``, ``<`` and ``>`` escaped (no links, mentions or tags)."""
    return str("" if text is None else text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link_target(url: str) -> str:
    """A URL safe inside Slack's ``<url|text>``: no ``|``, ``<``, ``>`` or spaces."""
    from urllib.parse import quote

    return quote(url, safe=":/?#[]@!$&'()*+,;=%~.-_")


def slack_body(event: Event) -> dict:
    """A Slack incoming-webhook body: ``text`` (the notification's one line) and ``blocks``."""
    text = f"[bizra] {mrkdwn(event.title)}"
    blocks: list[dict] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{mrkdwn(event.title)}*\n{mrkdwn(event.summary)}"}},
    ]
    if event.figures:
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*{mrkdwn(label)}*\n{mrkdwn(value)}"} for label, value in event.figures[:10]]})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"<{_link_target(event.link)}|{_link_words(event.link).capitalize()}> · "
                                   f"{mrkdwn(event.name)} · {mrkdwn(iso(event.at))}"}]})
    return {"text": text, "blocks": blocks}


def webhook_body(event: Event) -> dict:
    """The generic JSON body: ``event, kind, severity, title, summary, link, run|incident, sent_at``.

    ``sent_at`` is unix seconds; ``sent_at_iso`` the same time for people.
    """
    now = time.time()
    body = {"event": event.name, "kind": event.kind, "severity": event.severity, "title": event.title,
            "summary": event.summary, "link": event.link}
    if event.run is not None:
        body["run"] = event.run
    if event.incident is not None:
        body["incident"] = event.incident
    body["figures"] = dict(event.figures)
    return body | {"sent_at": now, "sent_at_iso": iso(now)}


def email_message(event: Event, *, sender: str, to: tuple[str, ...] | list[str],
                  attachment: tuple[str, bytes, str] | None = None) -> EmailMessage:
    """The email of ``event``: subject ``[bizra] <title>``, a text part and an HTML part, and the attachment.

    Parameters
    ----------
    sender, to
        The From and To addresses.
    attachment
        ``(file name, content, MIME type)``, e.g. the audit's report as PDF; None: the report is only linked.
    """
    from bizra_nb.reports import _templates

    message = EmailMessage()
    message["Subject"] = "[bizra] " + one_line(event.title, 200)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["X-Bizra-Event"] = event.name
    attached = attachment[0] if attachment else None
    lines = [event.title, "", event.summary, ""]
    lines += [f"{label}: {value}" for label, value in event.figures]
    lines += ["", (f"The report is attached ({attached}); also at {event.link}" if attached else
                   f"Open: {event.link}"), "", f"-- bizra-nb, {event.name}, {iso(event.at)}"]
    message.set_content("\n".join(lines))
    html = _templates().get_template("notification_email.html.j2").render(
        event=event, attached=attached, sent=iso(event.at),
        link_text=_link_words(event.link))
    message.add_alternative(html, subtype="html")
    if attachment is not None:
        name, content, mimetype = attachment
        maintype, subtype = mimetype.split("/", 1)
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
    return message
