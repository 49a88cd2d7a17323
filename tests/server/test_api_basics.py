"""Errors as JSON, auth on state-changing verbs, request instrumentation, the score under errors."""
from __future__ import annotations

import os
import stat

import httpx

from bizra_server.auth import load_or_create_token
from bizra_server.instrumentation import AccessLog, route_template
from tests.conftest import wait_until


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def test_unknown_path_is_a_json_404(http):
    response = http.get("/no/such/thing")
    assert response.status_code == 404
    assert error_of(response) == {"code": "not_found", "message": "no such endpoint: /no/such/thing"}


def test_wrong_method_is_a_json_405(http, token):
    response = http.delete("/health", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


def test_a_bug_is_a_json_500_without_traceback(http):
    response = http.get("/boom")
    assert response.status_code == 500
    err = error_of(response)
    assert err["code"] == "internal_error"
    assert "Traceback" not in response.text and "deliberate" not in response.text


def test_state_changing_verbs_need_the_token(http, token):
    assert http.post("/echo", json={"a": 1}).status_code == 401
    wrong = http.post("/echo", json={"a": 1}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and error_of(wrong)["code"] == "unauthorized"
    ok = http.post("/echo", json={"a": 1}, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json() == {"echo": {"a": 1}}


def test_bad_json_is_a_400(http, token):
    response = http.post("/echo", content=b"{nope", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400 and "not valid JSON" in error_of(response)["message"]


def test_read_only_endpoints_are_open(http):
    for path in ("/health", "/ready", "/metrics"):
        assert http.get(path).status_code in (200, 503)


def test_score_drops_after_forced_5xx(server, http):
    for _ in range(20):
        assert http.get("/boom").status_code == 500
    body = http.get("/health").json()
    assert body["violations"]["http_error"] == 20
    assert body["ahsan_score"] <= 80.0 and body["tier"] == "critical"
    logged = wait_until(lambda: server.services.store.recent_violations())
    assert logged[0]["kind"] == "http_error" and "/boom" in logged[0]["detail"]


def test_client_errors_never_lower_the_score(http, token):
    for i in range(300):
        http.get(f"/missing/{i}")
        http.post("/echo", content=b"{bad", headers={"Authorization": f"Bearer {token}"})
        http.post("/echo", json={})  # 401
    body = http.get("/health").json()
    assert body["ahsan_score"] == 100.0
    assert body["violations"]["http_error"] == 0
    assert body["events"] >= 900


def test_metrics_scrapes_are_not_events(http):
    before = http.get("/health").json()
    for _ in range(50):
        http.get("/metrics")
    after = http.get("/health").json()
    cycles = after["controller"]["cycles"] - before["controller"]["cycles"]  # each cycle is an event
    assert after["events"] - before["events"] - cycles in (1, 2)  # the first /health, give or take a cycle in flight


def test_route_template():
    assert route_template(r"/cmdb/items/(?P<item_id>[^/]+)") == "/cmdb/items/{item_id}"
    assert route_template(r"/health") == "/health"


def test_access_log_line_format():
    import io

    stream = io.StringIO()
    access = AccessLog(stream)
    access.write("GET", "/health", 200, 0.00042, "/health")
    assert stream.getvalue() == ""  # buffered
    access.flush()
    line = stream.getvalue()
    assert line.endswith(" INFO bizra.access GET /health 200 0.42ms route=/health\n")


def test_generated_token_is_kept_with_mode_0600(tmp_path):
    token, generated = load_or_create_token("", tmp_path)
    assert generated and len(token) >= 32
    mode = stat.S_IMODE(os.stat(tmp_path / "api_token").st_mode)
    assert mode == 0o600
    again, generated_again = load_or_create_token("", tmp_path)
    assert again == token and not generated_again
    assert load_or_create_token("configured", tmp_path) == ("configured", False)


def test_server_without_configured_token_generates_one(make_server):
    running = make_server(api_token="")
    token = (running.settings.data_dir / "api_token").read_text().strip()
    response = httpx.post(running.url + "/echo", json={}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
