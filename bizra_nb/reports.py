"""Report files: executed notebook → offline HTML (no code), failure banners, summary.json, the index page.

Every file is written to a temporary name and renamed, so a crash never leaves
a half-written report under a final name.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from bizra_nb.markup import protect_html, script_hashes

SUMMARY_MIMETYPE = "application/vnd.bizra.summary+json"  # what bizra_nb.notebook.record() displays
PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"

TEMPLATES = Path(__file__).parent / "templates"


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
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


def _clip(text: object, limit: int) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def export_html(nb, *, title: str) -> str:
    """Self-contained HTML without code cells' input, without CDN scripts, running only its own scripts.

    The page carries a Content-Security-Policy that allows exactly the inline scripts
    of its figures (:func:`figure_scripts`, :func:`bizra_nb.markup.protect_html`).
    """
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="offline", extra_template_basedirs=[str(TEMPLATES)],
                            exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                            embed_images=True)
    nb = nbformat.from_dict(nb)
    nb.metadata["title"] = title  # the template escapes it
    body, _ = exporter.from_notebook_node(nb)
    return protect_html(body, figure_scripts(nb))


def figure_scripts(nb) -> list[str]:
    """Hashes of the scripts of the report's figures: the HTML of outputs that our renderer
    (:class:`bizra_nb.notebook.OfflineRenderer`) wrote, recognised by the plotly JSON beside it."""
    hashes: list[str] = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIMETYPE in data and "text/html" in data:
                html = data["text/html"]
                hashes += script_hashes("".join(html) if isinstance(html, list) else html)
    return hashes


def write_index(runs: list[dict], reports_dir: Path) -> Path:
    """``reports/index.html``: every run, newest first: kind, date, status, headline numbers, link."""
    reports_dir = Path(reports_dir)
    rows = []
    for run in runs:
        folder = run.get("folder")
        link = None
        if folder and (Path(folder) / "report.html").exists():
            link = Path(os.path.relpath(Path(folder) / "report.html", reports_dir)).as_posix()
        summary = run.get("summary") or {}
        headline = summary.get("headline") or ", ".join(
            f"{k}: {v}" for k, v in list(summary.items())[:3] if not isinstance(v, (dict, list)))
        rows.append({"when": time.strftime("%Y-%m-%d %H:%M", time.gmtime(run["created_at"])), "kind": run["kind"],
                     "status": run["status"], "headline": str(headline), "error": (run.get("error") or "")[:200],
                     "link": link})
    page = _templates().get_template("index.html.j2").render(
        rows=rows, generated=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    return write_atomic(reports_dir / "index.html", page)


def _templates():
    """Our Jinja templates, autoescaped: every value they show may be untrusted."""
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True)
