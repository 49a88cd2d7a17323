"""Report files: executed notebook → offline HTML (no code), failure banners, summary.json, the index page.

Every file is written to a temporary name and renamed, so a crash never leaves
a half-written report under a final name.
"""
from __future__ import annotations

import html
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

SUMMARY_MIMETYPE = "application/vnd.bizra.summary+json"  # what bizra_nb.notebook.record() displays

TEMPLATES = Path(__file__).parent / "templates"


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # unique per writer
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(tmp, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
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
    """A markdown cell saying what failed, where, and with which parameters."""
    import nbformat

    where = f"in cell {error['cell']}" if error.get("cell") else "before any cell finished"
    params = "\n".join(f"| `{html.escape(str(k))}` | `{html.escape(json.dumps(v, default=str))}` |"
                       for k, v in parameters.items()) or "| (none) | |"
    source = (
        f"<div style=\"border:2px solid #c62828;background:#ffebee;padding:12px;border-radius:6px\">\n\n"
        f"## ✖ This run failed {where}\n\n"
        f"**{html.escape(error.get('type', 'Error'))}**: {html.escape(error.get('message', ''))}\n\n"
        f"Notebook `{html.escape(notebook)}`, run `{html.escape(str(error.get('run_id', '')))}`. "
        "The cells below show what ran, up to the failure.\n\n"
        f"| parameter | value |\n|---|---|\n{params}\n\n</div>"
    )
    return nbformat.v4.new_markdown_cell(source, metadata={"tags": ["bizra-failure"]})


def export_html(nb, *, title: str) -> str:
    """Self-contained HTML without code cells' input, without CDN scripts."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="offline", extra_template_basedirs=[str(TEMPLATES)],
                            exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                            embed_images=True)
    nb = nbformat.from_dict(nb)
    nb.metadata["title"] = title
    body, _ = exporter.from_notebook_node(nb)
    return body


def write_index(runs: list[dict], reports_dir: Path) -> Path:
    """``reports/index.html``: every run, newest first: kind, date, status, headline numbers, link."""
    reports_dir = Path(reports_dir)
    rows = []
    for run in runs:
        folder = run.get("folder")
        link = ""
        if folder and (Path(folder) / "report.html").exists():
            rel = os.path.relpath(Path(folder) / "report.html", reports_dir)
            link = f'<a href="{html.escape(rel)}">report</a>'
        summary = run.get("summary") or {}
        headline = summary.get("headline") or ", ".join(
            f"{k}: {v}" for k, v in list(summary.items())[:3] if not isinstance(v, (dict, list)))
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(run["created_at"]))
        status = run["status"]
        rows.append(
            f"<tr class=\"{status}\"><td>{when}</td><td>{html.escape(run['kind'])}</td>"
            f"<td><span class=\"status\">{html.escape(status)}</span></td><td>{html.escape(str(headline))}"
            f"{'<br><small>' + html.escape(run['error'][:200]) + '</small>' if run.get('error') else ''}</td>"
            f"<td>{link}</td></tr>"
        )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>BIZRA reports</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2rem; color: #212121; }}
table {{ border-collapse: collapse; width: 100%; }} th, td {{ text-align: left; padding: .45rem .6rem; border-bottom: 1px solid #e0e0e0; vertical-align: top; }}
th {{ background: #fafafa; }} .status {{ font-weight: 600; }}
tr.succeeded .status {{ color: #2e7d32; }} tr.failed .status {{ color: #c62828; }} tr.running .status, tr.queued .status {{ color: #ef6c00; }}
small {{ color: #757575; }}
</style></head><body>
<h1>BIZRA reports</h1>
<p>{len(runs)} runs, newest first. Generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}.</p>
<table><thead><tr><th>date (UTC)</th><th>kind</th><th>status</th><th>headline</th><th>report</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""
    return write_atomic(reports_dir / "index.html", page)
