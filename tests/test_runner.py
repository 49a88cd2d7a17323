"""The runner with real papermill on tiny notebooks named for what they test."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from bizra_nb.errors import InvalidInput
from bizra_nb.runner import RunFailed, Runner, check_parameters, executor_for, resolve_notebook
from bizra_nb.score import ScoreKeeper
from bizra_nb.store import Store

TINY = Path(__file__).parent / "notebooks"


def _runner(tmp_path, executor, kernel_pool=0):
    events: list[dict] = []
    keeper = ScoreKeeper()
    r = Runner(Store.open(tmp_path / "data"), reports_dir=tmp_path / "reports", notebooks_dir=TINY,
               executor=executor, keeper=keeper, on_event=events.append, cell_timeout=60, run_timeout=120,
               kernel_pool=kernel_pool)
    r.events, r.keeper_ = events, keeper
    return r


@pytest.fixture(params=["local", "pooled", "dask"])
def runner(request, tmp_path):
    """A runner on each executor: two local slots (cold, or ``pooled``: a warm worker ready, see
    :mod:`bizra_nb.kernel_pool`), or the session's Dask cluster (two workers)."""
    from tests.conftest import wait_until

    address = request.getfixturevalue("dask_cluster").address if request.param == "dask" else ""
    r = _runner(tmp_path, executor_for(address, 2), kernel_pool=1 if request.param == "pooled" else 0)
    if r.pool is not None:
        wait_until(r.pool.idle, timeout=120)  # the first run takes it
    yield r
    r.close()


@pytest.fixture
def local_runner(tmp_path):
    """For what only this machine has: its Popen, its environment (a Dask worker has its own)."""
    r = _runner(tmp_path, executor_for("", 2))
    yield r
    r.close()


def files_of(run: dict) -> dict[str, Path]:
    folder = Path(run["folder"])
    return {name: folder / name for name in ("run.ipynb", "report.html", "summary.json")}


def test_a_run_writes_notebook_report_and_summary(runner):
    run = runner.run("succeeds_with_a_figure", {"x": 5})
    assert run["status"] == "succeeded" and run["summary"] == {"headline": "tiny: x=5", "x": 5}
    files = files_of(run)
    assert all(p.is_file() for p in files.values())
    assert Path(run["folder"]).parent.name == "other" and Path(run["folder"]).name.endswith(run["id"])
    summary = json.loads(files["summary.json"].read_text())
    assert summary["status"] == "succeeded" and summary["parameters"] == {"x": 5}
    statuses = [e["status"] for e in runner.events]
    assert statuses[0] == "queued" and "running" in statuses and statuses[-1] == "succeeded"
    progress = [e["progress"] for e in runner.events if e.get("progress")]
    assert progress[-1]["cell"] == progress[-1]["cells"]
    assert (runner.reports_dir / "index.html").is_file()
    assert runner.keeper_.snapshot()["events"] == 1


def test_the_html_hides_code_and_carries_each_figure_with_one_plotly_bundle(runner):
    html = files_of(runner.run("succeeds_with_a_figure"))["report.html"].read_text()
    assert "A tiny report" in html
    assert "go.Figure(" not in html  # no code in the managers' report
    assert html.count('class="plotly-graph-div"') == 2
    assert html.count("\n* plotly.js v") == 1  # the bundle's banner: exactly one bundle for both figures
    assert len(html) < 6 * 1024 * 1024
    assert not re.search(r'<(script|link|img|iframe)[^>]*(src|href)="(https?:)?//', html), "a resource from the web"


def test_a_failing_cell_fails_the_run_and_the_report_says_where(runner):
    with pytest.raises(RunFailed) as info:
        runner.run("fails_in_cell_3", {"x": 7})
    run = info.value.run
    assert run["status"] == "failed"
    assert "ValueError: deliberate failure with x=7 in cell 3" in run["error"]
    html = files_of(run)["report.html"].read_text()
    first = html.index("This run failed in cell 3")
    assert first < html.index("deliberate failure")  # the banner comes first
    assert "<code>x</code>" in html and "<code>7</code>" in html  # with the parameters
    summary = json.loads(files_of(run)["summary.json"].read_text())
    assert summary["status"] == "failed" and summary["error"]["cell"] == 3
    assert runner.keeper_.snapshot()["violations"]["run_failed"] == 1


def test_a_cell_past_the_timeout_fails_the_run(runner):
    runner.cell_timeout = 3  # the 60 s sleep of cell 2 passes it; the parameters cell is far within it
    with pytest.raises(RunFailed) as info:
        runner.run("sleeps_past_timeout")
    assert "timed out" in info.value.run["error"] and "in cell 2" in info.value.run["error"]
    assert files_of(info.value.run)["report.html"].is_file()


def test_a_kernel_that_dies_fails_the_run(runner):
    with pytest.raises(RunFailed) as info:
        runner.run("kills_its_kernel")
    assert "DeadKernelError" in info.value.run["error"]
    assert "This run failed in cell 2" in files_of(info.value.run)["report.html"].read_text()


