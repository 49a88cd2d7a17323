"""The OpenAPI document matches the routes, and a fuzzer driven by it never gets a 5xx from the real server."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from bizra_server.app import RESOURCES
from bizra_server.instrumentation import route_template
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
    (tmp_path / "schemathesis.toml").write_text(  # the deploy gate's documented 503: this server has no metric source
        '[[operations]]\ninclude-path = "/slo/{name}/deploy-allowed"\n'
        'checks.not_a_server_error.expected-statuses = ["1xx", "2xx", "3xx", "4xx", "503"]\n')
    result = subprocess.run(
        [str(cli), "run", server.url + "/openapi.json", "-H", f"Authorization: Bearer {TOKEN}",
         "--checks", "not_a_server_error", "--max-examples", "25", "--workers", "1", "--seed", "20261130"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,  # its cache folder lands there
    )
    assert "ST101" not in result.stdout, result.stdout[-4000:]
    assert server.services.scorekeeper.total_violations["http_error"] == 0, "the server answered a 5xx"
    assert re.search(r"\d+ generated", result.stdout), result.stdout[-2000:]


HOSTILE_PATHS = ["/reports/%00", "/reports/a%00b.html", "/reports/%00/index.html", "/static/%00", "/static/a%00.js",
                 "/static/vendor/%00", "/reports/%zz", "/reports/%C0%AF", "/reports/%ff%fe", "/cmdb/items/%00",
                 "/cmdb/items/a%00b/impact", "/runs/%00", "/cmdb/paths?from=%00&to=%ff", "/reports/" + "a" * 4000,
                 "/reports/" + "a/" * 2000, "/" + "%00" * 3000, "/%2e%2e/%2e%2e/etc/passwd"]


def raw_status(port: int, request: bytes) -> int | None:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    return int(match.group(1)) if match else None  # None: the server closed without an answer (oversized header)


def test_hostile_paths_are_client_errors(server):
    """Item 6: NUL bytes, bad percent-encoding and overlong paths are a 4xx (or a close), never a 5xx."""
    port = server.ports["http"]
    for path in HOSTILE_PATHS + ["/" + "a" * 70000]:
        status = raw_status(port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        assert status is None or 400 <= status < 500, (path[:60], status)
    assert server.services.scorekeeper.total_violations["http_error"] == 0


def test_deeply_nested_json_is_a_400_on_every_json_endpoint(server, http):
    """Item 6: ``[`` x 100000 (json.loads raises RecursionError) is a 400 everywhere, and the score stays 100."""
    spec = http.get("/openapi.json").json()
    deep = b"[" * 100_000
    checked = 0
    for template, operations in spec["paths"].items():
        path = re.sub(r"\{[^}]+\}", "0123456789abcdef", template)  # fits every id pattern; unknown ids are 404s
        for verb, operation in operations.items():
            content = (operation.get("requestBody") or {}).get("content") if isinstance(operation, dict) else None
            if not content:
                continue
            response = http.request(verb.upper(), path, content=deep,
                                    headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": next(iter(content))})
            assert 400 <= response.status_code < 500, (verb, template, response.status_code, response.text[:200])
            checked += 1
    assert checked >= 5
    health = http.get("/health").json()
    assert health["ahsan_score"] == 100.0 and health["violations"]["http_error"] == 0
    assert 'bizra_violations_total{kind="http_error"} 0.0' in http.get("/metrics").text


def test_deeply_nested_json_on_the_websocket_is_an_error_reply(server):
    import json

    import websocket

    ws = websocket.create_connection(server.ws_url, timeout=10)
    ws.send("[" * 100_000)
    while (message := json.loads(ws.recv()))["type"] != "error":
        pass
    ws.send(json.dumps({"subscribe": ["cycle"]}))  # still connected
    while (message := json.loads(ws.recv()))["type"] != "subscribed":
        pass
    ws.close()
