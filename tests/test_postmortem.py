"""The postmortem draft from plain dicts (issue 15): its content, hostile notes and labels made inert in HTML and
Markdown, the Markdown's structure; the timeline's words and the bounded copy a diagnosis notebook gets."""
from __future__ import annotations

import html.parser
import re

import pytest

from bizra_nb.postmortem import WRITE_SECTIONS, humanise, md_text, render_html, render_markdown, safe_url
from bizra_nb.timeline import complete, describe_event, for_notebook, timeline_table

T0 = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC
HOSTILE = "<script>alert(1)</script> <img src=x onerror=alert(2)> [click](javascript:alert(3)) **bold** | `tick`"


def incident(**changes) -> dict:
    doc = {"id": 12, "title": "HighErrorRate on api", "severity": "P1", "status": "resolved", "service": "api",
           "source": "alertmanager", "opened_at": T0, "acknowledged_at": T0 + 300, "resolved_at": T0 + 5400,
           "report_url": "/reports/2026/09/incident_diagnosis-abc/report.html",
           "diagnosis": {"verdict": "root_cause", "anomaly_start": T0 - 120,
                         "confidence": {"level": "high", "score": 0.82, "reason": "one clear candidate"},
                         "ranking": [{"service": "catalog-db", "kind": "resource", "score": 7.25, "metric": "cpu",
                                      "explanation": "cpu saturated before its callers slowed",
                                      "evidence": [{"metric": "cpu", "direction": "up", "magnitude": 6.5,
                                                    "onset": T0 - 110, "normal": 0.21, "peak": 0.97}]},
                                     {"service": "cart", "kind": "code", "score": 3.1, "metric": "latency",
                                      "explanation": "", "callers": ["frontend"], "evidence": []},
                                     {"service": "quiet", "kind": "resource", "score": 0.2, "metric": "cpu",
                                      "evidence": []}]}}
    doc.update(changes)
    return doc


def events(note: str = "rolled back v2.3", labels: dict | None = None) -> list[dict]:
    return [
        {"id": 1, "ts": T0, "kind": "opened", "actor": "alertmanager",
         "detail": {"alertname": "HighErrorRate", "status": "firing", "firing": 1, "resolved": 0,
                    "labels": labels or {"service": "api"}, "severity": "P1"}},
        {"id": 2, "ts": T0 + 10, "kind": "diagnosis_finished", "actor": None,
         "detail": {"mode": "report", "top_cause": "catalog-db", "confidence": "high", "run_id": "abc",
                    "report_url": "/reports/2026/09/incident_diagnosis-abc/report.html"}},
        {"id": 3, "ts": T0 + 300, "kind": "acknowledged", "actor": "alice", "detail": {"from": "open"}},
        {"id": 4, "ts": T0 + 600, "kind": "note", "actor": "alice", "detail": {"text": note}},
        {"id": 5, "ts": T0 + 700, "kind": "silence_created", "actor": "alice",
         "detail": {"silence_id": "s-1", "matchers": [{"name": "service", "value": "api", "isRegex": False}],
                    "ends_at": "2026-09-21T16:00:00Z", "comment": "deploying the fix"}},
        {"id": 6, "ts": T0 + 5400, "kind": "resolved", "actor": "alertmanager",
         "detail": {"alertname": "HighErrorRate", "status": "resolved", "firing": 0, "resolved": 1}},
    ]


