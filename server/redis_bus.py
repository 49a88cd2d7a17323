"""Live events between replicas: Redis pub/sub carries each replica's hub messages to every replica's clients.

Exactly once, in order per publisher. While the bus is connected a replica
publishes its events only to Redis and delivers them to its own clients when
its subscription hands them back, like everyone else's; so a client sees
each event once, in the order its publisher sent them (one sender task, one
connection, FIFO).

While Redis is away the bus calls ``on_message`` for its own events at once,
so the replica's clients keep being served; the other replicas' events of
that time are missed (pub/sub keeps nothing for an absent subscriber). The
replica's own events that were queued or in flight when the connection
dropped, and that its subscription had not handed back yet, are delivered
locally then, in order: each one reached the local clients exactly once,
either through Redis or directly. The bus reconnects with backoff (capped at
:data:`MAX_BACKOFF` seconds), logs once per state change, and tells
``on_state(connected, reason)``.

A message on the channel is ``type \\n replica \\n seq \\n text``: receivers
filter by type without parsing the JSON text.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Callable
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger("bizra.redis")

MAX_BACKOFF = 2.0  # seconds between reconnection attempts, at most
FIRST_BACKOFF = 0.05
TIMEOUT = 2.0  # seconds a Redis command or connection attempt may take
PING_AFTER = 5.0  # seconds without a message before the subscription is pinged; twice that without an answer: gone
MAX_BATCH = 500  # messages per pipelined round trip


def redis_client(url: str, *, timeout: float = TIMEOUT) -> aioredis.Redis:
    """An asyncio Redis client for ``url`` that fails fast: no hidden retries, ``timeout`` seconds per call.

    The bus, the shared score and the leadership each handle a failure themselves
    (reconnect with backoff, say so on ``/ready``), so the client must not retry
    behind their back. Responses are decoded to ``str``.
    """
    return aioredis.Redis.from_url(url, decode_responses=True, socket_timeout=timeout,
                                   socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0),
                                   health_check_interval=0)


def redis_address(url: str) -> str:
    """``host:port`` (or the socket path) of a Redis URL, without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"


def client_address(client) -> str:
    """``host:port`` (or the socket path) an asyncio Redis client connects to."""
    kwargs = client.connection_pool.connection_kwargs
    return kwargs.get("path") or f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def describe(exc: BaseException) -> str:
    """A one-line reason for a failed Redis call."""
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


class Backoff:
    """Delays between reconnection attempts: doubling from :data:`FIRST_BACKOFF` up to :data:`MAX_BACKOFF`."""

    def __init__(self, first: float = FIRST_BACKOFF, cap: float = MAX_BACKOFF) -> None:
        self.first, self.cap, self.delay = first, cap, first

    def next(self) -> float:
        delay, self.delay = self.delay, min(self.cap, self.delay * 2)
        return delay

    def reset(self) -> None:
        self.delay = self.first


