"""`/openapi.json`: the API described in OpenAPI 3 (written by hand in openapi.yaml, served as JSON)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from bizra_server.base import BaseHandler, encode_json

SPEC = Path(__file__).parent / "openapi.yaml"


@lru_cache(maxsize=1)
def document() -> str:
    return encode_json(yaml.safe_load(SPEC.read_text(encoding="utf-8")))


class OpenApiHandler(BaseHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(document())


handlers = [(r"/openapi.json", OpenApiHandler)]
