"""Warm run workers (bizra_nb.kernel_pool): real worker processes and kernels, runs through them, and the export cache."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import nbformat
import pytest

from bizra_nb.kernel_pool import STARTING_WAIT, KernelPool, WarmWorker, _read_ready, pool_key, pool_size
from bizra_nb.runner import Runner, executor_for
from bizra_nb.settings import load_settings
from bizra_nb.store import Store
from tests.conftest import wait_until

TINY = Path(__file__).parent / "notebooks"


def _runner(tmp_path: Path, pool: int, **options) -> Runner:
    return Runner(Store.open(tmp_path / "data"), reports_dir=tmp_path / "reports", notebooks_dir=TINY,
                  executor=executor_for("", 2), cell_timeout=60, run_timeout=120, kernel_pool=pool, **options)


def _ready(runner: Runner):
    """The pool's one ready worker, once there is one."""
    return wait_until(lambda: (idle := runner.pool.idle()) and idle[0], timeout=120)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped by its parent, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def _gone(*pids: int, timeout: float = 30) -> None:
    wait_until(lambda: not any(_alive(pid) for pid in pids), timeout=timeout, interval=0.1)


def _ran_in(worker, run: dict) -> bool:
    """The run went through ``worker``: its run.log is the file the worker wrote from its start."""
    return os.stat(Path(run["folder"]) / "run.log").st_ino == worker.log_inode


@pytest.fixture
def pooled(tmp_path):
    """A runner keeping one warm worker ready (wait for it with :func:`_ready`); ``started``: its runs' starts."""
    started: list[str] = []
    runner = _runner(tmp_path / "pooled", 1, on_worker_start=started.append)
    runner.started = started
    yield runner
    runner.close()


def _taken(runner: Runner):
    """The ready worker, with its log's inode noted (its log becomes the run's)."""
    worker = _ready(runner)
    worker.log_inode = os.stat(worker.log_path).st_ino
    return worker


def test_a_pooled_run_reports_exactly_as_a_cold_run(pooled, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="bizra.runner")
    worker = _taken(pooled)
    warm = pooled.run("succeeds_with_a_figure", {"x": 5})
    assert _ran_in(worker, warm)
    cold_started: list[str] = []
    cold_runner = _runner(tmp_path / "cold", 0, on_worker_start=cold_started.append)
    try:
        assert cold_runner.pool is None
        cold = cold_runner.run("succeeds_with_a_figure", {"x": 5})
    finally:
        cold_runner.close()
    assert pooled.started == ["warm"] and cold_started == ["cold"]  # bizra_runs_started_total{start}
    assert f"run {warm['id']}: warm worker {worker.pid} (kernel {worker.kernel_pid})" in caplog.messages
    assert f"run {cold['id']}: cold start (pool off)" in caplog.messages
    assert warm["summary"] == cold["summary"] == {"headline": "tiny: x=5", "x": 5}

    def shape(run: dict) -> list:
        nb = nbformat.read(Path(run["folder"]) / "run.ipynb", as_version=4)
        return [(c.cell_type, c.get("execution_count"), c.metadata.get("papermill", {}).get("status"),
                 [(o.output_type, sorted(o.get("data", {}))) for o in c.get("outputs", [])]) for c in nb.cells]

    assert shape(warm) == shape(cold)
    counts = [count for kind, count, *_ in shape(warm) if kind == "code"]
    assert counts == list(range(1, len(counts) + 1))  # from 1: the warm-up left no count
    html = {name: (Path(run["folder"]) / "report.html").read_text() for name, run in (("warm", warm), ("cold", cold))}
    for text in html.values():
        assert text.count('class="plotly-graph-div"') == 2 and text.count("\n* plotly.js v") == 1
        assert "A tiny report" in text and "go.Figure(" not in text
    assert len(html["warm"]) == len(html["cold"])  # the same page but for the figures' random element ids
    assert sorted(p.name for p in Path(warm["folder"]).iterdir()) == ["report.html", "run.ipynb", "run.log",
                                                                      "summary.json"]


