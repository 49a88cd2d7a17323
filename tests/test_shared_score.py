"""The platform's score through a real Redis: replicas agree, outages lose and double-count nothing."""
from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from pathlib import Path

from bizra_nb.score import ScoreKeeper, ahsan_score, tier
from bizra_server.redis_bus import redis_client
from bizra_server.shared_score import WRITE_SCRIPT, SharedScore
from tests.prometheus_server import free_port
from tests.redis_server import eventually

ROOT = Path(__file__).resolve().parents[1]
PLAN = {  # per replica: events recorded, and violations among them
    "r1": {"events": 700, "violations": {"http_error": 12, "run_failed": 1}},
    "r2": {"events": 300, "violations": {"http_error": 3, "silent_failure": 2}},
}


def record(keeper: ScoreKeeper, events: int, violations: dict[str, int]) -> None:
    for kind, n in violations.items():
        for _ in range(n):
            keeper.record(kind)
    for _ in range(events - sum(violations.values())):
        keeper.record()


def test_take_deltas_is_off_by_default_and_drains_once():
    keeper = ScoreKeeper(clock=lambda: 1000.5)
    keeper.record()
    assert keeper.take_deltas() == {}  # not shared: nothing is kept
    keeper.share_deltas()
    keeper.record()
    keeper.record("http_error")
    assert keeper.take_deltas() == {1000: (2, {"http_error": 1})}
    assert keeper.take_deltas() == {}
    assert keeper.snapshot()["events"] == 3  # the local window is untouched


def test_take_deltas_over_seconds_and_a_clock_that_goes_back():
    now = [2000.2]
    keeper = ScoreKeeper(window=60, clock=lambda: now[0])
    keeper.share_deltas()
    for second, kind in [(2000.2, None), (2000.7, "run_failed"), (2001.1, None), (2003.0, "http_error")]:
        now[0] = second
        keeper.record(kind)
    assert keeper.take_deltas() == {2000: (2, {"run_failed": 1}), 2001: (1, {}), 2003: (1, {"http_error": 1})}
    keeper.record("http_error")  # the same second again: only the new one
    now[0] = 2002.5  # the clock went back: a bucket of 2002 after 2003's, then 2003 again
    keeper.record()
    now[0] = 2003.5
    keeper.record("silent_failure")
    assert keeper.take_deltas() == {2003: (2, {"http_error": 1, "silent_failure": 1}), 2002: (1, {})}
    now[0] = 2100.0  # the window passed: what was recorded meanwhile is still taken, then nothing more
    keeper.record()
    assert keeper.take_deltas() == {2100: (1, {})} and keeper.take_deltas() == {}


def test_two_processes_agree_on_the_platform_score(redis_server, tmp_path):
    children = {
        name: subprocess.Popen([sys.executable, "-m", "tests.test_shared_score", redis_server.url, name],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=open(tmp_path / f"{name}.log", "w"),
                               text=True)
        for name in PLAN
    }
    try:
        snaps = {name: json.loads(child.stdout.readline()) for name, child in children.items()}
    finally:
        for child in children.values():
            child.kill()
            child.wait()
    events = sum(p["events"] for p in PLAN.values())
    violations = {"http_error": 15, "validation_failed": 0, "run_failed": 1, "assumption_violated": 0,
                  "silent_failure": 2}
    reference = ScoreKeeper()  # one keeper seeing everything: the formula the shared snapshot must match
    for plan in PLAN.values():
        record(reference, **plan)
    expected = {**reference.snapshot(), "shared": True, "replicas": {"r1": 700, "r2": 300}}
    assert expected["events"] == events and expected["violations"] == violations
    assert expected["score"] == ahsan_score(events, violations) == 96.4  # 100 × (1 − 36/1000)
    for name, snap in snaps.items():
        assert snap.pop("replica") == name
        assert snap == expected


