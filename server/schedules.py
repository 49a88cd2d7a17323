"""`/schedules`: the schedules with their time zone, next fire, last due time and last run; "run now"."""
from __future__ import annotations

from bizra_server.base import BaseHandler
from bizra_server.runs import run_json


class SchedulesHandler(BaseHandler):
    async def get(self) -> None:
        schedules = await self.blocking(self.services.scheduler.listing)
        self.write_json({"schedules": schedules})


class RunScheduleHandler(BaseHandler):
    """Start a schedule's run now (token): trigger ``manual:<name>``, ``scheduled_for`` the current minute;
    200 with the run already queued or running for that schedule instead of a second one."""

    async def post(self, name: str) -> None:
        run = await self.blocking(self.services.scheduler.run_now, name)
        self.set_header("Location", f"/runs/{run['id']}")
        if run.get("existing"):  # its run is already queued or running: that run, once (a double click)
            self.write_json({**run_json(run), "deduplicated": True}, status=200)
            return
        self.write_json(run_json(run), status=201)


handlers = [
    (r"/schedules", SchedulesHandler),
    (r"/schedules/(?P<name>[^/]{1,100})/run", RunScheduleHandler),
]
