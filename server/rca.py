"""`/rca/…`: incidents (list, open, get, acknowledge/resolve), their evidence, and a quick synchronous diagnosis."""
from __future__ import annotations

import time

from bizra_nb.errors import InvalidInput
from bizra_nb.incidents import SEVERITIES, STATUSES, change_status, durations, record_event, severity_from_signals
from bizra_nb.times import parse_time
from bizra_server.base import ApiError, BaseHandler
from bizra_server.incident_flow import incident_event


def _incident_json(incident: dict) -> dict:
    return {**incident, **durations(incident)}


def _incident_id(raw: str) -> int:
    return int(raw)  # the route admits digits only


class IncidentsHandler(BaseHandler):
    async def get(self) -> None:
        status = self.choice_argument("status", STATUSES)
        severity = self.choice_argument("severity", SEVERITIES)
        limit = self.int_argument("limit", 100, low=1, high=1000)
        service = self.get_query_argument("service", None)
        rows = await self.blocking(self.store.list_incidents, status=status, severity=severity,
                                   service=service, limit=limit)
        self.write_json({"incidents": [_incident_json(r) for r in rows], "count": len(rows)})

    async def post(self) -> None:
        body = self.json_object()
        title = body.get("title")
        if not isinstance(title, str) or not title.strip():
            raise InvalidInput("title: a non-empty string is required", field="title")
        severity = body.get("severity")
        if severity is None:
            severity = severity_from_signals(score=self.scorekeeper.snapshot()["score"])
        elif severity not in SEVERITIES:
            raise InvalidInput(f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}", field="severity")
        service = body.get("service")
        if service is not None and not isinstance(service, str):
            raise InvalidInput("service must be a string", field="service")
        anomaly_start = parse_time(body.get("anomaly_start"), name="anomaly_start")
        diagnose_now = body.get("diagnose", False)
        if not isinstance(diagnose_now, bool):
            raise InvalidInput("diagnose must be true or false", field="diagnose")
        fields = {"title": title.strip()[:200], "severity": severity, "service": service, "source": "api",
                  "opened_at": anomaly_start if anomaly_start is not None else time.time()}
        if anomaly_start is not None:
            fields["anomaly_start"] = anomaly_start
        incident = await self.blocking(self.store.create_incident, **fields)
        await self.blocking(record_event, self.store, incident["id"], "opened",
                            actor=self.services.settings.operator_name, keeper=self.scorekeeper,
                            ts=min(incident["opened_at"], time.time()),
                            detail={"source": "api", "title": incident["title"], "severity": incident["severity"],
                                    "service": incident.get("service")})
        self.hub.publish("incident", incident_event(incident, "opened"))
        if diagnose_now:
            self.services.incident_flow.start_diagnosis(incident["id"])
        self.write_json(_incident_json(incident), status=201)


class IncidentHandler(BaseHandler):
    async def get(self, incident_id: str) -> None:
        incident = await self.blocking(self.store.get_incident, _incident_id(incident_id))
        self.write_json(_incident_json(incident))

    async def patch(self, incident_id: str) -> None:
        body = self.json_object("status", "note")
        note = body.get("note")
        if note is not None and not isinstance(note, str):
            raise InvalidInput("note must be a string", field="note")
        incident = await self.blocking(change_status, self.store, _incident_id(incident_id),
                                       body.get("status"), note=note, actor=self.services.settings.operator_name,
                                       keeper=self.scorekeeper)
        self.hub.publish("incident", incident_event(incident, incident["status"]))
        self.write_json(_incident_json(incident))


class EvidenceHandler(BaseHandler):
    """The incident's diagnosis: ``pending``, ``ready``, or ``failed`` with why (the quick diagnosis, or the
    diagnosis report that could not be started); ``report`` says how the report is doing."""

    async def get(self, incident_id: str) -> None:
        incident = await self.blocking(self.store.get_incident, _incident_id(incident_id))
        diagnosis = incident.get("diagnosis")
        errors = [e for e in (incident.get("diagnosis_error"), incident.get("report_error")) if e]
        status = "failed" if errors else ("ready" if diagnosis else "pending")
        report = {"status": "failed" if incident.get("report_error") else ("ready" if incident.get("report_url")
                                                                           else "none"),
                  "error": incident.get("report_error"), "url": incident.get("report_url")}
        self.write_json({"incident_id": incident["id"], "status": status, "error": "; ".join(errors) or None,
                         "diagnosis": diagnosis, "report": report})


class IncidentDiagnoseHandler(BaseHandler):
    async def post(self, incident_id: str) -> None:
        incident = await self.blocking(self.store.get_incident, _incident_id(incident_id))
        self.services.incident_flow.start_diagnosis(incident["id"])
        self.write_json({"incident_id": incident["id"], "status": "started",
                         "evidence_url": f"/rca/incidents/{incident['id']}/evidence"}, status=202)


class DiagnoseHandler(BaseHandler):
    """Synchronous quick diagnosis of a window; runs on the worker threads."""

    async def post(self) -> None:
        body = self.json_object("start", "end", "anomaly_start", "services", "dataset")
        start = parse_time(body.get("start"), name="start")
        end = parse_time(body.get("end"), name="end")
        if start is None or end is None:
            raise InvalidInput("start and end are required (unix seconds or ISO-8601)", field="start")
        services = body.get("services")
        if services is not None and (not isinstance(services, list) or not all(isinstance(s, str) for s in services)):
            raise InvalidInput("services must be a list of service names", field="services")
        flow = self.services.incident_flow
        source = flow.source()
        if body.get("dataset"):
            source = self._dataset_in_data_dir(body["dataset"])
        if source is None:
            raise ApiError(409, "no metric source is configured on the server (--prometheus-url or --dataset)",
                           code="no_source")
        from bizra_nb.diagnose import diagnose

        cmdb = self.services.cmdb if len(self.services.cmdb) else None
        diagnosis, fetched = await self.compute(diagnose, source, start=start, end=end,
                                                 anomaly_start=body.get("anomaly_start"), services=services, cmdb=cmdb)
        self.write_json({**diagnosis.as_dict(), "queries": fetched.queries})

    def _dataset_in_data_dir(self, name) -> object:
        """A dataset file named relative to the data dir; nothing outside it is readable through the API."""
        from bizra_nb.parameters import confine_path
        from bizra_nb.sources import open_source

        path = confine_path(name, data_dir=self.services.settings.data_dir, name="dataset")
        return open_source(path, keeper=self.scorekeeper)


_ID = r"(?P<incident_id>[0-9]{1,12})"
handlers = [
    (r"/rca/incidents", IncidentsHandler),
    (rf"/rca/incidents/{_ID}", IncidentHandler),
    (rf"/rca/incidents/{_ID}/evidence", EvidenceHandler),
    (rf"/rca/incidents/{_ID}/diagnose", IncidentDiagnoseHandler),
    (r"/rca/diagnose", DiagnoseHandler),
]