async def _child(url: str, name: str) -> None:
    """One replica in its own process: record its share of :data:`PLAN`, print the snapshot once all arrived."""
    keeper = ScoreKeeper()
    shared = SharedScore(keeper, redis_client(url), name, flush_interval=0.05, read_interval=0.1)
    await shared.start()
    record(keeper, **PLAN[name])
    total = sum(p["events"] for p in PLAN.values())
    await eventually(lambda: shared.snapshot().get("shared") and shared.snapshot()["events"] == total, timeout=30)
    await asyncio.sleep(0.3)  # a double count would show up meanwhile
    print(json.dumps(shared.snapshot()), flush=True)
    await shared.stop()


def test_redis_outage_keeps_the_deltas_and_writes_them_once(redis_server):
    async def main():
        loop = asyncio.get_running_loop()
        keeper = ScoreKeeper()
        shared = SharedScore(keeper, redis_client(redis_server.url), "solo", flush_interval=0.02, read_interval=0.05)
        await shared.start()
        record(keeper, 30, {"http_error": 2})
        await eventually(lambda: shared.snapshot().get("shared") and shared.snapshot()["events"] == 30)
        await loop.run_in_executor(None, lambda: redis_server.stop(save=True))  # a restart that keeps the data
        record(keeper, 20, {"silent_failure": 1})
        await eventually(lambda: not shared.connected)
        local = shared.snapshot()
        assert local["shared"] is False and f"127.0.0.1:{redis_server.port}" in local["reason"]
        assert local["events"] == 50 and local["violations"]["silent_failure"] == 1  # this replica's own
        await loop.run_in_executor(None, redis_server.start)
        await eventually(lambda: shared.snapshot().get("shared"), timeout=15)
        await eventually(lambda: shared.snapshot()["events"] == 50)
        await asyncio.sleep(0.2)
        snap = shared.snapshot()
        assert snap["events"] == 50 and snap["replicas"] == {"solo": 50}
        assert snap["violations"]["http_error"] == 2 and snap["violations"]["silent_failure"] == 1
        assert snap["score"] == ahsan_score(50, {"http_error": 2, "silent_failure": 1}) == 88.0
        assert snap["tier"] == tier(88.0)
        await shared.stop()

    asyncio.run(main())


class ReplyCutter:
    """A TCP proxy to Redis that, when armed, lets the write script's request through and drops its reply."""

    def __init__(self, redis_port: int) -> None:
        self.redis_port = redis_port
        self.port = free_port()
        self.armed = False
        self.cut = 0
        self.sha = hashlib.sha1(WRITE_SCRIPT.encode()).hexdigest().encode()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, client_reader, client_writer) -> None:
        redis_reader, redis_writer = await asyncio.open_connection("127.0.0.1", self.redis_port)
        pending = asyncio.Event()

        async def upstream():
            while data := await client_reader.read(65536):
                if self.armed and self.sha in data:
                    self.armed = False
                    pending.set()
                redis_writer.write(data)
                await redis_writer.drain()

        async def downstream():
            while data := await redis_reader.read(65536):
                if pending.is_set():  # the script ran on Redis; its caller never hears so
                    self.cut += 1
                    return
                client_writer.write(data)
                await client_writer.drain()

        await asyncio.wait([asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())],
                           return_when=asyncio.FIRST_COMPLETED)
        for writer in (client_writer, redis_writer):
            writer.close()


def test_a_write_whose_reply_was_lost_is_not_counted_twice(redis_server):
    async def main():
        proxy = ReplyCutter(redis_server.port)
        await proxy.start()
        keeper = ScoreKeeper()
        shared = SharedScore(keeper, redis_client(f"redis://127.0.0.1:{proxy.port}/0"), "cut",
                             flush_interval=0.02, read_interval=0.05)
        await shared.start()
        keeper.record()
        await eventually(lambda: shared.snapshot().get("shared") and shared.snapshot()["events"] == 1)
        proxy.armed = True
        record(keeper, 10, {"run_failed": 1})
        await eventually(lambda: proxy.cut == 1)
        await eventually(lambda: shared.snapshot().get("shared") and shared.snapshot()["events"] >= 11)
        await asyncio.sleep(0.2)
        assert shared.snapshot()["events"] == 11 and shared.snapshot()["violations"]["run_failed"] == 1
        await shared.stop()
        proxy.server.close()

    asyncio.run(main())


if __name__ == "__main__":
    asyncio.run(_child(sys.argv[1], sys.argv[2]))
