"""The notebook runner: validated parameters, a bounded pool, papermill in a worker process, reports, history.

Pipeline of a run (each step a function or method you can call alone)::

    resolve_notebook   a name (``incident_diagnosis``) or a path → the .ipynb
    check_parameters   names the notebook declares (papermill.inspect_notebook), JSON values of their types
    Runner.create      a ``queued`` run in the store, its folder reports/<kind>/<date>-<id>/
    Runner.execute     the worker process (bizra_nb.notebook_exec) with a hard time limit
    Runner._finish     run.ipynb, report.html (a banner first when it failed), summary.json, the index

Runs wait in a :class:`~bizra_nb.run_queue.RunQueue` (diagnoses first, a cap per kind) for a slot of
the executor: :class:`LocalExecutor` (threads of this process, each waiting on a worker process on
this machine, the default) or :class:`~bizra_nb.dask_executor.DaskExecutor` (``--dask-scheduler``: the
worker process runs on a Dask worker, see :mod:`bizra_nb.run_remote`; the report comes back and is
written here, at the same link).
"""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from bizra_nb.errors import BizraError, Conflict, InvalidInput
from bizra_nb.parameters import (  # noqa: F401 - importable from here too, as before
    _NAME, _TYPES, check_parameters, coerce_cli_value, declared_parameters, describe_parameters, preflight)
from bizra_nb.reports import (export_html, extract_summary, failure_cell, prepare_export, report_title, trim_failed,
                              write_atomic, write_index)
from bizra_nb.run_queue import PRIORITIES, RunQueue
from bizra_nb.score import ScoreKeeper
from bizra_nb.store import Store
from bizra_nb.worker_process import execute_notebook, worker_environment  # noqa: F401 - importable from here too


def _notebooks_dir() -> Path:
    """The platform's notebooks: ``bizra_nb/notebooks`` in an installed package (pyproject maps the
    checkout's top-level ``notebooks/`` there), else the checkout's own ``notebooks/`` (editable install)."""
    installed = Path(__file__).resolve().parent / "notebooks"
    return installed if installed.is_dir() else Path(__file__).resolve().parent.parent / "notebooks"


NOTEBOOKS_DIR = _notebooks_dir()
KERNEL_NAME = "bizra-nb"
KINDS = {"incident_diagnosis": "incident", "benchmark": "benchmark", "compliance_audit": "audit", "explore": "explore"}
FINISHED = ("succeeded", "failed", "cancelled")
INTERRUPTED = "interrupted by a server restart: the process running it stopped before it finished"
REPLICA_LOST = "interrupted: the replica running it stopped answering (it died or lost the store) before it finished"
CANCEL_POLL = 1.0  # seconds between an owner's checks for a cancel asked through another replica
PROGRESS_INTERVAL = 0.5  # seconds between two progress writes to the store (the last one is always written)
REMOTE_FILES = {"run.ipynb", "report.html", "run.log"}  # what a Dask worker sends back of a run
MAX_REMOTE_FILE = 64 << 20  # characters of one of them a replica writes; a larger one fails the run
REMOTE_GRACE = 120.0  # seconds past --run-timeout a run on Dask may take to come back before it counts as lost
log = logging.getLogger("bizra.runner")


class RemoteLost(BizraError):
    """The cluster lost a run: its worker died (``kind`` WorkerDied), or the scheduler went away (ClusterLost)."""

    def __init__(self, message: str, *, kind: str = "ClusterLost") -> None:
        super().__init__(message)
        self.kind = kind


class RunFailed(BizraError):
    """A notebook run ended in error; ``run`` is its record (the report shows the failure)."""

    status = 500
    code = "run_failed"

    def __init__(self, message: str, run: dict) -> None:
        super().__init__(message)
        self.run = run


def ensure_kernel() -> str:
    """Install the ``bizra-nb`` kernelspec into this environment's prefix, pointing at this interpreter."""
    spec = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json"
    try:
        current = json.loads(spec.read_text())["argv"][0]
    except (OSError, ValueError, KeyError, IndexError):
        current = None
    if current != sys.executable:
        from ipykernel.kernelspec import install

        install(kernel_name=KERNEL_NAME, display_name="Python (bizra-nb)", prefix=sys.prefix)
    return KERNEL_NAME


def available_notebooks(notebooks_dir: Path = NOTEBOOKS_DIR) -> dict[str, Path]:
    return {p.stem: p for p in sorted(Path(notebooks_dir).glob("*.ipynb"))}


def resolve_notebook(notebook: str | Path, notebooks_dir: Path = NOTEBOOKS_DIR) -> Path:
    """A notebook name of ``notebooks/`` or a path to an .ipynb file."""
    known = available_notebooks(notebooks_dir)
    if str(notebook) in known:
        return known[str(notebook)]
    path = Path(notebook)
    if path.suffix == ".ipynb" and path.is_file():
        return path.resolve()
    raise InvalidInput(f"unknown notebook {str(notebook)!r}; known: {', '.join(known)} (or a path to an .ipynb)",
                       field="notebook")