class RedisBus:
    """The hub's transport between replicas (IOLoop thread only).

    Parameters
    ----------
    url
        The Redis URL (``redis://host:6379/0``).
    replica
        This replica's name (no newline); it tells its own messages from the others'.
    on_message
        ``on_message(type_, text)``: deliver one message to this replica's clients.
    on_state
        ``on_state(connected, reason)``, called on each change of :attr:`connected`.
    channel
        The pub/sub channel the replicas share.
    """

    def __init__(self, url: str, replica: str, on_message: Callable[[str, str], None],
                 on_state: Callable[[bool, str], None] | None = None, *, channel: str = "bizra:live") -> None:
        if "\n" in replica or not replica:
            raise ValueError("a replica name must be non-empty and on one line")
        self.url = url
        self.replica = replica
        self.channel = channel
        self.on_message = on_message
        self.on_state = on_state
        self.connected = False
        self.reason = "not started"
        self.address = redis_address(url)
        self._seq = 0
        self._queue: deque[tuple[int, str, str]] = deque()  # own messages not sent yet
        self._inflight: deque[tuple[int, str, str]] = deque()  # sent, not yet handed back by the subscription
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._announced: bool | None = None  # the state last logged and told

    async def start(self) -> None:
        """Start connecting in the background (returns at once; :attr:`connected` tells when it is up)."""
        if self._task is None:
            self._stopping = False
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="redis bus")

    async def stop(self, *, drain: float = 1.0) -> None:
        """Send what is queued (for up to ``drain`` seconds), then disconnect."""
        if self._task is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain
        while self.connected and (self._queue or self._inflight) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        self._stopping = True
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        self._went_down("stopped")

    def publish(self, type_: str, text: str) -> None:
        """Send ``text`` (a message of ``type_``) to every replica's clients; never waits.

        Disconnected, it goes to this replica's clients at once (``on_message``).
        """
        if not self.connected:
            self._deliver(type_, text)
            return
        self._seq += 1
        self._queue.append((self._seq, type_, text))
        self._wakeup.set()

    # -- the connection -------------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = Backoff()
        while not self._stopping:
            try:
                await self._connected_session(backoff)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means: down, reconnect
                self._went_down(f"Redis at {self.address}: {describe(exc)}")
            await asyncio.sleep(backoff.next())

    async def _connected_session(self, backoff: Backoff) -> None:
        client = redis_client(self.url)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            reply = await pubsub.get_message(timeout=TIMEOUT)
            if not reply or reply.get("type") != "subscribe":
                raise ConnectionError(f"no confirmation of the subscription to {self.channel}")
            self._came_up()
            backoff.reset()
            reader = asyncio.ensure_future(self._read(pubsub))
            sender = asyncio.ensure_future(self._send(client))
            try:
                done, _ = await asyncio.wait({reader, sender}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (reader, sender):
                    task.cancel()
                await asyncio.gather(reader, sender, return_exceptions=True)
            for task in done:
                task.result()  # raises the failure
            raise ConnectionError("the connection ended")
        finally:
            await _quietly(pubsub.aclose())
            await _quietly(client.aclose())

    async def _read(self, pubsub) -> None:
        loop = asyncio.get_running_loop()
        last_seen = loop.time()
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=PING_AFTER)
            now = loop.time()
            if message is None:
                if now - last_seen >= 2 * PING_AFTER:
                    raise TimeoutError(f"no answer on the subscription for {2 * PING_AFTER:.0f} s")
                if not pinged:
                    await pubsub.ping()
                    pinged = True
                continue
            last_seen, pinged = now, False
            if message.get("type") == "message":
                self._received(message["data"])

    async def _send(self, client) -> None:
        queue, inflight = self._queue, self._inflight
        while True:
            while not queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            pipe = client.pipeline(transaction=False)
            for _ in range(min(len(queue), MAX_BATCH)):
                item = queue.popleft()
                inflight.append(item)
                seq, type_, text = item
                pipe.publish(self.channel, f"{type_}\n{self.replica}\n{seq}\n{text}")
            await pipe.execute()

    def _received(self, data: str) -> None:
        try:
            type_, replica, seq, text = data.split("\n", 3)
            number = int(seq)
        except ValueError:
            log.debug("ignoring a malformed message on %s", self.channel)
            return
        if replica == self.replica:
            inflight = self._inflight
            while inflight and inflight[0][0] <= number:
                inflight.popleft()
        self._deliver(type_, text)

    def _deliver(self, type_: str, text: str) -> None:
        try:
            self.on_message(type_, text)
        except Exception:  # noqa: BLE001 - one bad delivery must not stop the stream
            log.exception("delivering a %s message failed", type_)

    def _came_up(self) -> None:
        self.connected, self.reason = True, f"subscribed to {self.channel} on Redis at {self.address}"
        self._announce(True)

    def _went_down(self, reason: str) -> None:
        self.connected, self.reason = False, reason
        unsent = list(self._inflight) + list(self._queue)
        self._inflight.clear()
        self._queue.clear()
        for _, type_, text in unsent:  # never handed back: this replica's clients get them directly
            self._deliver(type_, text)
        self._announce(False)

    def _announce(self, connected: bool) -> None:
        """Log and tell ``on_state`` once per change (not once per reconnection attempt)."""
        if connected == self._announced:
            return
        self._announced = connected
        if connected:
            log.info("live events are shared through Redis at %s", self.address)
        elif not self._stopping:
            log.warning("live events are local only (other replicas' events are missed): %s; reconnecting",
                        self.reason)
        if self.on_state is not None:
            try:
                self.on_state(connected, self.reason)
            except Exception:  # noqa: BLE001
                log.exception("the bus state callback failed")


async def _quietly(awaitable, timeout: float = 1.0) -> None:
    """Close something without waiting more than ``timeout`` s: a connection whose reader was cancelled
    mid-read may never finish closing (seen: a stop that hung until Redis itself went away)."""
    try:
        await asyncio.wait_for(awaitable, timeout)
    except Exception:  # noqa: BLE001 - closing a connection that is already gone, or stuck
        pass
