"""`/reports/…`: the report index and the reports themselves, served from the reports folder."""
from __future__ import annotations

import json
from pathlib import Path

from tornado.web import StaticFileHandler

from server.base import ERROR_CODES


class ReportsHandler(StaticFileHandler):
    """Static files under the reports folder; ``/reports/`` is its index.html. Errors are JSON like the API's."""

    def initialize(self, path: str | None = None, default_filename: str | None = "index.html") -> None:
        reports_dir = Path(self.settings["services"].settings.reports_dir).resolve()
        reports_dir.mkdir(parents=True, exist_ok=True)
        super().initialize(path=str(reports_dir), default_filename=default_filename)

    def write_error(self, status_code: int, **kwargs) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        message = "no such report" if status_code == 404 else self._reason
        self.finish(json.dumps({"error": {"code": ERROR_CODES.get(status_code, "error"), "message": message}}))

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")


handlers = [(r"/reports/(?P<path>.*)", ReportsHandler)]