class LocalExecutor:
    """Runs on this machine: ``workers`` slots, each a thread waiting on one worker process."""

    name = "local"
    remote = False

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 2
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="bizra-run")

    def slots(self) -> int:
        return self.workers

    def check(self) -> str:
        """Raise :class:`~bizra_nb.errors.Unavailable` when no run can start (never, here)."""
        return f"{self.workers} local slots"

    def submit(self, fn: Callable, *args: Any) -> Future:
        return self.pool.submit(fn, *args)

    def shutdown(self, wait: bool = True) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=True)


def executor_for(dask_scheduler: str = "", workers: int | None = None):
    """The run executor: the Dask cluster at ``dask_scheduler`` when given, else :class:`LocalExecutor`."""
    if dask_scheduler:
        from bizra_nb.dask_executor import DaskExecutor

        return DaskExecutor(dask_scheduler)
    return LocalExecutor(workers)


class Runner:
    """Runs notebooks into report folders and records every outcome in the store.

    Parameters
    ----------
    store
        Where runs are recorded (history survives restarts).
    reports_dir
        Root of ``<kind>/<date>-<id>/`` folders and of ``index.html``.
    on_event
        ``on_event(run_dict)`` at each change (queued, running, progress, finished), from any thread.
    keeper
        Scores each run as an event, a failed one as a ``run_failed`` violation.
    cell_timeout, run_timeout
        Seconds a cell, and a whole run, may take before the run fails.
    owner
        The replica that executes the runs it creates (recorded on each run; a run is claimed once,
        so two replicas never execute the same one). None: the single-process default, whose
        :meth:`recover` fails every unfinished run; with an owner it fails only the owner's.
    data_dir
        The data dir workers see as ``BIZRA_DATA_DIR`` when the store is not a SQLite file in it.
    kernel_pool
        Warm workers kept ready for runs on this machine (:class:`~bizra_nb.kernel_pool.KernelPool`):
        0 none (every run starts its kernel), -1 one per executor slot but at most
        :data:`~bizra_nb.kernel_pool.DEFAULT_SIZE` (:func:`~bizra_nb.kernel_pool.pool_size`). Runs on Dask
        always start theirs.
    on_worker_start
        Called with ``"warm"`` or ``"cold"`` as each run's worker starts (a warm worker of the pool, or a
        worker and kernel of its own; a run on Dask is cold): the ``bizra_runs_started_total`` metric.
    """

    def __init__(self, store: Store, *, reports_dir: str | Path = "reports", notebooks_dir: Path = NOTEBOOKS_DIR,
                 executor: Any = None, workers: int | None = None, keeper: ScoreKeeper | None = None,
                 on_event: Callable[[dict], None] | None = None, cell_timeout: float = 600,
                 run_timeout: float = 3600, owner: str | None = None, data_dir: str | Path | None = None,
                 kernel_pool: int = 0, on_worker_start: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.on_worker_start = on_worker_start
        self.owner = owner
        self.data_dir = data_dir
        self.reports_dir = Path(reports_dir).resolve()
        self.notebooks_dir = Path(notebooks_dir)
        self.executor = executor or LocalExecutor(workers)
        self.keeper = keeper
        self.on_event = on_event
        self.cell_timeout = cell_timeout
        self.run_timeout = run_timeout
        self.kernel = ensure_kernel()
        self.queue = RunQueue(self._start, slots=self.executor.slots)
        self._running: dict[str, Callable[[], None]] = {}  # run id -> how to stop it, while it executes
        self._futures: dict[str, Future] = {}  # run id -> its outcome, from submit until it ends
        self._waiting_remote: dict = {}  # run id -> its RemoteRun, given to the cluster, not started yet
        self._closing = False
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()
        self.pool = None
        if kernel_pool and not self.executor.remote:
            from bizra_nb.kernel_pool import KernelPool, pool_size

            size = pool_size(kernel_pool, self.executor.slots())
            if size > 0:
                self.pool = KernelPool(size, kernel=self.kernel, environment=self._pool_environment,
                                       folder=self.reports_dir / ".kernel-pool")
                threading.Thread(target=_prepare_export, name="bizra-export-warm", daemon=True).start()

    # -- lifecycle ---------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Fail the runs a process that died left queued or running (call at start, before any run).

        Each gets a failure report (its banner says it was interrupted by a server restart, with its
        parameters), its links resolve, the index is rewritten, and what they left (``.*.partial``,
        stale ``.*.tmp``) is removed.
        """
        ids = self.store.fail_unfinished_runs(INTERRUPTED, owner=self.owner)
        self._report_interrupted(ids)
        return ids

    def reap(self, owners: list[str]) -> list[str]:
        """Fail the unfinished runs of replicas found dead (the leader calls this, see ``server/app.py``).

        Each gets the failure report of an interrupted run when its folder is reachable from here.
        """
        ids = self.store.fail_runs_of_owners(owners, REPLICA_LOST)
        self._report_interrupted(ids, reason=REPLICA_LOST, reachable_only=True)
        return ids

    def _report_interrupted(self, ids: list[str], *, reason: str = INTERRUPTED, reachable_only: bool = False) -> None:
        if ids and self.executor.remote:  # a replica that died left them running on the cluster: stop them there
            try:
                self.executor.cancel_runs(ids)
            except Exception as exc:  # noqa: BLE001 - a cluster that is down runs nothing
                log.warning("could not stop interrupted runs on the Dask cluster: %s", exc)
        folders: list[Path] = []
        for run_id in ids:
            if self.keeper:
                self.keeper.record_violation("run_failed", "interrupted run")
            run = self.store.get_run(run_id)
            if not run.get("folder") or (reachable_only and not Path(run["folder"]).parent.is_dir()):
                continue
            folders.append(Path(run["folder"]))
            _stop_orphan_workers(Path(run["folder"]) / ".run.ipynb.partial")
            try:
                progress = run.get("progress")
                where = f"after {progress['cell']} of {progress['cells']} cells" if progress else None
                summary, _ = self._write_reports(run, "failed", {"type": "Interrupted", "message": reason,
                                                                 "where": where},
                                                 Path(run["folder"]) / ".run.ipynb.partial")
                if summary:
                    self.store.update_run(run_id, summary=summary)
            except Exception as exc:  # noqa: BLE001 - one broken folder must not stop the server's start
                log.warning("could not write the failure report of interrupted run %s: %s", run_id, exc)
        self._sweep_leftovers(folders)
        if ids:
            try:
                self.write_index()
            except OSError as exc:
                log.warning("could not rewrite the reports index: %s", exc)

    def _sweep_leftovers(self, interrupted: list[Path], *, tmp_age: float = 3600.0) -> None:
        """Remove what interrupted runs left: their ``.*.partial`` files, and ``.*.tmp`` files of any folder
        older than ``tmp_age`` seconds (a write in progress elsewhere, e.g. a CLI run on the same folder,
        holds its temporary file for a moment only)."""
        for folder in interrupted:
            for stray in folder.glob(".*.partial"):
                stray.unlink(missing_ok=True)
        cutoff = time.time() - tmp_age
        for stray in self.reports_dir.rglob(".*.tmp"):
            try:
                if stray.stat().st_mtime < cutoff or stray.parent in interrupted:
                    stray.unlink(missing_ok=True)
            except OSError:
                pass

    def create(self, notebook: str | Path, parameters: dict | None = None, *, trigger: str = "api",
               incident_id: int | None = None, kind: str | None = None, confine: dict | None = None,
               defaults: dict | None = None) -> dict:
        """Validate and record a queued run (nothing executes yet); ``confine``: see :func:`check_parameters`;
        ``defaults``: values of the notebook's declared parameters that ``parameters`` does not give.

        Before anything is recorded, :func:`~bizra_nb.parameters.preflight` checks that the files the
        parameters name exist and the URLs answer (blocking up to a few seconds: call it off an IOLoop),
        and the executor that a run can start (a Dask scheduler that does not answer:
        :class:`~bizra_nb.errors.Unavailable`, nothing recorded). An unfinished run of the same
        incident is returned as it is, with ``"existing": True``: one diagnosis per incident at a time.
        """
        self.executor.check()
        path = resolve_notebook(notebook, self.notebooks_dir)
        declared = declared_parameters(path)  # read once: the defaults, the check and the preflight use it
        if defaults and isinstance(parameters, dict):
            parameters = {**{k: v for k, v in defaults.items() if k in declared}, **parameters}
        checked = _scheduled(path.stem, check_parameters(path, parameters or {}, confine=confine, declared=declared))
        preflight(declared, checked,  # a missing file, a silent URL: refused, nothing recorded
                  base=self._store_environment().get("BIZRA_DATA_DIR"))  # where the worker looks
        run_id = uuid.uuid4().hex[:10]
        kind = kind or KINDS.get(path.stem, "other")
        folder = self.reports_dir / kind / f"{_folder_subject(path.stem, checked)}-{run_id}"
        run = self.store.create_run(id=run_id, notebook=str(path), kind=kind, status="queued", trigger=trigger,
                                    parameters=checked, created_at=time.time(), folder=str(folder),
                                    incident_id=incident_id, owner=self.owner)
        if not run.get("existing"):
            self._event(run)
        return run

    def submit(self, run: dict) -> Future:
        """Queue ``run`` for a slot (:class:`~bizra_nb.run_queue.RunQueue`); the future gives the finished run.

        Submitting a run this runner already has returns the same future.
        """
        with self._lock:
            future = self._futures.get(run["id"])
            if future is None:
                future = self._futures[run["id"]] = Future()
        self.queue.put(run["id"], run.get("kind") or "other")
        return future

    def _start(self, run_id: str) -> None:
        """The queue gave ``run_id`` a slot: execute it in the executor's thread, then free the slot."""
        def slot() -> None:
            try:
                outcome = self.execute(run_id)
            except BaseException as exc:  # noqa: BLE001 - execute() ends every run; this is a store outage
                outcome, error = None, exc
            else:
                error = None
            finally:
                self.queue.done(run_id)
                with self._lock:
                    future = self._futures.pop(run_id, None)
            if future is not None:
                future.set_exception(error) if error is not None else future.set_result(outcome)

        self.executor.submit(slot)

    def run(self, notebook: str | Path, parameters: dict | None = None, **kwargs: Any) -> dict:
        """Create and execute a run in this thread; raises :class:`RunFailed` when it fails."""
        run = self.execute(self.create(notebook, parameters, **kwargs)["id"])
        if run["status"] != "succeeded":
            raise RunFailed(f"run {run['id']} {run['status']}: {run.get('error')}", run)
        return run

    def cancel(self, run_id: str) -> dict:
        """Stop a queued or running run; it ends ``cancelled`` (or ``failed`` when its report cannot be written).

        A run whose worker already ended but whose report is being written is still cancelled: the
        finishing step reads the flag under the same lock as it records the outcome. A run that another
        replica executes gets a cancel request in the store, which its owner checks every second.
        """
        with self._lock:
            run = self.store.get_run(run_id)
            if run["status"] in FINISHED:
                raise Conflict(f"run {run_id} already {run['status']}", field="id")
            self._cancelled.add(run_id)
            stop = self._running.get(run_id)
        if stop is not None:
            stop()
        elif run["status"] == "queued":
            cancelled = self.store.cancel_queued_run(run_id)  # only if nobody claimed it meanwhile
            if cancelled is not None:
                self._drop_waiting(run_id, cancelled)
                self._event(cancelled)
            else:
                self.store.request_cancel(run_id)
        elif run.get("owner") != self.owner:  # running on another replica: its owner stops it
            self.store.request_cancel(run_id)
        return self.store.get_run(run_id)

    def _drop_waiting(self, run_id: str, cancelled: dict) -> None:
        """A run cancelled before it started: out of the queue (its future says so), or out of the cluster."""
        if self.queue.discard(run_id):
            with self._lock:
                future = self._futures.pop(run_id, None)
            if future is not None:
                future.set_result(cancelled)
        remote = self._waiting_remote.get(run_id)
        if remote is not None:
            remote.cancel()  # given to the cluster, no worker has it yet: dropped there

    def _watch_cancel_requests(self, run_id: str, stop: Callable[[], None], done: threading.Event) -> None:
        """Call ``stop`` when another replica asks (a cancel request in the store); every second until done."""
        while not done.wait(CANCEL_POLL):
            try:
                requested = self.store.cancel_requested(run_id)
            except Exception:  # noqa: BLE001 - the store is down: asked again next second
                continue
            if requested:
                with self._lock:
                    self._cancelled.add(run_id)
                stop()
                return

    # -- execution ---------------------------------------------------------------------

    def execute(self, run_id: str) -> dict:
        """Run the worker process for a queued run and write its reports; returns the finished run.

        Whatever raises on the way (the folder, the worker's start, the report), the run ends
        ``failed`` with the error, scored as ``run_failed``, logged; never left ``running``.
        """
        run = self.store.get_run(run_id)
        if run["status"] != "queued":
            return run
        try:
            if self.executor.remote:
                return self._execute_remote(run)
            return self._execute(run)
        except Exception as exc:  # noqa: BLE001 - every failure ends the run, see _fail
            return self._fail(run, exc, during="running it")
        finally:
            with self._lock:
                self._running.pop(run_id, None)
                self._cancelled.discard(run_id)

    def _execute(self, run: dict) -> dict:
        run_id = run["id"]
        folder = Path(run["folder"])
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / ".run.ipynb.partial"
        claimed = self.store.claim_run(run_id, self.owner)  # queued → running, once, whoever asks
        if claimed is None:
            return self.store.get_run(run_id)  # cancelled meanwhile, or another replica has it
        run = claimed
        self._event(run)
        done = threading.Event()
        progress = self._progress(run)
        try:
            status, error = execute_notebook(
                run["notebook"], run["parameters"], partial, kernel=self.kernel, cell_timeout=self.cell_timeout,
                run_timeout=self.run_timeout, env={**worker_environment(os.environ), **self._run_environment(run)},
                log_path=folder / "run.log", on_progress=progress.update,
                on_start=lambda stop: self._started(run_id, stop, done),
                cancelled=lambda: run_id in self._cancelled or self._closing,  # a close ends a wait for a warm worker
                pool=self.pool, on_worker=lambda start, how: self._worker_started(run_id, start, how))
        finally:
            done.set()
            progress.close()
            with self._lock:
                self._running.pop(run_id, None)
        return self._finish(run, status, error, partial)

    def _execute_remote(self, run: dict) -> dict:
        """Execute on the Dask cluster (:mod:`bizra_nb.run_remote`): the run is claimed when a worker starts it;
        its progress comes back as events; its report comes back and is written here."""
        run_id = run["id"]
        folder = Path(run["folder"])
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / ".run.ipynb.partial"  # never written here: a lost run's report shows the notebook as written
        notebook = Path(run["notebook"])
        spec = {"run": {k: run.get(k) for k in ("id", "kind", "parameters", "trigger", "incident_id", "created_at")},
                "notebook_name": notebook.name, "notebook_text": notebook.read_text(encoding="utf-8"),
                "kernel": self.kernel, "cell_timeout": self.cell_timeout, "run_timeout": self.run_timeout,
                "env": self._run_environment(run)}
        remote = self.executor.start(spec, priority=PRIORITIES.get(run["kind"], 0))
        self._waiting_remote[run_id] = remote
        done = threading.Event()
        progress = None
        outcome: dict | None = None
        try:
            for event in remote.events(timeout=self.run_timeout + REMOTE_GRACE):
                if event.get("event") == "started" and progress is None:
                    self._waiting_remote.pop(run_id, None)
                    claimed = self.store.claim_run(run_id, self.owner)
                    if claimed is None:  # cancelled while it waited for a worker
                        remote.cancel()
                        continue
                    run = claimed
                    self._event(run)
                    progress = self._progress(run)
                    self._worker_started(run_id, "cold", "cold start (on the Dask cluster)")
                    self._started(run_id, remote.cancel, done)
                elif event.get("event") == "progress" and progress is not None:
                    progress.update({"cell": event["cell"], "cells": event["cells"]})
            outcome = _usable(remote.result())
        except TimeoutError:
            remote.cancel()
            outcome = {"status": "failed", "error": {"type": "RunTimeout", "message": (
                f"the run did not end within {self.run_timeout:g} s on the Dask cluster and was stopped")}}
        except RemoteLost as lost:
            outcome = {"status": "failed", "error": {"type": lost.kind, "message": lost.message}}
        finally:
            if outcome is None:  # something unexpected raised here (the store is down): nothing may run on
                remote.cancel()
            done.set()
            self._waiting_remote.pop(run_id, None)
            if progress is not None:
                progress.close()
            with self._lock:
                self._running.pop(run_id, None)
            remote.close()
        if progress is None and self._closing:  # dropped from the cluster by close(): queued, as a local one stays
            return self.store.get_run(run_id)
        if progress is None:  # never started here: claim it now to record the outcome, unless it ended meanwhile
            claimed = self.store.claim_run(run_id, self.owner)
            if claimed is None:
                return self.store.get_run(run_id)
            run = claimed
        status, error = outcome["status"], outcome.get("error")
        lost = (error or {}).get("type") in ("WorkerDied", "ClusterLost")
        if run_id in self._cancelled and status == "failed" and lost:
            status, error = "cancelled", {"type": "Cancelled", "message": "the run was cancelled"}
        rendered = outcome.get("files") and (outcome["files"], outcome["summary"], outcome["message"],
                                             outcome["error"])
        return self._finish(run, status, error, partial, rendered=rendered or None)

    def _started(self, run_id: str, stop: Callable[[], None], done: threading.Event) -> None:
        """The run executes: ``stop`` ends it (a cancel, a close); a cancel that came first applies now, and so
        does a close that came first (a run that was waiting for a warm worker ends cancelled, as the others)."""
        with self._lock:
            self._running[run_id] = stop
            if self._closing:
                self._cancelled.add(run_id)
            cancelled_early = run_id in self._cancelled
        if cancelled_early:
            stop()
        if self.owner is not None:  # several replicas: a cancel may come through another one
            threading.Thread(target=self._watch_cancel_requests, args=(run_id, stop, done), daemon=True,
                             name=f"cancel-watch-{run_id}").start()

    def _worker_started(self, run_id: str, start: str, how: str) -> None:
        """A run's worker started, ``warm`` or ``cold`` (``how``: which worker, or why cold): logged, counted."""
        log.info("run %s: %s", run_id, how)
        if self.on_worker_start is not None:
            try:
                self.on_worker_start(start)
            except Exception as exc:  # noqa: BLE001 - a metric never fails a run
                log.warning("could not count the start of run %s: %r", run_id, exc)

    def _progress(self, run: dict) -> "_RunProgress":
        return _RunProgress(run, self._event, lambda p: self._store_progress(run["id"], p))

    def _run_environment(self, run: dict) -> dict[str, str]:
        """What the platform adds to a worker's environment for ``run``."""
        return {"BIZRA_REPORT": "1", "BIZRA_RUN_ID": run["id"], "PYTHONUNBUFFERED": "1",
                **self._store_environment(reads_store="data_dir" in declared_parameters(Path(run["notebook"])))}

    def _pool_environment(self) -> dict[str, str]:
        """A warm worker's environment: a run's, without its own variables (``BIZRA_RUN_ID``) nor the store's
        credentials (notebooks that get them run cold)."""
        return {**worker_environment(os.environ), "BIZRA_REPORT": "1", "PYTHONUNBUFFERED": "1",
                **self._store_environment()}

    def _store_environment(self, *, reads_store: bool = False) -> dict[str, str]:
        """What a worker needs to find the store: ``BIZRA_DATA_DIR``, and for a database server
        ``BIZRA_STORE_URL`` with its credentials when the notebook reads the store (declares ``data_dir``:
        the audit reads incidents and runs from it)."""
        env = _data_dir_environment(self.store)
        if not env:
            env = {"BIZRA_STORE_URL": self.store.engine.url.render_as_string(hide_password=False)} if reads_store else {}
            if self.data_dir is not None:
                env["BIZRA_DATA_DIR"] = str(Path(self.data_dir).resolve())
        return env

    def _store_progress(self, run_id: str, progress: dict) -> None:
        try:
            self.store.update_run(run_id, progress=progress)
        except Exception as exc:  # noqa: BLE001 - progress is a courtesy: a busy store must not fail the run
            log.debug("run %s: progress not stored: %s", run_id, exc)

    def _finish(self, run: dict, status: str, error: dict | None, partial: Path, *,
                rendered: tuple | None = None) -> dict:
        """Write the reports and record the outcome; any failure here ends the run failed (:meth:`_fail`).

        ``rendered``: what :func:`render_reports` made of the run elsewhere (a Dask worker), written as it is.
        """
        try:
            summary, message = self._write_reports(run, status, error, partial, rendered=rendered)
            with self._lock:  # cancel() reads the status under this lock: a cancel is honoured or refused
                if status == "succeeded" and run["id"] in self._cancelled:
                    status, message = "cancelled", "Cancelled: the run was cancelled while its report was written"
                    self._write_summary(run, status, {"type": "Cancelled", "message": message}, summary)
                ended = self.store.finish_run(run["id"], owner=run.get("owner"), status=status,
                                              finished_at=time.time(), summary=summary, error=message,
                                              progress=run.get("progress"))
            if ended is None:  # ended elsewhere meanwhile (failed as lost by the leader): that verdict stays
                current = self.store.get_run(run["id"])
                log.warning("run %s %s here, but it was already ended: %s", run["id"], status, current["status"])
                self._event(current)  # its listeners (the gauges of running runs) hear that it ended
                return current
            run = ended
        except Exception as exc:  # noqa: BLE001 - read-only or full disk, a template error, a store error
            return self._fail(run, exc, during="writing its report", error=error)
        if self.keeper is not None:
            self.keeper.record("run_failed" if status == "failed" else None, message or "")
        try:
            self.write_index()
        except Exception as exc:  # noqa: BLE001 - the run's own report exists; the index is rewritten next time
            log.warning("run %s: could not rewrite the reports index: %s", run["id"], exc)
        self._event(run)
        return run

    def _fail(self, run: dict, exc: BaseException, *, during: str, error: dict | None = None) -> dict:
        """End ``run`` failed because ``exc`` was raised ``during`` a step: stored, scored, logged, published."""
        reason = f"{type(exc).__name__} while {during}: {exc}"
        if error is not None:
            reason = f"{error.get('type')}: {error.get('message')}; then {reason}"
        log.error("run %s failed: %s", run["id"], reason, exc_info=exc)
        failed = {**run, "status": "failed", "finished_at": time.time(), "error": reason[:4000]}
        try:
            failed = self.store.finish_run(run["id"], owner=run.get("owner"), status="failed",
                                           finished_at=failed["finished_at"], error=failed["error"]) or \
                self.store.get_run(run["id"])  # already ended elsewhere: that verdict stays
        except Exception as store_exc:  # noqa: BLE001 - the next start fails it (recover)
            log.error("run %s: its failure could not be stored either (%s)", run["id"], store_exc)
        if self.keeper is not None:
            self.keeper.record("run_failed", reason)
        try:
            self.write_index()
        except Exception as index_exc:  # noqa: BLE001
            log.warning("run %s: could not rewrite the reports index: %s", run["id"], index_exc)
        self._event(failed)
        return failed

    def _write_reports(self, run: dict, status: str, error: dict | None, partial: Path, *,
                       rendered: tuple | None = None) -> tuple[dict, str | None]:
        """run.ipynb, report.html (a banner first when it failed) and summary.json; returns (summary, error text)."""
        files, summary, message, error = rendered or render_reports(run, status, error, partial)
        folder = Path(run["folder"])
        for name in ("run.ipynb", "report.html", "run.log"):  # run.log: here already, unless it ran on Dask
            if name in files:
                write_atomic(folder / name, files[name])
        partial.unlink(missing_ok=True)
        self._write_summary(run, status, error, summary)
        return summary, message

    @staticmethod
    def _write_summary(run: dict, status: str, error: dict | None, summary: dict) -> None:
        write_atomic(Path(run["folder"]) / "summary.json", json.dumps({
            "run_id": run["id"], "notebook": Path(run["notebook"]).stem, "kind": run["kind"], "status": status,
            "parameters": run["parameters"], "error": error, "summary": summary,
            "title": report_title(Path(run["notebook"]).stem, run["parameters"], failed=status != "succeeded"),
            "created_at": run.get("created_at"), "started_at": run.get("started_at"),  # the index reads these
            "finished_at": time.time(), "trigger": run.get("trigger"), "incident_id": run.get("incident_id"),
            }, indent=2, default=str))

    def write_index(self) -> Path:
        return write_index(self.store.list_runs(limit=1000), self.reports_dir)

    def _event(self, run: dict) -> None:
        if self.on_event is not None:
            try:
                self.on_event(run)
            except Exception:  # noqa: BLE001 - a listener must never break a run
                if self.keeper is not None:
                    self.keeper.record_violation("silent_failure", "run event listener failed")

    def close(self) -> None:
        """Cancel what is running (each ends as cancelled, with its report), then stop the pool."""
        self._closing = True
        for remote in list(self._waiting_remote.values()):
            remote.cancel()  # on the cluster, not started: stays queued (failed as interrupted at the next start)
        for run_id in list(self._running):
            try:
                self.cancel(run_id)
            except BizraError:
                pass  # it finished meanwhile
        self.executor.shutdown(wait=True)
        if self.pool is not None:  # after the runs: its thread is the parent of the workers they took
            self.pool.close()
        with self._lock:
            left, self._futures = self._futures, {}
        for run_id, future in left.items():  # still waiting for a slot: they stay queued (recover fails them)
            try:
                future.set_result(self.store.get_run(run_id))
            except Exception as exc:  # noqa: BLE001 - the store is down: the caller hears it
                future.set_exception(exc)


def render_reports(run: dict, status: str, error: dict | None,
                   partial: Path) -> tuple[dict, dict, str | None, dict | None]:
    """The texts of run.ipynb and report.html (a banner first when it failed) of a run ended ``status``.

    Returns ``(files, summary, message, error)``: the texts by file name, the notebook's summary, the
    error as one line (None on success) and ``error`` with the run's id. The notebook is the worker's
    ``partial`` output, else ``run["notebook"]`` as written.
    """
    import nbformat  # heavy (jsonschema): loaded by the first finished run, not by the server's start

    path = Path(run["notebook"])
    nb = _read_notebook(partial, path)
    summary = extract_summary(nb)
    message = None
    if error is not None:
        error = {**error, "run_id": run["id"]}
        source = f" ({error['source']})" if error.get("source") else ""
        where = f" in cell {error['cell']}{source}" if error.get("cell") else ""
        message = f"{error.get('type')}: {error.get('message')}{where}"
        nb.cells.insert(0, failure_cell(notebook=path.stem, error=error, parameters=run["parameters"]))
    run_ipynb = nbformat.writes(nb)
    title = report_title(path.stem, run["parameters"], failed=status != "succeeded")
    shown = trim_failed(nbformat.from_dict(nb)) if error is not None else nb  # run.ipynb keeps every cell
    return {"run.ipynb": run_ipynb, "report.html": export_html(shown, title=title)}, summary, message, error


def _prepare_export() -> None:
    """Warm the report export (imports, a built exporter) while no run waits for it."""
    try:
        prepare_export()
    except Exception as exc:  # noqa: BLE001 - the first report builds its exporter then
        log.warning("could not prepare the report export: %s", exc)


def report_links(run: dict, base: str = "/reports") -> dict:
    """URLs of a run's files under the server's ``/reports/`` (relative to the reports dir); ``pdf`` is printed
    from report.html when first asked for (needs Chromium on the server)."""
    folder = run.get("folder")
    if not folder:
        return {}
    parts = Path(folder).parts[-2:]
    prefix = f"{base}/{'/'.join(parts)}"
    return {"html": f"{prefix}/report.html", "pdf": f"{prefix}/report.pdf", "notebook": f"{prefix}/run.ipynb",
            "summary": f"{prefix}/summary.json"}


def _scheduled(notebook: str, parameters: dict) -> dict:
    """``scheduled_for`` (and an audit's ``tz`` and ``slo_spec``) checked before anything is recorded, and an audit
    given ``scheduled_for`` without ``month`` given the month it covers (its title and folder name it).

    Raises
    ------
    InvalidInput
        Naming ``scheduled_for``, ``tz``, ``month`` or ``slo_spec``.
    """
    from bizra_nb.schedule import parse_scheduled_for

    parse_scheduled_for(parameters.get("scheduled_for") or "")
    if notebook == "compliance_audit" and ("scheduled_for" in parameters or "tz" in parameters):
        from bizra_nb.audit import audited_month

        month = audited_month(parameters.get("month") or "", scheduled_for=parameters.get("scheduled_for") or "",
                              tz=parameters.get("tz") or "UTC")
        if parameters.get("scheduled_for"):
            parameters = {**parameters, "month": month}
    if notebook == "compliance_audit" and parameters.get("slo_spec"):
        from bizra_nb.audit import check_spec

        check_spec(parameters["slo_spec"])  # SpecError (400) naming slo_spec, listing the file's problems
    return parameters


def _folder_subject(notebook: str, parameters: dict) -> str:
    """The start of a run folder's name: the audited month for an audit (``2026-10``), else today's date."""
    month = str(parameters.get("month") or "")
    if notebook == "compliance_audit" and re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        return month
    return time.strftime("%Y-%m-%d", time.gmtime())


def _data_dir_environment(store: Store) -> dict[str, str]:
    """``BIZRA_DATA_DIR`` for a worker: the folder of a SQLite store, absolute (the base of the notebook's
    relative paths, :mod:`bizra_nb.paths`); nothing for another database."""
    url = str(getattr(store, "url", ""))
    if not url.startswith("sqlite:///"):
        return {}
    return {"BIZRA_DATA_DIR": str(Path(url[len("sqlite:///"):]).resolve().parent)}


def _read_notebook(partial: Path, source: Path):
    """The executed notebook from the worker's partial file; else the source notebook; else an empty one.

    A partial cut short by a crash does not parse: the report then shows the notebook as written.
    """
    import nbformat

    for path in (partial, source):
        try:
            return nbformat.read(path, as_version=4)
        except (OSError, ValueError, nbformat.reader.NotJSONError):
            continue
    return nbformat.v4.new_notebook()


class _ProgressWriter:
    """Stores a run's progress at most once per ``interval`` seconds, the latest one at most ``interval`` late.

    After :meth:`close` returns nothing more is written, so a late write can never
    overwrite the final progress that the run's outcome stores.
    """

    def __init__(self, write: Callable[[dict], None], interval: float) -> None:
        self.write = write
        self.interval = interval
        self.latest: dict | None = None
        self.written_at = float("-inf")
        self.timer: threading.Timer | None = None
        self.closed = False
        self.lock = threading.Lock()
        self.writing = threading.Lock()  # held for a whole write; close() waits for one under way

    def update(self, progress: dict) -> None:
        with self.lock:
            self.latest = progress
            if self.timer is None and not self.closed:
                delay = max(0.0, self.written_at + self.interval - time.monotonic())
                self.timer = threading.Timer(delay, self._flush)
                self.timer.daemon = True
                self.timer.start()

    def _flush(self) -> None:
        with self.writing:
            with self.lock:
                if self.closed:
                    return
                progress, self.timer, self.written_at = self.latest, None, time.monotonic()
            self.write(progress)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
        with self.writing:
            pass  # a write that had started is finished


def _usable(outcome: object) -> dict:
    """A Dask worker's result as the runner may use it: a finished status and bounded texts of the report's
    files; anything else (another bizra-nb version on the worker, a broken worker) is a failed run."""
    files = outcome.get("files") if isinstance(outcome, dict) else None
    status = outcome.get("status") if isinstance(outcome, dict) else None
    usable = status in FINISHED and ((files is None and status == "failed") or (
        isinstance(files, dict) and {"run.ipynb", "report.html"} <= set(files) <= REMOTE_FILES
        and all(isinstance(text, str) and len(text) <= MAX_REMOTE_FILE for text in files.values())
        and isinstance(outcome.get("summary"), dict) and isinstance(outcome.get("error"), (dict, type(None)))
        and isinstance(outcome.get("message"), (str, type(None)))))
    if not usable:
        return {"status": "failed", "error": {"type": "BadResult", "message": (
            "the Dask worker returned a result this replica cannot use (is it running the same bizra-nb version?)")}}
    return outcome


class _RunProgress:
    """A running run's progress: published at each cell, stored at most every :data:`PROGRESS_INTERVAL` s."""

    def __init__(self, run: dict, publish: Callable[[dict], None], store: Callable[[dict], None]) -> None:
        self.run = run
        self.publish = publish
        self.writer = _ProgressWriter(store, PROGRESS_INTERVAL)

    def update(self, progress: dict) -> None:
        self.publish({**self.run, "status": "running", "progress": progress})
        self.run["progress"] = progress  # the final one is stored with the outcome, in _finish
        self.writer.update(progress)

    def close(self) -> None:
        self.writer.close()


def _stop_orphan_workers(partial: Path) -> None:
    """SIGKILL the process group of a worker that outlived its server (it writes ``partial``; Linux /proc only).

    A worker runs in a session of its own, so a server killed with -9 leaves it running; it
    would write into a folder whose run is already failed, and keep its kernel alive. A worker
    is recognised by its stderr, the run's ``run.log`` (a warm worker's log file was renamed to
    it when it took the run), or by ``partial`` in its command line.
    """
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        return
    needle, run_log = str(partial).encode(), str(partial.parent / "run.log")
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if b"bizra_nb.notebook_exec" not in argv:
                continue
            ours = needle in argv or os.readlink(entry / "fd" / "2") == run_log
        except OSError:
            continue
        if ours:
            try:
                os.killpg(int(entry.name), signal.SIGKILL)
                log.warning("stopped worker %s of an interrupted run (it outlived its server)", entry.name)
            except (ProcessLookupError, PermissionError):
                pass
