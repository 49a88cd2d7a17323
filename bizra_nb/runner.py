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
import keyword
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
from bizra_nb.reports import export_html, extract_summary, failure_cell, write_atomic, write_index
from bizra_nb.score import ScoreKeeper
from bizra_nb.store import Store

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL_NAME = "bizra-nb"
KINDS = {"incident_diagnosis": "incident", "benchmark": "benchmark", "compliance_audit": "audit", "explore": "explore"}
FINISHED = ("succeeded", "failed", "cancelled")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "list": (list,), "dict": (dict,)}


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


def declared_parameters(path: Path) -> dict[str, dict]:
    """The parameters a notebook declares in its ``parameters`` cell: name → type, default, help.

    papermill infers a type only from an annotation; without one, the type of the
    default's literal is the declared type (``rate = 500.0`` declares a float).
    """
    import ast

    import papermill

    declared = papermill.inspect_notebook(str(path))
    for spec in declared.values():
        if spec.get("inferred_type_name") in (None, "None"):
            try:
                value = ast.literal_eval(spec.get("default") or "None")
            except (ValueError, SyntaxError):
                value = None
            spec["inferred_type_name"] = "any" if value is None else type(value).__name__
    return declared


def describe_parameters(declared: dict[str, dict]) -> str:
    return ", ".join(f"{n} ({p['inferred_type_name']})" for n, p in declared.items()) or "none"


def check_parameters(path: Path, parameters: dict[str, Any]) -> dict[str, Any]:
    """Parameters after validation; names the notebook does not declare are rejected, never injected.

    Papermill writes parameter *names* into code verbatim, so a name must be a
    declared identifier; values must be JSON values of the declared type.
    """
    if not isinstance(parameters, dict):
        raise InvalidInput("parameters must be an object of name: value", field="parameters")
    declared = declared_parameters(path)
    allowed = describe_parameters(declared)
    checked: dict[str, Any] = {}
    for name, value in parameters.items():
        if not isinstance(name, str) or not _NAME.match(name) or keyword.iskeyword(name) or name not in declared:
            raise InvalidInput(f"unknown parameter {str(name)[:60]!r} for {path.stem}; allowed: {allowed}",
                               field="parameters")
        try:
            value = json.loads(json.dumps(value))
        except (TypeError, ValueError):
            raise InvalidInput(f"parameter {name!r} must be a JSON value", field=name) from None
        expected = declared[name]["inferred_type_name"]
        types = _TYPES.get(expected.split("[")[0].strip().lower())
        if types and value is not None and not (isinstance(value, types) and not (
                isinstance(value, bool) and bool not in types)):
            raise InvalidInput(f"parameter {name!r} must be of type {expected}, got {type(value).__name__} "
                               f"{json.dumps(value)[:60]}; allowed: {allowed}", field=name)
        checked[name] = value
    return checked


