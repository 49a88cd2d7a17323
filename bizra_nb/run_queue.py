"""Runs waiting for an execution slot: priorities first, a cap per notebook kind, no kind starved.

A slot is a local worker thread or one worker thread of the Dask cluster. The dispatch rule:

- At most ``slots()`` runs are started at once; ``slots()`` is re-read at each decision (values below
  1 count as 1). When it shrinks (a worker died) nothing new starts until fewer runs are started;
  when it grows (a worker joined) call :meth:`RunQueue.poke`.
- A free slot goes to the highest-priority, oldest waiting run whose kind is below its cap
  (:data:`PRIORITIES`, 0 for other kinds; FIFO within a priority, across kinds). The cap of a kind,
  ``caps[kind]`` or by default ``max(1, slots() - 1)``, bounds its started runs.
- The cap holds a kind back only in favour of a waiting run of another kind below its cap: when no
  waiting run is below its cap (a storm of 40 incidents and nothing else), the best waiting run starts
  anyway, so a storm alone uses every slot, and an audit queued behind a storm starts at the next
  free slot although incidents have a higher priority: no kind is starved.
- ``start(run_id)`` is called for each run given a slot, outside the lock, by one thread at a time
  (a put/done/poke made while another thread dispatches, or from inside ``start``, leaves the work to
  that dispatch: no recursion). If ``start`` raises, the error is logged (logger ``bizra.runner``),
  the run's slot is freed and dispatch goes on with the next run.

Thread-safe. An id is known here from its put until its done or discard; then it may be put again.
"""
from __future__ import annotations

import itertools
import logging
import threading
from collections import Counter, OrderedDict
from typing import Callable

PRIORITIES = {"incident": 10}
log = logging.getLogger("bizra.runner")


class RunQueue:
    """Runs waiting for an execution slot, started by priority within a per-kind cap (see the module).

    Parameters
    ----------
    start : callable
        ``start(run_id)`` hands a run to its slot (submits to a pool or to Dask); called outside the lock.
    slots : callable
        ``slots()`` the number of slots now; cheap, and must not call into the queue.
    caps : dict, optional
        Kind → most started runs of that kind while another kind waits (at least 1); other kinds get
        ``max(1, slots() - 1)``.
    """

    def __init__(self, start: Callable[[str], None], *, slots: Callable[[], int],
                 caps: dict[str, int] | None = None) -> None:
        if any(cap < 1 for cap in (caps or {}).values()):
            raise ValueError(f"run caps must be at least 1: {caps}")
        self._start, self._slots, self._caps = start, slots, dict(caps or {})
        self._lock = threading.Lock()
        self._groups: dict[tuple[int, str], OrderedDict[str, int]] = {}  # (priority, kind) → {run id: put no.}
        self._waiting: dict[str, tuple[int, str]] = {}  # run id → its group
        self._started: dict[str, str] = {}  # run id → kind
        self._puts = itertools.count()
        self._dispatching = False

    def put(self, run_id: str, kind: str, priority: int | None = None) -> bool:
        """Queue a run; it starts as soon as the dispatch rule gives it a slot (maybe within this call).

        Parameters
        ----------
        run_id : str
            The run's id.
        kind : str
            Its notebook kind (``incident``, ``audit``, ...): selects its priority and cap.
        priority : int, optional
            Higher goes first; by default ``PRIORITIES.get(kind, 0)``.

        Returns
        -------
        bool
            False, and nothing done, when this id is already waiting or started here (a duplicate submit).
        """
        with self._lock:
            if run_id in self._waiting or run_id in self._started:
                return False
            group = (PRIORITIES.get(kind, 0) if priority is None else priority, kind)
            self._groups.setdefault(group, OrderedDict())[run_id] = next(self._puts)
            self._waiting[run_id] = group
        self._dispatch()
        return True

    def done(self, run_id: str) -> None:
        """Free the slot of a started run that ended (or never really ran); no-op for any other id."""
        with self._lock:
            if self._started.pop(run_id, None) is None:
                return
        self._dispatch()

    def discard(self, run_id: str) -> bool:
        """Drop a waiting run (cancelled before it started); True if it was waiting (a started run stays)."""
        with self._lock:
            return self._unqueue(run_id) is not None

    def poke(self) -> None:
        """Start what now fits: call it when ``slots()`` may have grown (a worker joined)."""
        self._dispatch()

    def waiting(self) -> int:
        """The number of runs waiting for a slot."""
        with self._lock:
            return len(self._waiting)

    def started_by_kind(self) -> dict[str, int]:
        """Kind → started runs not done yet (kinds with none are left out)."""
        with self._lock:
            return dict(Counter(self._started.values()))

    def snapshot(self) -> dict:
        """The state for ``/metrics`` and debugging: waiting (total and by kind), started by kind, slots,
        and the cap of each configured, waiting or started kind."""
        with self._lock:
            slots = self._slot_count()
            waiting = Counter(kind for _, kind in self._waiting.values())
            started = Counter(self._started.values())
            kinds = sorted({*self._caps, *waiting, *started})
            return {"waiting": len(self._waiting), "waiting_by_kind": dict(waiting),
                    "started_by_kind": dict(started), "slots": slots,
                    "caps": {kind: self._cap(kind, slots) for kind in kinds}}

    def _slot_count(self) -> int:
        return max(1, int(self._slots()))

    def _cap(self, kind: str, slots: int) -> int:
        return self._caps.get(kind, max(1, slots - 1))

    def _unqueue(self, run_id: str) -> str | None:
        """Under the lock: remove a waiting run; its kind, or None when it was not waiting."""
        if (group := self._waiting.pop(run_id, None)) is None:
            return None
        del self._groups[group][run_id]
        if not self._groups[group]:
            del self._groups[group]
        return group[1]

    def _pick(self) -> str | None:
        """Under the lock: the run to start now (moved to started), or None."""
        slots = self._slot_count()
        if not self._waiting or len(self._started) >= slots:
            return None
        started = Counter(self._started.values())
        best = best_below_cap = None
        for (priority, kind), runs in self._groups.items():  # the oldest run of each (priority, kind)
            run_id, order = next(iter(runs.items()))
            key = (-priority, order, run_id)  # smallest first: higher priority, then put earlier
            best = min(best or key, key)
            if started[kind] < self._cap(kind, slots):
                best_below_cap = min(best_below_cap or key, key)
        run_id = (best_below_cap or best)[2]
        self._started[run_id] = self._unqueue(run_id)
        return run_id

    def _dispatch(self) -> None:
        """Start runs while one fits; one thread at a time, so a start calling back never recurses."""
        with self._lock:
            if self._dispatching:
                return
            self._dispatching = True
        try:
            while True:
                with self._lock:
                    run_id = self._pick()
                    if run_id is None:
                        self._dispatching = False
                        return
                try:
                    self._start(run_id)
                except Exception:
                    log.exception("could not start run %s; its slot is freed", run_id)
                    with self._lock:
                        self._started.pop(run_id, None)
        except BaseException:
            with self._lock:
                self._dispatching = False
            raise