def test_runs_never_share_a_kernel_and_see_only_their_own_names(pooled, tmp_path):
    runs = []
    for _ in range(2):
        worker = _taken(pooled)  # the refill, after the first run
        runs.append(pooled.run("sets_a_global", {"label": f"run {len(runs)}"}))
        assert _ran_in(worker, runs[-1])
    first, second = (run["summary"] for run in runs)
    assert first["preloaded"] and second["preloaded"]  # the project was imported before the first cell
    assert not first["seen_before"] and not second["seen_before"]  # the second kernel never saw the first run
    assert first["kernel_pid"] != second["kernel_pid"]
    assert [s["run_id"] for s in (first, second)] == [run["id"] for run in runs]  # BIZRA_RUN_ID: each its own
    cold_runner = _runner(tmp_path / "cold", 0)
    try:
        cold = cold_runner.run("sets_a_global", {"label": "cold"})["summary"]
    finally:
        cold_runner.close()
    assert not cold["preloaded"]
    for key in ("names", "history", "cwd"):  # the warm-up bound no name and left no history
        assert first[key] == cold[key], key


def test_the_pool_refills_after_a_take(pooled):
    worker = _taken(pooled)
    kernel = worker.kernel_pid
    assert pooled.run("succeeds_with_a_figure")["status"] == "succeeded"
    replacement = _ready(pooled)
    assert replacement.pid != worker.pid and replacement.kernel_pid != kernel
    _gone(worker.pid, kernel)  # the used worker and its kernel ended


@pytest.mark.parametrize("killed", ["worker", "kernel"])
def test_a_warm_worker_that_dies_while_idle_is_replaced(pooled, killed):
    worker = _taken(pooled)
    os.kill(worker.pid if killed == "worker" else worker.kernel_pid, signal.SIGKILL)
    _gone(worker.pid, worker.kernel_pid)  # a lone kernel follows its worker; a worker, its kernel
    replacement = wait_until(lambda: (idle := pooled.pool.idle()) and idle[0].pid != worker.pid and idle[0],
                             timeout=120)
    replacement.log_inode = os.stat(replacement.log_path).st_ino
    run = pooled.run("succeeds_with_a_figure", {"x": 2})
    assert run["summary"]["x"] == 2 and _ran_in(replacement, run)


def test_a_pooled_run_cancelled_ends_as_today_and_leaves_no_process(pooled):
    worker = _taken(pooled)
    run = pooled.create("sleeps_past_timeout")
    future = pooled.submit(run)
    wait_until(lambda: run["id"] in pooled._running and pooled.store.get_run(run["id"])["progress"], timeout=60)
    pooled.cancel(run["id"])
    finished = future.result(timeout=60)
    assert finished["status"] == "cancelled" and "Cancelled" in finished["error"]
    assert _ran_in(worker, finished)
    assert (Path(finished["folder"]) / "report.html").is_file()
    _gone(worker.pid, worker.kernel_pid)


def test_a_pooled_run_past_its_time_limit_is_stopped_and_leaves_no_process(pooled):
    worker = _taken(pooled)
    pooled.run_timeout = 6  # the 60 s sleep of its cell 2 passes it
    run = pooled.execute(pooled.create("sleeps_past_timeout")["id"])
    assert run["status"] == "failed" and "RunTimeout" in run["error"] and "in cell 2" in run["error"]
    assert _ran_in(worker, run)
    _gone(worker.pid, worker.kernel_pid)


def test_a_failing_cell_through_the_pool_names_its_cell(pooled):
    worker = _taken(pooled)
    run = pooled.execute(pooled.create("fails_in_cell_3", {"x": 7})["id"])
    assert run["status"] == "failed" and "ValueError: deliberate failure with x=7 in cell 3" in run["error"]
    assert _ran_in(worker, run)
    assert "This run failed in cell 3" in (Path(run["folder"]) / "report.html").read_text()


