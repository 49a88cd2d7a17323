"""What a Dask worker executes for one run: the worker process as locally, progress as events, the report back.

:func:`run_on_worker` is the task :class:`~bizra_nb.dask_executor.DaskExecutor` submits. It needs only
the project installed on the worker (``pip install bizra-nb``): the notebook comes in the task, the
kernel is the worker's own ``bizra-nb`` kernel, and the report (``run.ipynb``, ``report.html``) goes
back in the result, written by the API replica into the run's folder (same link as a local run).

Files the parameters name (a dataset, the CMDB snapshot) and ``BIZRA_DATA_DIR`` are paths on the API's
machine: a worker on another machine sees them only through a shared mount at the same path
(``docs/deploy.md``); a Prometheus URL needs nothing.

Each run has two Dask events on the scheduler: ``bizra-cancel-<id>`` (set by the API: the worker
process and its kernel stop within :data:`CANCEL_POLL` s) and ``bizra-started-<id>``, set by the first
attempt. A worker killed mid-run makes the scheduler give the task to another worker; that second
attempt finds the event set and ends the run as failed instead of running it again: runs are not
retried, since a notebook may have done part of its work (written files, sent queries).
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

from bizra_nb.worker_process import execute_notebook, worker_environment

TOPIC = "bizra-runs"  # the Dask event topic of the runs' started/progress messages
CANCEL_POLL = 1.0  # seconds between a running task's checks of its cancel event
LOG_LIMIT = 1 << 20  # bytes of the worker process's log (run.log) sent back with the report
SCHEDULER_LOST_AFTER = 10.0  # seconds without reaching the scheduler after which a task stops its run
RETRY_REFUSED = ("the Dask worker running it died before it finished; the run is not retried "
                 "(a notebook may have done part of its work): start it again")


def started_event(run_id: str) -> str:
    return f"bizra-started-{run_id}"


def cancel_event(run_id: str) -> str:
    return f"bizra-cancel-{run_id}"


def run_on_worker(spec: dict) -> dict:
    """Execute one run on this Dask worker; returns its outcome (``status``, ``error``, and the report).

    Parameters
    ----------
    spec
        ``run`` (id, kind, parameters...), ``notebook_name`` and ``notebook_text``, ``cell_timeout``,
        ``run_timeout``, and ``env``: what the platform adds to the worker's environment.

    Returns
    -------
    dict
        ``status`` and ``error`` (see :func:`~bizra_nb.worker_process.execute_notebook`), and unless the
        run was refused as a retry: ``files`` (``run.ipynb``, ``report.html`` and ``run.log`` texts), ``summary`` and
        ``message`` (the error as one line).
    """
    from distributed import Event, get_worker

    from bizra_nb.runner import ensure_kernel, render_reports

    worker = get_worker()
    run = dict(spec["run"])
    run_id = run["id"]

    def emit(**event) -> None:
        worker.log_event(TOPIC, {"run": run_id, **event})

    started = Event(started_event(run_id))
    if started.is_set():
        return {"status": "failed", "error": {"type": "WorkerDied", "message": RETRY_REFUSED}}
    started.set()
    emit(event="started", worker=worker.address, pid=os.getpid())
    cancel = Event(cancel_event(run_id))
    cancelled = threading.Event()
    with tempfile.TemporaryDirectory(prefix=f"bizra-run-{run_id}-") as tmp:
        notebook = Path(tmp) / Path(spec["notebook_name"]).name
        notebook.write_text(spec["notebook_text"], encoding="utf-8")
        run["notebook"] = str(notebook)
        partial = Path(tmp) / ".run.ipynb.partial"
        done = threading.Event()

        key = worker.get_current_task()

        def on_start(stop) -> None:
            threading.Thread(target=_watch, args=(cancel, cancelled, stop, done, lambda: _released(worker, key)),
                             daemon=True, name=f"bizra-cancel-watch-{run_id}").start()

        try:
            status, error = execute_notebook(
                str(notebook), run["parameters"], partial, kernel=ensure_kernel(),
                cell_timeout=spec["cell_timeout"], run_timeout=spec["run_timeout"],
                env={**worker_environment(os.environ), **spec["env"]}, log_path=Path(tmp) / "run.log",
                on_progress=lambda progress: emit(event="progress", **progress), on_start=on_start,
                cancelled=cancelled.is_set)
        finally:
            done.set()
        files, summary, message, error = render_reports(run, status, error, partial)
        files["run.log"] = _tail(Path(tmp) / "run.log")
    return {"status": status, "error": error, "files": files, "summary": summary, "message": message}


def _tail(path: Path, limit: int = LOG_LIMIT) -> str:
    """The last ``limit`` bytes of the worker process's log (its stderr), as text."""
    try:
        with open(path, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - limit))
            return log.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _released(worker, key) -> bool:
    """Nobody waits for this task any more: the replica that gave it went away (the futures of its client
    are released) or dropped it. Reads the worker's task state (a Dask internal: False when not there)."""
    try:
        state = worker.state.tasks[key].state
    except KeyError:
        return True
    except AttributeError:
        return False
    return state in ("cancelled", "released", "forgotten")


def _watch(cancel, cancelled: threading.Event, stop, done: threading.Event, released) -> None:
    """Stop the run when its cancel event is set, when its replica went away (``released()``), or when
    the scheduler stays out of reach (its replica failed the run)."""
    reached = time.monotonic()
    while not done.is_set():
        try:
            if cancel.wait(timeout=CANCEL_POLL) or released():
                cancelled.set()
                stop()
                return
            reached = time.monotonic()
        except Exception:  # noqa: BLE001 - the scheduler is out of reach: asked again, up to the limit
            if time.monotonic() - reached > SCHEDULER_LOST_AFTER:
                stop()
                return
            done.wait(CANCEL_POLL)
