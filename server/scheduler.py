"""Scheduled runs: the monthly audit and the weekly benchmark by cron; a late or missed start is a silent_failure.

Each schedule's cron is evaluated in its time zone (``--audit-schedule-tz``, ``--benchmark-schedule-tz``;
UTC by default). A run gets the time it was due as its ``scheduled_for`` parameter (ISO-8601 UTC), so a
late or re-run audit still audits the month it was scheduled for; an audit gets the configured SLO spec
(``--slo-spec``) as its ``slo_spec`` when one is set. :meth:`Scheduler.listing` describes every
schedule (also those that are off, and why) for ``GET /schedules``; :meth:`Scheduler.run_now` starts one
at once ("run now", any replica), as if it were due at the current minute.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from bizra_nb.errors import BizraError, Conflict, NotFound, Unavailable, excerpt
from bizra_nb.parameters import server_confinement
from bizra_nb.runner import FINISHED, report_links
from bizra_nb.schedule import Cron, iso_utc, parse_cron, parse_zone, previous_month_of

log = logging.getLogger("bizra.scheduler")


class ScheduleOff(Conflict):
    """A schedule that is off (no cron, or nothing to run on) cannot be run now."""

    code = "schedule_off"


@dataclass
class Schedule:
    name: str
    cron: Cron | None  # None: off (an empty cron expression)
    notebook: str
    parameters: Callable[[datetime], dict]  # from the due time
    reason: str = ""  # why it is off; "": on

    @property
    def enabled(self) -> bool:
        return self.cron is not None and not self.reason

    @property
    def tz(self) -> str:
        return self.cron.tz if self.cron is not None else "UTC"


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
        self.known = list(schedules)  # every schedule, also those that are off (GET /schedules says why)
        self.schedules = [s for s in schedules if s.enabled]  # what ticks
        self.grace = grace
        self.base_url = base_url  # the server's own URL: a benchmark's target, allowed by the confinement
        self._run_now_lock = threading.Lock()

    @classmethod
    def from_settings(cls, services, base_url: Callable[[], str]) -> "Scheduler":
        settings = services.settings
        schedules = []
        audit_source = settings.audit_source or settings.prometheus_url
        audit_tz = settings.audit_schedule_tz
        audit = Schedule("audit", parse_cron(settings.audit_schedule, audit_tz) if settings.audit_schedule else None,
                         "compliance_audit",
                         lambda due: {"month": previous_month_of(due, audit_tz), "source": audit_source,
                                      "data_dir": ".",  # confined: the data dir itself
                                      "scheduled_for": iso_utc(due), "tz": audit_tz,
                                      # the configured SLO spec (accepted as configured by the confinement)
                                      **({"slo_spec": settings.slo_spec} if settings.slo_spec else {})})
        if not settings.audit_schedule:
            audit.reason = "off: --audit-schedule is empty"
        elif not audit_source:
            audit.reason = ("off: no platform metrics to audit; set --audit-source (a dataset file or a Prometheus "
                            "URL) or --prometheus-url")
            log.warning("scheduled audits are off: no platform metrics to audit; set --audit-source (a dataset "
                        "file or a Prometheus URL) or --prometheus-url, or BIZRA_AUDIT_SOURCE or "
                        "BIZRA_PROMETHEUS_URL (or --audit-schedule '' to silence this)")
        schedules.append(audit)
        bench_tz = settings.benchmark_schedule_tz
        benchmark = Schedule("benchmark",
                             parse_cron(settings.benchmark_schedule, bench_tz) if settings.benchmark_schedule else None,
                             "benchmark",
                             lambda due: {"target_url": base_url(), "duration": 10.0, "scheduled_for": iso_utc(due)})
        if not settings.benchmark_schedule:
            benchmark.reason = "off: --benchmark-schedule is empty"
        schedules.append(benchmark)
        return cls(services, schedules, grace=settings.schedule_grace, base_url=base_url)

    def find(self, name: str) -> Schedule:
        """The schedule called ``name`` (on or off); NotFound naming the known ones."""
        for schedule in self.known:
            if schedule.name == name:
                return schedule
        raise NotFound(f"no schedule {excerpt(name)}; schedules: {', '.join(s.name for s in self.known)}")

    def run_now(self, name: str, now: datetime | None = None) -> dict:
        """Start schedule ``name``'s run at once, as if due at the current minute (blocking: off the IOLoop).

        Any replica may: nothing is claimed, nothing counts as late, the schedule's own due times are untouched.
        The run's trigger is ``manual:<name>``.

        Raises
        ------
        NotFound
            For an unknown schedule.
        ScheduleOff
            (409) For a schedule that is off, with the reason.
        """
        schedule = self.find(name)
        if not schedule.enabled:
            raise ScheduleOff(f"schedule {name} is {schedule.reason}")
        due = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(second=0, microsecond=0)
        runner = self.services.runner
        with self._run_now_lock:  # a double click: the second finds the first's run (one process; see below)
            unfinished = self.unfinished_run(schedule)
            if unfinished is not None:
                return {**unfinished, "existing": True}
            run = runner.create(schedule.notebook, schedule.parameters(due), trigger=f"manual:{schedule.name}",
                                confine=server_confinement(self.services.settings, also=[self.base_url()]))
        runner.submit(run)
        return run

    def unfinished_run(self, schedule: Schedule) -> dict | None:
        """The schedule's queued or running run (scheduled or "run now"), if any: "run now" returns it rather
        than start a second (two replicas asked at the same instant may still both start one)."""
        triggers = (f"schedule:{schedule.name}", f"manual:{schedule.name}")
        for status in ("running", "queued"):
            runs = self.services.store.list_runs(trigger=triggers, status=status, limit=1)
            if runs:
                return runs[0]
        return None

    def listing(self, now: datetime | None = None) -> list[dict]:
        """Every schedule as ``GET /schedules`` shows it (blocking: reads the store)."""
        now = now or datetime.now(timezone.utc)
        store = self.services.store
        return [self.describe(s, now, last=store.get_meta(self.key(s)),
                              runs=store.list_runs(trigger=(f"schedule:{s.name}", f"manual:{s.name}"), limit=1))
                for s in self.known]

    def describe(self, schedule: Schedule, now: datetime, *, last: str | None, runs: list[dict]) -> dict:
        """One schedule: cron, zone, next fire (UTC and local), last due time, last run; why it is off."""
        fire = schedule.cron.next_fire(now) if schedule.enabled else None
        last_due = datetime.fromisoformat(last) if last else None
        run = runs[0] if runs else None
        return {
            "name": schedule.name, "notebook": schedule.notebook,
            "cron": schedule.cron.expression if schedule.cron is not None else "", "tz": schedule.tz,
            "enabled": schedule.enabled, "reason": schedule.reason or None,
            "next_fire": iso_utc(fire) if fire else None,
            "next_fire_local": fire.astimezone(parse_zone(schedule.tz)).isoformat() if fire else None,
            "next_fire_at": fire.timestamp() if fire else None,
            "last_due": iso_utc(last_due) if last_due else None,
            "last_due_at": last_due.timestamp() if last_due else None,
            "last_run": None if run is None else {
                "id": run["id"], "status": run["status"], "trigger": run["trigger"],
                "created_at": run["created_at"],
                "created": iso_utc(datetime.fromtimestamp(run["created_at"], timezone.utc)),
                "scheduled_for": (run.get("parameters") or {}).get("scheduled_for") or None,
                "links": report_links(run) if run["status"] in FINISHED else {}},
        }

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

