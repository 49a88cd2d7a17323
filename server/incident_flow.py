"""What follows an incident: a diagnosis off the IOLoop, its evidence stored, `incident` and `rca` published, each
step of it an event on the incident's timeline."""
from __future__ import annotations

import asyncio
import logging

from pathlib import Path

from bizra_nb.incidents import record_event
from bizra_nb.parameters import declared_parameters, server_confinement
from bizra_nb.reports import write_atomic
from bizra_nb.runner import FINISHED, available_notebooks, report_links, resolve_notebook
from bizra_nb.errors import BizraError
from bizra_nb.timeline import NOTEBOOK_EVENTS, for_notebook
from bizra_server.metrics import RunGauges

log = logging.getLogger("bizra.incidents")


def plain_incident(incident: dict) -> dict:
    """The incident fields a notebook needs, without the bulky diagnosis."""
    keep = ("id", "title", "severity", "status", "service", "opened_at", "acknowledged_at", "resolved_at",
            "anomaly_start", "labels", "annotations")
    return {k: incident.get(k) for k in keep if incident.get(k) is not None}


def incident_for_notebook(store, incident_id: int, *, events: int = NOTEBOOK_EVENTS) -> dict:
    """Blocking: the incident as a diagnosis notebook gets it (:func:`plain_incident`), with ``timeline``: its
    newest ``events`` timeline events in words (:func:`bizra_nb.timeline.for_notebook`), bounded.

    Raises
    ------
    NotFound
        No such incident. (A timeline that cannot be read is left out, logged: the diagnosis goes ahead.)
    """
    stored = store.get_incident(incident_id)
    incident = plain_incident(stored)
    try:  # completed from the incident's record (bizra_nb.timeline.complete): an incident older than its timeline
        incident["timeline"] = for_notebook(store.incident_timeline(incident_id, limit=events), limit=events,
                                            incident=stored)
    except BizraError as exc:
        log.warning("incident %s: its timeline is not in the diagnosis: %s", incident_id, exc.message)
    return incident


def diagnosis_detail(doc: dict | None) -> dict:
    """A diagnosis's outcome for the timeline: ``top_cause`` (and its ``top_cause_kind``), ``confidence`` (its
    level) and ``confidence_score``, ``verdict``; from a ``diagnose --format json`` document or a report's
    summary (whose ``top_causes`` are the same candidates)."""
    doc = doc or {}
    top = (top_causes(doc)[:1] if doc.get("ranking") is not None else
           [c for c in doc.get("top_causes") or [] if isinstance(c, dict)][:1])
    confidence = doc.get("confidence") if isinstance(doc.get("confidence"), dict) else {}
    return {"top_cause": top[0].get("service") if top else None, "top_cause_kind": top[0].get("kind") if top else None,
            "confidence": confidence.get("level"), "confidence_score": confidence.get("score"),
            "verdict": doc.get("verdict")}


def incident_event(incident: dict, action: str) -> dict:
    keep = ("id", "title", "severity", "status", "service", "source", "opened_at", "acknowledged_at",
            "resolved_at", "report_url")
    data = {k: incident.get(k) for k in keep}
    diagnosis = incident.get("diagnosis") or {}
    top = top_causes(diagnosis)[:1]
    data["top_cause"] = top[0]["service"] if top else None
    data["top_cause_kind"] = top[0].get("kind") if top else None
    data["verdict"] = diagnosis.get("verdict")
    data["confidence"] = (diagnosis.get("confidence") or {}).get("level")
    data["action"] = action
    return data


def top_causes(doc: dict, k: int = 3) -> list[dict]:
    """The first ``k`` causes of a ``diagnose --format json`` document, each ``service, score, metric,
    explanation, kind`` (and ``callers``/``edge`` when blamed from its callers): anomalous candidates only
    (own evidence or callers), none when the verdict is "nothing to blame"."""
    if doc.get("verdict") == "nothing_to_blame":
        return []
    keep = ("service", "score", "metric", "explanation", "kind", "callers", "edge")
    shown = [c for c in doc.get("ranking") or [] if c.get("evidence") or c.get("callers")]
    return [{k: c[k] for k in keep if k in c} for c in shown[:k]]