def test_a_run_with_another_environment_runs_cold(pooled, monkeypatch):
    worker = _taken(pooled)
    monkeypatch.setenv("BIZRA_HARMLESS", "changed since the worker started")
    run = pooled.run("records_its_environment")
    assert not _ran_in(worker, run) and "BIZRA_HARMLESS" in run["summary"]["environment"]
    replacement = wait_until(lambda: (idle := pooled.pool.idle()) and idle[0].pid != worker.pid and idle[0],
                             timeout=120)  # the stale worker is replaced by one with the new environment
    assert replacement.env["BIZRA_HARMLESS"] == "changed since the worker started"
    _gone(worker.pid, worker.kernel_pid)


def test_the_orphan_sweep_finds_a_warm_worker_by_its_run_log(pooled):
    from bizra_nb.runner import _stop_orphan_workers

    worker = _taken(pooled)
    run = pooled.create("sleeps_past_timeout")
    future = pooled.submit(run)
    partial = Path(run["folder"]) / ".run.ipynb.partial"
    assert str(partial).encode() not in Path(f"/proc/{worker.pid}/cmdline").read_bytes()  # started before the run
    wait_until(lambda: os.readlink(f"/proc/{worker.pid}/fd/2") == str(Path(run["folder"]) / "run.log"),
               timeout=60)  # its log became the run's: what a restarted server's orphan sweep looks for
    _stop_orphan_workers(partial)  # as a restarted server does for a worker that outlived its server
    _gone(worker.pid, worker.kernel_pid)
    assert future.result(timeout=60)["status"] == "failed"


