"""Runs never lie on a real server: a broken report step fails the run, progress is stored, a kill -9 is recovered."""
from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import httpx
import pytest

from tests.conftest import TOKEN, wait_until

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def nb_server(make_nb_server):
    """A server with one run slot whose notebooks folder also holds the tiny test notebooks."""
    return make_nb_server(cell_timeout=120, run_workers=1)


def finished(http, run_id, timeout=120):
    return wait_until(lambda: (r := http.get(f"/runs/{run_id}").json())["status"] in
                      ("succeeded", "failed", "cancelled") and r, timeout=timeout)


def runs_active(http) -> float:
    found = re.search(r"^bizra_runs_active (\S+)$", http.get("/metrics").text, re.M)
    return float(found.group(1))


def test_a_report_that_cannot_be_written_fails_the_run_and_frees_the_slot(nb_server, monkeypatch):
    """Item 10: an exception in Runner._finish (a full disk here) ends the run failed, scored, not `running`."""
    import bizra_nb.runner as runner_module

    real_export = runner_module.export_html

    def disk_full(nb, *, title):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runner_module, "export_html", disk_full)
    http = httpx.Client(base_url=nb_server.url, timeout=30)
    run_id = http.post("/runs", json={"notebook": "succeeds_with_a_figure"}, headers=AUTH).json()["id"]
    run = finished(http, run_id)
    assert run["status"] == "failed" and "No space left on device" in run["error"]
    wait_until(lambda: runs_active(http) == 0, timeout=30)  # the run event follows the store write
    assert http.get("/health").json()["violations"]["run_failed"] == 1
    monkeypatch.setattr(runner_module, "export_html", real_export)  # the one slot is free again
    again = http.post("/runs", json={"notebook": "succeeds_with_a_figure"}, headers=AUTH).json()["id"]
    assert finished(http, again)["status"] == "succeeded"
    wait_until(lambda: runs_active(http) == 0, timeout=30)  # the run event follows the store write


def test_a_cancel_while_the_report_is_written_is_accepted(nb_server, monkeypatch):
    """Item 10: cancelling a run whose worker is done but whose report is being written: 202, then cancelled."""
    import threading

    import bizra_nb.runner as runner_module

    writing, release = threading.Event(), threading.Event()
    real_export = runner_module.export_html

    def slow_export(nb, *, title):
        writing.set()
        release.wait(60)
        return real_export(nb, title=title)

    monkeypatch.setattr(runner_module, "export_html", slow_export)
    http = httpx.Client(base_url=nb_server.url, timeout=30)
    run_id = http.post("/runs", json={"notebook": "succeeds_with_a_figure"}, headers=AUTH).json()["id"]
    wait_until(writing.is_set, timeout=120)
    assert http.post(f"/runs/{run_id}/cancel", headers=AUTH).status_code == 202
    release.set()
    run = finished(http, run_id)
    assert run["status"] == "cancelled" and http.get(run["links"]["html"]).status_code == 200
    wait_until(lambda: runs_active(http) == 0, timeout=30)  # the run event follows the store write


def test_progress_is_stored_while_a_run_is_running(nb_server):
    """Item 12: GET /runs/{id} shows {"cell": i, "cells": n} while the run runs."""
    http = httpx.Client(base_url=nb_server.url, timeout=30)
    run_id = http.post("/runs", json={"notebook": "waits_after_three_cells"}, headers=AUTH).json()["id"]
    run = wait_until(lambda: (r := http.get(f"/runs/{run_id}").json())["status"] == "running"
                     and (r.get("progress") or {}).get("cell", 0) >= 4 and r, timeout=120)
    assert run["progress"]["cells"] == 5  # the fifth cell sleeps
    assert runs_active(http) == 1
    assert http.post(f"/runs/{run_id}/cancel", headers=AUTH).status_code == 202
    assert finished(http, run_id)["status"] == "cancelled"


def _processes_of(partial: Path) -> list[int]:
    """Pids of the processes of the run writing ``partial``: its command line names it (a cold worker), or its
    stderr is the run's ``run.log`` (a warm worker that took the run, and a worker's kernel)."""
    needle, run_log = str(partial), str(partial.parent / "run.log")
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (needle in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                        or os.readlink(entry / "fd" / "2") == run_log):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.parametrize("worker_survives", [False, True], ids=["worker-killed-too", "worker-survives"])
def test_a_run_interrupted_by_kill_9_gets_a_failure_report_after_the_restart(tmp_path, worker_survives):
    """Item 11: kill -9 the server; the next start fails the run with a readable report.

    Its worker runs in a session of its own: killed with the server (a host crash), or left
    running (only the server died), when the next start stops it before writing the report.
    """
    from bizra_nb.demo import start_server, stop_server

    data, reports = tmp_path / "data", tmp_path / "reports"
    proc, base = start_server(data, "--api-token", TOKEN, "--reports-dir", str(reports), "--cell-timeout", "300")
    try:
        http = httpx.Client(base_url=base, timeout=30)
        run_id = http.post("/runs", json={"notebook": "benchmark", "parameters": {
            "duration": 240.0, "rate": 2.0, "target_url": base}}, headers=AUTH).json()["id"]
        folder = wait_until(lambda: next(iter(reports.glob(f"benchmark/*-{run_id}")), None), timeout=60)
        partial = folder / ".run.ipynb.partial"
        wait_until(lambda: http.get(f"/runs/{run_id}").json()["status"] == "running" and partial.exists(),
                   timeout=120)
        (folder / ".report.html.1.2.tmp").write_text("what a crash in write_atomic leaves")
        rel = folder.relative_to(reports)
        for stray in (".run.ipynb.partial", ".report.html.1.2.tmp", "../../.hidden", "run.log"):
            assert http.get(f"/reports/{rel}/{stray}").status_code == 404  # never served
        workers = wait_until(lambda: _processes_of(partial), timeout=30)
    finally:
        proc.send_signal(signal.SIGKILL)  # a crash: no graceful shutdown
        proc.wait(timeout=10)
    if not worker_survives:
        for pid in workers:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_until(lambda: not _processes_of(partial), timeout=30)
    assert partial.exists()  # what the crash left

    proc, base = start_server(data, "--api-token", TOKEN, "--reports-dir", str(reports))
    try:
        http = httpx.Client(base_url=base, timeout=30)
        run = http.get(f"/runs/{run_id}").json()
        assert run["status"] == "failed" and "interrupted by a server restart" in run["error"]
        report = http.get(run["links"]["html"])
        assert report.status_code == 200
        assert "interrupted by a server restart" in report.text
        assert "duration" in report.text and "240.0" in report.text  # with its parameters
        summary = http.get(run["links"]["summary"]).json()
        assert summary["status"] == "failed" and summary["parameters"]["duration"] == 240.0
        assert http.get(run["links"]["notebook"]).status_code == 200
        index = http.get("/reports/")
        assert index.status_code == 200 and f"-{run_id}/report.html" in index.text
        assert sorted(p.name for p in folder.iterdir()) == ["report.html", "run.ipynb", "run.log", "summary.json"]
        assert http.get("/health").json()["violations"]["run_failed"] == 1
        wait_until(lambda: not _processes_of(partial), timeout=30)  # no worker writes there any more
    finally:
        stop_server(proc)
