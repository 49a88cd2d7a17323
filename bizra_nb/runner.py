"""The notebook runner: validated parameters, a bounded pool, papermill in a worker process, reports, history.

Pipeline of a run (each step a function or method you can call alone)::

    resolve_notebook   a name (``incident_diagnosis``) or a path → the .ipynb
    check_parameters   names the notebook declares (papermill.inspect_notebook), JSON values of their types
    Runner.create      a ``queued`` run in the store, its folder reports/<kind>/<date>-<id>/
    Runner.execute     the worker process (bizra_nb.notebook_exec) with a hard time limit
    Runner._finish     run.ipynb, report.html (a banner first when it failed), summary.json, the index

Runs go to an executor (:data:`EXECUTORS`, a bounded local thread pool now; a
Dask cluster can take the same ``submit`` later).
"""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
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
from bizra_nb.reports import export_html, extract_summary, failure_cell, report_title, trim_failed, write_atomic, write_index
from bizra_nb.score import ScoreKeeper
from bizra_nb.store import Store



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
URL_WITH_PASSWORD = re.compile(r"://[^/@\s]*:[^/@\s]*@")
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL")
log = logging.getLogger("bizra.runner")


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
    """A bounded thread pool: each thread waits on one worker process."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 2
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="bizra-run")

    def submit(self, fn: Callable, *args: Any) -> Future:
        return self.pool.submit(fn, *args)

    def shutdown(self, wait: bool = True) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=True)


EXECUTORS: dict[str, Callable[..., Any]] = {"local": LocalExecutor}


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
    """

    def __init__(self, store: Store, *, reports_dir: str | Path = "reports", notebooks_dir: Path = NOTEBOOKS_DIR,
                 executor: Any = None, workers: int | None = None, keeper: ScoreKeeper | None = None,
                 on_event: Callable[[dict], None] | None = None, cell_timeout: float = 600,
                 run_timeout: float = 3600, owner: str | None = None, data_dir: str | Path | None = None) -> None:
        self.store = store
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
        self._procs: dict[str, subprocess.Popen] = {}
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()

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
               incident_id: int | None = None, kind: str | None = None, confine: dict | None = None) -> dict:
        """Validate and record a queued run (nothing executes yet); ``confine``: see :func:`check_parameters`.

        Before anything is recorded, :func:`~bizra_nb.parameters.preflight` checks that the files the
        parameters name exist and the URLs answer (blocking up to a few seconds: call it off an IOLoop).
        """
        path = resolve_notebook(notebook, self.notebooks_dir)
        checked = check_parameters(path, parameters or {}, confine=confine)
        preflight(declared_parameters(path), checked,  # a missing file, a silent URL: refused, nothing recorded
                  base=self._store_environment().get("BIZRA_DATA_DIR"))  # where the worker looks
        run_id = uuid.uuid4().hex[:10]
        kind = kind or KINDS.get(path.stem, "other")
        folder = self.reports_dir / kind / f"{_folder_subject(path.stem, checked)}-{run_id}"
        run = self.store.create_run(id=run_id, notebook=str(path), kind=kind, status="queued", trigger=trigger,
                                    parameters=checked, created_at=time.time(), folder=str(folder),
                                    incident_id=incident_id, owner=self.owner)
        self._event(run)
        return run

    def submit(self, run: dict) -> Future:
        return self.executor.submit(self.execute, run["id"])

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
            proc = self._procs.get(run_id)
        if proc is not None:
            _stop(proc)
        elif run["status"] == "queued":
            cancelled = self.store.cancel_queued_run(run_id)  # only if nobody claimed it meanwhile
            if cancelled is not None:
                self._event(cancelled)
            else:
                self.store.request_cancel(run_id)
        elif run.get("owner") != self.owner:  # running on another replica: its owner stops it
            self.store.request_cancel(run_id)
        return self.store.get_run(run_id)

    def _watch_cancel_requests(self, run_id: str, proc: subprocess.Popen, done: threading.Event) -> None:
        """Stop ``proc`` when another replica asks (a cancel request in the store); every second until done."""
        while not done.wait(CANCEL_POLL):
            try:
                requested = self.store.cancel_requested(run_id)
            except Exception:  # noqa: BLE001 - the store is down: asked again next second
                continue
            if requested:
                with self._lock:
                    self._cancelled.add(run_id)
                _stop(proc)
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
            return self._execute(run)
        except Exception as exc:  # noqa: BLE001 - every failure ends the run, see _fail
            return self._fail(run, exc, during="running it")
        finally:
            with self._lock:
                self._procs.pop(run_id, None)
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
        error: dict | None = None
        cmd = [sys.executable, "-m", "bizra_nb.notebook_exec", "--input", run["notebook"], "--output", str(partial),
               "--parameters", json.dumps(run["parameters"]), "--kernel", self.kernel,
               "--cell-timeout", str(self.cell_timeout), "--cwd", os.getcwd()]
        env = {**worker_environment(os.environ), "BIZRA_REPORT": "1", "BIZRA_RUN_ID": run_id, "PYTHONUNBUFFERED": "1",
               **self._store_environment(reads_store="data_dir" in declared_parameters(Path(run["notebook"])))}
        with open(folder / "run.log", "w", encoding="utf-8") as worker_log:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=worker_log, text=True, env=env,
                                    start_new_session=True)
            with self._lock:
                self._procs[run_id] = proc
                cancelled_early = run_id in self._cancelled
            if cancelled_early:
                _stop(proc)
            expired = threading.Event()

            def on_timeout() -> None:
                expired.set()
                _stop(proc)

            timer = threading.Timer(self.run_timeout, on_timeout)
            timer.start()
            done = threading.Event()
            if self.owner is not None:  # several replicas: a cancel may come through another one
                threading.Thread(target=self._watch_cancel_requests, args=(run_id, proc, done), daemon=True,
                                 name=f"cancel-watch-{run_id}").start()
            progress_writer = _ProgressWriter(lambda p: self._store_progress(run_id, p), PROGRESS_INTERVAL)
            try:
                for line in proc.stdout:
                    event = _parse(line)
                    if event.get("event") == "progress":
                        progress = {"cell": event["cell"], "cells": event["cells"]}
                        self._event({**run, "status": "running", "progress": progress})
                        run["progress"] = progress
                        progress_writer.update(progress)  # the final one: with the outcome, in _finish
                    elif event.get("event") == "error":
                        error = event
                code = proc.wait()
            except BaseException:
                _stop(proc)
                raise
            finally:
                timer.cancel()
                done.set()
                progress_writer.close()
                with self._lock:
                    self._procs.pop(run_id, None)
        cancelled = run_id in self._cancelled
        if expired.is_set():
            error = {"type": "RunTimeout", "message": f"the run exceeded {self.run_timeout:g} s and was stopped",
                     "cell": (error or {}).get("cell"), "source": (error or {}).get("source", "")}
        elif cancelled:
            error = {"type": "Cancelled", "message": "the run was cancelled", "cell": (error or {}).get("cell"),
                     "source": (error or {}).get("source", "")}
        elif code != 0 and error is None:
            error = {"type": "WorkerDied", "message": f"the worker process ended with code {code}"}
        status = "succeeded" if code == 0 and not cancelled else ("cancelled" if cancelled else "failed")
        return self._finish(run, status, error, partial)

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

    def _finish(self, run: dict, status: str, error: dict | None, partial: Path) -> dict:
        """Write the reports and record the outcome; any failure here ends the run failed (:meth:`_fail`)."""
        try:
            summary, message = self._write_reports(run, status, error, partial)
            with self._lock:  # cancel() reads the status under this lock: a cancel is honoured or refused
                if status == "succeeded" and run["id"] in self._cancelled:
                    status, message = "cancelled", "Cancelled: the run was cancelled while its report was written"
                    self._write_summary(run, status, {"type": "Cancelled", "message": message}, summary)
                ended = self.store.finish_run(run["id"], owner=run.get("owner"), status=status,
                                              finished_at=time.time(), summary=summary, error=message,
                                              progress=run.get("progress"))
            if ended is None:  # ended elsewhere meanwhile (failed as lost by the leader): that verdict stays
                log.warning("run %s %s here, but it was already ended: %s", run["id"], status,
                            self.store.get_run(run["id"])["status"])
                return self.store.get_run(run["id"])
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

    def _write_reports(self, run: dict, status: str, error: dict | None, partial: Path) -> tuple[dict, str | None]:
        """run.ipynb, report.html (a banner first when it failed) and summary.json; returns (summary, error text)."""
        import nbformat  # heavy (jsonschema): loaded by the first finished run, not by the server's start

        folder = Path(run["folder"])
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
        write_atomic(folder / "run.ipynb", nbformat.writes(nb))
        partial.unlink(missing_ok=True)
        title = report_title(path.stem, run["parameters"], failed=status != "succeeded")
        shown = trim_failed(nbformat.from_dict(nb)) if error is not None else nb  # run.ipynb keeps every cell
        write_atomic(folder / "report.html", export_html(shown, title=title))
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
        for run_id in list(self._procs):
            try:
                self.cancel(run_id)
            except BizraError:
                pass  # it finished meanwhile
        self.executor.shutdown(wait=True)


