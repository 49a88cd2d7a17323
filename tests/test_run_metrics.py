"""Run metrics in /metrics (issue 12): queued, running by kind, duration by notebook, workers by executor;
each run counted once however its events repeat, labels bounded."""
from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bizra_nb.score import ScoreKeeper
from bizra_server.metrics import RUN_KINDS, Metrics, RunGauges, notebook_label
from tests.conftest import wait_until

TINY = Path(__file__).parent / "notebooks"


# -- RunGauges alone, on a real registry ----------------------------------------------------------------


@pytest.fixture
def gauges(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "incident_diagnosis.ipynb").write_text("{}")
    metrics = Metrics(ScoreKeeper())
    return RunGauges(metrics, notebooks=lambda: {p.stem: p for p in folder.glob("*.ipynb")}), folder


def value(metrics: Metrics, name: str, **labels) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def event(run_id: str, status: str, notebook: str, kind: str = "incident", **times) -> dict:
    return {"id": run_id, "status": status, "notebook": str(notebook), "kind": kind, **times}


def test_each_step_of_a_run_is_counted_once_however_often_its_events_come(gauges):
    run_gauges, folder = gauges
    metrics = run_gauges.metrics
    nb = folder / "incident_diagnosis.ipynb"
    for _ in range(3):
        run_gauges.observe(event("a", "queued", nb))
    assert value(metrics, "bizra_runs_queued") == 1
    for _ in range(3):  # running, then progress events (also "running")
        run_gauges.observe(event("a", "running", nb, started_at=10.0))
    run_gauges.observe(event("a", "queued", nb))  # late: a run never goes back
    assert value(metrics, "bizra_runs_queued") == 0
    assert value(metrics, "bizra_runs_running", kind="incident") == 1 and value(metrics, "bizra_runs_active") == 1
    for _ in range(3):
        run_gauges.observe(event("a", "succeeded", nb, started_at=10.0, finished_at=17.5))
    run_gauges.observe(event("a", "running", nb))  # late again
    assert value(metrics, "bizra_runs_running", kind="incident") == 0 and value(metrics, "bizra_runs_active") == 0
    assert value(metrics, "bizra_run_duration_seconds_count", notebook="incident_diagnosis") == 1
    assert value(metrics, "bizra_run_duration_seconds_sum", notebook="incident_diagnosis") == 7.5
    assert value(metrics, "bizra_run_duration_seconds_bucket", notebook="incident_diagnosis", le="5.0") == 0
    assert value(metrics, "bizra_run_duration_seconds_bucket", notebook="incident_diagnosis", le="10.0") == 1
    assert value(metrics, "bizra_runs_total", kind="incident", status="succeeded") == 1


def test_a_run_cancelled_while_queued_leaves_the_queue_without_a_duration(gauges):
    run_gauges, folder = gauges
    metrics = run_gauges.metrics
    run_gauges.observe(event("q", "queued", folder / "incident_diagnosis.ipynb"))
    run_gauges.observe(event("q", "cancelled", folder / "incident_diagnosis.ipynb", finished_at=3.0))
    assert value(metrics, "bizra_runs_queued") == 0
    assert value(metrics, "bizra_run_duration_seconds_count", notebook="incident_diagnosis") is None  # never started
    assert value(metrics, "bizra_runs_total", kind="incident", status="cancelled") == 1


def test_labels_are_bounded(gauges, tmp_path):
    run_gauges, folder = gauges
    metrics = run_gauges.metrics
    elsewhere = tmp_path / "elsewhere" / "incident_diagnosis.ipynb"  # a path, named like the server's notebook
    for i, (notebook, kind) in enumerate([(elsewhere, "incident"), (tmp_path / "mine.ipynb", "my-own-kind"),
                                          (folder / "incident_diagnosis.ipynb", f"kind{99}")]):
        run_gauges.observe(event(f"r{i}", "running", notebook, kind))
        run_gauges.observe(event(f"r{i}", "failed", notebook, kind, started_at=1.0, finished_at=2.0))
    assert value(metrics, "bizra_run_duration_seconds_count", notebook="other") == 2
    assert value(metrics, "bizra_run_duration_seconds_count", notebook="incident_diagnosis") == 1
    series = {s.labels.get("kind") for f in text_string_to_metric_families(metrics.exposition().decode())
              for s in f.samples if s.name in ("bizra_runs_running", "bizra_runs_total")}
    assert series <= set(RUN_KINDS) and "other" in series
    assert notebook_label(str(folder / "incident_diagnosis.ipynb"), {}) == "other"


