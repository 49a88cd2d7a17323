"""One notebook in a worker process (``bizra_nb.notebook_exec``): its command, progress, time limit, stop and verdict.

The same code runs a run on this machine (:class:`~bizra_nb.runner.Runner`) and on a Dask worker
(:mod:`bizra_nb.run_remote`), so a run behaves the same wherever it executes.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from bizra_nb.kernel_pool import KernelPool

URL_WITH_PASSWORD = re.compile(r"://[^/@\s]*:[^/@\s]*@")
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL")
PER_RUN = ("BIZRA_RUN_ID",)  # variables of one run: not in a warm worker's start, they come with its job (kernel_pool)


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


def execute_notebook(notebook: str, parameters: dict, partial: Path, *, kernel: str, cell_timeout: float,
                     run_timeout: float, env: dict[str, str], log_path: Path,
                     on_progress: Callable[[dict], None], on_start: Callable[[Callable[[], None]], None],
                     cancelled: Callable[[], bool], pool: "KernelPool | None" = None,
                     on_worker: Callable[[str, str], None] | None = None) -> tuple[str, dict | None]:
    """Run ``notebook`` into ``partial`` in a worker process of its own session; returns ``(status, error)``.

    Parameters
    ----------
    env
        The worker's whole environment (see :func:`worker_environment`).
    on_progress
        ``on_progress({"cell": i, "cells": n})`` after each cell, in this thread.
    on_start
        Called once the process runs with the function that stops it (SIGTERM, then SIGKILL of its group).
    cancelled
        Read at the end: True makes the verdict ``cancelled`` whatever the process did.
    pool
        Warm workers (:class:`~bizra_nb.kernel_pool.KernelPool`): the run takes one started for ``kernel``
        and ``env`` when one is ready (or the one starting for them, once ready), else starts its own worker
        as without a pool; the pool reaps a warm one after the run, and holds its refills back while runs start.
    on_worker
        Called once the worker runs, before ``on_start``: ``("warm", "warm worker <pid> (kernel <pid>)")`` or
        ``("cold", "cold start (<why>)")``, why being ``pool off``, ``none ready``, ``environment differs``...

    ``status`` is ``succeeded``, ``failed`` or ``cancelled``; ``error`` (None on success) has ``type``,
    ``message`` and, when known, ``cell`` and ``source``: a cell that raised, ``RunTimeout`` past
    ``run_timeout`` seconds, ``Cancelled``, or ``WorkerDied`` (the process ended without saying why).
    """
    cmd = [sys.executable, "-m", "bizra_nb.notebook_exec", "--input", notebook, "--output", str(partial),
           "--parameters", json.dumps(parameters), "--kernel", kernel, "--cell-timeout", str(cell_timeout),
           "--cwd", os.getcwd()]
    error: dict | None = None
    with pool.lease(kernel, env, cancelled=cancelled) if pool is not None else contextlib.nullcontext() as lease:
        proc = lease.hand_over({"input": notebook, "output": str(partial), "parameters": parameters,
                                "cell_timeout": cell_timeout, "env": {k: env[k] for k in PER_RUN if k in env}},
                               log_path) if lease is not None else None
        warm = proc is not None
        with open(log_path, "w", encoding="utf-8") if not warm else contextlib.nullcontext() as worker_log:
            if not warm:
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=worker_log, text=True,
                                        env={**env, "BIZRA_PARENT_PID": str(os.getpid())}, start_new_session=True)
            if on_worker is not None:
                on_worker(*(("warm", f"warm worker {proc.pid} (kernel {lease.worker.kernel_pid})") if warm else
                            ("cold", f"cold start ({lease.why if lease is not None else 'pool off'})")))
            expired = threading.Event()

            def on_timeout() -> None:
                expired.set()
                stop(proc)

            timer = threading.Timer(run_timeout, on_timeout)
            timer.start()
            finished: int | None = None  # a warm worker's exit code, said before it shuts its kernel down
            try:
                on_start(lambda: stop(proc))
                for line in proc.stdout:
                    event = parse(line)
                    if event.get("event") == "progress":
                        on_progress({"cell": event["cell"], "cells": event["cells"]})
                    elif event.get("event") == "error":
                        error = event
                    elif event.get("event") == "finished" and warm and isinstance(event.get("code"), int):
                        finished = event["code"]
                        break
                code = proc.wait() if finished is None else finished  # a warm one exits once its kernel is down
            except BaseException:
                stop(proc)
                raise
            finally:
                timer.cancel()
    was_cancelled = cancelled()
    where = {"cell": (error or {}).get("cell"), "source": (error or {}).get("source", "")}
    if expired.is_set():
        error = {"type": "RunTimeout", "message": f"the run exceeded {run_timeout:g} s and was stopped", **where}
    elif was_cancelled:
        error = {"type": "Cancelled", "message": "the run was cancelled", **where}
    elif code != 0 and error is None:
        error = {"type": "WorkerDied", "message": f"the worker process ended with code {code}"}
    status = "succeeded" if code == 0 and not was_cancelled else ("cancelled" if was_cancelled else "failed")
    return status, error


def parse(line: str) -> dict:
    try:
        value = json.loads(line)
        return value if isinstance(value, dict) else {}
    except ValueError:
        return {}


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
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

    timer = threading.Timer(grace, kill)
    timer.daemon = True
    timer.start()


PR_SET_PDEATHSIG = 1


def die_with(parent: int) -> None:
    """Have the kernel send this process SIGTERM when ``parent`` dies (Linux); exit now if it already has.

    A worker process whose server or Dask worker was killed with SIGKILL must not run on (and keep
    its kernel) for a run that its owner already counts as failed.
    """
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the parent's stop signals still reach the children
        pass
    if os.getppid() != parent:
        os._exit(0)
