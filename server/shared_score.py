"""The Ahsan score over all replicas: per-second buckets in Redis, written in batches, read as one snapshot.

Each replica's :class:`~bizra_nb.score.ScoreKeeper` keeps counting in memory
(O(1), no I/O on the request path) and also hands its per-second deltas to
:meth:`ScoreKeeper.take_deltas`. :class:`SharedScore` drains them every
``flush_interval`` and adds them, in one round trip, to the hashes
``bizra:score:{second}`` (fields ``events``, each violation kind, and
``r:{replica}``: that replica's events), which expire ``window + 60`` s later.
At most every ``read_interval`` it sums the window's buckets in one round trip
and caches the platform's snapshot, so :meth:`SharedScore.snapshot` is a dict
copy: the same shape and formula as ``ScoreKeeper.snapshot()``, over every
replica, plus ``shared``.

No event is lost or counted twice across a Redis outage: a batch is written by
a Lua script together with a unique batch key (``SET NX``), so a batch whose
reply was lost is retried unchanged and applied at most once; deltas recorded
meanwhile are merged and written after it. While Redis is away the snapshot
is this replica's own, with ``shared: False`` and the reason. Deltas older
than the window are dropped (they no longer count anywhere).
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from typing import Callable

from bizra_nb.score import WEIGHTS, ScoreKeeper, ahsan_score, tier
from bizra_server.redis_bus import TIMEOUT, Backoff, client_address, describe

log = logging.getLogger("bizra.redis")

BUCKET_TTL_MARGIN = 60  # seconds a bucket outlives the window

WRITE_SCRIPT = """
-- KEYS[1]: the batch's key (applied once); KEYS[2..]: buckets; ARGV[1]: TTL s; then per bucket: n, field, value x n
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
local a = 2
for k = 2, #KEYS do
  local n = tonumber(ARGV[a])
  a = a + 1
  for _ = 1, n do
    redis.call('HINCRBY', KEYS[k], ARGV[a], ARGV[a + 1])
    a = a + 2
  end
  redis.call('EXPIRE', KEYS[k], ARGV[1])
