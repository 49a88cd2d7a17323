"""Helpers for report notebooks: offline plotly figures in the HTML, and the run's summary values.

In a run (``BIZRA_REPORT=1``, set by the runner) :func:`setup` makes every
figure carry both plotly's JSON (for JupyterLab) and HTML (for the report);
plotly.js is embedded in the first figure only, so a report holds one copy
whatever its number of figures. Interactively, JupyterLab's own renderer stays.
"""
from __future__ import annotations

import json
import os
from typing import Any

import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer

from bizra_nb.reports import SUMMARY_MIMETYPE
RENDERER = "bizra_offline"


class OfflineRenderer(MimetypeRenderer):
    """plotly JSON + HTML; plotly.js inline in the first figure of the kernel only.

    The flag is kept on the class: plotly may copy a renderer before using it.
    """

    sent_plotlyjs = False

    def to_mimebundle(self, fig_dict: dict) -> dict:
        include = not OfflineRenderer.sent_plotlyjs
        OfflineRenderer.sent_plotlyjs = True
        html = pio.to_html(fig_dict, include_plotlyjs=include, include_mathjax=False, full_html=False,
                           default_width="100%", default_height=460, validate=False,
                           config={"displaylogo": False, "responsive": True})
        as_json = json.loads(pio.to_json(fig_dict, validate=False))
        return {"text/html": html, "application/vnd.plotly.v1+json": {**as_json, "config": {"displaylogo": False}}}


def in_report_run() -> bool:
    return os.environ.get("BIZRA_REPORT") == "1"


def setup() -> None:
    """Call once at the top of a report notebook."""
    if in_report_run():
        pio.renderers[RENDERER] = OfflineRenderer()
        pio.renderers.default = RENDERER
    pio.templates.default = "plotly_white"


def record(**values: Any) -> None:
    """Record headline results of this run; the runner writes them to ``summary.json``."""
    from IPython.display import display

    display({SUMMARY_MIMETYPE: json.loads(json.dumps(values, default=str)), "text/plain": ""}, raw=True)