def test_a_run_past_its_time_limit_is_stopped(tmp_path):
    r = Runner(Store.open(tmp_path / "d"), reports_dir=tmp_path / "r", notebooks_dir=TINY, cell_timeout=60,
               run_timeout=4)
    run = r.execute(r.create("sleeps_past_timeout")["id"])
    assert run["status"] == "failed" and "RunTimeout" in run["error"]
    r.close()


def test_cancel_a_running_run(runner):
    run = runner.create("sleeps_past_timeout")
    runner.cell_timeout = 60
    future = runner.submit(run)
    from tests.conftest import wait_until

    wait_until(lambda: run["id"] in runner._running, timeout=60)  # its worker process runs the notebook
    runner.cancel(run["id"])
    finished = future.result(timeout=30)
    assert finished["status"] == "cancelled"
    assert "Cancelled" in finished["error"]
    assert files_of(finished)["report.html"].is_file()


def test_two_runs_at_once(runner):
    runs = [runner.create("succeeds_with_a_figure", {"x": n}) for n in (1, 2)]
    results = [f.result(timeout=60) for f in [runner.submit(r) for r in runs]]
    assert [r["status"] for r in results] == ["succeeded", "succeeded"]
    assert sorted(r["summary"]["x"] for r in results) == [1, 2]


@pytest.mark.parametrize("parameters, fragment", [
    ({"__import__('os').system('id')": 1}, "unknown parameter"),
    ({"x = 1\nimport os": 1}, "unknown parameter"),
    ({"nope": 1}, "allowed: x (int), label (str)"),
    ({"x": "1; import os"}, "parameter 'x' must be of type int"),
    ({"x": 1.5}, "must be of type int"),
    ({"label": 3}, "must be of type str"),
])
def test_parameter_injection_and_wrong_types_are_rejected_before_running(runner, parameters, fragment):
    with pytest.raises(InvalidInput) as info:
        runner.create("succeeds_with_a_figure", parameters)
    assert fragment in info.value.message
    assert runner.store.list_runs() == []  # nothing was even queued


def test_typed_parameters_arrive_as_given(runner):
    params = {"count": 4, "ratio": 2, "name": "a'b\"c", "flag": True, "items": ["x", 1], "options": {"k": [1]}}
    run = runner.run("typed_parameters", params)
    assert run["summary"] == {**params, "ratio": 2}


def test_unknown_notebook_names_the_known_ones():
    with pytest.raises(InvalidInput, match="known: benchmark, compliance_audit, explore, incident_diagnosis"):
        resolve_notebook("nope")
    assert check_parameters(resolve_notebook("benchmark"), {"rate": 10}) == {"rate": 10}


def test_runs_left_running_by_a_dead_process_are_failed_at_start(tmp_path):
    store = Store.open(tmp_path)
    store.create_run(id="abc123", notebook="x.ipynb", kind="other", status="running", trigger="api",
                     parameters={}, created_at=time.time())
    keeper = ScoreKeeper()
    r = Runner(store, reports_dir=tmp_path / "r", keeper=keeper)
    assert r.recover() == ["abc123"]
    run = store.get_run("abc123")
    assert run["status"] == "failed" and "interrupted" in run["error"]
    assert keeper.snapshot()["violations"]["run_failed"] == 1
    r.close()


def test_no_partial_files_remain(runner):
    run = runner.run("succeeds_with_a_figure")
    names = sorted(p.name for p in Path(run["folder"]).iterdir())
    assert names == ["report.html", "run.ipynb", "run.log", "summary.json"]


# -- a run never stays `running` (issue 9, item 10) ----------------------------------------------


def test_a_report_that_cannot_be_written_fails_the_run(runner, monkeypatch):
    import bizra_nb.runner as runner_module

    real_write = runner_module.write_atomic

    def disk_full(path, text):
        if Path(path).name == "report.html":
            raise OSError(28, "No space left on device")
        return real_write(path, text)

    monkeypatch.setattr(runner_module, "write_atomic", disk_full)
    with pytest.raises(RunFailed) as info:
        runner.run("succeeds_with_a_figure")
    run = runner.store.get_run(info.value.run["id"])
    assert run["status"] == "failed" and "No space left on device" in run["error"] and run["finished_at"]
    assert runner.events[-1]["status"] == "failed"  # the listener (bizra_runs_active) hears the end
    assert runner.keeper_.snapshot()["violations"]["run_failed"] == 1
    assert runner._running == {} and runner._cancelled == set()


def test_a_folder_that_cannot_be_made_fails_the_run(runner):
    runner.reports_dir.mkdir(parents=True, exist_ok=True)
    (runner.reports_dir / "other").write_text("a file where the kind's folder should be")  # fails for root too
    run = runner.execute(runner.create("succeeds_with_a_figure")["id"])
    assert run["status"] == "failed" and "while running it" in run["error"]
    assert runner.store.get_run(run["id"])["status"] == "failed"
    assert runner.keeper_.snapshot()["violations"]["run_failed"] == 1


