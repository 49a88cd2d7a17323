"""The runner with real papermill on tiny notebooks named for what they test."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from bizra_nb.errors import InvalidInput
from bizra_nb.runner import RunFailed, Runner, check_parameters, resolve_notebook
from bizra_nb.score import ScoreKeeper
from bizra_nb.store import Store

TINY = Path(__file__).parent / "notebooks"


@pytest.fixture
def runner(tmp_path):
    events: list[dict] = []
    keeper = ScoreKeeper()
    r = Runner(Store.open(tmp_path / "data"), reports_dir=tmp_path / "reports", notebooks_dir=TINY, workers=2,
               keeper=keeper, on_event=events.append, cell_timeout=3, run_timeout=60)
    r.events, r.keeper_ = events, keeper
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
    assert html.count("plotly.js v") <= 2  # the bundle's banner, once (it names itself twice at most)
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
    started = time.monotonic()
    with pytest.raises(RunFailed) as info:
        runner.run("sleeps_past_timeout")
    assert time.monotonic() - started < 30
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
    started = time.monotonic()
    run = r.execute(r.create("sleeps_past_timeout")["id"])
    assert run["status"] == "failed" and "RunTimeout" in run["error"]
    assert time.monotonic() - started < 30
    r.close()


def test_cancel_a_running_run(runner):
    run = runner.create("sleeps_past_timeout")
    runner.cell_timeout = 60
    future = runner.submit(run)
    deadline = time.monotonic() + 30
    while runner.store.get_run(run["id"])["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
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
