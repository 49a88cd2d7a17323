"""Reports a manager can read: titles, tables for people, one story, one banner, and a phone's width (Chromium)."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from bizra_nb.dataset import write_dataset
from bizra_nb.fleet import Fault, platform_month
from bizra_nb.runner import report_links
from bizra_nb.store import Store
from tests.browser import ARTEFACTS

WIDTHS = (1400, 390)


class Cells(HTMLParser):
    """The header and body cells of every table of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.headers: list[str] = []
        self.cells: list[str] = []
        self._in: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        if tag in ("th", "td"):
            self._in, self._text = tag, ""

    def handle_endtag(self, tag):
        if tag == self._in:
            (self.headers if tag == "th" else self.cells).append(self._text.strip())
            self._in = None

    def handle_data(self, data):
        if self._in:
            self._text += data


def cells_of(page: str) -> Cells:
    """The tables' cells, the failure banner's parameter table left out."""
    without_banner = re.sub(r'<div class="bizra-failure".*?</table></div>\s*</div>', "", page, flags=re.S)
    parser = Cells()
    parser.feed(without_banner)
    return parser


@pytest.fixture(scope="module")
def diagnosis_run(runner, fleet):
    incident = {"id": 3, "title": "HighLatency on api-gateway", "severity": "P1", "status": "open",
                "service": "api-gateway", "opened_at": (fleet.fault.start + pd.Timedelta("3min")).timestamp()}
    return runner.run("incident_diagnosis", {"incident_id": 3, "incident": incident, "source": str(fleet.metrics),
                                             "cmdb": str(fleet.cmdb), "symptom_service": "api-gateway"})


@pytest.fixture(scope="module")
def audit_run(runner, tmp_path_factory):
    data = tmp_path_factory.mktemp("audit-data")
    start = pd.Timestamp("2026-09-10T12:00Z")
    write_dataset(platform_month("2026-09", faults=[Fault("x", "latency", start, magnitude=3.0)]),
                  data / "platform.parquet")
    store = Store.open(data)
    store.create_incident(title="AhsanScoreBelowThreshold", severity="P1", source="api", opened_at=start.timestamp(),
                          acknowledged_at=start.timestamp() + 300, resolved_at=start.timestamp() + 5700,
                          status="resolved", service="api-gateway")
    store.create_incident(title="HighErrorRate", severity="P2", source="api", opened_at=start.timestamp() + 86400,
                          acknowledged_at=None, status="open", service="cart")  # no MTTA, no MTTR: "–"
    return runner.run("compliance_audit", {"month": "2026-09", "source": str(data / "platform.parquet"),
                                           "data_dir": str(data)})


@pytest.fixture(scope="module")
def failed_run(runner, fleet, tmp_path_factory):
    """A run whose dataset vanished between its creation (checked) and its execution."""
    data = tmp_path_factory.mktemp("vanishing")
    dataset = data / "metrics.csv"
    dataset.write_bytes(Path(fleet.metrics).read_bytes())
    run = runner.create("incident_diagnosis", {"source": str(dataset), "cmdb": str(fleet.cmdb),
                                               "symptom_service": "<b>api</b>-gateway"})
    dataset.unlink()
    return runner.execute(run["id"])




def report(run: dict) -> str:
    return (Path(run["folder"]) / "report.html").read_text(encoding="utf-8")


def test_titles_and_folders_name_the_subject(diagnosis_run, audit_run, failed_run):
    assert "<title>Incident 3 diagnosis — api-gateway</title>" in report(diagnosis_run)
    assert "<title>Compliance audit — September 2026</title>" in report(audit_run)
    assert "<title>Diagnosis (failed)</title>" in report(failed_run)  # not a service name: left out
    folder = Path(audit_run["folder"])
    assert folder.parent.name == "audit" and folder.name.startswith("2026-09-")
    link = report_links(audit_run)["html"]
    assert link == f"/reports/audit/{folder.name}/report.html"
    assert (folder.parent.parent / link.removeprefix("/reports/")).is_file()


