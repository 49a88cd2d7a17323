"""Runs on a real Dask cluster: a worker killed mid-run, a cancel that stops the kernel, a scheduler that goes away."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from bizra_nb.errors import Unavailable
from bizra_nb.run_remote import RETRY_REFUSED
from bizra_nb.runner import Runner, _usable, executor_for
from bizra_nb.store import Store
from tests.conftest import TOKEN, wait_until
from tests.dask_cluster import DaskCluster, alive, processes_of_run

TINY = Path(__file__).parent / "notebooks"


@pytest.fixture
def cluster(tmp_path):
    """A cluster of its own (two workers): these tests kill parts of it."""
    made = DaskCluster(tmp_path / "dask")
    yield made
    made.stop()


@pytest.fixture
def runner(tmp_path, cluster):
    events: list[dict] = []
    r = Runner(Store.open(tmp_path / "data"), reports_dir=tmp_path / "reports", notebooks_dir=TINY,
               executor=executor_for(cluster.address), on_event=events.append, cell_timeout=120, run_timeout=300)
    r.events = events
    yield r
    r.close()


def kernel_of(run_id: str) -> dict[int, str]:
    """The run's processes once its kernel runs (the notebook's cells have started)."""
    found = processes_of_run(run_id)
    return found if any("ipykernel" in cmd for cmd in found.values()) else {}


def test_a_worker_killed_mid_run_fails_the_run_with_a_report_and_the_other_worker_goes_on(runner, cluster):
    run = runner.create("sleeps_past_timeout")
    future = runner.submit(run)
    processes = wait_until(lambda: kernel_of(run["id"]), timeout=120)
    executor_pid = next(pid for pid, cmd in processes.items() if "bizra_nb.notebook_exec" in cmd)
    worker_pid = int(Path(f"/proc/{executor_pid}/stat").read_text().split(") ", 1)[1].split()[1])  # its parent
    assert worker_pid in cluster.worker_pids()
    os.kill(worker_pid, signal.SIGKILL)

    finished = future.result(timeout=120)
    assert finished["status"] == "failed" and finished["error"].startswith("WorkerDied")
    assert RETRY_REFUSED in finished["error"]  # the scheduler gave it to the other worker, which refused it
    report = (Path(finished["folder"]) / "report.html").read_text()
    assert "This run failed" in report and "died" in report  # a readable report, at the same link
    assert runner.store.get_run(run["id"])["status"] == "failed"  # never left running
    wait_until(lambda: not any(alive(pid) for pid in processes), timeout=60)  # its process and kernel died with it

    after = runner.submit(runner.create("succeeds_with_a_figure", {"x": 3})).result(timeout=180)
    assert after["status"] == "succeeded" and after["summary"]["x"] == 3  # the cluster goes on


def test_cancel_on_dask_stops_the_kernel(runner):
    run = runner.create("sleeps_past_timeout")
    future = runner.submit(run)
    processes = wait_until(lambda: kernel_of(run["id"]), timeout=120)
    assert runner.store.get_run(run["id"])["status"] == "running"
    runner.cancel(run["id"])
    finished = future.result(timeout=60)
    assert finished["status"] == "cancelled" and "Cancelled" in finished["error"]
    assert (Path(finished["folder"]) / "report.html").is_file()
    wait_until(lambda: not any(alive(pid) for pid in processes), timeout=30)  # no orphan: kernel and worker process


def test_a_run_cancelled_while_it_waits_for_a_worker_never_starts(runner):
    busy = [runner.create("sleeps_past_timeout") for _ in range(2)]  # both workers taken
    futures = [runner.submit(run) for run in busy]
    wait_until(lambda: all(runner.store.get_run(r["id"])["status"] == "running" for r in busy), timeout=120)
    waiting = runner.create("succeeds_with_a_figure")
    future = runner.submit(waiting)
    assert runner.cancel(waiting["id"])["status"] == "cancelled"
    for run in busy:
        runner.cancel(run["id"])
    assert future.result(timeout=60)["status"] == "cancelled"
    assert [f.result(timeout=60)["status"] for f in futures] == ["cancelled", "cancelled"]
    assert runner.store.get_run(waiting["id"])["started_at"] is None


def test_a_scheduler_that_goes_away_fails_runs_in_flight_and_refuses_new_ones_at_once(runner, cluster):
    run = runner.create("sleeps_past_timeout")
    future = runner.submit(run)
    processes = wait_until(lambda: kernel_of(run["id"]), timeout=120)
    cluster.kill_scheduler()  # a crash: the workers stay up and must stop the run themselves
    finished = future.result(timeout=60)
    assert finished["status"] == "failed" and "Dask scheduler" in finished["error"]
    assert (Path(finished["folder"]) / "report.html").is_file()
    with pytest.raises(Unavailable) as refused:
        runner.create("succeeds_with_a_figure")
    assert cluster.address in refused.value.message and "does not answer" in refused.value.message
    assert [r["id"] for r in runner.store.list_runs()] == [run["id"]]  # nothing recorded for the refused run
    wait_until(lambda: not any(alive(pid) for pid in processes), timeout=90)  # nothing of it is left running

    cluster.restart()  # back on the same address (its workers restarted): the next run reconnects
    again = wait_until(lambda: _created(runner, "succeeds_with_a_figure", {"x": 8}), timeout=30)
    assert runner.submit(again).result(timeout=180)["status"] == "succeeded"


def _created(runner, notebook, parameters):
    """The new run, or None while the runner still counts the scheduler as down (a few seconds)."""
    try:
        return runner.create(notebook, parameters)
    except Unavailable:
        return None


def test_the_server_on_dask_reports_its_workers_and_says_why_when_the_scheduler_is_gone(make_server, cluster):
    running = make_server(dask_scheduler=cluster.address)
    with httpx.Client(base_url=running.url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        ready = wait_until(lambda: (r := http.get("/ready").json())["components"].get("dask", {}).get("ok") and r,
                           timeout=30)
        assert "2 workers, 2 threads" in ready["components"]["dask"]["detail"]
        assert 'bizra_run_workers{executor="dask"} 2.0' in http.get("/metrics").text
        cluster.stop_scheduler()
        ready = wait_until(lambda: (r := http.get("/ready")).json().get("degraded") and r, timeout=60)
        assert ready.status_code == 200  # degraded, not down: the API still serves
        assert any(reason.startswith("dask: ") and cluster.address in reason for reason in ready.json()["degraded"])
        refused = http.post("/runs", json={"notebook": "benchmark", "parameters": {}})
        assert refused.status_code == 503 and cluster.address in refused.json()["error"]["message"]
        assert refused.headers.get("Retry-After")
        assert http.get("/runs").json()["count"] == 0


def test_an_incident_diagnosis_goes_ahead_of_an_audit_queued_before_it(runner):
    busy = [runner.create("sleeps_past_timeout") for _ in range(2)]  # both workers taken
    busy_futures = [runner.submit(run) for run in busy]
    wait_until(lambda: all(runner.store.get_run(r["id"])["status"] == "running" for r in busy), timeout=120)
    audit = runner.create("succeeds_with_a_figure", {"x": 1}, kind="audit")
    incident = runner.create("succeeds_with_a_figure", {"x": 2}, kind="incident")
    audit_future, incident_future = runner.submit(audit), runner.submit(incident)  # the audit first
    runner.cancel(busy[0]["id"])  # one slot frees: the diagnosis takes it
    done = incident_future.result(timeout=180)
    assert done["status"] == "succeeded"
    assert runner.store.get_run(audit["id"])["status"] == "queued"  # still waiting: the other slot is busy
    runner.cancel(busy[1]["id"])
    assert audit_future.result(timeout=180)["status"] == "succeeded"
    assert [f.result(timeout=60)["status"] for f in busy_futures] == ["cancelled", "cancelled"]


@pytest.mark.parametrize("outcome", [
    {"status": "running"},  # a status a run cannot end with: it would stay running for good
    {"status": "succeeded"},  # success without its report
    {"status": "succeeded", "files": {"run.ipynb": "{}", "report.html": "x", "../escape": "x"},
     "summary": {}, "error": None, "message": None},
    {"status": "succeeded", "files": {"run.ipynb": "{}", "report.html": b"bytes"}, "summary": {}, "error": None,
     "message": None},
    "not even a dict",
])
def test_a_result_a_replica_cannot_use_fails_the_run(outcome):
    used = _usable(outcome)
    assert used["status"] == "failed" and used["error"]["type"] == "BadResult" and "files" not in used


def test_a_worker_result_as_run_on_worker_makes_it_is_usable():
    outcome = {"status": "succeeded", "files": {"run.ipynb": "{}", "report.html": "<html>", "run.log": ""},
               "summary": {"headline": "h"}, "error": None, "message": None}
    assert _usable(outcome) is outcome
    refused = {"status": "failed", "error": {"type": "WorkerDied", "message": RETRY_REFUSED}}
    assert _usable(refused) is refused


def test_a_replica_killed_mid_run_leaves_nothing_running_on_the_cluster(tmp_path, cluster):
    import subprocess
    import sys

    script = (
        "import sys; from bizra_nb.runner import Runner, executor_for; from bizra_nb.store import Store\n"
        f"r = Runner(Store.open({str(tmp_path / 'data')!r}), reports_dir={str(tmp_path / 'reports')!r}, "
        f"notebooks_dir={str(TINY)!r}, executor=executor_for({cluster.address!r}), cell_timeout=120)\n"
        "run = r.create('sleeps_past_timeout'); print(run['id'], flush=True); r.execute(run['id'])\n")
    replica = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    run_id = replica.stdout.readline().strip()
    processes = wait_until(lambda: kernel_of(run_id), timeout=120)
    replica.kill()  # kill -9: nobody waits for the run any more
    replica.wait()
    wait_until(lambda: not any(alive(pid) for pid in processes), timeout=60)  # its worker stopped it

    restarted = Runner(Store.open(tmp_path / "data"), reports_dir=tmp_path / "reports", notebooks_dir=TINY,
                       executor=executor_for(cluster.address))
    try:
        assert restarted.recover() == [run_id]
        runs = [restarted.submit(restarted.create("succeeds_with_a_figure", {"x": n})) for n in (1, 2)]
        assert [f.result(timeout=180)["status"] for f in runs] == ["succeeded", "succeeded"]  # both workers free
    finally:
        restarted.close()


def test_a_hung_scheduler_is_reported_by_ready_in_seconds_and_new_runs_are_refused(make_server, cluster):
    running = make_server(dask_scheduler=cluster.address)
    with httpx.Client(base_url=running.url, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        wait_until(lambda: http.get("/ready").json()["components"].get("dask", {}).get("ok"), timeout=30)
        cluster.scheduler.send_signal(signal.SIGSTOP)  # hung: connections stay open, nothing answers
        try:
            ready = wait_until(lambda: (r := http.get("/ready")).json().get("degraded") and r, timeout=30)
            assert ready.status_code == 200
            assert any("did not answer within" in reason for reason in ready.json()["degraded"])
            cycles = running.services.controller.cycle_count
            wait_until(lambda: running.services.controller.cycle_count > cycles + 2, timeout=30)  # it goes on
            refused = http.post("/runs", json={"notebook": "benchmark", "parameters": {}})
            assert refused.status_code == 503 and "did not answer" in refused.json()["error"]["message"]
        finally:
            cluster.scheduler.send_signal(signal.SIGCONT)
        wait_until(lambda: http.get("/ready").json()["components"]["dask"]["ok"], timeout=60)  # back
