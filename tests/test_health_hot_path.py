"""/health's body kept encoded around its per-request members (issue 14): the same bytes as encoding it whole."""
from __future__ import annotations

import json
import math

import httpx

from bizra_nb import __version__
from bizra_server.base import encode_json
from bizra_server.health import LivePart, json_number

CONTROLLER = '"controller": {"cycles": 3}, "components": {"store": {"ok": true, "detail": "writable"}}'
STATUS = '"overall_status": {"level": "ok"}, "open_incidents": 0, "metric_source": {"configured": false}, "links": {}'
REPLICA = '"replica": {"name": "r1", "pid": 1, "leader": true, "shared": false}'
VIOLATIONS = {"http_error": 0, "validation_failed": 0, "run_failed": 0, "assumption_violated": 0, "silent_failure": 0}


def encoded_whole(snap: dict, clients: int, uptime: float, controller=CONTROLLER, status=STATUS, replica=REPLICA) -> str:
    """The body as /health built it before (a str, sent as UTF-8): the dict encoded each time, the parts appended."""
    live = encode_json({"status": "ok", "version": __version__, "uptime_seconds": uptime,
                        "ahsan_score": snap["score"], "احسان": snap["score"], "tier": snap["tier"],
                        "window_seconds": snap["window_seconds"], "events": snap["events"],
                        "violations": snap["violations"], "websocket_clients": clients})
    return live[:-1] + ", " + controller + ", " + status + ", " + replica + "}"


def snapshot(**changes) -> dict:
    return {"score": 100.0, "tier": "perfect", "events": 0, "violations": dict(VIOLATIONS), "window_seconds": 300.0,
            **changes}


def test_the_body_is_the_whole_encoding_whatever_changes_between_requests():
    live = LivePart()
    steps = [
        (snapshot(), 0, 0.001),
        (snapshot(events=1), 0, 0.002),  # only the per-request members changed
        (snapshot(events=2), 0, 12.5),
        (snapshot(events=3, score=97.3, tier="good"), 0, 13.0),
        (snapshot(events=4, score=97.3, tier="good"), 2, 13.1),  # a WebSocket client joined
        (snapshot(events=5, score=97.3, tier="good", violations={**VIOLATIONS, "http_error": 1}), 2, 13.2),
        (snapshot(events=5, score=100, tier="perfect"), 2, 14.0),  # 100 == 100.0 but encodes "100"
        (snapshot(events=6, score=100.0, tier="perfect"), 2, 14.0),
        (snapshot(events=7, window_seconds=300), 2, 15.0),  # the shared score's window: 300 or 300.0
        (snapshot(events=8, window_seconds=300.0), 2, 1e-05),  # a float repr with an exponent
        (snapshot(events=10**20), 2, 123456789.123),
    ]
    for snap, clients, uptime in steps:
        assert live.body(snap, clients, uptime, CONTROLLER, STATUS, REPLICA) == encoded_whole(snap, clients, uptime).encode()


def test_a_changed_controller_status_or_replica_part_is_in_the_next_body():
    live = LivePart()
    snap = snapshot()
    live.body(snap, 0, 1.0, CONTROLLER, STATUS, REPLICA)
    for controller, status, replica in [
        (CONTROLLER.replace("3", "4"), STATUS, REPLICA),
        (CONTROLLER, STATUS.replace('"ok"', '"degraded"'), REPLICA),
        (CONTROLLER, STATUS, REPLICA.replace("true", "false")),
        (CONTROLLER, '"x": "\\u0000uptime\\u0000"', REPLICA),  # a part holding a placeholder's text stays as it is
    ]:
        body = live.body(snap, 0, 1.0, controller, status, replica)
        assert body == encoded_whole(snap, 0, 1.0, controller, status, replica).encode()


def test_violations_changed_in_place_are_seen():
    live = LivePart()
    snap = snapshot()
    live.body(snap, 0, 1.0, CONTROLLER, STATUS, REPLICA)
    snap["violations"]["run_failed"] = 2  # the same dict object, changed: a cache keyed on it would miss it
    assert b'"run_failed": 2' in live.body(snap, 0, 1.0, CONTROLLER, STATUS, REPLICA)


def test_json_number_writes_what_the_encoder_writes():
    for value in (0, -3, 10**30, 0.1, 1e-07, 1e22, 300.0, -0.0, math.nan, math.inf, -math.inf, True, None, "7"):
        assert json_number(value) == encode_json(value)


def test_health_over_http_counts_each_request_and_keeps_its_members_in_order(http):
    first, second = http.get("/health"), http.get("/health")
    assert first.headers["Content-Type"] == "application/json; charset=UTF-8"
    a, b = first.json(), second.json()
    assert b["events"] > a["events"]  # each request is an event: never a stale body
    assert b["uptime_seconds"] >= a["uptime_seconds"]
    assert list(a)[:10] == ["status", "version", "uptime_seconds", "ahsan_score", "احسان", "tier", "window_seconds",
                            "events", "violations", "websocket_clients"]
    assert list(a)[10:] == ["controller", "components", "overall_status", "open_incidents", "metric_source", "links",
                            "replica"]
    assert json.loads(first.content.decode("utf-8")) == a  # UTF-8: "احسان" as it is
    assert "احسان".encode() in first.content


def test_health_sees_a_new_websocket_client(server, http):
    import websocket

    before = http.get("/health").json()["websocket_clients"]
    ws = websocket.create_connection(server.ws_url, timeout=10)
    try:
        assert httpx.get(server.url + "/health").json()["websocket_clients"] == before + 1
    finally:
        ws.close()
