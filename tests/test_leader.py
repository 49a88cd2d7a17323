"""One leader among replicas through a real Redis lease: one at a time, hand-over on stop, take-over on kill -9."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bizra_server.leader import Leadership, LocalLeadership
from bizra_server.redis_bus import redis_client
from tests.redis_server import eventually

ROOT = Path(__file__).resolve().parents[1]
LEASE = 1.0  # seconds, short for the tests; renewed every LEASE / 3


def elect(url: str, name: str) -> tuple[Leadership, list[bool]]:
    leadership = Leadership(redis_client(url), name, lease=LEASE)
    changes: list[bool] = []
    leadership.on_change(changes.append)
    return leadership, changes


def test_local_leadership_always_leads():
    async def main():
        local = LocalLeadership("here")
        changes: list[bool] = []
        local.on_change(changes.append)
        await local.start()
        assert local.is_leader and local.holder == "here" and local.connected and changes == [True]
        await local.stop()
        assert changes == [True, False]

    asyncio.run(main())


def test_one_leader_at_a_time_and_a_clean_stop_hands_over_at_once(redis_server):
    async def main():
        a, a_changes = elect(redis_server.url, "a")
        b, b_changes = elect(redis_server.url, "b")
        await a.start()
        await eventually(lambda: a.is_leader)
        await b.start()
        await eventually(lambda: b.holder == "a" and b.connected)
        assert not b.is_leader and b.reason == "a leads" and a.holder == "a"
        loop = asyncio.get_running_loop()
        until = loop.time() + 2 * LEASE  # several renewals: a keeps the lease, b never takes it
        while loop.time() < until:
            assert a.is_leader and not b.is_leader
            await asyncio.sleep(0.01)
        assert a_changes == [True] and b_changes == []
        await a.stop()  # releases the lease: b takes it at its next attempt, well before the lease would end
        assert not a.is_leader and a_changes == [True, False]
        await eventually(lambda: b.is_leader)
        assert b_changes == [True] and b.holder == "b"
        await b.stop()

    asyncio.run(main())


def test_redis_gone_steps_the_leader_down_before_its_lease_ends(redis_server):
    async def main():
        loop = asyncio.get_running_loop()
        a, changes = elect(redis_server.url, "a")
        await a.start()
        await eventually(lambda: a.is_leader)
        stopped_at = time.monotonic()
        await loop.run_in_executor(None, redis_server.stop)
        await eventually(lambda: not a.is_leader)
        assert changes == [True, False]
        assert time.monotonic() - stopped_at < LEASE + 0.5  # never past its lease (+ the executor's stop)
        await eventually(lambda: not a.connected)
        assert "cannot reach Redis" in a.reason
        await loop.run_in_executor(None, redis_server.start)  # empty: the lease is free again
        await eventually(lambda: a.is_leader, timeout=15)
        assert changes == [True, False, True] and a.connected
        await a.stop()

    asyncio.run(main())


def test_a_hung_redis_steps_the_leader_down_before_its_lease_may_end(redis_server):
    async def main():
        a = Leadership(redis_client(redis_server.url), "a", lease=LEASE)
        changes: list[tuple[bool, float]] = []
        a.on_change(lambda leading: changes.append((leading, time.monotonic())))
        await a.start()
        await eventually(lambda: a.is_leader)
        redis_server.freeze()  # renewals get no answer: only the leader's own clock can tell it to stop
        frozen_at = time.monotonic()
        try:
            await eventually(lambda: not a.is_leader)
            await eventually(lambda: len(changes) == 2)
            assert changes[1][0] is False
            assert changes[1][1] - frozen_at < LEASE  # the last renewal was before the freeze: its lease ends by then
        finally:
            redis_server.thaw()
        await eventually(lambda: a.is_leader, timeout=15)  # its lease still there, or expired and taken again
        await a.stop()

    asyncio.run(main())


def test_a_killed_leader_is_replaced_within_the_lease(redis_server, tmp_path):
    child = subprocess.Popen([sys.executable, "-m", "tests.test_leader", redis_server.url, "doomed"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=open(tmp_path / "doomed.log", "w"), text=True)
    try:
        assert child.stdout.readline().strip() == "leading"

        async def main():
            survivor, changes = elect(redis_server.url, "survivor")
            await survivor.start()
            await eventually(lambda: survivor.holder == "doomed")
            assert not survivor.is_leader
            killed_at = time.monotonic()
            os.kill(child.pid, signal.SIGKILL)
            await eventually(lambda: survivor.is_leader, timeout=10)
            failover = time.monotonic() - killed_at
            assert changes == [True] and survivor.holder == "survivor"
            await survivor.stop()
            return failover

        failover = asyncio.run(main())
        print(f"fail-over took {failover:.2f} s (lease {LEASE} s, renewal every {LEASE / 3:.2f} s)")
        assert failover <= LEASE + 2 * LEASE / 3 + 0.5  # lease + one renewal period, with room for a slow machine
    finally:
        child.kill()
        child.wait()


async def _child(url: str, name: str) -> None:
    """A leader in its own process: print "leading" once it leads, then keep renewing until killed."""
    leadership, _ = elect(url, name)
    await leadership.start()
    await eventually(lambda: leadership.is_leader, timeout=20)
    print("leading", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_child(sys.argv[1], sys.argv[2]))
