"""Warm run workers: notebook worker processes that started their kernel and imported the project before a run came.

A cold run spends seconds before its first cell: a Python process importing papermill, a kernel
starting, then the notebook importing pandas, plotly and bizra_nb (plotly alone loads its
renderers, nbformat and jsonschema on first use). A warm worker
(``python -m bizra_nb.notebook_exec --warm``) has done all of that in advance
(:data:`bizra_nb.notebook_exec.WARM_UP`, run silently: no execution count, no history, no name in
the notebook's namespace), and waits on stdin for ONE job. A run takes it
(:meth:`KernelPool.lease`), gives it its job (:meth:`Lease.hand_over`) and from then on
treats it exactly as a cold worker (:func:`bizra_nb.worker_process.execute_notebook`): the
same progress and error lines, the same stop (SIGTERM, then SIGKILL of its process group), time
limit and cancel. The kernel runs that one notebook and is shut down with its worker: runs never
share a kernel or its state.

Runs are not a sandbox: a notebook is trusted code running as the server's user. A hostile notebook
could reach an idle warm kernel's connection file and run code in it (as it could change the
virtualenv every run imports); the pool keeps runs apart, not users.

Design choices, and why:

- **The worker, not only the kernel, is warm.** Importing papermill and nbclient costs as much as
  the kernel; and a worker that owns its kernel keeps today's process tree (a worker in a session of
  its own, its kernel its child), so stop, PDEATHSIG and the process-group kill work unchanged.
- **A take waits only for a worker already starting.** A run finding no ready worker that matches
  takes the one starting for it, if any, once it is ready (its start is under way: a cold start
  would do the same work again, competing with it for the CPU: on two cores a diagnosis sent as the
  server started took 12-15 s cold beside the start, 8.5-10 s with no pool, 7.6 s waiting); it waits at most until :data:`STARTING_WAIT` s after that
  start began, and one run per start. Otherwise it runs cold, exactly as without a pool. The pool
  refills in its own thread after each take, and replaces a worker that died while idle (checked
  every :data:`CHECK_INTERVAL` s; a warm worker also exits when its kernel dies) or that no longer
  matches the runner's environment.
- **Runs get the CPU first.** Starting a worker costs a few seconds of CPU, which on two cores
  slowed the very run that took the last one by a second or more; so the pool starts none while a
  run (warm or cold) has been executing for less than :data:`REFILL_DEFER` seconds: a diagnosis
  has usually ended by then, a long run no longer holds refills back.
- **Sized for memory.** A warm worker holds about 300 MB (its process ~115 MB, its kernel ~190 MB)
  while it waits, in each server process (``--processes``): the default (``--kernel-pool -1``)
  keeps one per run worker but at most :data:`DEFAULT_SIZE` (:func:`pool_size`).
- **Stray output is skipped, a failed start leaves no file.** A worker's stdout before its
  ``ready`` line may carry lines that are not events (a module printing on import, its kernel
  writing to the descriptor it inherited): skipped, as during a run. A worker that does not start
  is stopped, the end of its log goes to the server's log (once while it repeats) and the file is
  removed; the pool retries, backing off up to a minute.
- **The pool is keyed by what a cold run would get.** A worker is started with the kernel name,
  working directory and environment a run gets (secrets left out, ``BIZRA_REPORT``,
  ``BIZRA_DATA_DIR``...), without the variables of one run (:data:`PER_RUN`: ``BIZRA_RUN_ID``),
  which come with the job and are set in the worker and in the kernel before the first cell. A run
  whose environment differs in anything else (a notebook that reads a PostgreSQL store gets
  ``BIZRA_STORE_URL``) runs cold.
- **Its log becomes the run's.** A worker writes its stderr (and its kernel, which inherits it,
  writes its own) to a file in ``<reports>/.kernel-pool/``; the hand-over renames that file to the
  run's ``run.log`` (same file system), so kernel messages land there as in a cold run, where
  ``os.dup2`` in the worker could not reach the kernel's copy of the descriptor. When the rename
  fails (another file system), the worker is stopped and the run goes cold.
- **Its log names the run.** After the hand-over the worker's stderr is the run's ``run.log``,
  which is how the orphan sweep of a restarted server (``runner._stop_orphan_workers``) finds a
  warm worker that outlived its server (a cold one also by the ``--output`` in its command line).
- **The result comes before the kernel's shutdown.** Once the notebook is written the worker says
  ``{"event": "finished", "code": c}``; the run's report is written at once while the worker shuts
  its kernel down gracefully (about a second) and exits; the pool reaps it
  and waits for it at :meth:`KernelPool.close`.
- **One long-lived thread starts the workers.** PDEATHSIG is tied to the thread that forked the
  child: a thread that ends would take its workers with it. The pool's thread lives until
  :meth:`KernelPool.close`, after the runner's runs ended.

Runs on a Dask cluster (:mod:`bizra_nb.run_remote`) always start their own kernel.
"""
from __future__ import annotations

