"""`bizra-nb diagnose` and `bizra-nb fleet` as a user runs them: outputs, the JSON contract, errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bizra_nb.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("fleet")
    result = run("fleet", "--out", str(out), "--duration", "1h", "--fault", "payment:cpu_hog@2026-10-01T00:40:00")
    assert result.returncode == 0, result.stderr
    return out


def test_json_output_is_one_object_with_the_contract(fleet_dir):
    result = run("diagnose", "--data", str(fleet_dir / "metrics.csv"), "--cmdb", str(fleet_dir / "cmdb.yaml"),
                 "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) >= {"anomaly_start", "anomaly_start_detected", "ranking", "warnings"}
    assert doc["anomaly_start_detected"] is True
    assert doc["ranking"][0]["service"] == "payment"
    assert len({r["service"] for r in doc["ranking"]}) == len(doc["ranking"]) == 15


def test_given_start_in_iso_and_unix(fleet_dir):
    for start in ("2026-10-01T00:41:00Z", "1790815260"):
        result = run("diagnose", "--data", str(fleet_dir / "metrics.csv"), "--anomaly-start", start,
                     "--format", "json")
        doc = json.loads(result.stdout)
        assert doc["anomaly_start"] == 1790815260.0 and doc["anomaly_start_detected"] is False
        assert doc["ranking"][0]["service"] == "payment"


def test_table_output(fleet_dir):
    result = run("diagnose", "--data", str(fleet_dir / "metrics.csv"), "--top", "3")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    header = next(n for n, line in enumerate(lines) if line.lstrip().startswith("rank"))  # after verdict, confidence
    assert "anomaly start" in lines[0] and "payment" in lines[header + 1]


def test_long_parquet_data(tmp_path):
    assert run("fleet", "--out", str(tmp_path), "--duration", "1h", "--format", "parquet", "--layout", "long",
               "--fault", "user-db:latency").returncode == 0
    result = run("diagnose", "--data", str(tmp_path / "metrics.parquet"), "--format", "json")
    assert json.loads(result.stdout)["ranking"][0]["service"] == "user-db"


@pytest.mark.parametrize("args, fragment", [
    (["--data", "/nonexistent.csv"], "dataset file /nonexistent.csv not found"),  # at open_source
    (["--format", "xml"], "invalid choice: 'xml' (choose from 'json', 'table')"),
    (["--anomaly-start", "yesterday"], "anomaly_start: 'yesterday' is neither unix seconds nor ISO-8601"),
    (["--cmdb", "/nonexistent.yaml"], "cannot read CMDB file"),
    ([], "exactly one of --data PATH or --prometheus URL"),
    (["--prometheus", "http://127.0.0.1:9"], "--prometheus needs --start and --end"),
])
def test_errors_exit_2_with_one_line(fleet_dir, args, fragment):
    base = [] if any(a in ("--data", "--prometheus") for a in args) or args == [] else \
        ["--data", str(fleet_dir / "metrics.csv")]
    result = run("diagnose", *base, *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert result.stdout == ""


def test_unreachable_prometheus_is_a_clear_error():
    result = run("diagnose", "--prometheus", "http://127.0.0.1:9", "--start", "0", "--end", "3600", "--timeout", "2")
    assert result.returncode == 2
    assert "does not answer" in result.stderr and "Traceback" not in result.stderr


def test_fleet_rejects_an_unknown_fault(tmp_path):
    result = run("fleet", "--out", str(tmp_path), "--fault", "payment:meteor")
    assert result.returncode == 2 and "KIND one of cpu_hog" in result.stderr
