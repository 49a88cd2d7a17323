"""`POST /alerts/webhook`: the Alertmanager receiver (payload version 4): open, update, resolve incidents (each
change one event on the incident's timeline)."""
from __future__ import annotations

from bizra_nb.incidents import apply_alert_group, parse_alertmanager
from bizra_server.base import BaseHandler
from bizra_server.incident_flow import incident_event


class WebhookHandler(BaseHandler):
    max_body_size = 2 << 20  # an Alertmanager group of thousands of alerts; more is a 413
    async def post(self) -> None:
        group = parse_alertmanager(self.json_body())
        outcome = await self.blocking(apply_alert_group, self.store, group, keeper=self.scorekeeper)
        self.hub.publish("alert", {"status": group.status, "group_key": group.group_key,
                                   "alerts": [{"labels": a.labels, "status": a.status} for a in group.alerts],
                                   "action": outcome.action})
        if outcome.action in ("opened", "updated", "resolved"):
            self.hub.publish("incident", incident_event(outcome.incident, outcome.action))
        if outcome.action == "opened":
            self.services.incident_flow.start_diagnosis(outcome.incident["id"])
        self.write_json({"action": outcome.action,
                         "incident_id": outcome.incident["id"] if outcome.incident else None})


handlers = [(r"/alerts/webhook", WebhookHandler)]