def test_tables_are_for_people(diagnosis_run, audit_run):
    for run in (diagnosis_run, audit_run):
        page = report(run)
        assert 'class="dataframe' not in page, "a raw pandas table is left in the report"
        tables = cells_of(page)
        assert tables.cells
        for cell in tables.cells + tables.headers:
            assert cell not in ("NaN", "nan", "None", "True", "False", "NaT"), cell
            assert "_" not in cell or "/" in cell or " " in cell, f"a pandas column name: {cell}"
    audit = cells_of(report(audit_run))
    for header in ("Objective", "Target", "Achieved", "Met", "MTTA", "MTTR", "Time to acknowledge"):
        assert header in audit.headers, header
    assert "✔ met" in audit.cells and "–" in audit.cells  # met/missed marks, a dash for the missing MTTA
    assert "1 h 35 min" in audit.cells and "5 min" in audit.cells  # durations humanised
    assert any(re.fullmatch(r"\d{2}\.\d{2} %", c) for c in audit.cells)  # 99.94 %: one precision for shares
    page = report(audit_run)
    verdict = page.index("COMPLIANT")
    criteria = page.index("is <em>compliant</em> when every criterion below is met")
    assert verdict < criteria < page.index("Score over the month")  # the criteria next to the verdict


def test_the_diagnosis_tells_one_story(diagnosis_run):
    page = report(diagnosis_run)
    summary = page[:page.index("Ranked root causes")]
    assert "The alert came from" in summary and "api-gateway" in summary
    assert "It propagated along the dependencies" in summary and "catalog-db</code> → <code>catalog" in summary
    assert "stayed within their normal range" in summary  # quiet services in one line, not empty bars
    assert "propagation: catalog-db \\u2192 catalog" in page  # the path named in the graph's title (plotly JSON)
    tables = cells_of(page)
    assert "Deviation (× spread)" in tables.headers and "lat_50 (ms)" in tables.cells  # values carry units


def test_a_failed_report_has_one_banner_the_real_cause_and_nothing_empty_after(failed_run):
    assert failed_run["status"] == "failed"
    assert "metrics.csv not found" in failed_run["error"] and "CMDB" not in failed_run["error"]
    page = report(failed_run)
    assert page.count('class="bizra-failure"') == 1
    assert "papermill-error-cell" not in page and "An Exception was encountered" not in page
    assert "dataset file" in page and "metrics.csv not found" in page
    assert page.count("&lt;b&gt;api&lt;/b&gt;-gateway") >= 1 and "&amp;lt;b" not in page  # escaped once
    tail = page[page.index("Not run"):]
    assert "Ranked root causes" in tail and "<h2" not in tail  # no empty sections, one note naming them


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("which", ["diagnosis", "audit", "failed"])
def test_reports_fit_the_screen_in_chromium(browser, which, width, diagnosis_run, audit_run, failed_run):
    run = {"diagnosis": diagnosis_run, "audit": audit_run, "failed": failed_run}[which]
    context = browser.new_context(viewport={"width": width, "height": 900}, offline=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto((Path(run["folder"]) / "report.html").as_uri())
    if which != "failed":
        page.wait_for_selector(".plotly-graph-div .main-svg")
        page.wait_for_function("() => [...document.querySelectorAll('.plotly-graph-div')]"
                               ".every(d => d.querySelector('.main-svg'))")
    expected = {"diagnosis": "Incident 3 diagnosis — api-gateway", "audit": "Compliance audit — September 2026",
                "failed": "Diagnosis (failed)"}[which]
    assert page.title() == expected
    measured = page.evaluate("""() => ({
        page: document.documentElement.scrollWidth, view: window.innerWidth,
        figures: [...document.querySelectorAll('.plotly-graph-div .main-svg')].map(s => s.getBoundingClientRect().right),
        boxes: [...document.querySelectorAll('.bizra-table, .bizra-failure')].map(b => b.getBoundingClientRect().right),
        banners: document.querySelectorAll('.bizra-failure').length})""")
    assert measured["page"] <= measured["view"], f"the page scrolls sideways at {width} px: {measured}"
    assert all(right <= width + 1 for right in measured["figures"]), measured["figures"]
    assert all(right <= width + 1 for right in measured["boxes"]), measured["boxes"]
    assert measured["banners"] == (1 if which == "failed" else 0)
    assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"report_{which}_{width}.png"), full_page=True)
    context.close()
