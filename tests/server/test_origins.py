"""DNS rebinding: the server answers only to its own names, and the WebSocket only to its own pages."""
from __future__ import annotations

import httpx
import pytest
import websocket

from bizra_server.app import public_origins, server_names


def ws_connect(server, *, origin: str | None = None, host: str | None = None) -> websocket.WebSocket:
    options = {"suppress_origin": True} if origin is None else {"origin": origin}
    if host is not None:
        options["host"] = host
    return websocket.create_connection(server.ws_url, timeout=10, **options)


def test_a_foreign_page_on_the_right_host_is_refused(server):
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        ws_connect(server, origin="http://evil.example", host=f"127.0.0.1:{server.ports['http']}")
    assert info.value.status_code == 403


def test_a_rebound_name_is_refused_even_when_origin_and_host_agree(server):
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        ws_connect(server, origin=f"http://evil.example:{server.ports['http']}",
                   host=f"evil.example:{server.ports['http']}")
    assert info.value.status_code == 400


def test_the_servers_own_pages_connect(server):
    port = server.ports["http"]
    for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
        ws_connect(server, origin=origin).close()
    ws_connect(server, origin=f"http://localhost:{port}", host=f"localhost:{port}").close()
    ws_connect(server).close()  # no Origin: not a browser
    with pytest.raises(websocket.WebSocketBadStatusException):
        ws_connect(server, origin=f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}")  # another port


def test_the_api_refuses_a_foreign_host_header(server, http):
    response = http.get("/health", headers={"Host": "evil.example"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_host"
    assert http.get("/reports/", headers={"Host": f"evil.example:{server.ports['http']}"}).status_code == 400
    assert http.get("/health", headers={"Host": f"localhost:{server.ports['http']}"}).status_code == 200
    assert http.get("/health", headers={"Host": "[::1]"}).status_code == 200
    assert http.get("/health", headers={"Host": "10.1.2.3:8080"}).status_code == 200  # an address cannot be rebound
    assert http.get("/health").json()["ahsan_score"] == 100.0


def test_allowed_hosts_adds_names_and_star_allows_any(make_server):
    named = make_server(allowed_hosts=("ops.example",))
    with httpx.Client(base_url=named.url, timeout=10) as client:
        assert client.get("/health", headers={"Host": "ops.example"}).status_code == 200
        assert client.get("/health", headers={"Host": "evil.example"}).status_code == 400
    ws_connect(named, origin=f"http://ops.example:{named.ports['http']}", host="ops.example").close()
    anything = make_server(allowed_hosts=("*",))
    assert httpx.get(anything.url + "/health", headers={"Host": "whatever.example"}).status_code == 200


def test_the_status_page_csp_connects_to_its_own_origin_only(server, http):
    port = server.ports["http"]
    csp = http.get("/").headers["Content-Security-Policy"]
    connect = next(d for d in csp.split(";") if d.strip().startswith("connect-src")).split()[1:]
    assert connect == ["'self'", f"ws://127.0.0.1:{port}", f"wss://127.0.0.1:{port}"]


def test_names_and_origins_derive_from_the_settings(settings):
    names = server_names(settings.replace(host="0.0.0.0", allowed_hosts=("Ops.Example",)))
    assert names == {"localhost", "127.0.0.1", "::1", "ops.example"}
    assert "api.internal" in server_names(settings.replace(host="api.internal"))
    origins = public_origins(frozenset({"localhost", "::1"}), [8080, 8081])
    assert origins == {"http://localhost:8080", "http://localhost:8081", "http://[::1]:8080", "http://[::1]:8081"}