def test_events_from_many_threads_count_each_run_once(gauges):
    run_gauges, folder = gauges
    metrics = run_gauges.metrics
    nb = folder / "incident_diagnosis.ipynb"
    runs, threads_per_run = 50, 4
    barrier = threading.Barrier(threads_per_run)

    def deliver() -> None:
        barrier.wait(timeout=30)
        for i in range(runs):
            for status in ("queued", "running", "running", "succeeded"):
                run_gauges.observe(event(f"t{i}", status, nb, started_at=1.0, finished_at=4.0))

    threads = [threading.Thread(target=deliver) for _ in range(threads_per_run)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert value(metrics, "bizra_run_duration_seconds_count", notebook="incident_diagnosis") == runs
    assert value(metrics, "bizra_runs_total", kind="incident", status="succeeded") == runs
    assert value(metrics, "bizra_runs_queued") == 0 and value(metrics, "bizra_runs_running", kind="incident") == 0


def test_run_workers_names_the_executor_in_use(gauges):
    metrics = gauges[0].metrics
    assert value(metrics, "bizra_run_workers", executor="local") == 0  # both exported from the start

    def workers() -> tuple:
        return tuple(value(metrics, "bizra_run_workers", executor=e) for e in ("local", "dask"))

    metrics.set_run_workers("dask", 4)
    assert workers() == (0, 4)
    metrics.set_run_workers("local", 2)
    assert workers() == (2, 0)
    with pytest.raises(ValueError):
        metrics.set_run_workers("k8s", 1)


# -- through a real server --------------------------------------------------------------------------------


@pytest.fixture
def one_slot_server(make_nb_server):
    """A server with one run slot, whose notebooks folder also holds the tiny test notebooks."""
    return make_nb_server(run_workers=1, cell_timeout=120)


def samples(http) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(http.get("/metrics").text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(http, name: str, **labels) -> float | None:
    return samples(http).get((name, tuple(sorted(labels.items()))))


def finished(http, run_id: str) -> dict:
    return wait_until(lambda: (r := http.get(f"/runs/{run_id}").json())["status"] in
                      ("succeeded", "failed", "cancelled") and r, timeout=120)


def test_a_run_through_the_server_is_queued_running_then_timed_once(one_slot_server, auth):
    http = httpx.Client(base_url=one_slot_server.url, timeout=30)
    blocker = http.post("/runs", json={"notebook": "sleeps_past_timeout"}, headers=auth).json()["id"]
    wait_until(lambda: http.get(f"/runs/{blocker}").json()["status"] == "running", timeout=60)
    assert sample(http, "bizra_runs_running", kind="other") == 1  # a test notebook: not one of the KINDS
    run_id = http.post("/runs", json={"notebook": "succeeds_with_a_figure"}, headers=auth).json()["id"]
    assert http.get(f"/runs/{run_id}").json()["status"] == "queued"
    wait_until(lambda: sample(http, "bizra_runs_queued") == 1)  # waiting for the one slot
    assert http.post(f"/runs/{blocker}/cancel", headers=auth).status_code == 202
    run = finished(http, run_id)
    assert run["status"] == "succeeded"
    wait_until(lambda: sample(http, "bizra_run_duration_seconds_count", notebook="succeeds_with_a_figure") == 1)
    runner = one_slot_server.services.runner
    for _ in range(2):  # the end heard again (a repeated event): counted once
        runner.on_event(one_slot_server.services.store.get_run(run_id))
    values = samples(http)
    assert values[("bizra_run_duration_seconds_count", (("notebook", "succeeds_with_a_figure"),))] == 1
    assert values[("bizra_run_duration_seconds_sum", (("notebook", "succeeds_with_a_figure"),))] == \
        pytest.approx(run["finished_at"] - run["started_at"])
    assert values[("bizra_runs_total", (("kind", "other"), ("status", "succeeded")))] == 1
    assert values[("bizra_runs_total", (("kind", "other"), ("status", "cancelled")))] == 1
    assert values[("bizra_runs_queued", ())] == 0 and values[("bizra_runs_active", ())] == 0
    assert all(values[("bizra_runs_running", (("kind", kind),))] == 0 for kind in RUN_KINDS)

    by_path = runner.create(str(TINY / "succeeds_with_a_figure.ipynb"), {})  # named like a server notebook
    runner.submit(by_path)
    assert finished(http, by_path["id"])["status"] == "succeeded"
    wait_until(lambda: sample(http, "bizra_run_duration_seconds_count", notebook="other") == 1)
    notebooks = {s.labels["notebook"] for f in text_string_to_metric_families(http.get("/metrics").text)
                 for s in f.samples if s.name.startswith("bizra_run_duration_seconds")}
    assert notebooks == {"succeeds_with_a_figure", "sleeps_past_timeout", "other"}
    assert sample(http, "bizra_run_duration_seconds_count", notebook="succeeds_with_a_figure") == 1
    http.close()