def coerce_cli_value(raw: str, expected: str) -> Any:
    """A ``-p name value`` string as the declared type (JSON when it parses, else the text)."""
    if expected == "str":
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


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
    """

    def __init__(self, store: Store, *, reports_dir: str | Path = "reports", notebooks_dir: Path = NOTEBOOKS_DIR,
                 executor: Any = None, workers: int | None = None, keeper: ScoreKeeper | None = None,
                 on_event: Callable[[dict], None] | None = None, cell_timeout: float = 600,
                 run_timeout: float = 3600) -> None:
        self.store = store
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
        """Mark runs left running by a process that died as failed (call at start)."""
        ids = self.store.fail_unfinished_runs("interrupted: the process running it stopped before it finished")
        for _ in ids:
            if self.keeper:
                self.keeper.record_violation("run_failed", "interrupted run")
        return ids

    def create(self, notebook: str | Path, parameters: dict | None = None, *, trigger: str = "api",
               incident_id: int | None = None, kind: str | None = None) -> dict:
        """Validate and record a queued run (nothing executes yet)."""
        path = resolve_notebook(notebook, self.notebooks_dir)
        checked = check_parameters(path, parameters or {})
        run_id = uuid.uuid4().hex[:10]
        kind = kind or KINDS.get(path.stem, "other")
        folder = self.reports_dir / kind / f"{time.strftime('%Y-%m-%d', time.gmtime())}-{run_id}"
        run = self.store.create_run(id=run_id, notebook=str(path), kind=kind, status="queued", trigger=trigger,
                                    parameters=checked, created_at=time.time(), folder=str(folder),
                                    incident_id=incident_id)
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
        run = self.store.get_run(run_id)
        if run["status"] in FINISHED:
            raise Conflict(f"run {run_id} already {run['status']}", field="id")
        with self._lock:
            self._cancelled.add(run_id)
            proc = self._procs.get(run_id)
        if proc is not None:
            _stop(proc)
        elif run["status"] == "queued":
            run = self.store.update_run(run_id, status="cancelled", finished_at=time.time(), error="cancelled")
            self._event(run)
        return self.store.get_run(run_id)

    # -- execution ---------------------------------------------------------------------

    def execute(self, run_id: str) -> dict:
        """Run the worker process for a queued run and write its reports; returns the finished run."""
        run = self.store.get_run(run_id)
        if run["status"] != "queued":
            return run
        folder = Path(run["folder"])
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / ".run.ipynb.partial"
        run = self.store.update_run(run_id, status="running", started_at=time.time())
        self._event(run)
        error: dict | None = None
        cmd = [sys.executable, "-m", "bizra_nb.notebook_exec", "--input", run["notebook"], "--output", str(partial),
               "--parameters", json.dumps(run["parameters"]), "--kernel", self.kernel,
               "--cell-timeout", str(self.cell_timeout), "--cwd", os.getcwd()]
        env = {**os.environ, "BIZRA_REPORT": "1", "BIZRA_RUN_ID": run_id, "PYTHONUNBUFFERED": "1"}
        with open(folder / "run.log", "w", encoding="utf-8") as log:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env,
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
            try:
                for line in proc.stdout:
                    event = _parse(line)
                    if event.get("event") == "progress":
                        progress = {"cell": event["cell"], "cells": event["cells"]}
                        self._event({**run, "status": "running", "progress": progress})
                        run["progress"] = progress
                    elif event.get("event") == "error":
                        error = event
                code = proc.wait()
            finally:
                timer.cancel()
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
        with self._lock:
            self._cancelled.discard(run_id)
        return self._finish(run, status, error, partial)

    def _finish(self, run: dict, status: str, error: dict | None, partial: Path) -> dict:
        import nbformat  # heavy (jsonschema): loaded by the first finished run, not by the server's start

        folder = Path(run["folder"])
        path = Path(run["notebook"])
        nb = nbformat.read(partial, as_version=4) if partial.exists() else nbformat.read(path, as_version=4)
        summary = extract_summary(nb)
        message = None
        if error is not None:
            error = {**error, "run_id": run["id"]}
            where = f" in cell {error['cell']} ({error.get('source', '')})" if error.get("cell") else ""
            message = f"{error.get('type')}: {error.get('message')}{where}"
            nb.cells.insert(0, failure_cell(notebook=path.stem, error=error, parameters=run["parameters"]))
        write_atomic(folder / "run.ipynb", nbformat.writes(nb))
        partial.unlink(missing_ok=True)
        title = f"{path.stem} {run['id']}" + (" (FAILED)" if status != "succeeded" else "")
        write_atomic(folder / "report.html", export_html(nb, title=title))
        write_atomic(folder / "summary.json", json.dumps({
            "run_id": run["id"], "notebook": path.stem, "kind": run["kind"], "status": status,
            "parameters": run["parameters"], "error": error, "summary": summary}, indent=2, default=str))
        run = self.store.update_run(run["id"], status=status, finished_at=time.time(), summary=summary,
                                    error=message)
        if self.keeper is not None:
            self.keeper.record("run_failed" if status == "failed" else None, message or "")
        self.write_index()
        self._event(run)
        return run

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
            except Conflict:
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

