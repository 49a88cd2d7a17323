"""The run queue's dispatch rule: priorities, FIFO, the slots limit, per-kind caps, and thread safety."""
from __future__ import annotations

import logging
import queue
import sys
import threading
from typing import Callable

import pytest

from bizra_nb.run_queue import PRIORITIES, RunQueue


class Slots:
    """A settable slot count, read by the queue at each decision."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self) -> int:
        return self.n


def make(slots: int | Slots = 1, caps: dict[str, int] | None = None) -> tuple[RunQueue, list[str], Slots]:
    """A queue whose ``start`` records the ids it is given, in order."""
    slots = slots if isinstance(slots, Slots) else Slots(slots)
    started: list[str] = []
    return RunQueue(started.append, slots=slots, caps=caps), started, slots


def test_incidents_go_first_then_fifo_across_kinds_and_an_explicit_priority_wins() -> None:
    assert PRIORITIES == {"incident": 10}
    q, started, _ = make(1)
    q.put("blocker", "explore")
    for run_id, kind in [("a1", "audit"), ("b1", "benchmark"), ("i1", "incident"), ("a2", "audit"),
                         ("i2", "incident"), ("urgent", "audit")]:
        q.put(run_id, kind, 20 if run_id == "urgent" else None)
    assert started == ["blocker"]  # one slot: the others wait
    for run_id in ["blocker", "urgent", "i1", "i2", "a1", "b1"]:
        q.done(run_id)
    # explicit priority 20 > incident 10 > 0; equal priorities in put order whatever the kind
    assert started == ["blocker", "urgent", "i1", "i2", "a1", "b1", "a2"]
    assert q.waiting() == 0


def test_fifo_within_a_priority_is_put_order_not_id_order() -> None:
    q, started, _ = make(1)
    ids = ["r3", "r1", "r5", "r2", "r4"]
    for run_id in ids:
        q.put(run_id, "audit")
    for run_id in ids[:-1]:
        q.done(run_id)
    assert started == ids  # neither LIFO nor sorted by id


def test_at_most_slots_started_and_each_done_starts_exactly_one() -> None:
    q, started, _ = make(3)
    for n in range(10):
        q.put(f"r{n}", "audit")
    assert started == ["r0", "r1", "r2"]
    assert q.waiting() == 7 and q.started_by_kind() == {"audit": 3}
    for n in range(7):
        q.done(f"r{n}")
        assert len(started) == n + 4  # one freed slot, one start
    for n in range(7, 10):
        q.done(f"r{n}")
    assert started == [f"r{n}" for n in range(10)]
    assert q.started_by_kind() == {} and q.waiting() == 0


def test_an_audit_behind_a_storm_starts_at_the_next_free_slot() -> None:
    q, started, _ = make(2)  # default cap: max(1, 2 - 1) = 1
    for n in range(40):
        q.put(f"i{n}", "incident")
    assert started == ["i0", "i1"]  # a storm alone uses every slot (work-conserving)
    q.put("audit", "audit")
    assert started == ["i0", "i1"]  # no slot free: the audit waits, even below its cap
    q.done("i0")
    assert started[-1] == "audit"  # a pure priority queue would start i2 here
    q.done("i1")
    assert started[-1] == "i2"  # nothing else waits: incidents take the slot again, over their cap
    assert q.started_by_kind() == {"incident": 1, "audit": 1}
    q.done("audit")
    assert started[-1] == "i3" and q.started_by_kind() == {"incident": 2}


def test_the_cap_holds_a_kind_back_only_while_another_kind_waits() -> None:
    q, started, _ = make(3, caps={"incident": 1})
    for n in range(5):
        q.put(f"i{n}", "incident")
    assert started == ["i0", "i1", "i2"]  # over the cap of 1, alone: all slots used
    q.put("a0", "audit")
    q.done("i0")
    assert started[-1] == "a0"
    q.done("i1")
    # the audit is running, none waits: the incident starts (a cap applied against *started* runs of
    # other kinds, or always, would leave this slot idle)
    assert started[-1] == "i3"
    assert q.started_by_kind() == {"incident": 2, "audit": 1}


def test_explicit_caps_are_used_instead_of_the_default() -> None:
    q, started, _ = make(4, caps={"incident": 2})
    for n in range(5):
        q.put(f"i{n}", "incident")
    q.put("a0", "audit")
    q.put("a1", "audit")
    assert started == ["i0", "i1", "i2", "i3"]
    q.done("i0")
    q.done("i1")
    # incidents started: 2, at their cap of 2 (the default cap, 3, would start i4 at the second done)
    assert started[4:] == ["a0", "a1"]
    q.done("i2")
    assert started[-1] == "i4"
    assert q.snapshot()["caps"] == {"audit": 3, "incident": 2}


def test_slots_shrinking_stop_new_starts_and_growing_is_picked_up_by_poke() -> None:
    q, started, slots = make(3)
    for n in range(8):
        q.put(f"r{n}", "audit")
    assert started == ["r0", "r1", "r2"]
    slots.n = 1  # a worker died
    q.done("r0")
    q.done("r1")
    assert started == ["r0", "r1", "r2"]  # 1 still started, not below 1 slot
    q.done("r2")
    assert started == ["r0", "r1", "r2", "r3"]
    slots.n = 4  # workers joined
    assert len(started) == 4  # nothing happens by itself
    q.poke()
    assert started == ["r0", "r1", "r2", "r3", "r4", "r5", "r6"]
    q.poke()
    assert len(started) == 7 and q.waiting() == 1  # a second poke starts nothing more


def test_slots_below_one_count_as_one() -> None:
    q, started, slots = make(0)
    q.put("r0", "audit")
    q.put("r1", "audit")
    assert started == ["r0"]
    slots.n = -3
    q.done("r0")
    assert started == ["r0", "r1"]
    assert q.snapshot()["slots"] == 1


def test_a_duplicate_put_is_refused_and_changes_nothing() -> None:
    q, started, _ = make(1)
    assert q.put("r1", "audit") is True
    assert q.put("r1", "audit") is False  # started
    q.put("r3", "audit")
    q.put("r2", "audit")
    assert q.put("r2", "incident") is False  # waiting: neither its kind nor its priority change
    assert q.snapshot()["waiting_by_kind"] == {"audit": 2}
    q.done("r1")
    assert started == ["r1", "r3"]  # r2 was not bumped to incident priority
    assert q.put("r1", "audit") is True  # done: the id may be put again (a retry)
    q.done("r3")
    assert started == ["r1", "r3", "r2"]
    q.done("r2")
    assert started == ["r1", "r3", "r2", "r1"]


def test_discard_drops_a_waiting_run_only() -> None:
    q, started, _ = make(1)
    q.put("r1", "audit")
    q.put("r2", "audit")
    q.put("r3", "audit")
    assert q.discard("r2") is True
    assert q.discard("r2") is False and q.discard("nope") is False
    assert q.discard("r1") is False  # started: discard does not free its slot
    q.put("r4", "audit")
    assert started == ["r1"] and q.waiting() == 2
    q.done("r1")
    q.done("r3")
    assert started == ["r1", "r3", "r4"]  # r2 never started
    assert q.put("r2", "audit") is True  # forgotten once discarded


def test_done_is_idempotent_and_ignores_waiting_and_unknown_ids() -> None:
    q, started, _ = make(2)
    for n in range(5):
        q.put(f"r{n}", "audit")
    q.done("r0")
    q.done("r0")  # a counter decremented twice would free a second slot
    q.done("nope")
    q.done("r4")  # waiting, not started: it stays waiting and frees nothing
    assert started == ["r0", "r1", "r2"]
    assert q.started_by_kind() == {"audit": 2} and q.waiting() == 2
    q.done("r1")
    q.done("r2")
    assert started == ["r0", "r1", "r2", "r3", "r4"]


def test_a_start_that_raises_is_logged_frees_its_slot_and_dispatch_goes_on(caplog) -> None:
    attempts: list[str] = []

    def start(run_id: str) -> None:
        attempts.append(run_id)
        if run_id.startswith("bad"):
            raise RuntimeError(f"cannot submit {run_id}")

    q = RunQueue(start, slots=lambda: 1)
    with caplog.at_level(logging.ERROR, logger="bizra.runner"):
        assert q.put("bad0", "audit") is True  # queued; its start failed, the error did not escape
        assert q.started_by_kind() == {}
        q.put("r1", "audit")
        q.put("bad1", "incident")
        q.put("r2", "audit")
        q.done("r1")
    assert attempts == ["bad0", "r1", "bad1", "r2"]  # bad1 failed, r2 took the slot in the same call
    assert q.started_by_kind() == {"audit": 1} and q.waiting() == 0
    errors = [r for r in caplog.records if r.name == "bizra.runner"]
    assert [r.exc_info[1].args[0] for r in errors] == ["cannot submit bad0", "cannot submit bad1"]
    assert q.put("bad1", "incident") is True  # no longer started: it may be put again


def test_a_start_calling_done_synchronously_does_not_recurse(caplog) -> None:
    """A submit that fails at once calls done() from inside start: thousands in a row, no recursion."""
    started: list[str] = []
    q: RunQueue

    def start(run_id: str) -> None:
        started.append(run_id)
        if run_id != "blocker":
            q.done(run_id)

    q = RunQueue(start, slots=lambda: 1)
    q.put("blocker", "explore")
    ids = [f"r{n}" for n in range(5000)]
    for run_id in ids:
        q.put(run_id, "audit")
    assert started == ["blocker"]
    with caplog.at_level(logging.WARNING):
        q.done("blocker")  # recursive dispatch (done → start → done → ...) would hit the recursion limit
    assert caplog.records == []  # (a RecursionError caught as a failed start would be logged)
    assert started == ["blocker", *ids]
    assert q.waiting() == 0 and q.started_by_kind() == {}


def test_start_runs_outside_the_lock() -> None:
    """Another thread can read the queue while ``start`` runs (a held Lock or RLock would block it)."""
    seen: list[dict] = []

    def start(run_id: str) -> None:
        reader = threading.Thread(target=lambda: seen.append(q.snapshot()))
        reader.start()
        reader.join(timeout=30)  # a deadlock guard only: a working queue answers at once
        assert not reader.is_alive()

    q = RunQueue(start, slots=lambda: 2)
    q.put("r1", "incident")
    assert seen == [{"waiting": 0, "waiting_by_kind": {}, "started_by_kind": {"incident": 1}, "slots": 2,
                     "caps": {"incident": 1}}]


def test_snapshot() -> None:
    q, _, _ = make(3, caps={"benchmark": 1})
    for n in range(4):
        q.put(f"i{n}", "incident")
    q.put("a0", "audit")
    assert q.snapshot() == {"waiting": 2, "waiting_by_kind": {"incident": 1, "audit": 1},
                            "started_by_kind": {"incident": 3}, "slots": 3,
                            "caps": {"audit": 2, "benchmark": 1, "incident": 2}}


def test_caps_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RunQueue(lambda run_id: None, slots=lambda: 2, caps={"incident": 0})


def test_many_threads_putting_and_finishing_start_each_run_once_within_the_slots() -> None:
    slots, producers, per_producer, finishers = 3, 8, 1000, 4
    total = producers * per_producer
    lock = threading.Lock()
    state = {"running": 0, "max": 0, "finished": 0}
    started: list[str] = []
    finish: queue.Queue = queue.Queue()
    over = threading.Event()  # every run finished, or a thread failed
    errors: list[str] = []

    def failing_loudly(target: Callable[..., None]) -> Callable[..., None]:
        def run(*args: object) -> None:
            try:
                target(*args)
            except Exception as exc:  # e.g. "dictionary changed size during iteration" from a race
                errors.append(repr(exc))
                over.set()
        return run

    def start(run_id: str) -> None:
        with lock:
            started.append(run_id)
            state["running"] += 1
            state["max"] = max(state["max"], state["running"])
        finish.put(run_id)

    def produce(p: int) -> None:
        for n in range(per_producer):
            run_id = f"p{p}-{n}"
            if not rq.put(run_id, ("incident", "audit", "benchmark")[n % 3]):
                errors.append(f"{run_id} refused")

    def finishing() -> None:
        while (run_id := finish.get()) is not None:
            with lock:
                state["running"] -= 1  # before done(): the queue may start the next one at once
                state["finished"] += 1
                if state["finished"] == total:
                    over.set()
            rq.done(run_id)
            rq.done(run_id)  # idempotent, even racing

    rq = RunQueue(start, slots=lambda: slots)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so races show up
    try:
        threads = [threading.Thread(target=failing_loudly(finishing)) for _ in range(finishers)]
        threads += [threading.Thread(target=failing_loudly(produce), args=(p,)) for p in range(producers)]
        for thread in threads:
            thread.start()
        over.wait(timeout=60)  # a hang guard only (a run lost by a race is never started)
        for _ in range(finishers):
            finish.put(None)
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert state["finished"] == total, f"{state['finished']} of {total} runs finished: some run never started"
    assert sorted(started) == sorted(f"p{p}-{n}" for p in range(producers) for n in range(per_producer))
    assert len(set(started)) == len(started)  # each exactly once
    assert 1 <= state["max"] <= slots
    snap = rq.snapshot()
    assert (snap["waiting"], snap["waiting_by_kind"], snap["started_by_kind"]) == (0, {}, {})


@pytest.mark.parametrize("round_", range(5))
def test_the_same_ids_put_by_many_threads_at_once_are_accepted_once(round_: int) -> None:
    ids = [f"r{n}" for n in range(500)]
    accepted: list[str] = []
    started: list[str] = []
    q = RunQueue(started.append, slots=lambda: 4)
    barrier = threading.Barrier(8)

    def put_all(shift: int) -> None:
        barrier.wait()
        for run_id in ids[shift:] + ids[:shift]:
            if q.put(run_id, "incident" if run_id.endswith("0") else "audit"):
                accepted.append(run_id)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=put_all, args=(shift * 60,)) for shift in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert sorted(accepted) == sorted(ids)  # each id accepted by exactly one thread
    assert len(started) == 4 and len(set(started)) == 4  # never more than the slots, none twice
    assert q.waiting() == 496