import json
import logging
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from bizra_nb.worker_process import PER_RUN, parse, stop

CHECK_INTERVAL = 1.0  # seconds between the pool's checks of its idle and retiring workers
START_TIMEOUT = 120.0  # seconds a warm worker may take to say it is ready before it is stopped
RETIRE_TIMEOUT = 30.0  # seconds a worker that finished its run may take to exit before it is stopped
REFILL_DEFER = 10.0  # seconds since a run's start during which the pool starts no worker (the run gets the CPU)
STARTING_WAIT = 30.0  # seconds from a warm worker's start during which a run waits for it rather than start cold
DEFAULT_SIZE = 2  # warm workers at most by default (--kernel-pool -1): ~300 MB each, in each server process
FAILED_LOG_TAIL = 2000  # characters of a failed warm worker's log copied into the server's log
log = logging.getLogger("bizra.kernel_pool")


def pool_size(setting: int, slots: int) -> int:
    """Warm workers to keep for the ``--kernel-pool`` ``setting`` with ``slots`` run workers.

    Parameters
    ----------
    setting
        -1 (the default): one per run worker, at most :data:`DEFAULT_SIZE`; 0: none; n: n.
    slots
        The runner's local execution slots (``--run-workers``).
    """
    return min(slots, DEFAULT_SIZE) if setting < 0 else setting


def pool_key(env: dict[str, str]) -> dict[str, str]:
    """``env`` without the variables of one run (:data:`PER_RUN`): what a warm worker must have been started with."""
    return {k: v for k, v in env.items() if k not in PER_RUN}


class WarmWorker:
    """A started ``notebook_exec --warm`` process, ready for one job."""

    def __init__(self, proc: subprocess.Popen, *, kernel: str, env: dict[str, str], cwd: str, log_path: Path,
                 kernel_pid: int | None) -> None:
        self.proc = proc
        self.kernel = kernel
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.kernel_pid = kernel_pid

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def matches(self, kernel: str, env: dict[str, str], cwd: str) -> bool:
        """Whether a run of ``kernel`` in ``cwd`` with ``env`` would have got this worker's start."""
        return self.kernel == kernel and self.cwd == cwd and self.env == pool_key(env)

    def hand_over(self, job: dict, log_path: Path) -> subprocess.Popen | None:
        """Give the worker its one job; its log becomes ``log_path``. None: it is gone (the run goes cold).

        ``job``: ``input``, ``output``, ``parameters``, ``cell_timeout`` and ``env`` (the run's
        :data:`PER_RUN` variables), see :mod:`bizra_nb.notebook_exec`.
        """
        if not self.alive():
            self.stop()
            return None
        try:
            os.replace(self.log_path, log_path)
        except OSError as exc:  # another file system: this worker cannot log there
            log.warning("warm worker %s: its log cannot become %s (%s): the run starts cold", self.pid, log_path, exc)
            self.stop()
            return None
        self.log_path = Path(log_path)
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.close()
        except OSError:  # it died this instant
            self.stop(remove_log=False)
            return None
        return self.proc

    def stop(self, *, wait: float = 10.0, remove_log: bool = True, signalled: bool = False) -> None:
        """SIGTERM it (it shuts its kernel down; not again when ``signalled``), SIGKILL its group after 5 s;
        wait up to ``wait`` s."""
        if not signalled:
            stop(self.proc)
        try:
            self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            log.warning("warm worker %s did not stop within %g s", self.pid, wait)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        if remove_log:
            self.log_path.unlink(missing_ok=True)