def _children(pid: int) -> dict[int, str]:
    """pid -> command line of the processes whose parent is ``pid``."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[1]) == pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
    return found


def test_a_server_killed_with_9_takes_its_warm_workers_and_kernels_along(tmp_path):
    from bizra_nb.demo import start_server, stop_server

    proc, _ = start_server(tmp_path / "data", "--api-token", "t", "--reports-dir", str(tmp_path / "reports"),
                           "--kernel-pool", "1", "--run-workers", "1")
    try:
        worker = wait_until(lambda: next((p for p, cmd in _children(proc.pid).items() if "--warm" in cmd), None),
                            timeout=60)
        kernel = wait_until(lambda: next(iter(_children(worker)), None), timeout=120)
    finally:
        proc.send_signal(signal.SIGKILL)
        stop_server(proc)
    _gone(worker, kernel)  # PDEATHSIG: the worker stops, and its kernel with it


def test_server_stop_leaves_no_warm_worker_kernel_or_log(make_server):
    server = make_server(kernel_pool=1)
    pool = server.services.runner.pool
    worker = wait_until(lambda: (idle := pool.idle()) and idle[0], timeout=120)
    folder = worker.log_path.parent
    server.stop()
    _gone(worker.pid, worker.kernel_pid)
    assert list(folder.iterdir()) == []


def test_closing_while_workers_start_leaves_no_process(tmp_path):
    settings = load_settings(environ={"BIZRA_RUN_WORKERS": "3"})  # the default pool: one per slot, at most 2
    runner = Runner(Store.open(tmp_path / "data"), reports_dir=tmp_path / "reports", notebooks_dir=TINY,
                    executor=executor_for("", settings.run_workers), kernel_pool=settings.kernel_pool)
    assert runner.pool.size == 2
    starting = wait_until(lambda: runner.pool._starting, timeout=30)
    kernels = wait_until(lambda: list(_children(starting.pid)), timeout=60, interval=0.05)  # its kernel, own session
    runner.close()
    _gone(starting.pid, *kernels)
    assert runner.pool.idle() == [] and not runner.pool._thread.is_alive()
    assert list((tmp_path / "reports" / ".kernel-pool").iterdir()) == []


def test_the_default_pool_is_one_warm_worker_per_run_worker_but_at_most_two():
    default = load_settings(environ={}).kernel_pool
    assert [pool_size(default, slots) for slots in (1, 2, 3, 16)] == [1, 2, 2, 2]  # ~300 MB each, per process
    assert [pool_size(n, 16) for n in (0, 1, 5)] == [0, 1, 5]  # explicit sizes as given, whatever the slots
    assert load_settings(environ={"BIZRA_KERNEL_POOL": "64"}).kernel_pool == 64
    with pytest.raises(Exception, match="kernel_pool"):
        load_settings(environ={"BIZRA_KERNEL_POOL": "65"})


def test_pool_size_0_is_the_cold_path(make_server, tmp_path):
    assert _runner(tmp_path, 0).pool is None
    assert make_server().services.runner.pool is None  # the tests' default
    assert load_settings(environ={}).kernel_pool == -1  # production: one per run worker, at most 2
    assert load_settings(environ={"BIZRA_KERNEL_POOL": "0"}).kernel_pool == 0
    with pytest.raises(Exception, match="kernel_pool"):
        load_settings(environ={"BIZRA_KERNEL_POOL": "-2"})


# -- taking a worker that is starting, and why a run goes cold ---------------------------------------


def _idle_pool(tmp_path) -> KernelPool:
    """A pool whose thread never runs (size 0): its workers are put in by hand."""
    return KernelPool(0, kernel="k", environment=dict, folder=tmp_path / "pool")


def _fake(env: dict[str, str]) -> WarmWorker:
    """A worker for ``env`` whose process runs (as far as the pool can tell)."""
    proc = types.SimpleNamespace(pid=4242, poll=lambda: None)
    return WarmWorker(proc, kernel="k", env=pool_key(env), cwd=os.getcwd(), log_path=Path("unused.log"),
                      kernel_pid=4243)


def _starting(pool: KernelPool, env: dict[str, str], since: float | None = None) -> WarmWorker:
    worker = _fake(env)
    pool._starting, pool._starting_since = worker, time.monotonic() if since is None else since
    return worker


def _lease_in_thread(pool: KernelPool, env: dict[str, str], **options) -> tuple[threading.Thread, dict]:
    got: dict = {}
    thread = threading.Thread(target=lambda: got.update(lease=pool.lease("k", env, **options)))
    thread.start()
    wait_until(lambda: pool._waiter is not None or not thread.is_alive())
    return thread, got


def test_a_run_takes_the_worker_starting_for_it_once_ready_one_run_per_start(tmp_path):
    pool, env = _idle_pool(tmp_path), {"A": "1", "BIZRA_RUN_ID": "r1"}
    starting = _starting(pool, env)
    thread, got = _lease_in_thread(pool, env)
    assert thread.is_alive() and pool._waiter is not None  # it waits rather than start a second kernel
    second = pool.lease("k", {**env, "BIZRA_RUN_ID": "r2"})
    assert second.worker is None and second.why == "none ready"  # the start is promised: no waiting for it
    assert pool._place(starting) is None  # the start ends: the worker goes to the run waiting for it
    thread.join(timeout=30)
    assert got["lease"].worker is starting and got["lease"].why is None
    assert pool.idle() == [] and pool._waiter is None


def test_a_run_goes_cold_when_the_start_it_waits_for_fails(tmp_path):
    pool, env = _idle_pool(tmp_path), {"A": "1"}
    _starting(pool, env)
    thread, got = _lease_in_thread(pool, env)
    pool._place(None)
    thread.join(timeout=30)
    assert got["lease"].worker is None and "did not start" in got["lease"].why


def test_a_run_does_not_wait_for_a_start_that_cannot_serve_it(tmp_path):
    pool, env = _idle_pool(tmp_path), {"A": "1"}
    assert pool.lease("k", env).why == "none ready"  # nothing ready, nothing starting
    pool._idle.append(_fake({"A": "other"}))
    assert pool.lease("k", env).why == "environment differs"  # ready, but started for another environment
    pool._idle.clear()
    _starting(pool, {"A": "other"})
    assert pool.lease("k", env).why == "environment differs"  # starting, for another environment
    _starting(pool, env, since=time.monotonic() - STARTING_WAIT)
    late = pool.lease("k", env)
    assert late.worker is None and "not ready" in late.why and pool._waiter is None  # a start that hangs
    assert pool.idle() == []


def test_a_run_cancelled_while_it_waits_for_a_start_stops_waiting(tmp_path):
    pool, env, cancel = _idle_pool(tmp_path), {"A": "1"}, threading.Event()
    starting = _starting(pool, env)
    thread, got = _lease_in_thread(pool, env, cancelled=cancel.is_set)
    cancel.set()
    thread.join(timeout=30)
    assert got["lease"].worker is None and got["lease"].why == "cancelled while waiting"
    pool._place(starting)
    assert pool.idle() == [starting]  # the worker stays for the next run


def test_a_run_arriving_while_the_pools_worker_starts_takes_it(tmp_path):
    runner = _runner(tmp_path, 1)
    try:
        starting = wait_until(lambda: runner.pool._starting, timeout=30)
        starting.log_inode = os.stat(starting.log_path).st_ino
        run = runner.run("succeeds_with_a_figure", {"x": 4})
    finally:
        runner.close()
    assert run["summary"]["x"] == 4 and _ran_in(starting, run)  # warm, not a second start beside it


def test_closing_the_runner_while_a_run_waits_for_the_starting_worker_cancels_the_run(tmp_path):
    runner = _runner(tmp_path, 1)
    try:
        starting = wait_until(lambda: runner.pool._starting, timeout=30)
        run = runner.create("succeeds_with_a_figure", {"x": 4})
        future = runner.submit(run)
        wait_until(lambda: runner.store.get_run(run["id"])["status"] == "running", timeout=30)  # claimed, waiting
    finally:
        runner.close()  # without waiting for the worker's start: the run ends as the runs close cancels
    assert future.result(timeout=60)["status"] == "cancelled"
    _gone(starting.pid)


# -- a warm worker's stdout before ready, and a worker that does not start --------------------------


def _printed(*writes: str) -> dict | None:
    """What :func:`_read_ready` makes of a worker writing each of ``writes`` to stdout (flushed apart), then
    ending."""
    code = f"import sys\nfor w in {list(writes)!r}:\n    sys.stdout.write(w)\n    sys.stdout.flush()"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        return _read_ready(proc, 60)
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()


def test_lines_before_ready_that_are_not_events_are_skipped():
    ready = {"event": "ready", "kernel_pid": 7}
    assert _printed("a module printing on import\n", "[1, 2]\n", '{"event": "progress"}\n',
                    '{"event": "ready", "kernel_pid": 7}\n') == ready
    assert _printed("stray\n", '{"event": "re', 'ady", "kernel_pid": 7}\n') == ready  # a line in two writes
    assert _printed('stray without a newline {"event": "ready", "kernel_pid": 7}\n') == ready
    assert _printed('{"event": "progress", "cell": 1}\n', '[{"event": "ready"}]\n') is None  # no ready event
    assert _printed("stray\n", "more stray") is None  # it ended without ready


def test_a_warm_worker_and_kernel_printing_on_import_still_become_ready(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(  # runs in every Python process started with this environment
        "import os, sys\n"
        f"with open({str(site / 'printed')!r}, 'a') as f:\n    f.write(f'{{os.getpid()}}\\n')\n"
        "print('stray output at start, not JSON', flush=True)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    runner = _runner(tmp_path / "pooled", 1)
    try:
        worker = _taken(runner)
        printed = {int(pid) for pid in (site / "printed").read_text().split()}
        assert {worker.pid, worker.kernel_pid} <= printed  # both wrote to the worker's stdout before ready
        run = runner.run("succeeds_with_a_figure", {"x": 6})
    finally:
        runner.close()
    assert run["summary"]["x"] == 6 and _ran_in(worker, run)


def test_a_worker_that_cannot_start_leaves_no_log_file_and_says_why_once(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="bizra.kernel_pool")
    folder = tmp_path / "pool"
    pool = KernelPool(1, kernel="no-such-kernel", environment=lambda: dict(os.environ), folder=folder)
    try:
        wait_until(lambda: any("did not start again" in m for m in caplog.messages), timeout=120, interval=0.1)
        failed = [r for r in caplog.records if "did not start" in r.getMessage()]
        assert "no-such-kernel" in failed[0].getMessage()  # the end of its log, in the server's
        assert "no-such-kernel" not in failed[1].getMessage()  # the same failure again: said once
        assert len(list(folder.iterdir())) <= 1  # the failed attempts' logs are gone (one may be starting)
    finally:
        pool.close()
    assert list(folder.iterdir()) == [] and pool.idle() == []


# -- bizra_runs_started_total -----------------------------------------------------------------------


def test_runs_started_are_counted_warm_or_cold_in_the_metrics(make_server):
    import httpx

    from bizra_server.metrics import Metrics
    from bizra_nb.score import ScoreKeeper

    metrics = Metrics(ScoreKeeper())
    read = lambda: {s: metrics.registry.get_sample_value("bizra_runs_started_total", {"start": s})  # noqa: E731
                    for s in ("warm", "cold")}
    assert read() == {"warm": 0, "cold": 0}  # both exported from the start
    metrics.run_started("warm")
    metrics.run_started("cold")
    metrics.run_started("cold")
    assert read() == {"warm": 1, "cold": 2}
    with pytest.raises(ValueError):
        metrics.run_started("lukewarm")
    server = make_server()
    server.services.runner._worker_started("r1", "cold", "cold start (pool off)")  # as each run's start does
    text = httpx.get(server.url + "/metrics", timeout=10).text
    assert 'bizra_runs_started_total{start="cold"} 1.0' in text and 'bizra_runs_started_total{start="warm"} 0.0' in text


# -- the report export cache --------------------------------------------------------------------


def _figure_notebook(tmp_path) -> dict:
    runner = _runner(tmp_path, 0)
    try:
        run = runner.run("succeeds_with_a_figure", {"x": 3})
    finally:
        runner.close()
    return nbformat.read(Path(run["folder"]) / "run.ipynb", as_version=4)


def test_cached_exports_are_identical_to_a_fresh_exporters(tmp_path):
    from nbconvert import HTMLExporter

    from bizra_nb import reports
    from bizra_nb.markup import protect_html

    nb = _figure_notebook(tmp_path)
    fresh = HTMLExporter(template_name="offline", extra_template_basedirs=[str(reports.TEMPLATES)],
                         exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True, embed_images=True)
    titled = nbformat.from_dict(nb)
    titled.metadata["title"] = "A title"
    body, _ = fresh.from_notebook_node(titled)
    expected = protect_html(body, reports.figure_scripts(titled))  # the export as it was before the cache
    assert reports.export_html(nb, title="A title") == expected
    reports.export_html(nbformat.v4.new_notebook(), title="between")  # another notebook on the same exporter
    assert reports.export_html(nb, title="A title") == expected
    assert "'sha256-" in expected.split("script-src", 1)[1][:200]


def test_exports_in_threads_at_once_match_their_exports_alone(tmp_path):
    from bizra_nb import reports

    nb = _figure_notebook(tmp_path)
    notebooks = [nb, nbformat.v4.new_notebook(), nb, nbformat.v4.new_notebook()]
    alone = [reports.export_html(n, title=f"t{i}") for i, n in enumerate(notebooks)]
    results: dict[int, str] = {}
    start = threading.Barrier(len(notebooks))

    def export(i: int) -> None:
        start.wait()
        results[i] = reports.export_html(notebooks[i], title=f"t{i}")

    threads = [threading.Thread(target=export, args=(i,)) for i in range(len(notebooks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[i] for i in range(len(notebooks))] == alone