def report_links(run: dict, base: str = "/reports") -> dict:
    """URLs of a run's files under the server's ``/reports/`` (relative to the reports dir)."""
    folder = run.get("folder")
    if not folder:
        return {}
    parts = Path(folder).parts[-2:]
    prefix = f"{base}/{'/'.join(parts)}"
    return {"html": f"{prefix}/report.html", "notebook": f"{prefix}/run.ipynb", "summary": f"{prefix}/summary.json"}


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


def worker_environment(environ: dict[str, str]) -> dict[str, str]:
    """The environment of a notebook worker (and so of its kernel): ``environ`` without secrets.

    A variable is a secret when its upper-cased name contains one of :data:`SECRET_WORDS`
    (TOKEN, SECRET, PASSWORD, PASSWD, KEY, CREDENTIAL): ``BIZRA_API_TOKEN``, ``AWS_SECRET_ACCESS_KEY``,
    ``PGPASSWORD``...; or when its value is a URL with a password (``BIZRA_REDIS_URL=redis://:pw@…``,
    ``DATABASE_URL``). A notebook that needs a credential reads it from a file it is given; the
    store's URL is given back only to notebooks that read the store (see ``Runner._store_environment``).
    """
    return {k: v for k, v in environ.items()
            if not any(word in k.upper() for word in SECRET_WORDS) and not URL_WITH_PASSWORD.search(v)}


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


def _stop_orphan_workers(partial: Path) -> None:
    """SIGKILL the process group of a worker that outlived its server (it writes ``partial``; Linux /proc only).

    A worker runs in a session of its own, so a server killed with -9 leaves it running; it
    would write into a folder whose run is already failed, and keep its kernel alive.
    """
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        return
    needle = str(partial).encode()
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"bizra_nb.notebook_exec" in argv and needle in argv:
            try:
                os.killpg(int(entry.name), signal.SIGKILL)
                log.warning("stopped worker %s of an interrupted run (it outlived its server)", entry.name)
            except (ProcessLookupError, PermissionError):
                pass


def _parse(line: str) -> dict:
    try:
        value = json.loads(line)
        return value if isinstance(value, dict) else {}
    except ValueError:
        return {}


def _stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the worker (it shuts its kernel down), SIGKILL its group after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return

    def kill() -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    threading.Timer(grace, kill).start()

