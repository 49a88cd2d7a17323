"""`bizra-nb serve` as a process: start, answer, shut down gracefully on SIGTERM."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import websocket

from bizra_nb.demo import start_server


def test_serve_answers_and_shuts_down_gracefully(tmp_path):
    proc, base = start_server(tmp_path / "data", "--heartbeat-interval", "0.5")
    try:
        assert httpx.get(base + "/health", timeout=5).json()["احسان"] == 100.0
        ws = websocket.create_connection(base.replace("http", "ws") + "/ws/live-updates", timeout=10)
        ws.recv()
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        opcode, frame = ws.recv_data_frame(control_frame=True)
        while opcode != websocket.ABNF.OPCODE_CLOSE and time.monotonic() < deadline:
            opcode, frame = ws.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame.data[:2], "big") == 1001  # going away
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_help_lists_every_setting_flag():
    out = subprocess.run([sys.executable, "-m", "bizra_nb.cli", "serve", "--help"], capture_output=True, text=True).stdout
    for flag in ("--host", "--port", "--ws-port", "--data-dir", "--heartbeat-interval", "BIZRA_API_TOKEN"):
        assert flag in out


def test_demo_prints_health(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bizra_nb.cli", "demo", "--seconds", "0.5"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    body = result.stdout[result.stdout.index("{"):result.stdout.rindex("}") + 1]
    assert json.loads(body)["ahsan_score"] == 100.0
