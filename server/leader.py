"""One leader among replicas: a Redis lease taken with ``SET NX PX`` semantics and renewed while it lasts.

The leader runs the singletons (the scheduler). :class:`Leadership` tries
every ``lease / 3`` seconds: one Lua script sets the key to this replica's
value when nobody holds it, or extends it (``PEXPIRE``) when the value is
still its own, and returns the holder. The leader tracks the lease's end on
its monotonic clock from the moment each request was sent, and steps down
before that end when renewals fail (Redis gone, too slow), so two replicas
never both believe they lead. A clean stop deletes the key if it is still its
own (compare-and-delete), so another replica takes over at its next attempt;
a killed leader's lease expires, and another takes over within
``lease + lease / 3`` seconds.

:class:`LocalLeadership` has the same interface and always leads: the embedded
default, one process without Redis.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Callable

from bizra_server.redis_bus import Backoff, client_address, describe

log = logging.getLogger("bizra.leader")

STEP_DOWN_MARGIN = 0.1  # of the lease: a leader whose renewals fail steps down this much before the lease may end

ACQUIRE_SCRIPT = """
-- KEYS[1]: the lease; ARGV[1]: our value; ARGV[2]: lease ms. Take it if free, extend it if ours; return the holder.
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return holder
"""

RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LocalLeadership:
    """The only process leads: always the leader (no Redis)."""

    connected = True
    reason = "one process, no Redis: it leads"

    def __init__(self, replica: str = "local") -> None:
        self.replica = replica
        self.holder = replica
        self._callbacks: list[Callable[[bool], None]] = []

    @property
    def is_leader(self) -> bool:
        return True

    def on_change(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(is_leader)`` on each change; here once, with True, at :meth:`start`."""
        self._callbacks.append(callback)

    async def start(self) -> None:
        _tell(self._callbacks, True)

    async def stop(self) -> None:
        _tell(self._callbacks, False)


class Leadership:
    """This replica's part in the election of one leader through a Redis lease (IOLoop thread only).

    Parameters
    ----------
    redis_client
        An asyncio client (:func:`bizra_server.redis_bus.redis_client`).
    replica
        This replica's name, shown as :attr:`holder` on every replica.
    lease
        Seconds the lease lasts without renewal; it is renewed every ``lease / 3``.
    key
        The lease's key.
    """

    def __init__(self, redis_client, replica: str, *, lease: float = 10.0, key: str = "bizra:leader") -> None:
        if lease <= 0:
            raise ValueError("the lease must be > 0 seconds")
        self.redis = redis_client
        self.replica = replica
        self.lease = float(lease)
        self.key = key
        self.value = f"{replica} {uuid.uuid4().hex[:12]}"  # unique even if two replicas share a name
        self.holder: str | None = None
        self.connected = False
        self.reason = "not started"
        self._leading = False
        self._deadline = 0.0  # monotonic: the lease may end from here on
        self._timer: asyncio.TimerHandle | None = None
        self._callbacks: list[Callable[[bool], None]] = []
        self._task: asyncio.Task | None = None
        self._announced: bool | None = None
        self._acquire = redis_client.register_script(ACQUIRE_SCRIPT)
        self._release = redis_client.register_script(RELEASE_SCRIPT)

    @property
    def is_leader(self) -> bool:
        """True while this replica holds a lease that cannot have ended yet."""
        return self._leading and time.monotonic() < self._deadline

    def on_change(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(is_leader)`` on the IOLoop each time this replica becomes or stops being the leader."""
        self._callbacks.append(callback)

    async def start(self) -> None:
        """Start taking part (returns at once; the first attempt runs right away)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="leadership")

    async def stop(self) -> None:
        """Stop, and release the lease if it is still ours so another replica takes over at once."""
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        was_leading = self._leading
        self._step_down("stopped")
        if was_leading:
            try:
                await asyncio.wait_for(self._release(keys=[self.key], args=[self.value]), self.lease / 3)
            except Exception as exc:  # noqa: BLE001 - the lease then ends by itself
                log.warning("could not release the leader's lease (it expires within %.0f s): %s",
                            self.lease, describe(exc))
        self.connected, self.reason = False, "stopped"

    async def _run(self) -> None:
        period = self.lease / 3
        backoff = Backoff(first=min(period, 0.05), cap=period)
        while True:
            try:
                await self.attempt()
                backoff.reset()
                await asyncio.sleep(period)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - unreachable: not the leader any more, try again
                why = "no answer in time" if isinstance(exc, asyncio.TimeoutError) else describe(exc)
                self.connected, self.reason = False, f"cannot reach Redis at {client_address(self.redis)}: {why}"
                self._step_down(self.reason)
                self._log_state()
                await asyncio.sleep(backoff.next())

    async def attempt(self) -> bool:
        """One try at taking or renewing the lease; returns whether this replica leads now."""
        sent = time.monotonic()
        lease_ms = int(self.lease * 1000)
        value = await asyncio.wait_for(self._acquire(keys=[self.key], args=[self.value, lease_ms]),
                                       timeout=max(0.0, self._wait_limit(sent)))
        self.connected = True
        self.holder = value.rsplit(" ", 1)[0]
        if value == self.value:
            self.reason = "this replica leads"
            self._deadline = sent + self.lease * (1 - STEP_DOWN_MARGIN)
            self._arm_timer()
            if not self._leading:
                self._leading = True
                log.info("this replica (%s) is the leader now", self.replica)
                _tell(self._callbacks, True)
        else:
            self.reason = f"{self.holder} leads"
            self._step_down(self.reason)
        self._log_state()
        return self._leading

    def _wait_limit(self, sent: float) -> float:
        """How long a request may take: a leader must hear back before its lease may end."""
        limit = self.lease / 3
        if self._leading:
            limit = min(limit, self._deadline - sent)
        return limit

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0.0, self._deadline - time.monotonic()), self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self._leading and time.monotonic() >= self._deadline:
            self._step_down("the lease was not renewed in time")

    def _step_down(self, why: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._leading:
            self._leading = False
            log.warning("this replica (%s) is no longer the leader: %s", self.replica, why)
            _tell(self._callbacks, False)

    def _log_state(self) -> None:
        if self.connected != self._announced:
            self._announced = self.connected
            if self.connected:
                log.info("leader election through Redis: %s", self.reason)
            else:
                log.warning("leader election paused: %s; retrying", self.reason)


def _tell(callbacks: list[Callable[[bool], None]], leading: bool) -> None:
    for callback in callbacks:
        try:
            callback(leading)
        except Exception:  # noqa: BLE001 - one listener must not stop the election
            log.exception("a leadership callback failed")
