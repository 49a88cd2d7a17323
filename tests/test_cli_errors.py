"""The CLI's errors are one line on stderr with a clear exit status, never a traceback; `bench` judges and exits."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bizra_nb.errors import InvalidInput
from bizra_nb.sources import open_source
from bizra_nb.times import parse_time

BIZRA_NB = str(Path(sys.executable).with_name("bizra-nb"))  # the venv's console script, as a user runs it


def cli(*args: str, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([BIZRA_NB, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def one_line_error(result: subprocess.CompletedProcess, code: int = 2) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once it is closed


# -- bench ----------------------------------------------------------------------------------------

def test_bench_against_a_closed_port_is_one_line_and_exit_2():
    port = closed_port()
    line = one_line_error(cli("bench", f"http://127.0.0.1:{port}", "--duration", "1"))
    assert line == f"bizra-nb bench: error: cannot reach http://127.0.0.1:{port}: connection refused " \
                   f"(nothing listens on 127.0.0.1:{port})"


@pytest.mark.parametrize("args, words", [
    (["ftp://x"], "target_url must be an http:// URL"),
    (["http://127.0.0.1:99999"], "invalid port"),
    (["http://127.0.0.1:1", "--target", "speed=3"], "--target 'speed=3': expected NAME=NUMBER"),
])
def test_bench_usage_errors_are_exit_2(args, words):
    assert words in one_line_error(cli("bench", *args))


def test_the_default_rate_offers_ten_percent_above_the_throughput_target(server):
    result = cli("bench", server.url, "--duration", "1", "--ws-clients", "0", "--format", "json",
                 "--target", "throughput_rps=40")
    stats = json.loads(result.stdout)
    assert stats["target_rate_rps"] == 44.0 and stats["requests"] == 44
    assert stats["targets"] == {"throughput_rps": 40.0}
    assert result.returncode == (0 if stats["passed"] else 1)


def test_a_missed_target_exits_1_with_a_table_a_verdict_and_progress(server):
    result = cli("bench", server.url, "--duration", "2.5", "--rate", "60", "--ws-clients", "0",
                 "--target", "throughput_rps=100000")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["target", "limit", "measured", "result"]
    offered = next(line for line in lines if line.startswith("offered rate"))
    assert "60 req/s" in offered and "150 requests in 2.5 s" in offered
    achieved = next(line for line in lines if line.startswith("throughput (achieved)"))
    assert "> 100000 req/s" in achieved and "FAIL" in achieved
    assert lines[-1].startswith("verdict: FAIL: ") and "throughput (achieved)" in lines[-1]
    assert "60 req/s offered" in lines[-1]
    assert not any(line.startswith("WebSocket") for line in lines)  # no probe asked for: not judged
    progress = [line for line in result.stderr.splitlines() if " sent " in line]
    assert len(progress) >= 2 and "answered" in progress[0]  # about one a second
    assert "Traceback" not in result.stderr


def test_bench_help_documents_the_exit_status_and_the_default_rate():
    text = " ".join(cli("bench", "--help").stdout.split())
    assert "0 every target met, 1 a target missed, 2 a usage error" in text
    assert "10% above the throughput target" in text


# -- diagnose -------------------------------------------------------------------------------------

def test_diagnose_into_a_closed_pipe_ends_quietly(fleet):
    """`bizra-nb diagnose … | head`: the reader went away; no BrokenPipeError, no traceback."""
    proc = subprocess.Popen([BIZRA_NB, "diagnose", "--data", str(fleet.metrics), "--cmdb", str(fleet.cmdb)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # like `head` that has read what it wanted, before the table is written
    _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 141, stderr  # as a shell reports a process ended by SIGPIPE
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr and "Exception ignored" not in stderr


def test_a_timestamp_in_milliseconds_asks_for_seconds(fleet):
    line = one_line_error(cli("diagnose", "--data", str(fleet.metrics), "--anomaly-start", "1727740800000"))
    assert "anomaly_start: '1727740800000' looks like milliseconds; did you mean seconds " \
           "(1727740800 = 2024-10-01T00:00:00Z)?" in line


@pytest.mark.parametrize("value, unit", [(1727740800000, "milliseconds"), ("1727740800000000", "microseconds"),
                                         (1727740800000000000, "nanoseconds")])
def test_parse_time_refuses_what_looks_finer_than_seconds(value, unit):
    with pytest.raises(InvalidInput, match=f"looks like {unit}; did you mean seconds") as caught:
        parse_time(value, name="start")
    assert caught.value.field == "start"
    assert parse_time(1727740800) == 1727740800.0 and parse_time("4102444800") == 4102444800.0  # 2100 is fine


def test_a_wrong_dataset_path_fails_at_open_source(tmp_path):
    with pytest.raises(InvalidInput, match="not found") as caught:
        open_source(tmp_path / "typo.parquet")
    assert caught.value.field == "source"
    line = one_line_error(cli("diagnose", "--data", str(tmp_path / "typo.parquet")))
    assert line.startswith("bizra-nb diagnose: error: dataset file") and "typo.parquet not found" in line


# -- run: pre-flight ------------------------------------------------------------------------------

def test_run_with_a_missing_file_is_refused_before_anything_is_recorded(tmp_path):
    reports = tmp_path / "r"
    line = one_line_error(cli("run", "incident_diagnosis", "-p", "source", str(tmp_path / "typo.csv"),
                              "--data-dir", str(tmp_path / "d"), "--reports-dir", str(reports)))
    assert line.startswith("bizra-nb run: error: parameter source: no such file") and "typo.csv" in line
    assert not reports.exists() or not any(reports.iterdir())  # no run folder, no index
    from bizra_nb.store import Store

    assert Store.open(tmp_path / "d").list_runs() == []


def test_run_with_a_url_that_does_not_answer_is_refused(tmp_path):
    port = closed_port()
    line = one_line_error(cli("run", "benchmark", "-p", "target_url", f"http://127.0.0.1:{port}",
                              "--data-dir", str(tmp_path / "d"), "--reports-dir", str(tmp_path / "r")))
    assert f"parameter target_url: 'http://127.0.0.1:{port}' does not answer" in line
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


# -- relative data paths: the project folder's data/ and reports/, from any subfolder -------------

def test_audit_from_the_notebooks_folder_reads_the_project_data_dir_and_creates_nothing_there(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    line = one_line_error(cli("audit", "--month", "2026-09", "--audit-source", "demo/platform.parquet",
                              cwd=notebooks))
    assert f"no store in the data dir {tmp_path / 'data'} " in line
    assert list(notebooks.iterdir()) == []


# -- fleet and demo: malformed times, lengths, months and ports are one line, before any work -----

@pytest.mark.parametrize("args, words", [
    (["--start", "1793118000000"], "--start: '1793118000000' looks like milliseconds; did you mean seconds"),
    (["--start", "tomorrow"], "--start: 'tomorrow' is neither unix seconds nor ISO-8601"),
    (["--duration", "2x"], "--duration must be a positive length such as 15s"),
    (["--step", "0s"], "--step must be a positive length such as 15s"),
    (["--step", "abc"], "--step must be a positive length such as 15s"),
    (["--fault", "payment:cpu_hog@1793118000000"], "looks like milliseconds; did you mean seconds"),
    (["--duration", "10s"], "--duration '10s' is shorter than one --step (15s)"),
])
def test_fleet_refuses_bad_times_and_lengths_in_one_line(tmp_path, args, words):
    line = one_line_error(cli("fleet", "--out", str(tmp_path / "fleet"), *args))
    assert line.startswith("bizra-nb fleet: error: ") and words in line
    assert not (tmp_path / "fleet").exists()


@pytest.mark.parametrize("args, words", [
    (["--month", "2026-13"], "--month must be YYYY-MM (e.g. 2026-10), got '2026-13'"),
    (["--month", "10"], "--month must be YYYY-MM"),
    (["--month", "2026/10"], "--month must be YYYY-MM"),
    (["--port", "99999"], "--port must be a port number 0..65535"),
])
def test_demo_refuses_a_bad_month_or_port_before_generating_anything(tmp_path, args, words):
    line = one_line_error(cli("demo", "--out", str(tmp_path / "demo"), *args))
    assert line.startswith("bizra-nb demo: error: ") and words in line
    assert not (tmp_path / "demo").exists()


# -- serve: a port already taken names the address and the flag to change -------------------------

@pytest.mark.parametrize("flag", ["--port", "--ws-port"])
def test_serve_on_a_taken_port_names_the_address_and_the_flag(tmp_path, flag):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"--port": "0", "--ws-port": "0", flag: str(port)}
        result = cli("serve", "--data-dir", str(tmp_path / "data"), "--reports-dir", str(tmp_path / "reports"),
                     "--audit-schedule", "", *[x for item in ports.items() for x in item])
    line = one_line_error(result)
    assert line.startswith(f"bizra-nb serve: error: cannot listen on 127.0.0.1:{port}: the address is already in use")
    assert f"choose another {flag}," in line and "Errno" not in line


# -- bench: the client is us, so a 4xx is an error; a base URL has no path ------------------------

def test_bench_refuses_a_url_with_a_path():
    line = one_line_error(cli("bench", "http://127.0.0.1:1/health", "--duration", "1"))
    assert "has a path: give the server's base URL and --endpoint PATH" in line


def test_bench_counts_404s_as_errors(server):
    result = cli("bench", server.url, "--endpoint", "/no-such-page", "--duration", "1", "--ws-clients", "0",
                 "--format", "json", "--target", "throughput_rps=10")
    assert result.returncode == 1, result.stderr
    stats = json.loads(result.stdout)
    assert stats["error_rate"] == 1.0 and stats["passed"] is False and "error rate" in stats["verdict"]