class Tags(html.parser.HTMLParser):
    """The tags and attributes of a page, as a browser's parser sees them."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_the_html_draft_has_every_section_and_figure():
    page = render_html(incident(), events(), now=T0 + 9000)
    for heading in ("Summary", "Impact", "Timeline", "Root-cause candidates", "Reports", *WRITE_SECTIONS):
        assert f">{heading}</h2>" in page, heading
    assert page.count('<div class="write">To be written.</div>') == 3  # the parts people write stay empty
    assert "<dt>Severity</dt><dd>P1</dd>" in page
    assert "<dt>Impact window</dt><dd>2026-09-21 14:13:20 UTC → 2026-09-21 15:43:20 UTC</dd>" in page
    assert "<dt>Impact duration</dt><dd>1 h 30 min</dd>" in page
    assert "<dt>Time to acknowledge (TTA)</dt><dd>5 min</dd>" in page  # one incident's: not the audit's means
    assert "<dt>Time to resolve (TTR)</dt><dd>1 h 30 min</dd>" in page and "MTT" not in page
    assert "Most likely root cause: catalog-db (resource use), confidence high." in page
    assert "<dt>Opened by</dt><dd>alertmanager</dd>" in page
    # the timeline, oldest first, one row per event
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>", page)
    assert [r[1] for r in rows] == ["Opened", "Diagnosis finished", "Acknowledged", "Note", "Silence created",
                                    "Resolved"]
    assert rows[0][0] == "2026-09-21 14:13:20 UTC" and rows[2][2] == "alice" and rows[1][2] == "–"
    assert "rolled back v2.3" in page and "deploying the fix" in page and "service=api" in page
    # candidates with evidence and confidence; a candidate without evidence or callers is no candidate
    assert "Verdict: root cause; confidence: high (0.82). one clear candidate" in page
    assert "<strong>catalog-db</strong> (resource use; score 7.25; metric cpu)" in page
    assert "<strong>cart</strong> (its own latency or errors; score 3.1" in page and "(code;" not in page
    assert "Evidence: cpu up ×6.5 (normal 0.21, peak 0.97), since 2026-09-21 14:11:30 UTC" in page
    assert "Blamed from its callers: frontend" in page and "<strong>quiet</strong>" not in page
    links = [a["href"] for tag, a in Tags(page).tags if tag == "a"]
    assert links == ["/reports/2026/09/incident_diagnosis-abc/report.html", "/rca/incidents/12/evidence",
                     "/rca/incidents/12/timeline"]  # the report once, though two places name it
    assert not [t for t, _ in Tags(page).tags if t in ("script", "img", "iframe", "link")]  # self-contained


def test_an_ongoing_undiagnosed_incident():
    open_incident = incident(status="open", acknowledged_at=None, resolved_at=None, diagnosis=None, report_url=None)
    page = render_html(open_incident, events()[:1], now=T0 + 600)
    assert "<dd>2026-09-21 14:13:20 UTC → ongoing</dd>" in page and "<dd>10 min so far</dd>" in page
    assert "<dd>not acknowledged</dd>" in page and "<dd>not resolved</dd>" in page
    assert "No diagnosis is stored for this incident." in page
    nothing = render_markdown(incident(diagnosis={"verdict": "nothing_to_blame", "ranking": [
        {"service": "x", "evidence": [{"metric": "cpu"}]}], "confidence": {"level": "low"}}), [], now=T0)
    assert "No candidate: no service changed beyond its usual behaviour." in nothing
    assert "The diagnosis found no service to blame." in nothing
    # no events recorded: the incident's own times tell the story (below: from the incident's record)
    assert "No events recorded." not in nothing and "0 timeline events, 0 notes." in nothing


def test_hostile_notes_and_labels_are_inert_in_html():
    hostile_labels = {"team": HOSTILE, '"><svg onload=alert(4)>': "x"}
    page = render_html(incident(title=HOSTILE, service=HOSTILE), events(note=HOSTILE, labels=hostile_labels),
                       now=T0)
    tags = Tags(page).tags
    assert [t for t, _ in tags if t in ("script", "img", "svg")] == []
    assert all(not any(k.startswith("on") for k in attrs) for _, attrs in tags)
    assert all(not a.get("href", "").startswith("javascript") for _, a in tags)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "&#34;&gt;&lt;svg onload=alert(4)&gt;" in page


def test_hostile_notes_and_labels_are_inert_in_markdown():
    hostile_labels = {"team": HOSTILE}
    text = render_markdown(incident(title=HOSTILE), events(note=HOSTILE + "\nsecond line", labels=hostile_labels),
                           now=T0, base_url="https://bizra.example.com")
    for line in text.splitlines():
        stripped = re.sub(r"\(<https://bizra\.example\.com/[A-Za-z0-9._~/%?&=+\-#]*>\)", "", line)
        assert "<" not in stripped, line  # no raw HTML anywhere but the link targets
        assert re.search(r"(?<!\\)\]\(", stripped) is None, line  # no link: every bracket escaped
    assert "&lt;script>alert(1)&lt;/script>" in text
    assert "\\*\\*bold\\*\\*" in text and "\\| \\`tick\\`" in text
    note_row = next(line for line in text.splitlines() if line.startswith("| ") and "| Note |" in line)
    assert note_row.count(" | ") == 3 and "second line" in note_row  # a note stays one table row


def test_the_markdown_structure():
    text = render_markdown(incident(), events(), now=T0 + 9000, base_url="https://bizra.example.com/")
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings[0].startswith("# Postmortem draft: incident #12 — HighErrorRate on api")
    assert headings[1:] == ["## Summary", "## Impact", "## Timeline", "## Root-cause candidates", "## Reports",
                            "## What went well", "## What to improve", "## Action items"]
    lines = text.splitlines()
    table = lines.index("| Time (UTC) | Event | By | Details |")
    assert lines[table + 1] == "| --- | --- | --- | --- |"
    rows = lines[table + 2: table + 8]
    assert all(r.startswith("| ") and r.endswith(" |") and r.count(" | ") == 3 for r in rows)
    assert lines[table + 8] == ""  # the table ends after its six events
    assert "- **Time to acknowledge (TTA)**: 5 min" in lines
    assert "- **Time to resolve (TTR)**: 1 h 30 min" in lines
    assert "- **Impact window**: 2026-09-21 14:13:20 UTC → 2026-09-21 15:43:20 UTC" in lines  # times as they are
    assert "- [Latest diagnosis report](<https://bizra.example.com/reports/2026/09/incident_diagnosis-abc/report.html>)" \
        in lines
    assert "1. **catalog-db** (resource use; score 7.25; metric cpu): cpu saturated before its callers slowed" in lines
    assert text.count("*To be written.*") == 3


@pytest.mark.parametrize("url, shown", [
    ("/reports/a/report.html", "https://h.example/reports/a/report.html"),
    ("javascript:alert(1)", None), ("//evil.example/x", None), ("/a b", None), ('/x"onmouseover=1', None),
    ("https://grafana.example:3000/d/x?a=1&b=2", "https://grafana.example:3000/d/x?a=1&b=2"),
    ("data:text/html,x", None), (None, None),
])
def test_only_the_platform_s_own_links_become_links(url, shown):
    assert safe_url(url, "https://h.example") == shown


def test_a_report_link_that_is_not_safe_is_shown_as_text():
    page = render_html(incident(report_url="javascript:alert(1)"), [], now=T0)
    assert "<li>Latest diagnosis report: javascript:alert(1)</li>" in page
    assert 'href="javascript' not in page


def test_the_timeline_in_words_and_for_a_notebook():
    assert describe_event(events()[0]) == ("alert HighErrorRate firing; 1 firing, 0 resolved; severity P1; "
                                           "service=api")
    assert describe_event(events()[1]) == "diagnosis report; top cause catalog-db; confidence high; run abc"
    assert describe_event(events()[4]) == ("silence s-1; until 2026-09-21 16:00:00 UTC; service=api; "
                                           "deploying the fix")
    many = [{"ts": T0 + n, "kind": "note", "actor": "a", "detail": {"text": "x" * 5000}} for n in range(300)]
    passed = for_notebook(many)
    assert len(passed) == 200 and passed[0]["ts"] == T0 + 100  # the newest 200
    assert all(len(e["what"]) == 500 for e in passed) and set(passed[0]) == {"ts", "kind", "actor", "what"}
    table = timeline_table(for_notebook(events(note=HOSTILE)))
    assert list(table.frame["Event"]) == ["Opened", "Diagnosis finished", "Acknowledged", "Note", "Silence created",
                                          "Resolved"]
    assert "&lt;script&gt;" in table.to_html() and "<script>" not in table.to_html()
    assert "No timeline" in str(timeline_table([]))


# -- review findings: a timeline older than its events, silences' ends, readable Markdown, the figures --------

def test_an_incident_older_than_its_timeline_is_completed_from_its_record():
    old = incident(labels={"alertname": "HighErrorRate", "service": "api"})
    note = {"id": 9, "ts": T0 + 4 * 86400, "kind": "note", "actor": "alice", "detail": {"text": "days later"}}
    done = complete(old, [note])
    assert [(e["kind"], e["ts"], e["actor"]) for e in done] == [
        ("opened", T0, "alertmanager"), ("acknowledged", T0 + 300, "alertmanager"),
        ("resolved", T0 + 5400, "alertmanager"), ("note", T0 + 4 * 86400, "alice")]  # by time
    assert all(e["from_record"] and e["detail"]["from_record"] for e in done[:3]) and "from_record" not in note
    assert done[0]["detail"]["title"] == "HighErrorRate on api"
    assert describe_event(done[0]) == ("HighErrorRate on api; severity P1; service api; alertname=HighErrorRate, "
                                       "service=api; from the incident's record (no event was recorded)")
    assert complete(old, events()) == events()  # recorded events stand: nothing added twice
    # only what is missing: a recorded acknowledgement stays the only one
    ack = {"id": 3, "ts": T0 + 310, "kind": "acknowledged", "actor": "bob", "detail": {"from": "open"}}
    assert [e["kind"] for e in complete(old, [ack])] == ["opened", "acknowledged", "resolved"]
    assert [e["actor"] for e in complete(old, [ack])] == ["alertmanager", "bob", "alertmanager"]
    # an open incident: no acknowledged or resolved entry
    assert [e["kind"] for e in complete(incident(acknowledged_at=None, resolved_at=None), [])] == ["opened"]
    # where events were left out (a gap, or before a read of the newest), nothing is made up
    gap = [events()[0], {"id": None, "ts": T0, "kind": "omitted", "detail": {"count": 40}}, events()[5]]
    assert [e["kind"] for e in complete(old, gap)] == ["opened", "omitted", "resolved"]  # ack at T0+300: hidden
    assert [e["kind"] for e in complete(old, [note], hidden_before=note["ts"])] == ["note"]
    page = render_html(old, [note], now=T0 + 5 * 86400)
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>", page)
    assert rows[0] == ("2026-09-21 14:13:20 UTC", "Opened", "alertmanager")  # the story starts at the impact
    assert [r[1] for r in rows] == ["Opened", "Acknowledged", "Resolved", "Note"]
    assert "1 timeline event, 1 note." in page and "from the incident&#39;s record" in page


def test_the_notebook_s_copy_is_completed_too():
    passed = for_notebook([events()[3]], incident=incident())
    assert [e["kind"] for e in passed] == ["opened", "acknowledged", "note", "resolved"]
    assert passed[0]["from_record"] is True and "from_record" not in passed[2]
    assert "from the incident's record" in passed[0]["what"]
    many = [{"ts": T0 + 6000 + n, "kind": "note", "actor": "a", "detail": {"text": str(n)}} for n in range(200)]
    assert [e["kind"] for e in for_notebook(many, incident=incident())] == ["note"] * 200  # older: not read, not made
    table = timeline_table(passed)
    assert list(table.frame["Event"])[0] == "Opened"


def test_a_long_timeline_keeps_its_beginning_in_the_postmortem():
    shown = [events()[0], {"id": None, "ts": T0, "kind": "omitted", "detail": {"count": 1234}}, *events()[1:]]
    page = render_html(incident(), shown, now=T0 + 9000)
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td class=\"what\">([^<]*)</td>", page)
    assert rows[0][1] == "Opened" and rows[1] == ("…", "…", "–", "… 1234 events not shown …")
    assert "1240 timeline events (1234 of them not shown below), 1 note shown." in page
    assert "| … | … | – | … 1234 events not shown … |" in render_markdown(incident(), shown, now=T0)


def test_a_silence_s_end_is_a_utc_time():
    event = {"kind": "silence_created", "ts": T0, "actor": "alice",
             "detail": {"silence_id": "s-2", "ends_at": 1796096648.925}}
    assert describe_event(event) == "silence s-2; until 2026-12-01 03:44:08 UTC"
    for text in (render_html(incident(), [event], now=T0), render_markdown(incident(), [event], now=T0),
                 timeline_table(for_notebook([event])).to_html()):
        assert "until 2026-12-01 03:44:08 UTC" in text and "1796096648" not in text


def test_an_error_in_the_timeline_is_its_first_line():
    error = ("InvalidInput: /data/metrics.parquet: no data in the requested window in cell 4 "
             "(metrics = open_source(source)  # first: a missing dataset)\nTraceback (most recent call last):\n"
             '  File "/srv/bizra_nb/dataset.py", line 12')
    event = {"kind": "diagnosis_failed", "detail": {"mode": "report", "error": error, "run_id": "r1"}}
    assert describe_event(event) == ("diagnosis report; InvalidInput: /data/metrics.parquet: no data in the "
                                     "requested window in cell 4; run r1")


def test_the_figures_of_one_incident():
    page = render_html(incident(acknowledged_at=T0 + 72, resolved_at=T0 + 540, anomaly_start=T0 - 600), events(),
                       now=T0)
    assert "<dt>Time to acknowledge (TTA)</dt><dd>1 min 12 s</dd>" in page  # seconds below ten minutes
    assert "<dt>Time to resolve (TTR)</dt><dd>9 min</dd>" in page
    # the impact began with the anomaly, before the incident was opened
    assert "<dt>Impact window</dt><dd>2026-09-21 14:03:20 UTC → 2026-09-21 14:22:20 UTC</dd>" in page
    assert "<dt>Impact duration</dt><dd>19 min</dd>" in page
    alerts = {"f1": {"starts_at": T0 - 60, "status": "firing"}, "f2": {"starts_at": T0 + 30, "status": "firing"}}
    assert "<dt>Impact window</dt><dd>2026-09-21 14:12:20 UTC →" in render_html(incident(alerts=alerts), [], now=T0)
    assert "<dt>Impact window</dt><dd>2026-09-21 14:13:20 UTC →" in render_html(incident(), [], now=T0)
    assert humanise(59) == "59 s" and humanise(600) == "10 min" and humanise(125.4) == "2 min 5 s"


def test_a_failed_report_is_not_the_diagnosis():
    url = "/reports/2026/09/incident_diagnosis-bad/report.html"
    failed = {"id": 7, "ts": T0 + 20, "kind": "diagnosis_failed", "actor": None,
              "detail": {"mode": "report", "run_id": "bad", "report_url": url,
                         "error": "InvalidInput: no data in the requested window in cell 4 (x = 1)\nmore"}}
    broken = incident(report_url=url, report_run="bad", diagnosis=None)
    reports = [{"run_id": "bad", "status": "failed", "url": url, "created_at": T0 + 20}]
    page = render_html(broken, [*events()[:1], failed], reports=reports, now=T0)
    assert "Latest diagnosis report" not in page
    assert (f'<a href="{url}">The diagnosis report failed: InvalidInput: no data in the requested window in cell 4 '
            "(the failed run&#39;s report)</a>") in page
    # without the event, the run's status says it
    assert "The diagnosis report failed: the run failed" in render_markdown(broken, [], reports=reports, now=T0)
    assert "Latest diagnosis report" in render_html(incident(), events(), now=T0)  # a good one stays so


MARKDOWN_HOSTILE = ["<script>alert(1)</script>", "[x](javascript:alert(1))", "![img](http://evil.example/i.png)",
                    "| col | col |", "<b>bold</b>", "**strong** _em_ `code`", "# heading", "> quote", "- item",
                    "1. first", "&lt;img src=x&gt;", "<http://evil.example>", "x\n| --- | --- |\n| a | b |"]


def _markdown_tokens(markdown_it, value: str) -> tuple[list, str]:
    """The tokens (blocks and inline) and the HTML of a draft whose title, service, note and label are ``value``."""
    text = render_markdown(incident(title=value, service=value), events(note=value, labels={"team": value}),
                           now=T0, base_url="https://bizra.example.com")
    parser = markdown_it.MarkdownIt("commonmark").enable("table")
    tokens = parser.parse(text)
    return tokens + [child for token in tokens for child in (token.children or [])], parser.render(text)


@pytest.mark.parametrize("hostile", MARKDOWN_HOSTILE)
def test_hostile_text_is_inert_in_rendered_markdown(hostile):
    markdown_it = pytest.importorskip("markdown_it")
    tokens, rendered = _markdown_tokens(markdown_it, hostile)
    plain, _ = _markdown_tokens(markdown_it, "plain words")
    # the same structure as with plain words: no tag, link, image, code, heading, quote, list, emphasis or cell more
    assert [t.type for t in tokens if t.type not in ("text", "softbreak")] == [
        t.type for t in plain if t.type not in ("text", "softbreak")]
    assert not [t for t in tokens if t.type in ("html_block", "html_inline", "image", "code_inline")]
    links = [t.attrs.get("href") for t in tokens if t.type == "link_open"]
    assert links and all(str(href).startswith("https://bizra.example.com/") for href in links), links
    assert "<script" not in rendered and "<b>" not in rendered and "<img" not in rendered
    assert "javascript:" not in "".join(str(t.attrs) for t in tokens)
    if "<" in hostile:  # shown to the reader as typed
        assert hostile.split("\n")[0].replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;") in rendered


def test_ordinary_text_is_left_as_it_is_in_markdown():
    text = render_markdown(incident(service="api-gateway", title='p99 = 120 ms on "api-gateway"'),
                           events(note="rolled back api-gateway: p99 = 120 ms at 01:43:07, it's fine (v2.3)."),
                           now=T0)
    assert "# Postmortem draft: incident #12 — p99 = 120 ms on \"api-gateway\"" in text
    assert "- **Service**: api-gateway" in text and "2026-09-21 14:13:20 UTC" in text
    assert "| rolled back api-gateway: p99 = 120 ms at 01:43:07, it's fine (v2.3). |" in text
    assert "&quot;" not in text and "\\-" not in text and "\\:" not in text
    assert md_text("# not a heading", line_start=True) == "\\# not a heading"
    assert md_text("2026. a year", line_start=True) == "2026\\. a year" and md_text("2026 users", line_start=True) \
        == "2026 users"
    assert md_text("a & b &amp; c") == "a & b \\&amp; c"  # an entity stays as typed, not decoded


# -- an incident resolved without an acknowledgement (its record's acknowledged_at is its resolved_at) -----------

def direct(**changes) -> dict:
    """An incident resolved without an acknowledgement: a resolution sets acknowledged_at to resolved_at."""
    return incident(acknowledged_at=T0 + 5400, resolved_at=T0 + 5400, **changes)


def test_a_recorded_timeline_is_not_added_to_from_the_record():
    story = [events()[0], events()[5]]  # opened, resolved: nothing else happened
    assert complete(direct(), story) == story
    # an opened event means the incident was recorded from its start: its record adds nothing, even an
    # acknowledged_at no event holds (a write that failed is not made up as if it had been seen)
    assert complete(incident(), story) == story
    assert for_notebook(story, incident=direct()) == for_notebook(story)
    page = render_html(direct(), story, now=T0 + 6000)
    assert "<dt>Time to acknowledge (TTA)</dt><dd>not acknowledged (resolved directly)</dd>" in page
    assert "<dt>Time to resolve (TTR)</dt><dd>1 h 30 min</dd>" in page
    assert "not recorded" not in page and "from the incident&#39;s record" not in page
    rows = re.findall(r"<tr><td>[^<]*</td><td>([^<]*)</td>", page)
    assert rows == ["Opened", "Resolved"]
    markdown = render_markdown(direct(), story, now=T0 + 6000)
    assert "- **Time to acknowledge (TTA)**: not acknowledged (resolved directly)" in markdown
    assert "not recorded" not in markdown and "2 timeline events, 0 notes." in markdown


def test_an_old_incident_resolved_directly_gets_no_made_up_acknowledgement():
    note = {"id": 9, "ts": T0 + 6000, "kind": "note", "actor": "alice", "detail": {"text": "after"}}
    done = complete(direct(), [note])
    assert [(e["kind"], e["ts"], e.get("from_record", False)) for e in done] == [
        ("opened", T0, True), ("resolved", T0 + 5400, True), ("note", T0 + 6000, False)]
    page = render_html(direct(), [note], now=T0 + 7000)
    assert "<dt>Time to acknowledge (TTA)</dt><dd>not acknowledged (resolved directly)</dd>" in page
    assert "were not recorded when they happened" in page  # its opening and resolution are from its record
    # acknowledged, then resolved: the acknowledgement is its own, from the record too; TTA as measured
    acked = render_html(incident(), [note], now=T0 + 7000)
    assert "<dt>Time to acknowledge (TTA)</dt><dd>5 min</dd>" in acked and ">Acknowledged<" in acked
    # an open incident, or one acknowledged and not yet resolved, is no "resolved directly"
    assert "<dd>not acknowledged</dd>" in render_html(incident(acknowledged_at=None, resolved_at=None, status="open"),
                                                      [], now=T0 + 60)
    assert "<dd>5 min</dd>" in render_html(incident(resolved_at=None, status="acknowledged"), [], now=T0 + 600)
