"""`/runs/…`: start a notebook run with parameters, list runs, get one (status, progress, report links), cancel."""
from __future__ import annotations

from pathlib import Path

from bizra_nb.errors import InvalidInput
from bizra_nb.parameters import server_confinement
from bizra_nb.runner import report_links
from bizra_nb.store import MAX_ID
from bizra_server.base import BaseHandler
from bizra_server.incident_flow import plain_incident

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


def run_json(run: dict) -> dict:
    out = {k: v for k, v in run.items() if k not in ("folder", "existing")}
    out["notebook"] = Path(run["notebook"]).stem  # the name POST /runs takes
    out["headline"] = (run.get("summary") or {}).get("headline")
    out["links"] = report_links(run) if run["status"] in ("succeeded", "failed", "cancelled") else {}
    if run.get("started_at") and run.get("finished_at"):
        out["duration_seconds"] = round(run["finished_at"] - run["started_at"], 3)
    return out


class RunsHandler(BaseHandler):
    async def get(self) -> None:
        status = self.choice_argument("status", STATUSES)
        kind = self.get_query_argument("kind", None)
        limit = self.int_argument("limit", 100, low=1, high=1000)
        runs = await self.blocking(self.store.list_runs, status=status, kind=kind, limit=limit)
        self.write_json({"runs": [run_json(r) for r in runs], "count": len(runs)})

    async def post(self) -> None:
        body = self.json_object("notebook", "parameters")
        notebook = body.get("notebook")
        if not isinstance(notebook, str) or "/" in notebook or notebook.startswith("."):
            raise InvalidInput("notebook must be the name of a notebook of the server, e.g. incident_diagnosis",
                               field="notebook")
        runner = self.services.runner
        confine = server_confinement(self.services.settings, also=[self.services.base_url])  # it may bench itself
        parameters = body.get("parameters") or {}
        incident_id = _diagnosed_incident(notebook, parameters)
        if incident_id is not None:  # a diagnosis of a known incident: of the incident as stored, not as told
            incident = await self.blocking(self.store.get_incident, incident_id)  # 404 when there is none
            parameters = {**parameters, "incident": plain_incident(incident)}
        run = await self.blocking(runner.create, notebook, parameters, trigger="api", confine=confine,
                                  incident_id=incident_id)
        self.set_header("Location", f"/runs/{run['id']}")
        if run.get("existing"):  # the incident's diagnosis is already queued or running: that run, once
            self.write_json({**run_json(run), "deduplicated": True}, status=200)
            return
        runner.submit(run)
        self.write_json(run_json(run), status=201)


def _diagnosed_incident(notebook: str, parameters: object) -> int | None:
    """The incident an ``incident_diagnosis`` run diagnoses (its integer ``incident_id``), else None."""
    incident_id = parameters.get("incident_id") if isinstance(parameters, dict) else None
    if notebook != "incident_diagnosis" or isinstance(incident_id, bool) or not isinstance(incident_id, int):
        return None
    return incident_id if 1 <= incident_id <= MAX_ID else None  # else no incident's: nothing to collapse


class RunHandler(BaseHandler):
    async def get(self, run_id: str) -> None:
        self.write_json(run_json(await self.blocking(self.store.get_run, run_id)))


class CancelHandler(BaseHandler):
    async def post(self, run_id: str) -> None:
        run = await self.blocking(self.services.runner.cancel, run_id)
        self.write_json(run_json(run), status=202)


class NotebooksHandler(BaseHandler):
    """The notebooks a run may name, with their declared parameters (``kind``: path, url, path|url or null)."""

    async def get(self) -> None:
        from bizra_nb.parameters import declared_parameters
        from bizra_nb.runner import available_notebooks

        def describe() -> dict:
            return {name: {p: {"type": d["inferred_type_name"], "default": d["default"], "help": d["help"],
                               "kind": d["kind"]}
                           for p, d in declared_parameters(path).items()}
                    for name, path in available_notebooks(self.services.runner.notebooks_dir).items()}

        self.write_json({"notebooks": await self.blocking(describe)})


_ID = r"(?P<run_id>[0-9a-f]{6,32})"
handlers = [
    (r"/runs", RunsHandler),
    (r"/runs/notebooks", NotebooksHandler),
    (rf"/runs/{_ID}", RunHandler),
    (rf"/runs/{_ID}/cancel", CancelHandler),
]
