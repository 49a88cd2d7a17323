"""Start a real ``dask scheduler`` and ``dask worker`` processes on free loopback ports, for the tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.prometheus_server import free_port


class DaskCluster:
    """A scheduler and ``workers`` worker processes (each ``--nthreads 1`` under its own nanny), as a user starts them.

    The workers run with this interpreter (the project installed), in ``workdir``; each logs to its own file.
    :meth:`worker_pids` names the worker processes (the nannies' children) so a test can ``kill -9`` one.
    """

    def __init__(self, workdir: Path, *, workers: int = 2) -> None:
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.start_scheduler()
        for _ in range(workers):
            self.add_worker()
        self.wait_for_workers(workers)

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "a")
        return subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log, stderr=subprocess.STDOUT,
                                cwd=self.dir, start_new_session=True)

    def start_scheduler(self) -> None:
        self.scheduler = self._spawn("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                     "--no-dashboard")

    def add_worker(self) -> subprocess.Popen:
        index = len(self.workers)
        proc = self._spawn(f"worker-{index}", *self._worker_args(index))
        self.workers.append(proc)
        return proc

    def _worker_args(self, index: int) -> list[str]:
        return ["worker", self.address, "--nthreads", "1", "--nworkers", "1", "--name", f"w{index}",
                "--no-dashboard", "--local-directory", str(self.dir / f"w{index}")]

    def client(self, timeout: float = 30):
        from distributed import Client

        return Client(self.address, timeout=timeout, set_as_default=False)

    def wait_for_workers(self, count: int, timeout: float = 90.0) -> None:
        with self.client() as client:
            client.wait_for_workers(count, timeout=timeout)

    def worker_pids(self) -> list[int]:
        """PIDs of the worker processes (the children each nanny spawned), alive now."""
        pids = []
        for nanny in self.workers:
            candidates = []
            for children in Path(f"/proc/{nanny.pid}/task").glob("*/children"):  # spawned from any of its threads
                try:
                    candidates += [int(p) for p in children.read_text().split()]
                except OSError:
                    continue
            for pid in candidates:
                try:
                    if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        pids.append(pid)
                except OSError:
                    continue
        return pids

    def restart(self) -> None:
        """After :meth:`kill_scheduler`: start the scheduler again on the same address, and the workers (Dask
        closes a worker that loses its scheduler) as their supervisor would; wait until all have joined."""
        for proc in self.workers:
            proc.wait(timeout=90)  # each closes once it notices the lost scheduler (a busy one takes longer)
        self.start_scheduler()
        self.workers = [self._spawn(f"worker-{index}", *self._worker_args(index)) for index in range(len(self.workers))]
        self.wait_for_workers(len(self.workers))

    def kill_scheduler(self) -> None:
        """SIGKILL the scheduler (a crash: its workers stay up, trying to reach it again)."""
        if self.scheduler is not None and self.scheduler.poll() is None:
            os.killpg(self.scheduler.pid, signal.SIGKILL)
            self.scheduler.wait()

    def stop_scheduler(self) -> None:
        """Stop the scheduler gracefully (Dask then closes its workers too)."""
        if self.scheduler is not None and self.scheduler.poll() is None:
            self.scheduler.send_signal(signal.SIGINT)
            try:
                self.scheduler.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.scheduler.pid, signal.SIGKILL)
                self.scheduler.wait()

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 20
        for proc in self.workers:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the nanny's worker and anything it started
            except ProcessLookupError:
                pass
            proc.wait()
        self.stop_scheduler()


def processes_of_run(run_id: str) -> dict[int, str]:
    """PID → command line of every process running for ``run_id`` (its worker process and kernel carry
    ``BIZRA_RUN_ID`` in their environment; Linux /proc, readable as the same user or root)."""
    needle = f"BIZRA_RUN_ID={run_id}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False
