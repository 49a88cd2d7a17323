"""`/rca/incidents/{id}/postmortem`: the incident's postmortem draft, a self-contained HTML page or Markdown."""
from __future__ import annotations

from bizra_nb.markup import report_policy
from bizra_nb.postmortem import render_html, render_markdown
from bizra_nb.runner import report_links
from bizra_server.base import BaseHandler

REPORTS = 20  # diagnosis runs of the incident the draft links to at most
FIRST_EVENTS, NEWEST_EVENTS = 50, 950  # timeline events the draft shows at most: the first and the newest


class PostmortemHandler(BaseHandler):
    async def get(self, incident_id: str) -> None:
        markdown = self.choice_argument("format", ("html", "markdown"), "html") == "markdown"
        base_url = self.services.public_url.rstrip("/")

        def render() -> str:
            incident = self.store.get_incident(int(incident_id))  # 404 for an unknown incident
            # where the story begins and how it ends: the first events and the newest, the rest counted
            events = self.store.incident_timeline(int(incident_id), first=FIRST_EVENTS, limit=NEWEST_EVENTS)
            runs = self.store.list_runs(incident_id=int(incident_id), limit=REPORTS)
            reports = [{"run_id": r["id"], "status": r["status"], "created_at": r["created_at"],
                        "url": (report_links(r) or {}).get("html") if r["status"] in ("succeeded", "failed") else None}
                       for r in runs]
            renderer = render_markdown if markdown else render_html
            return renderer(incident, events, reports=reports, base_url=base_url)

        page = await self.blocking(render)
        name = f"incident-{int(incident_id)}-postmortem.{'md' if markdown else 'html'}"
        if markdown:
            self.set_header("Content-Type", "text/markdown; charset=UTF-8")
        else:
            self.set_header("Content-Type", "text/html; charset=UTF-8")
            self.set_header("Content-Security-Policy", report_policy(""))  # no script at all; inline style only
        self.set_header("Content-Disposition", f'inline; filename="{name}"')
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(page)


_ID = r"(?P<incident_id>[0-9]{1,12})"
handlers = [(rf"/rca/incidents/{_ID}/postmortem", PostmortemHandler)]
