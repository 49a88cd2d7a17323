"""Live events between replicas through a real Redis: once each, in order per publisher, and through outages."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from bizra_server.hub import Hub
from bizra_server.redis_bus import RedisBus
from tests.redis_server import eventually

ROOT = Path(__file__).resolve().parents[1]


class Recorder:
    """A hub client that keeps every message it is sent (decoded)."""

    subscriptions = None

    def __init__(self) -> None:
        self.messages: list[dict] = []

    def deliver(self, text: str) -> bool:
        self.messages.append(json.loads(text))
        return True

    def close(self, code=None, reason=None) -> None:
        pass

    def of(self, type_: str) -> list[dict]:
        return [m["data"] for m in self.messages if m["type"] == type_]


def replica(url: str, name: str) -> tuple[Hub, RedisBus, Recorder]:
    hub = Hub()
    bus = RedisBus(url, name, hub.deliver_local, hub.stream_changed)
    hub.attach_bus(bus)
    client = Recorder()
    hub.add(client)
    return hub, bus, client


def in_order_once(seen: list[dict], source: str) -> list[int]:
    """The numbers of ``source``'s events, checked to come without duplicates and in publishing order."""
    numbers = [e["n"] for e in seen if e["from"] == source]
    assert numbers == sorted(set(numbers)), f"{source}'s events duplicated or out of order"
    return numbers


def test_every_replica_gets_every_event_once_in_order_and_status_stays_local(redis_server):
    async def main():
        hub_a, bus_a, client_a = replica(redis_server.url, "a")
        hub_b, bus_b, client_b = replica(redis_server.url, "b")
        await bus_a.start()
        await bus_b.start()
        await eventually(lambda: bus_a.connected and bus_b.connected)
        assert client_a.of("stream") == [{"shared": True, "replica": "a", "reason": bus_a.reason}]
        for n in range(300):  # interleaved, some in one IOLoop tick (one pipelined round trip)
            hub_a.publish("incident", {"from": "a", "n": n})
            hub_b.publish("alert", {"from": "b", "n": n})
            if n % 7 == 0:
                await asyncio.sleep(0)
        hub_a.publish("heartbeat", {"from": "a"})  # about replica a: its own clients only
        await eventually(lambda: all(len(c.of("incident")) + len(c.of("alert")) == 600 for c in (client_a, client_b)))
        await asyncio.sleep(0.2)  # anything extra (a duplicate) would arrive meanwhile
        for client in (client_a, client_b):
            events = client.of("incident") + client.of("alert")
            assert len(events) == 600
            assert in_order_once(client.of("incident"), "a") == list(range(300))
            assert in_order_once(client.of("alert"), "b") == list(range(300))
        assert client_a.of("heartbeat") == [{"from": "a"}] and client_b.of("heartbeat") == []
        await bus_a.stop()
        await bus_b.stop()

    asyncio.run(main())


