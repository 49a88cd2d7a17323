"""`GET /auth/check`: whether a bearer token is the server's API token (the status page checks a token at entry)."""
from __future__ import annotations

from bizra_server.base import BaseHandler


class AuthCheckHandler(BaseHandler):
    """200 ``{"ok": true}`` with the right token; otherwise the usual 401 JSON error. Changes nothing."""

    def get(self) -> None:
        self.require_token()
        self.set_header("Cache-Control", "no-store")
        self.write_json({"ok": True})


handlers = [(r"/auth/check", AuthCheckHandler)]
