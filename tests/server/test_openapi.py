"""The OpenAPI document matches the routes, and a fuzzer driven by it never gets a 5xx from the real server."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from server.app import RESOURCES
from server.instrumentation import route_template
from tests.conftest import TOKEN

NOT_API = ("/", "/static/{path}", "/static/vendor/{path}", "/reports/{path}", "/ws/live-updates")


def test_every_route_is_documented_and_nothing_else(http):
    spec = http.get("/openapi.json").json()
    documented = set(spec["paths"])
    routes = {route_template(r[0]) for module in RESOURCES for r in module.handlers} - set(NOT_API)
    assert documented == routes
    for path, operations in spec["paths"].items():
        for verb, operation in operations.items():
            if verb in ("post", "put", "patch", "delete"):
                assert operation.get("security") == [{"bearer": []}], f"{verb} {path} is not marked as needing the token"


def test_fuzzing_finds_no_server_error(server, tmp_path):
    cli = Path(sys.executable).parent / "schemathesis"
    assert cli.exists() or shutil.which("schemathesis"), "schemathesis is a dev dependency"
    result = subprocess.run(
        [str(cli), "run", server.url + "/openapi.json", "-H", f"Authorization: Bearer {TOKEN}",
         "--checks", "not_a_server_error", "--max-examples", "25", "--workers", "1", "--seed", "20261130"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,  # its cache folder lands there
    )
    assert "ST101" not in result.stdout, result.stdout[-4000:]
    assert server.services.scorekeeper.total_violations["http_error"] == 0, "the server answered a 5xx"
    assert re.search(r"\d+ generated", result.stdout), result.stdout[-2000:]
