"""Background work that never dies silently: every failure is logged and scored as a silent_failure."""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from bizra_nb.score import ScoreKeeper

log = logging.getLogger("bizra.background")


class Background:
    """Owns the server's background tasks: periodic loops and one-off jobs."""

    def __init__(self, scorekeeper: ScoreKeeper) -> None:
        self.scorekeeper = scorekeeper
        self.tasks: set[asyncio.Task] = set()

    def failed(self, name: str, exc: BaseException) -> None:
        log.error("background task %s failed: %r", name, exc, exc_info=exc)
        self.scorekeeper.record_violation("silent_failure", f"{name}: {exc!r}")

    def spawn(self, coro: Awaitable, name: str) -> asyncio.Task:
        """Run ``coro`` as a task; if it raises, the failure is recorded, not lost."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, name))
        return task

    def _done(self, task: asyncio.Task, name: str) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.failed(name, task.exception())

    def every(self, interval: float, step: Callable[[], Awaitable], name: str) -> asyncio.Task:
        """Call ``step()`` every ``interval`` seconds until cancelled; a failing step does not stop the loop."""

        async def loop() -> None:
            while True:
                try:
                    await step()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the point is to catch everything
                    self.failed(name, exc)
                await asyncio.sleep(interval)

        return self.spawn(loop(), name)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
