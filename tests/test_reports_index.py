"""reports/index.html lists every run whose folder is in the reports dir, whichever store wrote last."""
from __future__ import annotations

import json
import threading
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from bizra_nb.reports import write_index
from bizra_nb.runner import Runner
from bizra_nb.store import Store


class Rows(HTMLParser):
    """The index's rows: the text of each cell, and the report links."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.links: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = []
        elif tag == "a":
            self.links.append(dict(attrs)["href"])

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def index_of(reports: Path) -> Rows:
    parser = Rows()
    parser.feed((reports / "index.html").read_text(encoding="utf-8"))
    parser.rows = [r for r in parser.rows if r]  # the header row has th, not td
    return parser


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    """A tiny notebook that records one headline from its parameter."""
    folder = tmp_path_factory.mktemp("nb")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('who = "nobody"', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("from bizra_nb import notebook\nnotebook.record(headline=f'run by {who}')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "records.ipynb"
    nbformat.write(nb, path)
    return path


def test_runs_of_two_stores_in_one_reports_dir_all_appear(tmp_path, records):
    reports = tmp_path / "reports"
    cli_runner = Runner(Store.open(tmp_path / "cli-data"), reports_dir=reports, workers=1)
    server_runner = Runner(Store.open(tmp_path / "server-data"), reports_dir=reports, workers=1)
    try:
        first = cli_runner.run(records, {"who": "the CLI"})
        second = server_runner.run(records, {"who": "the server"})  # this store writes the index last
        assert server_runner.store.list_runs() == [server_runner.store.get_run(second["id"])]  # knows only its own
        page = index_of(reports)
        headlines = sorted(row[3] for row in page.rows)
        assert headlines == ["run by the CLI", "run by the server"]
        assert sorted(page.links) == sorted(
            Path(run["folder"]).relative_to(reports).joinpath("report.html").as_posix() for run in (first, second))
        assert [row[2] for row in page.rows] == ["succeeded", "succeeded"]
        summary = json.loads((Path(first["folder"]) / "summary.json").read_text())
        assert summary["created_at"] == pytest.approx(first["created_at"]) and summary["finished_at"] >= \
            summary["created_at"]
    finally:
        cli_runner.close()
        server_runner.close()


def write_folder(reports: Path, kind: str, name: str, meta: dict | str) -> Path:
    folder = reports / kind / name
    folder.mkdir(parents=True)
    (folder / "report.html").write_text("<p>report</p>")
    (folder / "summary.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    return folder


def test_a_broken_summary_is_skipped_not_fatal(tmp_path, caplog):
    reports = tmp_path / "reports"
    write_folder(reports, "audit", "2026-10-01-aaaa", {
        "run_id": "aaaa", "notebook": "compliance_audit", "kind": "audit", "status": "succeeded",
        "parameters": {}, "error": None, "summary": {"headline": "compliant"}, "created_at": 1790812800.0})
    write_folder(reports, "audit", "2026-10-02-bbbb", '{"run_id": "bbbb", "status": ')  # cut short
    write_folder(reports, "audit", "2026-10-03-cccc", '["not", "an", "object"]')
    write_folder(reports, "incident", "2026-10-04-dddd", {
        "run_id": "dddd", "notebook": "incident_diagnosis", "kind": "incident", "status": "failed",
        "parameters": {}, "summary": {}, "error": {"type": "InvalidInput", "message": "dataset file x not found",
                                                   "cell": 3}})  # an older folder: no created_at
    write_index([], reports)
    page = index_of(reports)
    assert [(row[1], row[2]) for row in page.rows] == [("incident", "failed"), ("audit", "succeeded")]
    assert "InvalidInput: dataset file x not found in cell 3" in page.rows[0][3]
    assert "compliant" in page.rows[1][3]
    assert any("2026-10-02-bbbb" in r.getMessage() for r in caplog.records)


def test_the_writers_own_unfinished_runs_appear_beside_the_folders(tmp_path):
    reports = tmp_path / "reports"
    write_folder(reports, "benchmark", "2026-10-01-eeee", {
        "run_id": "eeee", "kind": "benchmark", "status": "succeeded", "summary": {"headline": "P99 3 ms"},
        "created_at": 1790812800.0})
    queued = {"id": "ffff", "kind": "incident", "status": "queued", "created_at": 1790899200.0, "summary": None,
              "folder": str(reports / "incident" / "2026-10-02-ffff")}
    write_index([queued], reports)
    assert [(row[1], row[2]) for row in index_of(reports).rows] == [("incident", "queued"), ("benchmark", "succeeded")]


def test_concurrent_writers_never_interleave(tmp_path):
    """Writers from many threads (processes lock the same way): the index is whole, and lists every folder."""
    reports = tmp_path / "reports"
    for n in range(30):
        write_folder(reports, "benchmark", f"2026-10-01-{n:04x}", {
            "run_id": f"{n:04x}", "kind": "benchmark", "status": "succeeded", "summary": {"headline": f"run {n}"},
            "created_at": 1790812800.0 + n})
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(5):
                write_index([], reports)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(index_of(reports).rows) == 30
    assert sorted(p.name for p in reports.iterdir()) == [".index.lock", "benchmark", "index.html"]
