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


def _without_bizra_env(**extra: str) -> dict:
    import os

    return {**{k: v for k, v in os.environ.items() if not k.startswith("BIZRA_")}, **extra}


def test_audit_without_a_configured_source_exits_2_saying_what_to_set(tmp_path):
    """It once audited the demo's platform.parquet with the wrong store and said "compliant, 0 incidents"."""
    result = subprocess.run([sys.executable, "-m", "bizra_nb.cli", "audit", "--month", "2026-10",
                             "--reports-dir", str(tmp_path / "r")], capture_output=True, text=True, cwd=tmp_path,
                            env=_without_bizra_env(), timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no platform metrics to audit" in lines[0]
    for what in ("--audit-source", "--prometheus-url", "BIZRA_AUDIT_SOURCE", "BIZRA_PROMETHEUS_URL"):
        assert what in lines[0]
    assert not (tmp_path / "r").exists() and not (tmp_path / "data").exists()


def test_audit_of_a_data_dir_without_a_store_exits_2(tmp_path):
    result = cli("audit", "--month", "2026-10", "--audit-source", str(tmp_path / "platform.parquet"),
                 "--data-dir", str(tmp_path / "nothing-here"), "--reports-dir", str(tmp_path / "r"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "no store in the data dir" in result.stderr and "BIZRA_DATA_DIR" in result.stderr
    assert not (tmp_path / "nothing-here").exists() and not (tmp_path / "r").exists()


def test_audit_reads_the_configured_source_and_store_from_the_environment(tmp_path):
    from bizra_nb.dataset import write_dataset
    from bizra_nb.fleet import platform_month
    from bizra_nb.store import Store

    data = tmp_path / "server-data"
    Store.open(data).create_incident(title="HighErrorRate on api-gateway", severity="P2", service="api-gateway",
                                     source="alertmanager", opened_at=1_792_022_400.0, status="open")  # 2026-10-15
    write_dataset(platform_month("2026-10", seed=1), tmp_path / "platform.parquet")
    env = _without_bizra_env(BIZRA_AUDIT_SOURCE=str(tmp_path / "platform.parquet"), BIZRA_DATA_DIR=str(data))
    result = subprocess.run([sys.executable, "-m", "bizra_nb.cli", "audit", "--month", "2026-10",
                             "--reports-dir", str(tmp_path / "r")], capture_output=True, text=True, cwd=tmp_path,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(next((tmp_path / "r").rglob("summary.json")).read_text())
    assert summary["parameters"]["source"] == str(tmp_path / "platform.parquet")
    assert summary["parameters"]["data_dir"] == str(data.resolve())
    assert summary["summary"]["incidents"] == 1  # the configured store's, not the demo's three


def test_the_scheduled_audit_uses_the_configured_source_and_store(tmp_path):
    import types

    from bizra_nb.parameters import confine_parameters, declared_parameters, server_confinement
    from bizra_nb.runner import resolve_notebook
    from bizra_nb.settings import load_settings
    from bizra_server.scheduler import Scheduler

    settings = load_settings({"data_dir": tmp_path, "benchmark_schedule": ""},
                             environ={"BIZRA_AUDIT_SOURCE": "http://prometheus:9090"})
    (audit,) = Scheduler.from_settings(types.SimpleNamespace(settings=settings), lambda: "").schedules
    from datetime import datetime, timezone

    parameters = audit.parameters(datetime(2026, 11, 1, 6, tzinfo=timezone.utc))
    declared = declared_parameters(resolve_notebook("compliance_audit"))
    confined = confine_parameters(declared, parameters, **server_confinement(settings))
    assert confined == {"month": "2026-10", "source": "http://prometheus:9090", "data_dir": str(tmp_path.resolve()),
                        "scheduled_for": "2026-11-01T06:00:00+00:00", "tz": "UTC"}


def test_serve_prints_the_status_page_url(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "bizra_nb.cli", "serve", "--port", "0", "--ws-port", "-1",
                             "--data-dir", str(tmp_path), "--log-level", "warning", "--audit-schedule", ""],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        page = None
        for line in proc.stdout:
            if line.startswith("status page: "):
                page = line.split()[-1]
                break
        assert page and page.startswith("http://127.0.0.1:") and page.endswith("/")
        response = httpx.get(page, timeout=10)
        assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_bench_command(server):
    result = cli("bench", server.url, "--duration", "1", "--rate", "100", "--format", "json")
    stats = json.loads(result.stdout)
    assert result.returncode == (0 if stats["passed"] else 1), result.stderr  # 100 req/s misses 1000: exit 1
    assert stats["requests"] == 100 and stats["error_rate"] == 0.0
    bad = cli("bench", "ftp://x")
    assert bad.returncode == 2 and "target_url must be an http:// URL" in bad.stderr