def test_a_worker_that_cannot_start_fails_the_run(local_runner, monkeypatch):
    runner = local_runner
    import bizra_nb.worker_process as worker_process

    def no_fork(*args, **kwargs):
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(worker_process.subprocess, "Popen", no_fork)
    run = runner.execute(runner.create("succeeds_with_a_figure")["id"])
    stored = runner.store.get_run(run["id"])
    assert stored["status"] == "failed" and "Resource temporarily unavailable" in stored["error"]
    assert runner.events[-1]["status"] == "failed"


def test_a_cancel_while_the_report_is_written_cancels_the_run(runner, monkeypatch):
    import threading

    import bizra_nb.runner as runner_module
    from tests.conftest import wait_until

    writing, release = threading.Event(), threading.Event()
    real_write = runner_module.write_atomic

    def slow_write(path, text):
        if Path(path).name == "report.html":
            writing.set()
            release.wait(60)
        return real_write(path, text)

    monkeypatch.setattr(runner_module, "write_atomic", slow_write)
    run = runner.create("succeeds_with_a_figure")
    future = runner.submit(run)
    wait_until(writing.is_set, timeout=60)  # the worker is done; the runner writes the report
    assert runner.cancel(run["id"])["status"] == "running"  # accepted, no Conflict
    release.set()
    finished = future.result(timeout=60)
    assert finished["status"] == "cancelled" and "while its report was written" in finished["error"]
    assert json.loads(files_of(finished)["summary.json"].read_text())["status"] == "cancelled"
    assert runner._cancelled == set()


# -- progress is stored (item 12) ------------------------------------------------------------------


def test_progress_is_stored_while_running(runner):
    from tests.conftest import wait_until

    run = runner.create("waits_after_three_cells")
    future = runner.submit(run)
    stored = wait_until(lambda: (r := runner.store.get_run(run["id"]))["progress"] and r, timeout=60)
    assert stored["status"] == "running" and stored["progress"]["cells"] == 5
    wait_until(lambda: runner.store.get_run(run["id"])["progress"]["cell"] >= 4, timeout=60)
    runner.cancel(run["id"])
    assert future.result(timeout=60)["status"] == "cancelled"


# -- secrets stay out of notebooks (item 16) -----------------------------------------------------


def test_workers_and_kernels_do_not_inherit_secrets(local_runner, monkeypatch):
    runner = local_runner
    monkeypatch.setenv("BIZRA_API_TOKEN", "s3cret-token")
    monkeypatch.setenv("FOO_SECRET", "x")
    monkeypatch.setenv("DB_PASSWORD", "x")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("BIZRA_HARMLESS", "kept")
    environment = runner.run("records_its_environment")["summary"]["environment"]
    assert "BIZRA_HARMLESS" in environment and "BIZRA_RUN_ID" in environment and "PATH" in environment
    for secret in ("BIZRA_API_TOKEN", "FOO_SECRET", "DB_PASSWORD", "AWS_ACCESS_KEY_ID"):
        assert secret not in environment


# -- restart after a crash (item 11) -------------------------------------------------------------


def test_recover_writes_a_failure_report_and_removes_stray_files(tmp_path):
    store = Store.open(tmp_path / "data")
    folder = tmp_path / "reports" / "other" / "2026-10-01-abc123"
    folder.mkdir(parents=True)
    (folder / ".run.ipynb.partial").write_text('{"cells": [')  # cut short by the crash
    (folder / ".report.html.123.456.tmp").write_text("half a report")
    store.create_run(id="abc123", notebook=str(TINY / "succeeds_with_a_figure.ipynb"), kind="other",
                     status="running", trigger="api", parameters={"x": 41}, created_at=time.time(),
                     folder=str(folder), progress={"cell": 2, "cells": 7})
    r = Runner(store, reports_dir=tmp_path / "reports")
    assert r.recover() == ["abc123"]
    html = (folder / "report.html").read_text()
    assert "interrupted by a server restart" in html and "after 2 of 7 cells" in html
    assert "<code>x</code>" in html and "<code>41</code>" in html
    assert json.loads((folder / "summary.json").read_text())["status"] == "failed"
    assert (folder / "run.ipynb").is_file()
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "run.ipynb", "summary.json"]
    assert "2026-10-01-abc123/report.html" in (tmp_path / "reports" / "index.html").read_text()
    r.close()


def test_urls_with_a_password_do_not_reach_notebook_workers():
    from bizra_nb.runner import worker_environment

    kept = worker_environment({"HOME": "/root", "BIZRA_REDIS_URL": "redis://:hunter2@cache:6379/0",
                               "DATABASE_URL": "postgresql://bizra:hunter2@db/bizra",
                               "BIZRA_PROMETHEUS_URL": "http://prometheus:9090", "BIZRA_STORE_URL": "sqlite:///x"})
    assert kept == {"HOME": "/root", "BIZRA_PROMETHEUS_URL": "http://prometheus:9090", "BIZRA_STORE_URL": "sqlite:///x"}
