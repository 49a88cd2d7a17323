"""`/runs/…`: start a notebook run with parameters, list (filtered), get one, cancel, re-run link, previous, compare."""
from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

from bizra_nb.errors import InvalidInput, NotFound
from bizra_nb.incidents import record_event
from bizra_nb.parameters import server_confinement
from bizra_nb.runner import FINISHED, report_links
from bizra_nb.store import MAX_ID
from bizra_nb.times import parse_time
from bizra_server.base import BaseHandler
from bizra_server.incident_flow import incident_for_notebook
from bizra_server.reports import report_headers

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
MAX_NOTEBOOK_NAME = 200

log = logging.getLogger("bizra.server")


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
        """Runs newest first, filtered by ``notebook`` (its name: an unknown one lists none), ``status``,
        ``kind``, ``since`` (inclusive) and ``until`` (exclusive) on ``created_at`` (unix seconds or ISO-8601)."""
        status = self.choice_argument("status", STATUSES)
        kind = self.get_query_argument("kind", None)
        notebook = self.get_query_argument("notebook", None) or None
        if notebook is not None and len(notebook) > MAX_NOTEBOOK_NAME:
            raise InvalidInput(f"notebook: a name of at most {MAX_NOTEBOOK_NAME} characters", field="notebook")
        since = parse_time(self.get_query_argument("since", None), name="since")
        until = parse_time(self.get_query_argument("until", None), name="until")
        limit = self.int_argument("limit", 100, low=1, high=1000)
        runs = await self.blocking(self.store.list_runs, status=status, kind=kind, limit=limit, notebook=notebook,
                                   since=since, until=until)
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
            incident = await self.blocking(incident_for_notebook, self.store, incident_id)  # 404 when there is none
            parameters = {**parameters, "incident": incident}
        run = await self.blocking(runner.create, notebook, parameters, trigger="api", confine=confine,
                                  defaults=server_defaults(self.services).get(notebook),
                                  incident_id=incident_id)
        self.set_header("Location", f"/runs/{run['id']}")
        if run.get("existing"):  # the incident's diagnosis is already queued or running: that run, once
            self.write_json({**run_json(run), "deduplicated": True}, status=200)
            return
        try:
            if incident_id is not None:  # first on the timeline, before the run can end (as IncidentFlow does);
                await self.blocking(  # record_event never raises: a lost line is logged and scored
                    record_event, self.store, incident_id, "diagnosis_started",
                    actor=self.services.settings.operator_name, keeper=self.scorekeeper,
                    detail={"mode": "report", "run_id": run["id"]})
        except Exception as exc:  # noqa: BLE001 - the I/O threads refused it: the run still starts
            log.warning("incident %s: its diagnosis_started event was not recorded: %r", incident_id, exc)
        finally:
            runner.submit(run)  # queued is submitted: whatever happened to its timeline line
        self.write_json(run_json(run), status=201)


def server_defaults(services) -> dict[str, dict]:
    """Defaults a run started through this server gets instead of the notebook's own: a benchmark measures
    this server (the notebook's ``http://127.0.0.1:8080`` may be no one, or another server)."""
    return {"benchmark": {"target_url": services.base_url}} if services.base_url else {}


def _diagnosed_incident(notebook: str, parameters: object) -> int | None:
    """The incident an ``incident_diagnosis`` run diagnoses (its integer ``incident_id``), else None."""
    incident_id = parameters.get("incident_id") if isinstance(parameters, dict) else None
    if notebook != "incident_diagnosis" or isinstance(incident_id, bool) or not isinstance(incident_id, int):
        return None
    return incident_id if 1 <= incident_id <= MAX_ID else None  # else no incident's: nothing to collapse


class RunHandler(BaseHandler):
    async def get(self, run_id: str) -> None:
        run = await self.blocking(self.store.get_run, run_id)
        self.write_json({**run_json(run), "rerun_parameters": rerun_parameters(run["parameters"],
                                                                               self.services.settings.data_dir)})


def rerun_parameters(parameters: dict, data_dir: str | Path) -> dict:
    """The run's parameters as POST /runs takes them back: a path the server made absolute (inside the data
    dir) relative again (``.``: the data dir itself), and no ``incident`` when ``incident_id`` names it (the
    server reads the incident from the store)."""
    root = Path(data_dir).resolve()
    out = {}
    for name, value in parameters.items():
        if name == "incident" and _diagnosed_incident("incident_diagnosis", parameters) is not None:
            continue
        if isinstance(value, str) and value.startswith("/"):
            path = Path(value)
            if path == root or root in path.parents:
                value = path.relative_to(root).as_posix() or "."
        out[name] = value
    return out


class CancelHandler(BaseHandler):
    async def post(self, run_id: str) -> None:
        run = await self.blocking(self.services.runner.cancel, run_id)
        self.write_json(run_json(run), status=202)