class Lease:
    """A run's claim on the pool from its start to its end (a context manager): its warm worker, when one was
    ready. While a run younger than :data:`REFILL_DEFER` seconds holds one, the pool starts no worker.

    ``why``: when the run goes cold, why (``none ready``, ``environment differs``...); None while warm.
    """

    def __init__(self, pool: "KernelPool", worker: WarmWorker | None) -> None:
        self.pool = pool
        self.worker = worker
        self.proc: subprocess.Popen | None = None
        self.since = time.monotonic()
        self.why: str | None = None

    def hand_over(self, job: dict, log_path: Path) -> subprocess.Popen | None:
        """The warm worker running ``job`` (see :meth:`WarmWorker.hand_over`); None: the run starts its own."""
        if self.worker is not None:
            self.proc = self.worker.hand_over(job, log_path)
            if self.proc is None:
                self.why = f"warm worker {self.worker.pid} was gone or could not take the run's log"
        return self.proc

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc_info) -> None:
        self.pool._release(self)


class KernelPool:
    """Keeps ``size`` warm workers ready for runs; see the module docstring.

    Parameters
    ----------
    size
        Warm workers kept ready (0: none, every run is cold).
    kernel
        The kernelspec the runs use.
    environment
        ``environment()``: the environment a run would get now, without :data:`PER_RUN` variables.
    folder
        Where the warm workers' logs wait (on the reports' file system; hidden from ``/reports/``).
    """

    def __init__(self, size: int, *, kernel: str, environment: Callable[[], dict[str, str]], folder: Path,
                 start_timeout: float = START_TIMEOUT) -> None:
        self.size = size
        self.kernel = kernel
        self.environment = environment
        self.folder = Path(folder)
        self.start_timeout = start_timeout
        self._idle: list[WarmWorker] = []
        self._retiring: list[tuple[subprocess.Popen, float]] = []
        self._leases: set[Lease] = set()  # of the runs executing now, warm or cold
        self._starting: WarmWorker | None = None
        self._starting_since = 0.0
        self._waiter: Lease | None = None  # the run waiting for the worker starting (one at most)
        self._last_failure: str | None = None  # the end of the last failed start's log (said once while it repeats)
        self._closing = False
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a start ended, or the pool closes
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._keep_filled, name="bizra-kernel-pool", daemon=True)
        if size > 0:
            _sweep_logs(self.folder)
            self._thread.start()

    # -- what runs use --------------------------------------------------------------------------

    def lease(self, kernel: str, env: dict[str, str], *, cancelled: Callable[[], bool] = lambda: False) -> "Lease":
        """A run's claim, held while it runs: a ready worker started for ``kernel`` with ``env`` (its
        :data:`PER_RUN` variables aside) in this working directory; else the one starting for them, once
        ready (waiting at most until :data:`STARTING_WAIT` s after its start, or ``cancelled()``, one run per
        start); else none (:attr:`Lease.why` says why): the run starts cold."""
        cwd = os.getcwd()
        with self._lock:
            worker = next((w for w in self._idle if w.alive() and w.matches(kernel, env, cwd)), None)
            lease = Lease(self, worker)
            self._leases.add(lease)
            if worker is not None:
                self._idle.remove(worker)
            else:
                lease.why = self._wait_for_start(lease, kernel, env, cwd, cancelled)
                lease.since = time.monotonic()  # the run executes from now: its head start counts from now
        self._wake.set()  # refill (once the runs had their head start)
        return lease

    def _wait_for_start(self, lease: Lease, kernel: str, env: dict[str, str], cwd: str,
                        cancelled: Callable[[], bool]) -> str | None:
        """With the lock held: wait for the worker starting when it suits the run; why the run goes cold, or
        None when ``lease`` got that worker."""
        starting = self._starting
        if starting is None or self._waiter is not None or self._closing:
            alive = [w for w in self._idle if w.alive()]
            return "environment differs" if alive else "none ready"
        if not starting.matches(kernel, env, cwd):
            return "environment differs"
        deadline = self._starting_since + STARTING_WAIT
        self._waiter = lease
        while self._waiter is lease and not cancelled():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._changed.wait(min(left, CHECK_INTERVAL))  # notified when the start ends; cancelled() each second
        if lease.worker is not None:
            return None
        if self._waiter is not lease:
            return "the warm worker starting for it did not start"
        self._waiter = None
        return "cancelled while waiting" if cancelled() else (
            f"the warm worker starting for it was not ready {STARTING_WAIT:g} s after its start")

    def _release(self, lease: "Lease") -> None:
        """A run ended: its worker, if it had one, exits once its kernel is down; the pool reaps it, and waits
        for it at :meth:`close`."""
        proc = lease.proc
        with self._lock:
            self._leases.discard(lease)
            self._wake.set()
            if proc is None:
                return
            if not self._closing and proc.poll() is None:
                self._retiring.append((proc, time.monotonic()))
                return
        _finish(proc)

    def idle(self) -> list[WarmWorker]:
        """The ready workers, now."""
        with self._lock:
            return list(self._idle)

    def close(self) -> None:
        """Stop the idle workers and their kernels, wait for the retiring ones; the pool starts no more.

        The pool's thread does it before it ends (a thread that ends sends its children PDEATHSIG).
        """
        with self._lock:
            self._closing = True
            starting = self._starting
            self._waiter = None
            self._changed.notify_all()
        self._wake.set()
        if starting is not None:
            stop(starting.proc)
        if self._thread.is_alive():
            self._thread.join(timeout=self.start_timeout)

    # -- the pool's thread -------------------------------------------------------------------------

    def _keep_filled(self) -> None:
        try:
            self._fill_until_closed()
        finally:
            self._stop_all()

    def _fill_until_closed(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            with self._lock:
                if self._closing:
                    return
            try:
                self._check()
                with self._lock:
                    missing = self.size - len(self._idle)
                    youngest = min((time.monotonic() - lease.since for lease in self._leases), default=None)
                if missing <= 0 or (youngest is not None and youngest < REFILL_DEFER):
                    self._wake.wait(CHECK_INTERVAL)  # full, or a run goes first: a kernel's start would slow it
                    continue
                worker = None
                try:
                    worker = self._start_one()
                finally:
                    started, leftover = worker is not None, self._place(worker)
                if leftover is not None:  # closing meanwhile
                    leftover.stop()
                if not started:
                    failures += 1
                    self._wake.wait(min(60.0, 2.0 ** failures))  # a worker that cannot start: no busy loop
                    continue
                failures = 0
            except Exception:  # noqa: BLE001 - the pool must outlive a bad moment: runs go cold meanwhile
                log.exception("kernel pool: unexpected error")
                self._wake.wait(CHECK_INTERVAL)

    def _place(self, worker: WarmWorker | None) -> WarmWorker | None:
        """A start ended: ``worker`` (None: it failed) goes to the run waiting for it, else joins the idle ones;
        returned when the pool closes meanwhile (the caller stops it)."""
        with self._lock:
            self._starting = None
            waiter, self._waiter = self._waiter, None
            if worker is not None and not self._closing:
                if waiter is not None:
                    waiter.worker = worker
                else:
                    self._idle.append(worker)
                worker = None
            self._changed.notify_all()
        return worker

    def _stop_all(self) -> None:
        with self._lock:
            self._closing = True
            idle, self._idle = self._idle, []
            retiring, self._retiring = self._retiring, []
        for worker in idle:
            stop(worker.proc)  # all at once: each shuts its own kernel down
        for worker in idle:
            worker.stop(signalled=True)
        for proc, _ in retiring:
            _finish(proc)

    def _check(self) -> None:
        """Drop idle workers that died or no longer match the runner's environment; reap retired ones."""
        key, cwd = pool_key(self.environment()), os.getcwd()
        with self._lock:
            gone = [w for w in self._idle if not w.alive() or w.env != key or w.cwd != cwd]
            self._idle = [w for w in self._idle if w not in gone]
            now = time.monotonic()
            ended = [p for p, since in self._retiring if p.poll() is not None or now - since > RETIRE_TIMEOUT]
            self._retiring = [(p, since) for p, since in self._retiring if p not in ended]
        for worker in gone:
            if worker.alive():
                log.info("warm worker %s no longer matches the runs' environment: replaced", worker.pid)
            else:
                log.warning("warm worker %s ended while idle (code %s): replaced", worker.pid, worker.proc.returncode)
            worker.stop()
        for proc in ended:
            overdue = proc.poll() is None
            if overdue:
                log.warning("worker %s did not exit within %g s of its run's end: stopped", proc.pid, RETIRE_TIMEOUT)
            _finish(proc, wait=0.0 if overdue else 10.0)

    def _start_one(self) -> WarmWorker | None:
        """Start a warm worker and wait for its ``ready`` line; None when it does not come."""
        env, cwd = pool_key(self.environment()), os.getcwd()
        self.folder.mkdir(parents=True, exist_ok=True)
        log_path = self.folder / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.log"
        cmd = [sys.executable, "-m", "bizra_nb.notebook_exec", "--warm", "--kernel", self.kernel, "--cwd", cwd]
        began = time.monotonic()
        with open(log_path, "w", encoding="utf-8") as worker_log:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=worker_log, text=True,
                                    env={**env, "BIZRA_PARENT_PID": str(os.getpid())}, start_new_session=True)
        worker = WarmWorker(proc, kernel=self.kernel, env=env, cwd=cwd, log_path=log_path, kernel_pid=None)
        with self._lock:
            if self._closing:
                stop(proc)
            self._starting, self._starting_since = worker, began
        ready = _read_ready(proc, self.start_timeout)
        took = time.monotonic() - began
        if ready is not None:
            worker.kernel_pid = ready.get("kernel_pid")
            self._last_failure = None
            log.info("warm worker %s ready in %.1f s (kernel %s)", worker.pid, took, worker.kernel_pid)
            return worker
        with self._lock:
            closing = self._closing
        worker.stop(remove_log=False)
        if not closing:
            self._report_failed_start(worker, took)
        worker.log_path.unlink(missing_ok=True)
        return None

    def _report_failed_start(self, worker: WarmWorker, took: float) -> None:
        """Copy the end of a failed worker's log into the server's log (its file is removed): once while the same
        failure repeats."""
        try:
            text = worker.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            text = f"(its log cannot be read: {exc})"
        tail = text[-FAILED_LOG_TAIL:]
        if len(text) > FAILED_LOG_TAIL and "\n" in tail:
            tail = tail.split("\n", 1)[1]  # from a line's start
        tail = tail.strip() or "(its log is empty)"
        code = worker.proc.returncode
        if tail == self._last_failure:
            log.warning("a warm worker did not start again (code %s after %.0f s; its log ends as before): "
                        "runs start cold meanwhile", code, took)
        else:
            log.warning("a warm worker did not start (code %s after %.0f s): runs start cold meanwhile; "
                        "the end of its log:\n%s", code, took, tail)
        self._last_failure = tail


