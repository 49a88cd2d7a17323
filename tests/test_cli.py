"""`bizra-nb serve` as a process: start, answer, shut down gracefully on SIGTERM."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def test_demo_writes_the_three_reports_and_the_index(tmp_path):
    """The README's first command, end to end, in an empty folder."""
    result = subprocess.run([sys.executable, "-m", "bizra_nb.cli", "demo", "--month", "2026-10"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {line.split()[0]: line.split()[-1] for line in result.stdout.splitlines() if line.startswith("  ")
             and len(line.split()) == 2}
    for name in ("diagnosis", "benchmark", "audit", "index"):
        assert name in lines, result.stdout
        assert Path(lines[name]).is_file()
    summary = json.loads((Path(lines["diagnosis"]).parent / "summary.json").read_text())
    assert summary["status"] == "succeeded"
    truth = json.loads((tmp_path / "data" / "demo" / "truth.json").read_text())
    assert summary["summary"]["top_causes"][0]["service"] == truth[-1]["service"]
    audit = json.loads((Path(lines["audit"]).parent / "summary.json").read_text())["summary"]
    assert audit["month"] == "2026-10" and audit["incidents"] == 3
    index = Path(lines["index"]).read_text()
    assert index.count("<tr class=") == 3


def cli(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "bizra_nb.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def test_run_rejects_unknown_parameters_before_running(tmp_path):
    result = cli("run", "benchmark", "-p", "rat", "5", "--data-dir", str(tmp_path / "d"),
                 "--reports-dir", str(tmp_path / "r"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown parameter 'rat'" in lines[0] and "allowed: target_url (str)" in lines[0]
    assert not (tmp_path / "r").exists()


def test_run_rejects_a_wrong_type_and_an_unknown_notebook(tmp_path):
    result = cli("run", "benchmark", "-p", "rate", "fast", "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 2 and "parameter 'rate' must be of type float" in result.stderr
    result = cli("run", "nope", "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 2 and "unknown notebook 'nope'; known: benchmark" in result.stderr


def test_run_a_notebook_by_path(tmp_path):
    notebook = Path(__file__).parent / "notebooks" / "succeeds_with_a_figure.ipynb"
    result = cli("run", str(notebook), "-p", "x", "4", "-p", "label", "cli", "--data-dir", str(tmp_path / "d"),
                 "--reports-dir", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    assert "succeeded" in result.stdout and "report.html" in result.stdout
    summary = json.loads(next((tmp_path / "r").rglob("summary.json")).read_text())
    assert summary["summary"] == {"headline": "cli: x=4", "x": 4}


def test_a_failed_run_exits_1_and_points_at_its_report(tmp_path):
    notebook = Path(__file__).parent / "notebooks" / "fails_in_cell_3.ipynb"
    result = cli("run", str(notebook), "--data-dir", str(tmp_path / "d"), "--reports-dir", str(tmp_path / "r"))
    assert result.returncode == 1
    assert "failed" in result.stdout and "report.html" in result.stdout and "in cell 3" in result.stderr


def test_audit_checks_the_month_first(tmp_path):
    result = cli("audit", "--month", "2026-13", "--data-dir", str(tmp_path))
    assert result.returncode == 2 and "month must be YYYY-MM" in result.stderr


def test_bench_command(server):
    result = cli("bench", server.url, "--duration", "1", "--rate", "100", "--format", "json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["requests"] == 100 and stats["error_rate"] == 0.0
    bad = cli("bench", "ftp://x")
    assert bad.returncode == 2 and "target_url must be an http:// URL" in bad.stderr