def test_redis_stopped_mid_stream_then_back(redis_server):
    async def main():
        loop = asyncio.get_running_loop()
        hub_a, bus_a, client_a = replica(redis_server.url, "a")
        hub_b, bus_b, client_b = replica(redis_server.url, "b")
        await bus_a.start()
        await bus_b.start()
        await eventually(lambda: bus_a.connected and bus_b.connected)
        stopping = loop.run_in_executor(None, redis_server.stop)
        n = 0
        while not (bus_a.connected is False and stopping.done()):  # publish in bursts while Redis goes away
            for _ in range(20):
                hub_a.publish("incident", {"from": "a", "n": n})
                n += 1
            await asyncio.sleep(0.001)
        await stopping
        for _ in range(10):  # Redis is away: a's clients are still served
            hub_a.publish("incident", {"from": "a", "n": n})
            n += 1
        await eventually(lambda: not bus_b.connected)
        assert "Redis at 127.0.0.1:" in bus_a.reason and bus_a.reason == hub_a.stream["reason"]
        assert client_a.of("stream")[-1] == {"shared": False, "replica": "a", "reason": bus_a.reason}
        assert in_order_once(client_a.of("incident"), "a") == list(range(n))  # none lost, none twice
        # b missed what a published meanwhile (pub/sub keeps nothing), but never got one twice or out of order
        before = in_order_once(client_b.of("incident"), "a")

        await loop.run_in_executor(None, redis_server.start)
        await eventually(lambda: bus_a.connected and bus_b.connected, timeout=15)
        assert client_a.of("stream")[-1]["shared"] is True and client_b.of("stream")[-1]["shared"] is True
        for m in range(n, n + 50):
            hub_a.publish("incident", {"from": "a", "n": m})
            hub_b.publish("incident", {"from": "b", "n": m})
        await eventually(lambda: in_order_once(client_b.of("incident"), "a")[-1:] == [n + 49])
        await eventually(lambda: in_order_once(client_a.of("incident"), "b")[-1:] == [n + 49])
        await asyncio.sleep(0.2)
        assert in_order_once(client_a.of("incident"), "a") == list(range(n + 50))
        assert in_order_once(client_b.of("incident"), "a") == before + list(range(n, n + 50))
        assert in_order_once(client_a.of("incident"), "b") == list(range(n, n + 50))
        await bus_a.stop()
        await bus_b.stop()

    asyncio.run(main())


def test_redis_missing_at_start_serves_locally_then_connects(redis_server):
    redis_server.stop()

    async def main():
        loop = asyncio.get_running_loop()
        hub, bus, client = replica(redis_server.url, "alone")
        await bus.start()
        await eventually(lambda: client.of("stream"))
        assert client.of("stream") == [{"shared": False, "replica": "alone", "reason": bus.reason}]
        assert not bus.connected and f"127.0.0.1:{redis_server.port}" in bus.reason
        hub.publish("run", {"from": "alone", "n": 0})
        assert client.of("run") == [{"from": "alone", "n": 0}]  # at once, locally
        await loop.run_in_executor(None, redis_server.start)
        await eventually(lambda: bus.connected, timeout=15)
        hub.publish("run", {"from": "alone", "n": 1})
        assert client.of("run") == [{"from": "alone", "n": 0}]  # now it comes back through Redis
        await eventually(lambda: len(client.of("run")) == 2)
        assert [s["shared"] for s in client.of("stream")] == [False, True]
        await bus.stop()

    asyncio.run(main())


def test_an_event_published_in_one_process_reaches_another_once_in_order(redis_server, tmp_path):
    count = 500
    children = [
        subprocess.Popen([sys.executable, "-m", "tests.test_redis_bus", redis_server.url, name, str(count)],
                         cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=open(tmp_path / f"{name}.log", "w"), text=True)
        for name in ("p1", "p2")
    ]
    try:
        for child in children:
            assert child.stdout.readline().strip() == "connected"
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        results = [json.loads(child.stdout.readline()) for child in children]
    finally:
        for child in children:
            child.kill()
            child.wait()
    for seen in results:
        assert len(seen) == 2 * count
        for source in ("p1", "p2"):
            assert in_order_once(seen, source) == list(range(count))


async def _child(url: str, name: str, count: int) -> None:
    """One replica in its own process: publish ``count`` events on "go", print every event seen as JSON."""
    loop = asyncio.get_running_loop()
    hub, bus, client = replica(url, name)
    await bus.start()
    await eventually(lambda: bus.connected, timeout=20)
    print("connected", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    for n in range(count):
        hub.publish("incident", {"from": name, "n": n})
        if n % 50 == 0:
            await asyncio.sleep(0)
    await eventually(lambda: len(client.of("incident")) >= 2 * count, timeout=30)
    await asyncio.sleep(0.2)  # a duplicate would arrive meanwhile
    print(json.dumps(client.of("incident")), flush=True)
    await bus.stop()


if __name__ == "__main__":
    asyncio.run(_child(sys.argv[1], sys.argv[2], int(sys.argv[3])))
