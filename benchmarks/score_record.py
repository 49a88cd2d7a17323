"""Cost of ScoreKeeper.record() (the hot path of every request) with and without the score shared through Redis.

Usage: python benchmarks/score_record.py [--number 200000] [--repeat 7]
Times record() (best of ``repeat``) on a plain keeper and on one whose deltas are shared (drained by
take_deltas() every 10 000 calls, as the shared score's flush does every 100 ms). With redis-server
installed it also runs a real SharedScore (flush every 100 ms) on an asyncio loop while the loop records,
and reports the cost per record() including the flushes, against the same loop without Redis.
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bizra_nb.score import ScoreKeeper  # noqa: E402


def per_call(stmt, number: int, repeat: int) -> float:
    """Best time of one call of ``stmt`` in nanoseconds."""
    return min(timeit.repeat(stmt, number=number, repeat=repeat)) / number * 1e9


def micro(number: int, repeat: int) -> dict[str, float]:
    plain = ScoreKeeper()
    shared = ScoreKeeper()
    shared.share_deltas()

    def draining(keeper: ScoreKeeper):
        calls = 0

        def record() -> None:  # the same wrapper for both: only take_deltas() differs
            nonlocal calls
            keeper.record()
            calls += 1
            if calls % 10_000 == 0:
                keeper.take_deltas()
        return record

    return {
        "record() plain": per_call(plain.record, number, repeat),
        "record() shared": per_call(shared.record, number, repeat),
        "record() plain, in the wrapper": per_call(draining(plain), number, repeat),
        "record() shared, take_deltas() every 10k": per_call(draining(shared), number, repeat),
        "record('http_error') plain": per_call(lambda: plain.record("http_error"), number, repeat),
        "record('http_error') shared": per_call(lambda: shared.record("http_error"), number, repeat),
    }


async def on_a_loop(keeper: ScoreKeeper, seconds: float) -> tuple[float, int]:
    """ns per record() on the running loop, yielding every 1000 records (as requests would); and how many."""
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(1000):
            keeper.record()
        done += 1000
        await asyncio.sleep(0)
    return (time.perf_counter() - start) / done * 1e9, done


async def with_redis(url: str, seconds: float) -> dict[str, float]:
    from bizra_server.redis_bus import redis_client
    from bizra_server.shared_score import SharedScore

    alone, _ = await on_a_loop(ScoreKeeper(), seconds)
    keeper = ScoreKeeper()
    shared = SharedScore(keeper, redis_client(url), "bench")
    await shared.start()
    while not shared.connected:
        await asyncio.sleep(0.01)
    cost, recorded = await on_a_loop(keeper, seconds)
    await asyncio.sleep(0.3)
    total = shared.snapshot()["events"]
    await shared.stop()
    return {"loop, no Redis": alone, "loop, SharedScore flushing to Redis": cost,
            "events recorded": recorded, "events counted by Redis": total}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each loop run with Redis")
    args = parser.parse_args()
    for name, ns in micro(args.number, args.repeat).items():
        print(f"{name:45s} {ns:7.0f} ns")
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server is not installed: the run with a real SharedScore is skipped")
        return 0
    from tests.redis_server import RedisServer

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(binary, Path(tmp))
        try:
            figures = asyncio.run(with_redis(server.url, args.seconds))
        finally:
            server.stop()
    for name, value in figures.items():
        print(f"{name:45s} {value:7.0f}" + ("" if name.startswith("events") else " ns per record()"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
