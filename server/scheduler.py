"""Scheduled runs: the monthly audit and the weekly benchmark by cron; a late or missed start is a silent_failure."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from bizra_nb.errors import BizraError, Unavailable
from bizra_nb.parameters import server_confinement
from bizra_nb.schedule import Cron, parse_cron, previous_month_of

log = logging.getLogger("bizra.scheduler")


@dataclass
class Schedule:
    name: str
    cron: Cron
    notebook: str
    parameters: Callable[[datetime], dict]  # from the due time


class Scheduler:
    """Starts each schedule's run once per due time; remembers the last one in the store.

    Only the leader replica ticks (:attr:`Services.leadership`); the due time is also claimed in the
    store with a compare-and-set, so a run starts once even when two replicas believe they lead
    for a moment (a leader paused past its lease), and a new leader starts what its predecessor
    missed (late: a ``silent_failure``).
    """

    def __init__(self, services, schedules: list[Schedule], *, grace: float,
                 base_url: Callable[[], str] = lambda: "") -> None:
        self.services = services
        self.schedules = schedules
        self.grace = grace
        self.base_url = base_url  # the server's own URL: a benchmark's target, allowed by the confinement

    @classmethod
    def from_settings(cls, services, base_url: Callable[[], str]) -> "Scheduler":
        settings = services.settings
        schedules = []
        audit_source = settings.audit_source or settings.prometheus_url
        if settings.audit_schedule:
            if audit_source:
                schedules.append(Schedule("audit", parse_cron(settings.audit_schedule), "compliance_audit",
                                          lambda due: {"month": previous_month_of(due), "source": audit_source,
                                                       "data_dir": "."}))  # confined: the data dir itself
            else:
                log.warning("scheduled audits are off: no platform metrics to audit; set --audit-source (a dataset "
                            "file or a Prometheus URL) or --prometheus-url, or BIZRA_AUDIT_SOURCE or "
                            "BIZRA_PROMETHEUS_URL (or --audit-schedule '' to silence this)")
        if settings.benchmark_schedule:
            schedules.append(Schedule("benchmark", parse_cron(settings.benchmark_schedule), "benchmark",
                                      lambda due: {"target_url": base_url(), "duration": 10.0}))
        return cls(services, schedules, grace=settings.schedule_grace, base_url=base_url)

    def key(self, schedule: Schedule) -> str:
        return f"schedule:{schedule.name}:last"

    def tick(self, now: datetime | None = None) -> list[dict]:
        """Start what is due (blocking: call it off the IOLoop); returns the runs started."""
        now = now or datetime.now(timezone.utc)
        store, runner, keeper = self.services.store, self.services.runner, self.services.scorekeeper
        started = []
        for schedule in self.schedules:
            due = schedule.cron.last_due(now)
            if due is None:
                continue
            last = store.get_meta(self.key(schedule))
            if last is None:  # first start: begin counting from now, do not replay the past
                store.claim_meta(self.key(schedule), None, due.isoformat())
                continue
            if datetime.fromisoformat(last) >= due:
                continue
            # the run is recorded before the due time is claimed: a leader killed between the two leaves a
            # queued run of its own (failed by the next leader as interrupted) and an unclaimed due time
            # (started by the next leader), never a due time claimed with no run
            try:
                run = runner.create(schedule.notebook, schedule.parameters(due), trigger=f"schedule:{schedule.name}",
                                    confine=server_confinement(self.services.settings, also=[self.base_url()]))
            except BizraError as exc:  # e.g. its source does not answer (pre-flight): this due time is missed
                if store.claim_meta(self.key(schedule), last, due.isoformat()):  # said once, by one replica
                    log.error("scheduled %s due %s could not start: %s", schedule.name, due.isoformat(), exc.message)
                    keeper.record_violation("silent_failure", f"schedule {schedule.name} due {due.isoformat()} "
                                                              f"could not start: {exc.message}"[:500])
                continue  # the other schedules due now still start
            if not store.claim_meta(self.key(schedule), last, due.isoformat()):
                store.cancel_queued_run(run["id"])  # another replica started this due time: ours never runs
                continue
            late = (now - due).total_seconds()
            if late > self.grace:
                log.error("scheduled %s due %s did not start on time (%.0f s late); starting it now",
                          schedule.name, due.isoformat(), late)
                keeper.record_violation("silent_failure", f"schedule {schedule.name} due {due.isoformat()} "
                                                          f"started {late:.0f} s late")
            else:
                keeper.record()
            runner.submit(run)
            started.append(run)
        return started

    async def step(self) -> None:
        """Tick off the IOLoop, on the leader only."""
        import asyncio

        if not self.services.leadership.is_leader:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(self.services.io_pool, self.tick)
        except Unavailable as exc:  # the store is down: scored once by the controller; a start it delays is late
            log.warning("schedules not checked: %s", exc.message)