end
return 1
"""

READ_SCRIPT = """
-- KEYS: the window's buckets; returns each field's total over them, flat: field, total, ...
local sums, order = {}, {}
for _, key in ipairs(KEYS) do
  local h = redis.call('HGETALL', key)
  for i = 1, #h, 2 do
    local f = h[i]
    if sums[f] == nil then
      sums[f] = 0
      order[#order + 1] = f
    end
    sums[f] = sums[f] + tonumber(h[i + 1])
  end
end
local out = {}
for _, f in ipairs(order) do
  out[#out + 1] = f
  out[#out + 1] = string.format('%.0f', sums[f])
end
return out
"""


def platform_snapshot(totals: dict[str, int], window: float) -> dict:
    """The score's snapshot from the summed bucket fields of the window (the formula of the ScoreKeeper).

    Examples
    --------
    >>> platform_snapshot({"events": 1000, "http_error": 20, "r:a": 600, "r:b": 400}, 300)["score"]
    98.0
    """
    events = totals.get("events", 0)
    violations = {kind: totals.get(kind, 0) for kind in WEIGHTS}
    score = ahsan_score(events, violations)
    return {
        "score": score,
        "tier": tier(score),
        "events": events,
        "violations": violations,
        "window_seconds": float(window),
        "shared": True,
        "replicas": {field[2:]: n for field, n in totals.items() if field.startswith("r:")},
    }


class SharedScore:
    """The platform's score, shared through Redis by every replica (IOLoop thread only).

    Parameters
    ----------
    keeper
        This replica's score keeper; its delta sharing is switched on here.
    redis_client
        An asyncio client (:func:`bizra_server.redis_bus.redis_client`), used only by this object's loop.
    replica
        This replica's name (the ``r:{replica}`` field, and ``replica`` in the snapshot).
    flush_interval
        Seconds between writes of the deltas.
    read_interval
        Seconds between reads of the window's buckets (at least ``flush_interval``).
    prefix
        The keys' prefix.
    clock
        Unix time; the buckets are seconds of it (tests may pass another).
    """

    def __init__(self, keeper: ScoreKeeper, redis_client, replica: str, *, flush_interval: float = 0.1,
                 read_interval: float = 0.5, prefix: str = "bizra:score",
                 clock: Callable[[], float] = time.time) -> None:
        keeper.share_deltas()
        self.keeper = keeper
        self.redis = redis_client
        self.replica = replica
        self.window = keeper.window
        self.flush_interval = flush_interval
        self.read_interval = max(read_interval, flush_interval)
        self.prefix = prefix
        self._clock = clock
        self.connected = False
        self.reason = "not started"
        self._announced: bool | None = None
        self._fresh: dict[int, list] = {}  # deltas taken from the keeper, not in a batch yet: [events, {kind: n}]
        self._batch: tuple[str, dict[int, list]] | None = None  # sent, outcome unknown: retried unchanged
        self._batches = 0
        self._boot = uuid.uuid4().hex[:12]
        self._platform: dict | None = None
        self._read_at = -math.inf
        self._task: asyncio.Task | None = None
        self._write = redis_client.register_script(WRITE_SCRIPT)
        self._read = redis_client.register_script(READ_SCRIPT)

    def snapshot(self) -> dict:
        """The platform's snapshot (cached, no I/O); this replica's own with ``shared: False`` when Redis is away."""
        if self.connected and self._platform is not None:
            return dict(self._platform)
        snap = self.keeper.snapshot()
        snap.update(shared=False, reason=self.reason, replica=self.replica)
        return snap

    async def start(self) -> None:
        """Start the write-and-read loop (returns at once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="shared score")

    async def stop(self) -> None:
        """Write what is left (best effort, within the client's timeout), then stop the loop."""
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        if self.connected:
            try:
                await asyncio.wait_for(self.flush(), TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - stopping anyway
                log.warning("the last score deltas were not written to Redis: %s", describe(exc))
        self.connected, self.reason = False, "stopped"

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = Backoff(first=self.flush_interval)
        while True:
            try:
                await self.flush()
                if loop.time() - self._read_at >= self.read_interval:
                    await self.refresh()
                    self._read_at = loop.time()
                    self._announce(True, f"buckets on Redis at {client_address(self.redis)}")
                backoff.reset()
                delay = self.flush_interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - down: keep the deltas, retry with backoff
                self._read_at = -math.inf
                self._announce(False, f"Redis at {client_address(self.redis)}: {describe(exc)}")
                delay = backoff.next()
            await asyncio.sleep(delay)

    async def flush(self) -> None:
        """Write the deltas recorded so far (one round trip; a batch left unconfirmed first, unchanged)."""
        fresh = self._fresh
        for second, (events, kinds) in self.keeper.take_deltas().items():
            delta = fresh.get(second)
            if delta is None:
                fresh[second] = [events, dict(kinds)]
            else:
                delta[0] += events
                for kind, n in kinds.items():
                    delta[1][kind] = delta[1].get(kind, 0) + n
        oldest = math.floor(self._clock() - self.window)
        for deltas in (fresh, self._batch[1] if self._batch else {}):
            for second in [s for s in deltas if s <= oldest]:
                del deltas[second]  # out of the window: it counts nowhere any more
        while True:
            if self._batch is None:
                if not fresh:
                    return
                self._batches += 1
                self._batch = (f"{self.prefix}:batch:{self.replica}:{self._boot}:{self._batches}", fresh)
                self._fresh = fresh = {}
            key, deltas = self._batch
            if deltas:
                await self._write(keys=[key, *(f"{self.prefix}:{s}" for s in deltas)],
                                  args=self._write_args(deltas))
            self._batch = None

    def _write_args(self, deltas: dict[int, list]) -> list:
        args: list = [int(self.window) + BUCKET_TTL_MARGIN]
        replica_field = f"r:{self.replica}"
        for events, kinds in deltas.values():
            fields = [("events", events), (replica_field, events), *((k, n) for k, n in kinds.items() if n)]
            args.append(len(fields))
            for field, n in fields:
                args += (field, n)
        return args

    async def refresh(self) -> dict:
        """Read the window's buckets (one round trip) and cache the platform's snapshot; returns it."""
        now = int(self._clock())
        first = math.floor(now - self.window) + 1
        flat = await self._read(keys=[f"{self.prefix}:{s}" for s in range(first, now + 1)])
        totals = {flat[i]: int(flat[i + 1]) for i in range(0, len(flat), 2)}
        snap = platform_snapshot(totals, self.window)
        snap["replica"] = self.replica
        self._platform = snap
        return snap

    def _announce(self, connected: bool, reason: str) -> None:
        self.connected, self.reason = connected, reason
        if connected == self._announced:
            return
        self._announced = connected
        if connected:
            log.info("the score is shared by the replicas through %s", reason)
        else:
            log.warning("the score is this replica's alone until Redis is back: %s", reason)
