"""`/`: the live status page, its static files, and plotly.js from the installed plotly package (no CDN)."""
from __future__ import annotations

from pathlib import Path

import plotly
from bizra_server.base import BaseHandler, StaticFiles, host_name

STATIC = Path(__file__).parent / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data"


class PageHandler(BaseHandler):
    """The status page: plain HTML, CSS and a small script; read-only without a token."""

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("Content-Security-Policy",
                        f"default-src 'self'; connect-src {self.connect_sources()}; img-src 'self' data:; "
                        "style-src 'self' 'unsafe-inline'; script-src 'self'")
        self.finish((STATIC / "index.html").read_bytes())

    def connect_sources(self) -> str:
        """This page's own origin and its live stream, nothing else (the Host header was checked already)."""
        host = self.request.host.lower()
        return f"'self' ws://{host} wss://{host}" if host_name(host) else "'self'"


handlers = [
    (r"/", PageHandler),
    (r"/static/vendor/(?P<path>plotly\.min\.js)", StaticFiles, {"path": str(PLOTLY_JS)}),
    (r"/static/(?P<path>[A-Za-z0-9_.-]+)", StaticFiles, {"path": str(STATIC)}),
]
