"""`/reports/…`: the report index and the reports themselves, served from the reports folder."""
from __future__ import annotations

from server.base import StaticFiles


class ReportsHandler(StaticFiles):
    """Static files under the reports folder; ``/reports/`` is its index.html."""

    def initialize(self, path: str | None = None, default_filename: str | None = "index.html") -> None:
        # make_services created the folder at start
        super().initialize(path=str(self.settings["services"].runner.reports_dir), default_filename=default_filename)

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")


handlers = [(r"/reports/(?P<path>.*)", ReportsHandler)]
