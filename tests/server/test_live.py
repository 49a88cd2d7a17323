"""The live WebSocket: messages, heartbeats, subscriptions, slow clients, origins, tokens, both ports."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import time

import pytest
import websocket

from tests.conftest import TOKEN, wait_until


def connect(url: str, **kwargs) -> websocket.WebSocket:
    return websocket.create_connection(url, timeout=10, **kwargs)


def next_of(ws: websocket.WebSocket, type_: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = json.loads(ws.recv())
        if message["type"] == type_:
            return message
    raise AssertionError(f"no {type_} message within {timeout}s")


def test_messages_have_type_ts_data_and_heartbeats_arrive(server):
    ws = connect(server.ws_url)
    first = next_of(ws, "heartbeat", timeout=20)
    assert set(first) == {"type", "ts", "data"} and abs(first["ts"] - time.time()) < 60  # unix seconds, not ms
    second = next_of(ws, "heartbeat", timeout=20)
    assert second["ts"] > first["ts"]
    ws.close()


def test_cycle_and_score_messages(server, http):
    ws = connect(server.ws_url)
    cycle = next_of(ws, "cycle", timeout=20)
    assert {"cycle", "duration_ms", "score", "tier", "components"} <= set(cycle["data"])
    for _ in range(5):
        http.get("/boom")
    score = next_of(ws, "score", timeout=20)
    while score["data"]["score"] == 100.0:
        score = next_of(ws, "score", timeout=20)
    assert score["data"]["score"] < 100.0 and score["data"]["violations"]["http_error"] == 5
    ws.close()


def test_subscription_filters_types(server):
    ws = connect(server.ws_url)
    ws.send(json.dumps({"subscribe": ["heartbeat"]}))
    ack = next_of(ws, "subscribed")
    assert ack["data"]["types"] == ["heartbeat"]
    seen = {json.loads(ws.recv())["type"] for _ in range(3)}
    assert seen == {"heartbeat"}  # no cycle messages, although cycles run 2.5x as often
    ws.close()


def test_bad_subscription_gets_an_error_message_not_a_disconnect(server):
    ws = connect(server.ws_url)
    ws.send("not json")
    assert "expected" in next_of(ws, "error")["data"]["message"]
    ws.send(json.dumps({"subscribe": ["nonsense"]}))
    assert "unknown type" in next_of(ws, "error")["data"]["message"]
    ws.send(json.dumps({"subscribe": ["cycle"]}))
    assert next_of(ws, "subscribed")["data"]["types"] == ["cycle"]
    ws.close()


def test_the_extra_websocket_port_serves_the_stream(server):
    ws = connect(f"ws://127.0.0.1:{server.ports['ws']}/ws/live-updates")
    next_of(ws, "heartbeat", timeout=20)
    ws.close()
    root = connect(f"ws://127.0.0.1:{server.ports['ws']}/")
    next_of(root, "heartbeat", timeout=20)
    root.close()


def test_foreign_origin_is_rejected_and_allowed_origins_pass(make_server):
    running = make_server(ws_origins=("https://ops.example",))
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(running.ws_url, origin="https://evil.example")
    assert info.value.status_code == 403
    connect(running.ws_url, origin="https://ops.example").close()
    connect(running.ws_url, origin=running.url).close()  # same host
    connect(running.ws_url, suppress_origin=True).close()  # non-browser client


def test_token_can_be_required(make_server):
    running = make_server(ws_require_token=True)
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(running.ws_url)
    assert info.value.status_code == 401
    connect(running.ws_url, header=[f"Authorization: Bearer {TOKEN}"]).close()
    connect(running.ws_url + f"?token={TOKEN}").close()


def raw_ws_that_never_reads(port: int) -> socket.socket:
    """A WebSocket client with a tiny receive buffer that completes the handshake, then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws/live-updates HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)  # byte by byte: leave everything after the headers unread
    assert b" 101 " in response.split(b"\r\n")[0]
    return sock


# The fast reader runs in its own process (no GIL shared with the server), reads every "alert", prints its seqs.
FAST_READER = r"""
import json, sys, websocket
ws = websocket.create_connection(sys.argv[1], timeout=120)
ws.send(json.dumps({"subscribe": ["alert"]}))
while json.loads(ws.recv())["type"] != "subscribed":
    pass
print("ready", flush=True)
seqs = []
while True:
    data = json.loads(ws.recv())["data"]
    seqs.append(data["seq"])
    if data.get("last"):
        break
print(json.dumps(seqs), flush=True)
ws.close()
"""


def drained_to_eof(sock: socket.socket) -> bool:
    """Read what the server sent; True once the server has closed the connection (EOF or reset)."""
    sock.settimeout(0.5)
    try:
        while sock.recv(1 << 16):
            pass
        return True
    except socket.timeout:
        return False
    except ConnectionError:
        return True


def test_a_slow_client_is_dropped_and_a_fast_one_gets_everything_in_order(make_server):
    # no pings during the test: the slow client must be dropped by its write-buffer bound, not by a ping timeout
    running = make_server(heartbeat_interval=3600)
    hub = running.services.hub
    slow = raw_ws_that_never_reads(running.ports["http"])
    wait_until(lambda: len(hub.clients) == 1)
    fast = subprocess.Popen([sys.executable, "-c", FAST_READER, running.ws_url], stdout=subprocess.PIPE, text=True)
    try:
        assert fast.stdout.readline().strip() == "ready"
        wait_until(lambda: len(hub.clients) == 2)
        cap = 2000  # 16 MB: past the slow client's kernel buffers (4 MB at most here) and its 1 MiB allowance

        async def publish_until_a_client_is_dropped() -> tuple[int, int]:
            seq = 0
            while len(hub.clients) == 2 and seq < cap:
                for _ in range(2):  # 8 kB messages at a steady pace, about 1.6 MB a second
                    hub.publish("alert", {"seq": seq, "blob": "x" * 8000})
                    seq += 1
                await asyncio.sleep(0.01)
            clients = len(hub.clients)
            hub.publish("alert", {"seq": seq, "last": True})
            return seq, clients

        sent, clients_left = asyncio.run_coroutine_threadsafe(publish_until_a_client_is_dropped(),
                                                              running.loop).result(timeout=300)
        assert sent < cap and clients_left == 1, "the slow client was not dropped"
        out, _ = fast.communicate(timeout=300)
        assert fast.returncode == 0, "the fast reader was cut off"
        assert json.loads(out.splitlines()[-1]) == list(range(sent + 1))  # every message, in order
        wait_until(lambda: drained_to_eof(slow), timeout=120)  # the server closed the slow client's socket
    finally:
        if fast.poll() is None:
            fast.kill()
            fast.wait()
        slow.close()


def test_clients_are_counted(server, http):
    a, b = connect(server.ws_url), connect(server.ws_url)
    wait_until(lambda: "bizra_ws_connections 2.0" in http.get("/metrics").text)
    a.close()
    b.close()
    wait_until(lambda: "bizra_ws_connections 0.0" in http.get("/metrics").text)
