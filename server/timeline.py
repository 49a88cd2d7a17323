"""`/rca/incidents/{id}/timeline` (what happened to an incident, oldest first, completed from its record) and
`…/notes` (add a note)."""
from __future__ import annotations

from bizra_nb.errors import InvalidInput
from bizra_nb.incidents import NOTE_LIMIT
from bizra_nb.timeline import complete
from bizra_server.base import BaseHandler
from bizra_server.incident_flow import incident_event

TIMELINE_LIMIT = 1000  # events a GET returns at most (the newest)


class TimelineHandler(BaseHandler):
    async def get(self, incident_id: str) -> None:
        limit = self.int_argument("limit", TIMELINE_LIMIT, low=1, high=TIMELINE_LIMIT)

        def read() -> list[dict]:
            incident = self.store.get_incident(int(incident_id))  # 404 for an unknown incident, not an empty list
            events = self.store.incident_timeline(int(incident_id), limit=limit)
            # what the incident's record says and no event does (an incident older than its timeline):
            # added, marked from_record; not before the newest `limit` events when there were more
            truncated = len(events) >= limit and events
            return complete(incident, events, hidden_before=events[0]["ts"] if truncated else None)[-limit:]

        events = await self.blocking(read)
        self.write_json({"incident_id": int(incident_id), "events": events})


class NotesHandler(BaseHandler):
    max_body_size = 64 << 10  # a 4000-character note, escaped

    async def post(self, incident_id: str) -> None:
        body = self.json_object("text")
        text = body.get("text")
        if not isinstance(text, str):
            raise InvalidInput("text: a string is required (the note, 1 to 4000 characters)", field="text")
        text = text.strip()
        if not text:
            raise InvalidInput("text: the note is empty", field="text")
        if len(text) > NOTE_LIMIT:
            raise InvalidInput(f"text: at most {NOTE_LIMIT} characters, got {len(text)}", field="text")

        def add() -> tuple[dict, dict]:
            event = self.store.add_incident_event(int(incident_id), "note",
                                                  actor=self.services.settings.operator_name, detail={"text": text})
            return event, self.store.get_incident(int(incident_id))

        event, incident = await self.blocking(add)
        self.hub.publish("incident", incident_event(incident, "note"))
        self.set_header("Location", f"/rca/incidents/{incident_id}/timeline")
        self.write_json(event, status=201)


_ID = r"(?P<incident_id>[0-9]{1,12})"
handlers = [
    (rf"/rca/incidents/{_ID}/timeline", TimelineHandler),
    (rf"/rca/incidents/{_ID}/notes", NotesHandler),
]
