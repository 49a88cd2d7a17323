"""What the load generator's latencies count: a server's stall (coordinated omission), never the generator's own lateness."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import tornado.httpserver
import tornado.testing
import tornado.web

from bizra_nb.loadgen import run_load

STALL = 0.4  # seconds: a stall of the server (its first answer) or of the generator (its event loop blocked)


class FirstAnswerStallsHandler(tornado.web.RequestHandler):
    """The first request of a run waits STALL seconds for its answer; the others are answered at once."""

    stalled = False

    async def get(self) -> None:
        if not type(self).stalled:
            type(self).stalled = True
            await asyncio.sleep(STALL)
        self.write("ok")


async def load(*, block_generator: bool) -> tuple[np.ndarray, np.ndarray]:
    """Latencies and generator lateness (s) of 20 requests at 50 req/s on one connection; the generator's loop blocked STALL s at 0.1 s."""
    FirstAnswerStallsHandler.stalled = block_generator  # the server stalls or the generator does, not both
    sock, port = tornado.testing.bind_unused_port()
    server = tornado.httpserver.HTTPServer(tornado.web.Application([(r"/s", FirstAnswerStallsHandler)],
                                                                   log_function=lambda handler: None))
    server.add_sockets([sock])
    blocker = None
    if block_generator:  # the generator is busy with its own work: it issues the requests due meanwhile late
        blocker = asyncio.get_running_loop().call_later(0.1, time.sleep, STALL)
    try:
        result = await run_load(f"http://127.0.0.1:{port}", endpoints=["/s"], duration=0.4, rate=50.0, concurrency=1)
    finally:
        if blocker is not None:
            blocker.cancel()
        server.stop()
        await server.close_all_connections()
    assert (result.samples["status"] == 200).all()
    samples = result.samples.sort_values("sent_at")
    assert result.stats()["generator_late_p99_ms"] == round(float(np.percentile(samples["late_ms"], 99)), 3)
    return samples["latency_ms"].to_numpy() / 1000, samples["late_ms"].to_numpy() / 1000


def test_a_server_stall_counts_for_the_requests_that_waited_for_it():
    latency, late = asyncio.run(load(block_generator=False))
    # request 0 is the stalled one; requests 1..9 were due during its stall and waited for the only connection
    assert latency[0] >= STALL * 0.9
    assert all(latency[i] >= STALL - i / 50 - 0.02 for i in range(1, 10))  # from when each was due
    assert late.max() < STALL / 2  # the generator itself kept its schedule: the wait is the server's


def test_the_generators_own_lateness_does_not_count():
    latency, late = asyncio.run(load(block_generator=True))
    # the requests due while the generator's loop was blocked went out late: their latency is the server's
    # (a fast answer), not the blocked time; counted from when they were due they would read up to STALL
    due_during_block = slice(5, 20)  # due at 0.1 s to 0.4 s: while the loop slept
    assert np.median(latency[due_during_block]) < STALL / 4
    # ...and the lateness is kept apart, not lost: the first of them went out nearly STALL late
    assert late[due_during_block].max() >= STALL * 0.6
