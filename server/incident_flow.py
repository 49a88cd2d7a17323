"""What follows an incident: a diagnosis off the IOLoop, its evidence stored, `incident` and `rca` published."""
from __future__ import annotations

import asyncio
import logging

from bizra_nb.diagnose import diagnose, incident_window
from bizra_nb.errors import BizraError
from bizra_nb.sources import MetricSource, open_source

log = logging.getLogger("bizra.incidents")


def incident_event(incident: dict, action: str) -> dict:
    keep = ("id", "title", "severity", "status", "service", "source", "opened_at", "acknowledged_at",
            "resolved_at", "report_url")
    data = {k: incident.get(k) for k in keep}
    top = (incident.get("diagnosis") or {}).get("ranking", [])[:1]
    data["top_cause"] = top[0]["service"] if top else None
    data["action"] = action
    return data


class IncidentFlow:
    """Diagnoses incidents with the configured metric source and the current CMDB."""

    def __init__(self, services) -> None:
        self.services = services
        self._source: MetricSource | None = None

    def source(self) -> MetricSource | None:
        settings = self.services.settings
        if self._source is None:
            if settings.prometheus_url:
                self._source = open_source(settings.prometheus_url, keeper=self.services.scorekeeper,
                                           cmdb=self.services.cmdb)
            elif settings.dataset:
                self._source = open_source(settings.dataset, keeper=self.services.scorekeeper)
        return self._source


    def run_diagnosis(self, incident: dict, *, start=None, end=None, anomaly_start=None,
                      services=None) -> dict:
        """Blocking: fetch, rank, and return the ``diagnose --format json`` document."""
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
        incident = await loop.run_in_executor(services.workers, store.get_incident, incident_id)
        try:
            doc = await loop.run_in_executor(services.workers, self.run_diagnosis, incident)
        except BizraError as exc:
            log.warning("diagnosis of incident %s not possible: %s", incident_id, exc.message)
            services.scorekeeper.record_violation("validation_failed", f"diagnosis of incident {incident_id}: "
                                                  f"{exc.message}")
            await loop.run_in_executor(services.workers, lambda: store.update_incident(
                incident_id, diagnosis_error=exc.message))
            return None
        incident = await loop.run_in_executor(services.workers, lambda: store.update_incident(
            incident_id, diagnosis=doc, diagnosis_error=None))
        services.hub.publish("rca", {
            "incident_id": incident_id,
            "anomaly_start": doc["anomaly_start"],
            "top_causes": [{k: c[k] for k in ("service", "score", "metric", "explanation")} for c in doc["ranking"][:3]],
            "report_url": incident.get("report_url"),
            "evidence_url": f"/rca/incidents/{incident_id}/evidence",
        })
        services.hub.publish("incident", incident_event(incident, "diagnosed"))
        return doc

    def start_diagnosis(self, incident_id: int) -> None:
        self.services.background.spawn(self.diagnose_incident(incident_id), f"diagnosis of incident {incident_id}")
