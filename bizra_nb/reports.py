"""Report files: executed notebook → offline HTML (no code), failure banners, summary.json, the index page.

Every file is written to a temporary name and renamed, so a crash never leaves
a half-written report under a final name.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from bizra_nb.markup import protect_html, script_hashes

SUMMARY_MIMETYPE = "application/vnd.bizra.summary+json"  # what bizra_nb.notebook.record() displays
PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"

TEMPLATES = Path(__file__).parent / "templates"
log = logging.getLogger("bizra.reports")


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    A ``path`` that exists and is not a regular file (``--out /dev/null``, ``/dev/stdout``, a pipe) is written
    into directly: a rename would replace the device itself with a file.
    """
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        with open(path, "wb" if isinstance(data, bytes) else "w",
                  **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as handle:
            handle.write(data)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # unique per writer
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        with open(tmp, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk or a bad target leaves no stray temporary file
        raise
    return path


def extract_summary(nb) -> dict:
    """Merge every value the notebook recorded with :func:`bizra_nb.notebook.record`, in order."""
    summary: dict[str, Any] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if SUMMARY_MIMETYPE in data:
                summary.update(data[SUMMARY_MIMETYPE])
    return summary


def failure_cell(*, notebook: str, error: dict, parameters: dict):
    """A cell whose output is the failure banner: what failed, where, with which parameters (all escaped)."""
    import nbformat

    banner = _templates().get_template("failure_banner.html.j2").render(
        where=f"in cell {error['cell']}" if error.get("cell") else (error.get("where") or "before any cell finished"),
        error_type=_clip(error.get("type") or "Error", 120), message=_clip(error.get("message") or "", 2000),
        notebook=notebook, run_id=str(error.get("run_id", "")),
        parameters=[(_clip(k, 80), _clip(json.dumps(v, default=str, ensure_ascii=False), 300))
                    for k, v in parameters.items()])
    cell = nbformat.v4.new_code_cell("", metadata={"tags": ["bizra-failure"]})
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": banner, "text/plain": _clip(
        f"This run failed: {error.get('type')}: {error.get('message')}", 2000)})]
    return cell


def trim_failed(nb):
    """A failed run's notebook as its report shows it: one banner, nothing empty after the failure.

    papermill's own error cells (a second red banner and a pointer) are removed; the
    failing cell stays (its error output names the cause); the cells after it, which
    never ran, are replaced by one note naming the sections that were not run.
    Returns ``nb`` (changed in place).
    """
    from nbformat.v4 import new_markdown_cell

    from bizra_nb.markup import md

    cells = [c for c in nb.cells if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])]

    def status(cell) -> str:
        return (cell.get("metadata", {}).get("papermill") or {}).get("status") or ""

    failed_at = next((i for i, c in enumerate(cells)
                      if status(c) == "failed" or any(o.get("output_type") == "error" for o in c.get("outputs", []))),
                     None)
    cut = failed_at + 1 if failed_at is not None else next(
        (i for i, c in enumerate(cells) if status(c) in ("pending", "running")), None)
    if cut is not None and cut < len(cells):
        skipped = cells[cut:]
        sections = [line.lstrip("#").strip() for c in skipped if c.cell_type == "markdown"
                    for line in c.source.splitlines()[:1] if line.startswith("#")]
        note = "**Not run** because of the failure above" + (
            ": " + ", ".join(f"*{md(s, limit=80)}*" for s in sections) if sections else "") + "."
        cells = cells[:cut] + [new_markdown_cell(f"> {note}", metadata={"tags": ["bizra-not-run"]})]
    nb.cells = cells
    return nb


def report_title(notebook: str, parameters: dict, *, failed: bool = False) -> str:
    """A report's title naming its subject: "Compliance audit — October 2026", "Incident 3 diagnosis — api-gateway",
    "Benchmark — http://host:8080"; "(failed)" appended for a failed run. Plain text (templates escape it)."""
    p = parameters or {}
    if notebook == "compliance_audit":
        month = str(p.get("month") or "")
        try:
            title = "Compliance audit — " + time.strftime("%B %Y", time.strptime(month, "%Y-%m"))
        except ValueError:
            title = "Compliance audit" + (f" — {month}" if month else "")
    elif notebook == "incident_diagnosis":
        incident = p.get("incident") if isinstance(p.get("incident"), dict) else {}
        number = p.get("incident_id") or incident.get("id")
        service = str(p.get("symptom_service") or incident.get("symptom_service") or incident.get("service") or "")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", service):
            service = ""  # not a service name (an alert label is untrusted): the body shows it, escaped
        title = (f"Incident {number} diagnosis" if number else "Diagnosis") + (f" — {service}" if service else "")
    elif notebook == "benchmark":
        title = "Benchmark" + (f" — {p['target_url']}" if p.get("target_url") else "")
    elif notebook == "explore":
        title = "Explore the metrics"
    else:
        title = notebook.replace("_", " ").capitalize()
    return _clip(title, 160) + (" (failed)" if failed else "")


def _clip(text: object, limit: int) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def export_html(nb, *, title: str) -> str:
    """Self-contained HTML without code cells' input, without CDN scripts, running only its own scripts.

    The page carries a Content-Security-Policy that allows exactly the inline scripts
    of its figures (:func:`figure_scripts`, :func:`bizra_nb.markup.protect_html`).
    """
    import nbformat

    nb = nbformat.from_dict(nb)
    nb.metadata["title"] = title  # the template escapes it
    with _exporter() as exporter:
        body, _ = exporter.from_notebook_node(nb)
    return protect_html(body, figure_scripts(nb))


_idle_exporters: list = []  # built HTMLExporters (their templates compiled), none in use: one per concurrent export
_exporters_lock = threading.Lock()


