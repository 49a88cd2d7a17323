"""`/slo`: each SLO's error budget for its current period, and the deploy gate `/slo/{name}/deploy-allowed`.

The reads are open GETs, like ``/health``: a CI/CD pipeline asks the gate without the API token
(nothing here changes state, and the numbers are the ones the status page shows anyone who opens
it). The one-line gate::

    curl --fail-with-body --silent --show-error http://HOST:8080/slo/bizra-api-availability/deploy-allowed

exits 0 when deploys are allowed (200) and 22 when the budget is exhausted or burning fast (409)
or unknown (503: no source, the source does not answer, stale data), printing the JSON answer with its
``reason`` either way (curl 7.76 or later; an older curl: ``--fail``, which prints no reason).

The budgets are evaluated off the IOLoop from the metric source, ``--audit-source`` or else
``--prometheus-url``; Prometheus' queries of one evaluation have a deadline
(:data:`bizra_nb.slo_prometheus.EVALUATION_DEADLINE`), past which the budgets are unknown. The evaluations
never run on the services' worker threads (the diagnoses' CPU pool: during an incident storm a pipeline's
gate would wait behind diagnoses) but on executors of their own, shut down with the others: requests for
*now* on ONE thread of their own (``bizra-slo-now``; they share one evaluation, so one thread is all they
need, and it is never queued behind ``?at=`` work), ``?at=`` on :data:`AT_WORKERS` others
(``bizra-slo-at``). Requests for *now* share one evaluation: while one is in flight, the others wait
for it, and its answer is reused for :data:`CACHE_TTL` seconds, so a gate polled by many pipelines asks
the source at most once per TTL. ``?at=`` (taken to the minute: seconds are dropped) runs on its own
threads, so a stream of past instants cannot hold up diagnoses or the gate for now; the same minute
asked again is answered from a cache of the last :data:`AT_CACHE` minutes, and when more than
:data:`AT_WAITING` evaluations already wait for a thread, the request gets 429 ``too_many_requests``
with ``Retry-After``.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bizra_nb.errors import BizraError, InvalidInput, InvalidSetting, NotFound, excerpt
from bizra_nb.runner import report_links
from bizra_nb.url_login import public_url
from bizra_server.base import BaseHandler

log = logging.getLogger("bizra.slo")
CACHE_TTL = 10.0  # seconds an evaluation for "now" is reused: budgets move over hours; a Prometheus rule every 30 s+
NAME = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")  # an SLO's name (slo_spec.SLO.name)
MAX_AT = 64  # characters of ?at= read
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)  # ?at= before it: a 400 (pandas cannot hold year 1)
WARNING_REMAINING = 0.25  # under a quarter of the budget left: amber (API16's colour rules)
AT_WORKERS = 2  # threads evaluating ?at= (their own: the services' workers run diagnoses)
AT_WAITING = 4  # ?at= evaluations that may wait for one of those threads; one more is a 429
AT_CACHE = 64  # ?at= evaluations kept (the least recently asked minute goes first)
AT_RETRY_AFTER = 5  # seconds a 429 for ?at= asks the client to wait


def load_slos(settings) -> list:
    """The SLOs of ``settings.slo_spec`` ("" → the platform's default spec).

    Raises
    ------
    InvalidSetting
        ``field="slo_spec"``, one line per problem of the spec (``bizra-nb serve`` prints them and exits 2).
    """
    from bizra_nb.slo_spec import SpecError, load_specs

    try:
        return load_specs([settings.slo_spec] if settings.slo_spec else [])
    except SpecError as exc:
        problems = list(getattr(exc, "problems", None) or []) or [exc.message]
        raise InvalidSetting("\n".join(problems), field="slo_spec") from None


def source_kind(source: str) -> str | None:
    """``"prometheus"`` for an http(s) URL, ``"dataset"`` for a file, None without a source."""
    if not source:
        return None
    return "prometheus" if re.match(r"(?i)https?://", source) else "dataset"


def shown_source(source: str) -> str:
    """The source as the open API may show it: a URL without its login, a dataset file's name without its folder."""
    return public_url(source) if source_kind(source) == "prometheus" else Path(source).name


def budget_state(entry: dict) -> str:
    """ok, warning, exhausted, fast_burn or unknown, from ``remaining`` and ``alerting`` (API16's colours).

    unknown also when the figures are ``stale`` or the gate cannot answer (``deploy_allowed`` None): the page
    shows the old numbers as stale separately; the state never says "ok" when the gate says 503.
    """
    remaining, alerting = entry.get("remaining"), entry.get("alerting")
    if entry.get("error") and remaining is None:
        return "unknown"
    if entry.get("stale") or ("deploy_allowed" in entry and entry["deploy_allowed"] is None):
        return "unknown"
    if remaining is not None and remaining <= 0:
        return "exhausted"
    if alerting == "page":
        return "fast_burn"
    if remaining is None:
        return "warning" if alerting == "ticket" else "unknown"
    return "warning" if alerting == "ticket" or remaining < WARNING_REMAINING else "ok"


def unknown_entry(slo, why: str) -> dict:
    """An SLO without numbers (its evaluation failed): what the spec says, ``error`` saying why."""
    return {"slo": slo.name, "display_name": slo.display_name, "service": slo.service, "target": slo.target,
            "window": slo.window.describe(), "budgeting": slo.budgeting, "start": None, "end": None, "period_start": None,
            "period_end": None, "unit": None, "total": None, "measured": None, "bad": None, "allowed": None,
            "attainment": None, "consumed": None, "remaining": None, "met": None, "burn_rates": {},
            "alerting": None, "explanation": why, "source": None, "error": why, "as_of": None, "no_data": None,
            "stale": False, "stale_reason": None}


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class Evaluation:
    """Every SLO's budget at one instant, as the API answers it."""

    as_of: str
    source: str | None
    slos: list[dict]
    by_name: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_name = {entry["slo"]: entry for entry in self.slos}

    def as_json(self) -> dict:
        return {"source": self.source, "as_of": self.as_of, "slos": self.slos}


class TooBusy(Exception):
    """Too many ``?at=`` evaluations already wait for a thread (a 429)."""


class ErrorBudgets:
    """The loaded SLOs and their evaluation: one in flight per instant, the one for *now* on a thread of its own
    and reused for ``ttl`` s, ``?at=`` ones on ``at_workers`` other threads, the last ``at_cache`` of them kept."""

    def __init__(self, slos: list, source: str, *, ttl: float = CACHE_TTL, at_workers: int = AT_WORKERS,
                 at_waiting: int = AT_WAITING, at_cache: int = AT_CACHE) -> None:
        self.slos = slos
        self.source = source
        self.ttl = ttl
        self.evaluations = 0  # how many times the source was asked (tests, the benchmark)
        self._current: tuple[float, Evaluation] | None = None  # (monotonic time it was made, the evaluation)
        self._flights: dict[datetime | None, asyncio.Future] = {}
        self.at_workers, self.at_waiting, self.at_cache = at_workers, at_waiting, at_cache
        self._at_pool: ThreadPoolExecutor | None = None  # made on the first ?at=
        self._now_pool: ThreadPoolExecutor | None = None  # made on the first evaluation for now (one thread)
        # ?at= minute -> (monotonic time made, evaluation, every budget had numbers); LRU order
        self._at_done: OrderedDict[datetime, tuple[float, Evaluation, bool]] = OrderedDict()

    def close(self) -> None:
        """Stop the evaluations' threads (the server's shutdown; an evaluation in flight ends at its deadline)."""
        for pool in (self._now_pool, self._at_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    @classmethod
    def from_settings(cls, settings) -> "ErrorBudgets":
        """Load the spec (InvalidSetting for a bad one) and take the metric source of the settings."""
        return cls(load_slos(settings), settings.audit_source or settings.prometheus_url)

    @property
    def names(self) -> list[str]:
        return [slo.name for slo in self.slos]

    def check_name(self, name: str) -> str:
        """``name`` when an SLO has it; NotFound naming the known names (a malformed name is not echoed whole)."""
        if NAME.fullmatch(name) and name in self.names:
            return name
        shown = excerpt(name) if NAME.fullmatch(name) else "that name (an SLO name is lowercase letters, digits and '-')"
        raise NotFound(f"no SLO named {shown}; known: {', '.join(self.names) or 'none'}", field="name")

    async def evaluation(self, services, at: datetime | None = None) -> Evaluation:
        """The budgets at ``at`` (None: now, possibly the one made less than ``ttl`` s ago; else to the minute).

        Raises
        ------
        TooBusy
            ``at`` is neither kept nor in flight, and :attr:`at_waiting` evaluations already wait for a thread.
        """
        if at is None and self._current is not None and time.monotonic() - self._current[0] < self.ttl:
            return self._current[1]
        if at is not None:
            at = at.replace(second=0, microsecond=0)
            kept = self._at_done.get(at)
            if kept is not None and (kept[2] or time.monotonic() - kept[0] < self.ttl):  # a failure: kept ttl s
                self._at_done.move_to_end(at)
                return kept[1]
        flight = self._flights.get(at)
        if flight is None:
            if at is not None:
                pending = sum(1 for key in self._flights if key is not None)
                if pending >= self.at_workers + self.at_waiting:
                    raise TooBusy(f"{pending - self.at_workers} evaluations for other ?at= times are waiting already; "
                                  f"ask again in {AT_RETRY_AFTER} s (or leave out at: now is shared and cached)")
            flight = asyncio.ensure_future(self._evaluate(services, at))
            self._flights[at] = flight
            flight.add_done_callback(lambda done: self._flights.pop(at, None) if self._flights.get(at) is done else None)
        return await asyncio.shield(flight)  # a client going away does not cancel the others' evaluation

    async def _evaluate(self, services, at: datetime | None) -> Evaluation:
        moment = at or datetime.now(timezone.utc)
        loop = asyncio.get_running_loop()
        kind = source_kind(self.source)
        if kind is not None:
            self.evaluations += 1
        if at is None:  # never the services' workers: the gate must not wait behind diagnoses
            if self._now_pool is None:
                self._now_pool = ThreadPoolExecutor(1, "bizra-slo-now")
            pool = self._now_pool
        else:
            if self._at_pool is None:
                self._at_pool = ThreadPoolExecutor(self.at_workers, "bizra-slo-at")
            pool = self._at_pool
        entries = await loop.run_in_executor(pool, self._budgets, at)
        audit_url = await loop.run_in_executor(services.io_pool, latest_audit_url, services.store)
        for entry in entries:
            entry.setdefault("deploy_allowed", None)
            entry.setdefault("reason", entry.get("error"))
            entry.update(state=budget_state(entry), audit_url=audit_url)
        evaluation = Evaluation(iso(moment), kind, entries)
        if at is None:
            self._current = (time.monotonic(), evaluation)
        else:
            self._at_done[at] = (time.monotonic(), evaluation, not any(e.get("error") for e in entries))
            self._at_done.move_to_end(at)
            while len(self._at_done) > self.at_cache:
                self._at_done.popitem(last=False)
        return evaluation

    def _budgets(self, at: datetime | None) -> list[dict]:
        """Each SLO's budget and deploy verdict from the source (worker thread); a failure makes every SLO
        unknown, saying why."""
        shown = shown_source(self.source)
        try:
            import pandas as pd

            from bizra_nb.slo_budget import status

            budgets = status(self.slos, self.source, at=None if at is None else pd.Timestamp(at))
            entries = [{**budget.to_dict(), **deploy_verdict(budget)} for budget in budgets]
        except BizraError as exc:
            entries = [unknown_entry(slo, f"{shown}: {exc.message}") for slo in self.slos]
        except Exception as exc:  # noqa: BLE001 - a bug: logged with its traceback, answered as unknown (never a 500)
            log.exception("evaluating the SLOs from %s failed", shown)
            entries = [unknown_entry(slo, f"the budgets could not be evaluated from {shown}: {type(exc).__name__} "
                                          "(see the server log)") for slo in self.slos]
        for entry in entries:
            for key in ("error", "explanation", "reason"):
                if isinstance(entry.get(key), str) and shown != self.source:  # no login, no folders
                    entry[key] = entry[key].replace(self.source, shown)
            if entry.get("deploy_allowed") is None and entry.get("reason") and shown not in entry["reason"]:
                entry["reason"] = f"{shown}: {entry['reason']}"  # which source: the 503 says what to look at
        return entries


def deploy_verdict(budget) -> dict:
    """``deploy_allowed`` and ``reason``: False with "budget exhausted: …" or "fast burn: …" (C's
    :func:`~bizra_nb.slo_budget.deploy_decision`); None with the reason when there is no number to decide on."""
    from bizra_nb.slo_budget import deploy_decision

    if budget.error:  # no source, the source down, no data: the gate cannot see (a 503, not a 409)
        return {"deploy_allowed": None, "reason": budget.error}
    if budget.stale:  # the numbers are of data that ended long ago: the budget now is unknown
        return {"deploy_allowed": None, "reason": deploy_decision(budget)[1].removeprefix("budget unknown: ")}
    allowed, reason = deploy_decision(budget)
    if allowed and budget.remaining is None:
        return {"deploy_allowed": None, "reason": "no budget number: the source has no data for this SLO yet"}
    return {"deploy_allowed": allowed, "reason": reason}


def latest_audit_url(store) -> str | None:
    """The report of the newest succeeded compliance audit (``/reports/…/report.html``), or None."""
    try:
        runs = store.list_runs(status="succeeded", notebook="compliance_audit", limit=1)
    except BizraError:
        return None  # the store is down: /ready says so; the budgets do not depend on it
    return report_links(runs[0]).get("html") if runs else None


def parse_at(raw: str | None) -> datetime | None:
    """``?at=``: ISO-8601 with an offset (``Z``, ``+02:00``), from 1970 to now; InvalidInput naming ``at``.

    Every message shows an excerpt of the raw value (never a time computed from it: an extreme offset
    such as ``9999-12-31T23:59:59-23:59`` has no UTC time a datetime can hold).
    """
    if raw is None:
        return None
    text, shown = raw.strip()[:MAX_AT + 1], excerpt(raw)
    if re.fullmatch(r"[^ ]+T[^ ]+ \d{2}:?\d{2}", text):
        raise InvalidInput("at: the offset's '+' arrived as a space: write it as %2B in a URL (or use Z)", field="at")
    try:
        if len(text) > MAX_AT:
            raise ValueError
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text)
    except (ValueError, OverflowError):
        raise InvalidInput(f"at: {shown} is not an ISO-8601 time with an offset "
                           "(e.g. 2026-09-30T23:59:00Z)", field="at") from None
    if moment.tzinfo is None:
        raise InvalidInput(f"at: {shown} has no offset: add Z (UTC) or +hh:mm", field="at")
    try:
        utc = moment.astimezone(timezone.utc)
    except (OverflowError, ValueError):  # year 1 or 9999 shifted out of the range by its offset
        utc = EARLIEST.replace(year=1) if moment.year < 1970 else datetime.max.replace(tzinfo=timezone.utc)
    if utc < EARLIEST:
        raise InvalidInput(f"at: {shown} is before 1970: no metrics are that old", field="at")
    if utc > datetime.now(timezone.utc):
        raise InvalidInput(f"at: {shown} is in the future: budgets are measured up to now", field="at")
    return utc


def figures_as_of(entry: dict, evaluation: Evaluation) -> str:
    """The time an SLO's figures are for (a dataset's last data may be earlier than asked), ISO-8601 with Z."""
    try:
        return iso(datetime.fromisoformat(entry["as_of"])) if entry.get("as_of") else evaluation.as_of
    except (TypeError, ValueError):
        return evaluation.as_of


class SloBase(BaseHandler):
    """Open GETs, never cached by a proxy: the answer is the budget now."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Cache-Control", "no-store")

    @property
    def budgets(self) -> ErrorBudgets:
        return self.services.error_budgets

    async def evaluation(self) -> Evaluation | None:
        """The evaluation asked for, or None after answering 429 (too many ``?at=`` evaluations waiting)."""
        at = parse_at(self.get_query_argument("at", None))
        try:
            return await self.budgets.evaluation(self.services, at)
        except TooBusy as exc:
            self.set_header("Retry-After", str(AT_RETRY_AFTER))
            self.write_json({"error": {"code": "too_many_requests", "message": str(exc), "field": "at"}}, status=429)
            return None

    async def entry(self, name: str) -> dict | None:
        """SLO ``name``'s entry of the evaluation asked for, ``as_of`` the time of its figures; NotFound for an
        unknown name; None after answering 429 (see :meth:`evaluation`)."""
        name = self.budgets.check_name(name)
        evaluation = await self.evaluation()
        if evaluation is None:
            return None
        entry = evaluation.by_name[name]
        return {**entry, "as_of": figures_as_of(entry, evaluation)}


class SlosHandler(SloBase):
    async def get(self) -> None:
        evaluation = await self.evaluation()
        if evaluation is not None:
            self.write_json(evaluation.as_json())


class SloHandler(SloBase):
    async def get(self, name: str) -> None:
        entry = await self.entry(name)
        if entry is not None:
            self.write_json(entry)


class DeployAllowedHandler(SloBase):
    """200 allowed; 409 ``deploy_blocked`` (budget exhausted, fast burn); 503 ``slo_unknown`` (no number, stale)."""

    async def get(self, name: str) -> None:
        entry = await self.entry(name)
        if entry is None:
            return
        body: dict[str, Any] = {"allowed": bool(entry["deploy_allowed"]), "slo": entry["slo"], "state": entry["state"],
                                "budget_remaining": entry.get("remaining"), "burn_rates": entry.get("burn_rates"),
                                "alerting": entry.get("alerting"), "as_of": entry["as_of"],
                                "stale": bool(entry.get("stale")), "reason": entry["reason"]}
        if entry["deploy_allowed"] is None:
            self.dependency_down = True  # the source's failure, not ours (scored by its own checks)
            self.set_header("Retry-After", "30")
            body["error"] = {"code": "slo_unknown", "message": entry["reason"]}
            self.write_json(body, status=503)
        elif not entry["deploy_allowed"]:
            body["error"] = {"code": "deploy_blocked", "message": entry["reason"]}
            self.write_json(body, status=409)
        else:
            self.write_json(body)


_NAME = r"(?P<name>[^/]+)"  # checked against NAME in the handler: a 404 naming the known SLOs, never a no-such-route
handlers = [
    (r"/slo", SlosHandler),
    (rf"/slo/{_NAME}/deploy-allowed", DeployAllowedHandler),
    (rf"/slo/{_NAME}", SloHandler),
]