def _sweep_logs(folder: Path) -> None:
    """Remove the logs that warm workers of a dead server of this machine left (its pid is in their names)."""
    host = socket.gethostname()
    for path in folder.glob(f"{host}-*.log"):
        pid = path.name[len(host) + 1:].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except OSError:  # alive, someone else's
            pass


def _read_ready(proc: subprocess.Popen, timeout: float) -> dict | None:
    """The worker's ``{"event": "ready"}`` line, read from its stdout; None at its end (it died or was stopped)
    or after ``timeout`` seconds.

    Lines before it that are not events (a module printing on import, the kernel writing to the stdout it
    inherited) are skipped, as :func:`~bizra_nb.worker_process.parse` skips them during a run, and so is
    output left without a newline just before it. Nothing follows ``ready`` until the job comes, so nothing
    a run would read is consumed here.
    """
    fd = proc.stdout.fileno()
    pending = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            *lines, pending = pending.split(b"\n")
            for line in lines:
                event = parse(line[max(line.rfind(b'{"event"'), 0):].decode("utf-8", errors="replace"))
                if event.get("event") == "ready":
                    return event
                if line.strip():
                    log.debug("warm worker %s: skipped a line of its stdout before ready: %.200r", proc.pid, line)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not selector.select(min(left, CHECK_INTERVAL)):
                if proc.poll() is not None:  # its kernel may hold the pipe open: no end of file then
                    return None
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            pending += chunk


def _finish(proc: subprocess.Popen, wait: float = 10.0) -> None:
    """Wait for a worker that finished its run; stop it when it takes longer than ``wait`` seconds."""
    try:
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        stop(proc)
        try:
            proc.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            log.warning("worker %s did not stop", proc.pid)
    if proc.stdout is not None:
        proc.stdout.close()