def _new_exporter():
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="offline", extra_template_basedirs=[str(TEMPLATES)],
                        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                        embed_images=True)


@contextlib.contextmanager
def _exporter():
    """An exporter for this export alone: a built one not in use, else a new one; kept for the next export.

    An exporter registers per-notebook filters on its Jinja environment as it exports, so two
    threads never share one; one that raised is dropped.
    """
    with _exporters_lock:
        exporter = _idle_exporters.pop() if _idle_exporters else None
    exporter = exporter or _new_exporter()
    yield exporter
    with _exporters_lock:
        _idle_exporters.append(exporter)


def prepare_export() -> None:
    """Import nbconvert and build an exporter now (a report's first export otherwise pays a second or two)."""
    import nbformat

    export_html(nbformat.v4.new_notebook(), title="")


BIG_OUTPUT = 1 << 20  # characters: the figure output that carries plotly.js (about 4.8 MB), the same in every report


def figure_scripts(nb) -> list[str]:
    """Hashes of the scripts of the report's figures: the HTML of outputs that our renderer
    (:class:`bizra_nb.notebook.OfflineRenderer`) wrote, recognised by the plotly JSON beside it."""
    hashes: list[str] = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIMETYPE in data and "text/html" in data:
                html = data["text/html"]
                html = "".join(html) if isinstance(html, list) else html
                hashes += _big_output_hashes(html) if len(html) > BIG_OUTPUT else script_hashes(html)
    return hashes


@functools.lru_cache(maxsize=2)
def _big_output_hashes(html: str) -> tuple[str, ...]:
    """:func:`~bizra_nb.markup.script_hashes` of an output holding plotly.js, kept: the next report holds
    the same text (a dictionary look-up compares it, without parsing and hashing it again)."""
    return tuple(script_hashes(html))


INDEX_LOCK = ".index.lock"  # in the reports dir: one writer of index.html at a time, across processes


def write_index(runs: Iterable[dict], reports_dir: Path) -> Path:
    """``reports/index.html``: every run whose folder is in ``reports_dir``, newest first, whoever ran it.

    The index is built from the report folders themselves (``<kind>/<folder>/summary.json``,
    written by each run when it finishes), so runs of every store that writes into this
    reports dir appear: CLI runs, server runs and the demo, whichever wrote last. ``runs``
    (the writer's own store) adds what has no folder metadata yet or never got any: its
    queued and running runs, a run that failed before its report was written. Queued or
    running runs of *other* stores have no metadata yet and are absent until they finish.
    A folder whose ``summary.json`` cannot be read is skipped (logged), never fatal.

    Writers hold an exclusive lock (``fcntl.flock`` on ``.index.lock`` in ``reports_dir``)
    while they scan and write, so concurrent writers never interleave.
    """
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    with _index_lock(reports_dir):
        entries = _folder_runs(reports_dir)
        for run in runs:  # the writer's own records are the freshest for its runs
            entries[str(run.get("id") or id(run))] = {**entries.get(str(run.get("id")), {}), **run}
        ordered = sorted(entries.values(), key=lambda r: r.get("created_at") or 0, reverse=True)
        rows = [_index_row(run, reports_dir) for run in ordered]
        page = _templates().get_template("index.html.j2").render(
            rows=rows, generated=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
        return write_atomic(reports_dir / "index.html", page)


@contextlib.contextmanager
def _index_lock(reports_dir: Path):
    import fcntl

    with open(reports_dir / INDEX_LOCK, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _folder_runs(reports_dir: Path) -> dict[str, dict]:
    """Run id → the run as its folder's ``summary.json`` describes it; unreadable folders are skipped."""
    found: dict[str, dict] = {}
    for meta_path in reports_dir.glob("*/*/summary.json"):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if not isinstance(meta, dict) or not isinstance(meta.get("run_id"), str) or not meta.get("status"):
                raise ValueError("no run_id or status")
            created = meta.get("created_at")
            meta["created_at"] = float(created) if isinstance(created, (int, float)) else meta_path.stat().st_mtime
        except (OSError, ValueError) as exc:
            log.warning("reports index: skipping %s: %s", meta_path, exc)
            continue
        error = meta.get("error")
        if isinstance(error, dict):  # summary.json keeps the structured error; the index shows one line
            where = f" in cell {error['cell']}" if error.get("cell") else ""
            error = f"{error.get('type') or 'Error'}: {error.get('message') or ''}{where}"
        found[meta["run_id"]] = {
            "id": meta["run_id"], "kind": str(meta.get("kind") or meta_path.parent.parent.name),
            "status": str(meta["status"]), "created_at": meta["created_at"], "folder": str(meta_path.parent),
            "summary": meta.get("summary") if isinstance(meta.get("summary"), dict) else {},
            "error": error if isinstance(error, str) else None, "title": meta.get("title")}
    return found


def _index_row(run: dict, reports_dir: Path) -> dict:
    folder = run.get("folder")
    link = None
    if folder and (Path(folder) / "report.html").exists():
        link = Path(os.path.relpath(Path(folder) / "report.html", reports_dir)).as_posix()
    summary = run.get("summary") or {}
    headline = summary.get("headline") or ", ".join(
        f"{k}: {v}" for k, v in list(summary.items())[:3] if not isinstance(v, (dict, list)))
    created = run.get("created_at") or 0
    return {"when": time.strftime("%Y-%m-%d %H:%M", time.gmtime(created)), "kind": run.get("kind") or "",
            "title": str(run.get("title") or ""), "status": run.get("status") or "", "headline": str(headline),
            "error": str(run.get("error") or "")[:200], "link": link}


def _templates():
    """Our Jinja templates, autoescaped: every value they show may be untrusted."""
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True)