class NotebooksHandler(BaseHandler):
    """The notebooks a run may name, with their declared parameters (``kind``: path, url, path|url or null)."""

    async def get(self) -> None:
        from bizra_nb.parameters import declared_parameters
        from bizra_nb.runner import available_notebooks

        defaults = server_defaults(self.services)

        def describe() -> dict:
            return {name: {p: {"type": d["inferred_type_name"], "default": defaults.get(name, {}).get(p, d["default"]),
                               "help": d["help"], "kind": d["kind"], "format": parameter_format(p, d)}
                           for p, d in declared_parameters(path).items()}
                    for name, path in available_notebooks(self.services.runner.notebooks_dir).items()}

        self.write_json({"notebooks": await self.blocking(describe)})


_MONTH_TEXT = re.compile(r"YYYY-MM(?!-)")
_MONTH_VALUE = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
_TIME_NAMES = ("start", "end", "scheduled_for")


def parameter_format(name: str, declared: dict) -> str:
    """How the page's form asks for a parameter: ``month``, ``datetime``, ``json``, ``number``, ``integer``,
    ``boolean`` or ``text``.

    The rule, from the parameters cell alone: a text parameter is a ``month`` (YYYY-MM) when it is named
    ``month``, its default is a YYYY-MM value, or its help says ``YYYY-MM`` (not ``YYYY-MM-DD``); it is a
    ``datetime`` when it is named ``start``, ``end``, ``scheduled_for`` or ends in ``_start``, ``_end``,
    ``_at``, or its help says ISO-8601 or ISO time. Lists and dicts are ``json``; other texts ``text``.
    """
    kind = declared.get("inferred_type_name")
    help_text = str(declared.get("help") or "")
    if kind == "str":
        try:
            default = ast.literal_eval(str(declared.get("default")))
        except (ValueError, SyntaxError):
            default = None
        if name == "month" or _MONTH_TEXT.search(help_text) or (
                isinstance(default, str) and _MONTH_VALUE.fullmatch(default)):
            return "month"
        if (name in _TIME_NAMES or name.endswith(("_start", "_end", "_at"))
                or re.search(r"\bISO(-8601| time)\b", help_text)):
            return "datetime"
        return "text"
    return {"int": "integer", "float": "number", "bool": "boolean", "list": "json", "dict": "json"}.get(
        str(kind), "text")


class RerunHandler(BaseHandler):
    """``/runs/{id}/rerun``: a link to share; the page opens the run's form prefilled. Nothing runs here."""

    async def get(self, run_id: str) -> None:
        await self.blocking(self.store.get_run, run_id)  # 404 JSON for no such run
        self.redirect(f"/#rerun={run_id}", status=303)


class PreviousHandler(BaseHandler):
    """``/runs/{id}/previous[?status=succeeded]``: the finished run (of that status) of the same notebook
    created last before this one; the page compares with the previous *succeeded* run."""

    async def get(self, run_id: str) -> None:
        status = self.choice_argument("status", FINISHED)
        self.write_json(run_json(await self.blocking(previous_run, self.store, run_id, status=status)))


def previous_run(store, run_id: str, *, status: str | None = None, scan: int = 200) -> dict:
    """The finished run (succeeded, failed or cancelled; or only ``status``) of ``run_id``'s notebook created
    last before it, among the ``scan`` runs of that notebook created before it; NotFound when there is none."""
    run = store.get_run(run_id)
    wanted = (status,) if status else FINISHED
    for earlier in store.list_runs(notebook=Path(run["notebook"]).stem, until=run["created_at"], limit=scan):
        if earlier["status"] in wanted and earlier["id"] != run_id:
            return earlier
    raise NotFound(f"no {status or 'finished'} run of {Path(run['notebook']).stem} before run {run_id}", field="id")


class CompareHandler(BaseHandler):
    """``/runs/compare?a=&b=``: two runs of one notebook side by side (:mod:`bizra_nb.compare`), as HTML.

    400 JSON when ``a`` or ``b`` is missing or not a run id, or the runs are of different notebooks
    (field ``b``); 404 JSON when one is unknown. The page carries the reports' policy: only its figures run.
    """

    async def get(self) -> None:
        ids = {}
        for name in ("a", "b"):
            value = self.get_query_argument(name, "")
            if not _RUN_ID.fullmatch(value):
                raise InvalidInput(f"{name}: a run id (6 to 32 hex digits) is required", field=name)
            ids[name] = value
        page = await self.compute(_comparison, self.store, ids["a"], ids["b"])
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        report_headers(self, page)
        self.finish(page)


def _comparison(store, a: str, b: str) -> str:
    from bizra_nb.compare import comparison_html, run_document

    docs = []
    for field, run_id in (("a", a), ("b", b)):
        try:
            docs.append(run_document(store.get_run(run_id)))
        except NotFound:
            raise NotFound(f"{field}: no run {run_id!r}", field=field) from None
    return comparison_html(*docs)


_RUN_ID = re.compile(r"[0-9a-f]{6,32}")
_ID = r"(?P<run_id>[0-9a-f]{6,32})"
handlers = [
    (r"/runs", RunsHandler),
    (r"/runs/notebooks", NotebooksHandler),
    (r"/runs/compare", CompareHandler),
    (rf"/runs/{_ID}/rerun", RerunHandler),
    (rf"/runs/{_ID}/previous", PreviousHandler),
    (rf"/runs/{_ID}", RunHandler),
    (rf"/runs/{_ID}/cancel", CancelHandler),
]
