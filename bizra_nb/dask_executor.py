"""Runs on a Dask cluster (``--dask-scheduler``): the client, its slots, a remote run's events and stop.

The runner keeps one thread per run it has given to the cluster (waiting, cheap); the run itself
executes on a worker (:func:`bizra_nb.run_remote.run_on_worker`). Started and progress messages come
back as Dask events on :data:`~bizra_nb.run_remote.TOPIC`, one subscription per client, routed to
the run's queue. A scheduler that does not answer makes :meth:`DaskExecutor.check` raise
:class:`~bizra_nb.errors.Unavailable` at once for :data:`RETRY_AFTER` seconds (new runs are refused
with that reason, ``/ready`` shows it) and runs in flight end failed: the client loses their futures.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterator

from bizra_nb.errors import Unavailable
from bizra_nb.run_remote import TOPIC, cancel_event, run_on_worker, started_event

CONNECT_TIMEOUT = 3.0  # seconds to reach the scheduler before it counts as down
RETRY_AFTER = 5.0  # seconds a scheduler found down is not asked again: meanwhile new runs fail at once
WAITERS = 256  # threads that may wait on runs in the cluster at once (the queue gives no more than its slots)
_DONE = object()
log = logging.getLogger("bizra.runner")


class DaskExecutor:
    """Slots of a Dask cluster at ``address`` (``tcp://host:8786``), for :class:`~bizra_nb.runner.Runner`."""

    name = "dask"
    remote = True

    def __init__(self, address: str) -> None:
        self.address = address
        self.pool = ThreadPoolExecutor(WAITERS, thread_name_prefix="bizra-dask-run")
        self._client = None
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._down_reason = ""
        self._slots = 1
        self.workers_seen = 0
        self._listeners: dict[str, queue.Queue] = {}

    def client(self):
        """The connected client; a new one when the last was lost. Raises :class:`Unavailable` when down."""
        from distributed import Client

        with self._lock:
            client = self._client
            if client is not None and client.status == "running":
                return client
            if time.monotonic() < self._down_until:
                raise Unavailable(self._down_reason)
            self._client = None
            if client is not None:  # lost: its threads go with it
                threading.Thread(target=_close_quietly, args=(client,), daemon=True).start()
            try:
                client = Client(self.address, timeout=CONNECT_TIMEOUT, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                self._down_until = time.monotonic() + RETRY_AFTER
                self._down_reason = (f"the Dask scheduler {self.address} does not answer ({exc}): notebook runs "
                                     f"cannot start; start it, or correct --dask-scheduler")
                raise Unavailable(self._down_reason) from None
            client.subscribe_topic(TOPIC, self._on_event)
            self._client = client
        self.refresh(client)
        return client

    @property
    def down_reason(self) -> str:
        return self._down_reason

    def mark_down(self, reason: str) -> None:
        """The scheduler does not answer (a check timed out): new runs are refused for :data:`RETRY_AFTER` s."""
        with self._lock:
            self._down_until = time.monotonic() + RETRY_AFTER
            self._down_reason = reason

    def refresh(self, client=None) -> str:
        """Count the workers and their threads (a call to the scheduler); returns the /ready detail."""
        info = (client or self.client()).scheduler_info(n_workers=-1)
        workers = info.get("workers", {}).values()
        self.workers_seen = len(workers)
        self._slots = max(1, sum(w.get("nthreads", 1) for w in workers))
        return f"{self.workers_seen} workers, {sum(w.get('nthreads', 1) for w in workers)} threads at {self.address}"

    def check(self) -> str:
        """Raise :class:`Unavailable` when the scheduler does not answer, or did not answer the last /ready
        check in time (the runner refuses new runs); no I/O while the client is connected."""
        if time.monotonic() < self._down_until:
            raise Unavailable(self._down_reason)
        client = self.client()
        return f"connected to {self.address} ({client.status})"

    def cancel_runs(self, run_ids: list[str]) -> None:
        """Stop runs on the cluster that no replica waits for any more (their replica died: recover, reap)."""
        from distributed import Event

        client = self.client()
        for run_id in run_ids:
            Event(cancel_event(run_id), client=client).set()

    def slots(self) -> int:
        """Worker threads seen at the last :meth:`refresh` (at least 1); no I/O."""
        return self._slots

    def submit(self, fn: Callable, *args: Any) -> Future:
        return self.pool.submit(fn, *args)

    def start(self, spec: dict, *, priority: int = 0) -> "RemoteRun":
        """Submit one run (:func:`~bizra_nb.run_remote.run_on_worker`) at ``priority`` (higher first)."""
        client = self.client()
        run_id = spec["run"]["id"]
        events: queue.Queue = queue.Queue()
        self._listeners[run_id] = events
        future = client.submit(run_on_worker, spec, key=f"bizra-run-{run_id}", priority=priority, pure=False)
        future.add_done_callback(lambda _: events.put(_DONE))
        return RemoteRun(self, client, run_id, future, events)

    def _on_event(self, event) -> None:
        """A message of :data:`TOPIC` (on the client's event loop: only hand it over)."""
        _, message = event
        listener = self._listeners.get(message.get("run")) if isinstance(message, dict) else None
        if listener is not None:
            listener.put(message)

    def shutdown(self, wait: bool = True) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=True)
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            _close_quietly(client)


def _close_quietly(client) -> None:
    try:
        client.close(timeout=CONNECT_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - the scheduler is gone already
        log.debug("closing the Dask client: %s", exc)


class RemoteRun:
    """One run given to the cluster: its events until it ends, its outcome, its stop."""

    def __init__(self, executor: DaskExecutor, client, run_id: str, future, events: queue.Queue) -> None:
        self.executor = executor
        self.client = client
        self.run_id = run_id
        self.future = future
        self.queue = events
        self.started = False

    def events(self, *, timeout: float) -> Iterator[dict]:
        """``started`` and ``progress`` messages until the task ends; :class:`TimeoutError` when it has not
        ended ``timeout`` s after it started (waiting for a worker has no limit: runs wait until one joins)."""
        deadline = None
        while True:
            try:
                message = self.queue.get(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"run {self.run_id}: no end within {timeout:g} s") from None
            if message is _DONE:
                return
            if message.get("event") == "started" and deadline is None:
                self.started = True
                deadline = time.monotonic() + timeout
            yield message

    def result(self) -> dict:
        """The task's outcome; :class:`~bizra_nb.runner.RemoteLost` when the cluster lost it."""
        from distributed import KilledWorker

        from bizra_nb.runner import RemoteLost

        try:
            return self.future.result()
        except KilledWorker:
            raise RemoteLost(f"the Dask workers running it died ({self.executor.address}); "
                             "the run is not retried: start it again", kind="WorkerDied") from None
        except Exception as exc:  # noqa: BLE001 - whatever the cluster says, the run is lost
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            if "connection" in str(exc).lower():
                reason = f"the connection to the Dask scheduler {self.executor.address} was lost while it ran"
            raise RemoteLost(reason, kind="ClusterLost") from None

    def cancel(self) -> None:
        """Stop it: its worker process and kernel end within a second; dropped if no worker has it yet."""
        from distributed import Event

        if not self.started:
            self.client.cancel(self.future)
        try:
            Event(cancel_event(self.run_id), client=self.client).set()
        except Exception as exc:  # noqa: BLE001 - the scheduler is gone: the task stops by itself (run_remote)
            log.warning("run %s: the cancel could not reach the Dask scheduler: %s", self.run_id, exc)

    def close(self) -> None:
        """Forget it: its listener now, its two events on the scheduler in the background."""
        self.executor._listeners.pop(self.run_id, None)
        threading.Thread(target=self._clear_events, daemon=True, name=f"bizra-forget-{self.run_id}").start()

    def _clear_events(self) -> None:
        from distributed import Event

        for name in (cancel_event(self.run_id), started_event(self.run_id)):
            try:
                Event(name, client=self.client).clear()  # a cleared event without waiters is deleted
            except Exception:  # noqa: BLE001 - the scheduler is gone, and its events with it
                return
