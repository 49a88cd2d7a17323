"""Background work never fails silently: failures become silent_failure violations."""
from __future__ import annotations

import asyncio

from tests.conftest import wait_until


def test_a_check_that_raises_is_a_silent_failure(server, http):
    def broken_check():
        raise RuntimeError("the check itself is broken")

    server.call(server.services.controller.add_check, "broken", broken_check)
    body = wait_until(lambda: "broken" in (b := http.get("/health").json())["components"] and b)
    assert body["violations"]["silent_failure"] >= 1
    assert body["components"]["broken"]["ok"] is False
    assert body["ahsan_score"] < 100.0
    assert server.services.controller.alive  # the loop went on


def test_a_background_task_that_raises_is_a_silent_failure(server, http):
    async def doomed():
        await asyncio.sleep(0)
        raise ValueError("lost work")

    server.call(lambda: server.services.background.spawn(doomed(), "doomed"))
    wait_until(lambda: http.get("/health").json()["violations"]["silent_failure"] == 1)
    logged = wait_until(lambda: server.services.store.recent_violations())
    assert logged[0]["kind"] == "silent_failure" and "lost work" in logged[0]["detail"]


def test_controller_cycles_count(server, http):
    wait_until(lambda: server.services.controller.cycle_count >= 3)
    assert "bizra_controller_cycles_total" in http.get("/metrics").text
