"""`/rca/incidents/{id}/silences`: the Alertmanager silences of an incident: list, create, expire."""
from __future__ import annotations

import logging
import time

from bizra_nb.alertmanager import (MATCH_BUDGET, SHOWN_STATES, AlertmanagerClient, AlertmanagerError,
                                   check_silence_id, incident_label_sets, incident_matchers, iso, matching_silences,
                                   parse_comment, parse_duration, parse_matchers, public_url, silence_json)
from bizra_nb.errors import BizraError, NotFound
from bizra_server.base import ApiError, BaseHandler
from bizra_server.incident_flow import incident_event

log = logging.getLogger("bizra.silences")
MAX_LABEL_SETS = 200  # of an incident's alerts compared with each silence


class SilencesBase(BaseHandler):
    """What the three verbs share: the Alertmanager client, the incident's silences, the timeline."""

    def alertmanager(self, *, required: bool = True) -> AlertmanagerClient | None:
        url = self.services.settings.alertmanager_url
        if not url:
            if not required:
                return None
            raise ApiError(409, "silences need an Alertmanager: start the server with --alertmanager-url "
                                "(BIZRA_ALERTMANAGER_URL)", code="no_alertmanager")
        return AlertmanagerClient(url, executor=self.services.workers)  # long answers parsed off the IOLoop

    def link(self, silence: dict) -> dict:
        """The silence with ``url``: its page in the Alertmanager's own UI (the URL without any login)."""
        base = public_url(self.services.settings.alertmanager_url).rstrip("/")
        return {**silence, "url": f"{base}/#/silences/{silence['id']}"}

    async def recorded_ids(self, incident_id: int) -> set[str]:
        """The silences created from this incident, as its timeline records them."""
        events = await self.blocking(self.store.incident_timeline, incident_id)
        return {str((e.get("detail") or {}).get("silence_id")) for e in events if e["kind"] == "silence_created"}

    async def incident_silences(self, am: AlertmanagerClient, incident: dict, *,
                                states=SHOWN_STATES) -> tuple[list[dict], bool]:
        """The Alertmanager's silences that mute the incident's alerts or were created from it, in ``states``;
        and whether the list is partial: matching ran out of :data:`MATCH_BUDGET` (then it holds the
        silences recorded on the incident's timeline and those found to match before)."""
        silences = [s for s in await am.silences() if s["status"] in states]
        recorded = await self.recorded_ids(incident["id"])
        label_sets = incident_label_sets(incident)[:MAX_LABEL_SETS]
        others = [s for s in silences if s["id"] not in recorded]
        matched, complete = await self.compute(matching_silences, others, label_sets, budget=MATCH_BUDGET)
        if not complete:
            log.warning("incident %s: matching %d silences with its alerts took over %.1f s: listed in part",
                        incident["id"], len(others), MATCH_BUDGET)
        shown = [s for s in silences if s["id"] in recorded] + matched
        return sorted(shown, key=lambda s: (s["ends_at"] or 0, s["id"])), not complete

    async def record(self, incident_id: int, kind: str, detail: dict) -> None:
        """The event on the incident's timeline, and an `incident` message so that pages refresh.
        The silence is made already: a failure to record it is logged, not answered."""
        try:
            await self.blocking(self.store.add_incident_event, incident_id, kind,
                                actor=self.services.settings.operator_name, detail=detail)
        except BizraError as exc:
            log.warning("incident %s: could not record %s on its timeline: %s", incident_id, kind, exc.message)
        try:
            incident = await self.blocking(self.store.get_incident, incident_id)
        except BizraError as exc:
            log.warning("incident %s: not announced after %s: %s", incident_id, kind, exc.message)
            return
        self.hub.publish("incident", {**incident_event(incident, kind), "silence_id": detail.get("silence_id")})


