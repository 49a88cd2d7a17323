"""`/reports/…`: the report index and the reports themselves, served from the reports folder.

Reports hold untrusted text (alert labels, CMDB attributes, series names), so
every file here is served with a strict Content-Security-Policy: a report may
run only the inline scripts its exporter hashed into it
(:func:`bizra_nb.markup.report_policy`), in a sandbox whose origin is opaque,
so not even those can read the status page's storage on this origin.
"""
from __future__ import annotations

from tornado.web import HTTPError

from bizra_nb.markup import report_policy
from bizra_server.base import StaticFiles

POLICY_BYTES = 4096  # protect_html puts the report's policy first in <head>


class ReportsHandler(StaticFiles):
    """Static files under the reports folder; ``/reports/`` is its index.html."""

    def initialize(self, path: str | None = None, default_filename: str | None = "index.html") -> None:
        # make_services created the folder at start
        super().initialize(path=str(self.settings["services"].runner.reports_dir), default_filename=default_filename)

    async def get(self, path: str, include_body: bool = True) -> None:
        if hidden_file(path):
            raise HTTPError(404)
        await super().get(path, include_body=include_body)

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        start = ""
        if self.absolute_path.endswith(".html"):
            with open(self.absolute_path, encoding="utf-8", errors="replace") as handle:
                start = handle.read(POLICY_BYTES)
        self.set_header("Content-Security-Policy", report_policy(start))


PRIVATE_NAMES = ("run.log",)  # the worker's stderr: third-party messages, unclipped; for the operator's eyes


def hidden_file(path: str) -> bool:
    """Never served: dotfiles, unfinished files (a worker's ``.run.ipynb.partial``, ``write_atomic``'s
    ``.*.tmp``) and :data:`PRIVATE_NAMES`."""
    parts = path.split("/")
    return parts[-1] in PRIVATE_NAMES or any(
        part.startswith(".") or part.endswith((".partial", ".tmp")) for part in parts)


handlers = [(r"/reports/(?P<path>.*)", ReportsHandler)]