class IncidentFlow:
    """Diagnoses incidents with the configured metric source and the current CMDB."""

    def __init__(self, services) -> None:
        self.services = services
        self._source = None
        self._source_cmdb = None  # the CMDB the Prometheus source was built with
        self.run_gauges = RunGauges(services.metrics,
                                    notebooks=lambda: available_notebooks(self.services.runner.notebooks_dir))

    def source(self):
        """The configured metric source (pandas is imported here, at the first diagnosis, not at start).

        A Prometheus source queries each service with its CMDB ``selectors``: it is rebuilt when
        the CMDB changed (every CMDB write installs a new ``services.cmdb``), so a new selector
        takes effect at the next diagnosis, without a restart.
        """
        from bizra_nb.sources import open_source

        settings = self.services.settings
        cmdb = self.services.cmdb
        if settings.prometheus_url and (self._source is None or self._source_cmdb is not cmdb):
            self._source = open_source(settings.prometheus_url, keeper=self.services.scorekeeper, cmdb=cmdb)
            self._source_cmdb = cmdb
        elif self._source is None and settings.dataset:
            self._source = open_source(settings.dataset, keeper=self.services.scorekeeper)
        return self._source


    def run_diagnosis(self, incident: dict, *, start=None, end=None, anomaly_start=None,
                      services=None) -> dict:
        """Blocking: fetch, rank, and return the ``diagnose --format json`` document."""
        from bizra_nb.diagnose import diagnose, incident_window

        source = self.source()
        if source is None:
            raise BizraError("no metric source is configured (set --prometheus-url or --dataset)")
        if start is None or end is None:
            start, end = incident_window(incident, lookback_minutes=self.services.settings.diagnosis_lookback / 60)
        diagnosis, fetched = diagnose(source, start=start, end=end, anomaly_start=anomaly_start,
                                      services=services, cmdb=self.services.cmdb if len(self.services.cmdb) else None)
        doc = diagnosis.as_dict()
        doc["queries"] = fetched.queries
        doc["window"] = [fetched.frame.index[0].timestamp(), fetched.frame.index[-1].timestamp()]
        return doc

    async def diagnose_incident(self, incident_id: int) -> dict | None:
        """Diagnose an incident; store the evidence; publish `rca`. Expected failures are noted, not raised."""
        services = self.services
        loop = asyncio.get_running_loop()
        store = services.store

        def started() -> dict:
            incident = store.get_incident(incident_id)
            self.record(incident_id, "diagnosis_started", {"mode": "quick"})
            return incident

        incident = await loop.run_in_executor(services.io_pool, started)
        try:
            doc = await loop.run_in_executor(services.workers, self.run_diagnosis, incident)
        except Exception as exc:  # noqa: BLE001 - whatever stops it, the incident's evidence says so
            message = exc.message if isinstance(exc, BizraError) else f"the diagnosis failed: {type(exc).__name__}: {exc}"
            log.warning("diagnosis of incident %s not possible: %s", incident_id, message,
                        exc_info=None if isinstance(exc, BizraError) else exc)
            services.scorekeeper.record_violation("validation_failed" if isinstance(exc, BizraError) else
                                                  "silent_failure", f"diagnosis of incident {incident_id}: {message}")

            def failed() -> None:
                store.update_incident(incident_id, diagnosis_error=message)
                self.record(incident_id, "diagnosis_failed", {"mode": "quick", "error": message})

            await loop.run_in_executor(services.io_pool, failed)
            return None

        def finished() -> dict:
            incident = store.update_incident(incident_id, diagnosis=doc, diagnosis_error=None)
            # no report_url: the incident's report (if any) is another run's, not this diagnosis's
            self.record(incident_id, "diagnosis_finished", {
                "mode": "quick", **diagnosis_detail(doc), "evidence_url": f"/rca/incidents/{incident_id}/evidence",
                "run_id": None})
            return incident

        incident = await loop.run_in_executor(services.io_pool, finished)
        services.hub.publish("rca", {
            "incident_id": incident_id,
            "anomaly_start": doc["anomaly_start"],
            "verdict": doc.get("verdict"),
            "confidence": doc.get("confidence"),
            "top_causes": top_causes(doc),
            "report_url": incident.get("report_url"),
            "evidence_url": f"/rca/incidents/{incident_id}/evidence",
        })
        services.hub.publish("incident", incident_event(incident, "diagnosed"))
        return doc

    def record(self, incident_id: int, kind: str, detail: dict) -> None:
        """Blocking: a diagnosis event on the incident's timeline; a failed write is logged and scored, never raised."""
        record_event(self.services.store, incident_id, kind, detail=detail, keeper=self.services.scorekeeper)

    def start_diagnosis(self, incident_id: int) -> None:
        """The quick diagnosis now, and the diagnosis notebook's report when configured."""
        self.services.background.spawn(self.diagnose_incident(incident_id), f"diagnosis of incident {incident_id}")
        if self.services.settings.diagnose_with_notebook and self.source_location():
            self.services.background.spawn(self.start_notebook(incident_id), f"diagnosis run of incident {incident_id}")

    def warm_up(self) -> None:
        """Blocking (call off the IOLoop, once, after the start): load now what the first alert's diagnoses
        would load then, so that the first alert after a start does not wait for it: the diagnosis modules
        (pandas, the RCA engine) and papermill's reading of ``incident_diagnosis.ipynb``'s parameters
        (nbformat, its schema). Nothing is read from the metric source, nothing is recorded; without a
        metric source nothing is diagnosed, so nothing is loaded."""
        if not self.source_location():
            return
        try:
            import bizra_nb.diagnose  # noqa: F401 - pandas and the RCA engine, as run_diagnosis imports them
            if self.services.settings.diagnose_with_notebook:
                declared_parameters(resolve_notebook("incident_diagnosis", self.services.runner.notebooks_dir))
        except Exception as exc:  # noqa: BLE001 - the first alert loads it then, and says what fails
            log.warning("preparing the incident diagnoses: %s", exc)

    def source_location(self) -> str:
        settings = self.services.settings
        return settings.prometheus_url or settings.dataset

    async def start_notebook(self, incident_id: int) -> dict | None:
        """Queue the diagnosis notebook; when it cannot even be queued, ``report_error`` on the incident says why."""
        services = self.services
        loop = asyncio.get_running_loop()

        def create() -> dict:
            incident = services.store.get_incident(incident_id)
            snapshot = Path(services.settings.data_dir) / "cmdb.snapshot.yaml"
            write_atomic(snapshot, services.cmdb.dumps("yaml"))
            params = {"incident_id": incident_id, "incident": incident_for_notebook(services.store, incident_id),
                      "source": self.source_location(),
                      "cmdb": snapshot.name if len(services.cmdb) else "",  # confined: data dir relative
                      "symptom_service": incident.get("service") or "",
                      "lookback_minutes": services.settings.diagnosis_lookback / 60}
            run = services.runner.create("incident_diagnosis", params, trigger="incident", incident_id=incident_id,
                                         confine=server_confinement(services.settings))
            if not run.get("existing"):  # else the incident's unfinished run, submitted by whoever created it
                # first on the timeline, before the run can end (record never raises: the run is still submitted)
                self.record(incident_id, "diagnosis_started", {"mode": "report", "run_id": run["id"]})
                services.runner.submit(run)  # queued is submitted: nothing after this may leave it waiting
            if incident.get("report_error"):  # an earlier attempt could not start; this one did
                try:
                    services.store.update_incident(incident_id, report_error=None)
                except BizraError as exc:
                    log.warning("incident %s: could not clear its report error: %s", incident_id, exc.message)
            return run

        try:
            run = await loop.run_in_executor(services.io_pool, create)
        except Exception as exc:  # noqa: BLE001 - a read-only or full data dir, a store error: shown on the incident
            message = exc.message if isinstance(exc, BizraError) else f"{type(exc).__name__}: {exc}"
            message = f"the diagnosis report could not be started: {message}"
            log.warning("incident %s: %s", incident_id, message)
            services.scorekeeper.record_violation("run_failed", f"incident {incident_id}: {message}")

            def failed() -> dict:
                incident = services.store.update_incident(incident_id, report_error=message)
                self.record(incident_id, "diagnosis_failed", {"mode": "report", "error": message})
                return incident

            incident = await loop.run_in_executor(services.io_pool, failed)
            services.hub.publish("incident", incident_event(incident, "report"))
            return None
        return run

    def _count(self, run: dict) -> None:
        """The run metrics (queued, running by kind, ended, duration), each change once: see :class:`RunGauges`."""
        self.run_gauges.observe(run)

    def run_changed(self, run: dict) -> None:
        """The runner's listener (any thread): a `run` event; a finished diagnosis links from its incident."""
        services = self.services
        data = {k: run.get(k) for k in ("id", "kind", "status", "progress", "error", "incident_id", "trigger",
                                        "created_at", "started_at", "finished_at")}
        data["notebook"] = Path(run["notebook"]).stem
        data["links"] = report_links(run) if run["status"] in FINISHED else {}
        data["headline"] = (run.get("summary") or {}).get("headline")
        self._count(run)
        services.hub.publish_threadsafe("run", data)
        if run.get("incident_id") and run["status"] in FINISHED:
            summary = run.get("summary") or {}
            self.record(run["incident_id"], "diagnosis_finished" if run["status"] == "succeeded" else "diagnosis_failed",
                        {"mode": "report", "run_id": run["id"], "status": run["status"],
                         "report_url": (data["links"] or {}).get("html"), **diagnosis_detail(summary),
                         **({"error": str(run.get("error") or run["status"])[:1000]}
                            if run["status"] != "succeeded" else {})})
        if run.get("incident_id") and run["status"] in ("succeeded", "failed") and data["links"]:
            incident = services.store.update_incident(run["incident_id"], report_url=data["links"]["html"],
                                                      report_run=run["id"])
            services.hub.publish_threadsafe("rca", {
                "incident_id": incident["id"], "run_id": run["id"], "status": run["status"],
                "report_url": data["links"]["html"],
                "top_causes": (run.get("summary") or {}).get("top_causes", [])[:3],
                "verdict": (run.get("summary") or {}).get("verdict"),
                "confidence": (run.get("summary") or {}).get("confidence"),
            })
            services.hub.publish_threadsafe("incident", incident_event(incident, "report"))