class IncidentSilencesHandler(SilencesBase):
    async def get(self, incident_id: str) -> None:
        incident = await self.blocking(self.store.get_incident, int(incident_id))
        am = self.alertmanager(required=False)
        if am is None:
            self.write_json({"incident_id": incident["id"], "enabled": False, "silences": []})
            return
        async with am:
            silences, partial = await self.incident_silences(am, incident)
        self.write_json({"incident_id": incident["id"], "enabled": True, "partial": partial,
                         "silences": [self.link(s) for s in silences]})

    async def post(self, incident_id: str) -> None:
        body = self.json_object("duration", "comment", "matchers")
        duration = parse_duration(body.get("duration"))
        comment = parse_comment(body.get("comment"))
        incident = await self.blocking(self.store.get_incident, int(incident_id))
        if incident["status"] == "resolved":  # its alerts are resolved: a silence now would hide a recurrence
            raise ApiError(409, f"incident {incident['id']} is resolved: a silence would hide its alert if it "
                                "fires again; reopen the incident first", code="incident_resolved")
        if body.get("matchers") is not None:
            matchers = parse_matchers(body["matchers"])
        else:
            matchers = incident_matchers(incident)
            if not matchers:
                raise ApiError(409, f"incident {incident['id']} has no alert labels to silence; "
                                    "give the silence's \"matchers\" ([{\"name\", \"value\"}, ...])",
                               code="no_matchers")
        creator, start = self.services.settings.operator_name, time.time()
        async with self.alertmanager() as am:
            silence_id = await am.create_silence(matchers, duration=duration, comment=comment, created_by=creator,
                                                 starts_at=start)
            asked = silence_json({"id": silence_id, "status": {"state": "active"}, "comment": comment,
                                  "matchers": [m.as_api() for m in matchers], "createdBy": creator,
                                  "startsAt": iso(start), "endsAt": iso(start + duration)})
            await self.record(incident["id"], "silence_created", {
                "silence_id": silence_id, "matchers": [m["text"] for m in asked["matchers"]],
                "ends_at": asked["ends_at"], "ends_at_iso": asked["ends_at_iso"], "comment": comment})
            try:
                silence = await am.silence(silence_id) or asked
            except AlertmanagerError as exc:  # made and recorded: answer what was asked for
                log.warning("silence %s: created, but not read back: %s", silence_id, exc.message)
                silence = asked
        self.write_json(self.link(silence), status=201)


class IncidentSilenceHandler(SilencesBase):
    async def delete(self, incident_id: str, silence_id: str) -> None:
        silence_id = check_silence_id(silence_id)
        incident = await self.blocking(self.store.get_incident, int(incident_id))
        async with self.alertmanager() as am:
            silence = await am.silence(silence_id)
            if silence is None:
                raise NotFound(f"the Alertmanager has no silence {silence_id}", field="silence_id")
            recorded = await self.recorded_ids(incident["id"])
            label_sets = incident_label_sets(incident)[:MAX_LABEL_SETS]
            if silence_id not in recorded:
                matched, complete = await self.compute(matching_silences, [silence], label_sets, budget=MATCH_BUDGET)
                if not matched:
                    raise NotFound(f"silence {silence_id} does not silence incident {incident['id']}'s alerts"
                                   + ("" if complete else " (or its matchers took too long to check)"),
                                   field="silence_id")
            if silence["status"] == "expired":
                self.write_json(self.link(silence))  # expired already: nothing happens, nothing is recorded
                return
            await am.expire_silence(silence_id)
            await self.record(incident["id"], "silence_expired", {
                "silence_id": silence_id, "matchers": [m["text"] for m in silence["matchers"]]})
            try:
                silence = await am.silence(silence_id) or {**silence, "status": "expired"}
            except AlertmanagerError as exc:  # expired and recorded: answer so
                log.warning("silence %s: expired, but not read back: %s", silence_id, exc.message)
                silence = {**silence, "status": "expired"}
        self.write_json(self.link(silence))


_ID = r"(?P<incident_id>[0-9]{1,12})"
handlers = [
    (rf"/rca/incidents/{_ID}/silences", IncidentSilencesHandler),
    (rf"/rca/incidents/{_ID}/silences/(?P<silence_id>[^/]{{1,100}})", IncidentSilenceHandler),
]
