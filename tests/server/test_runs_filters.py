"""/runs filters, parameter formats, the re-run link, the previous run and the compare page on a real server."""
from __future__ import annotations

import httpx
import pytest

from tests.conftest import wait_until

T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z


def finished(http, run_id, timeout=90):
    return wait_until(lambda: (r := http.get(f"/runs/{run_id}").json())["status"] in
                      ("succeeded", "failed", "cancelled") and r, timeout=timeout)


def stored(server, run_id, notebook, status, created_at, kind="other", parameters=None, **fields):
    """A run recorded in the server's real store (the filters read only its columns)."""
    return server.services.store.create_run(id=run_id, notebook=f"/srv/notebooks/{notebook}.ipynb", kind=kind,
                                            status=status, trigger="api", parameters=parameters or {},
                                            created_at=created_at, **fields)


@pytest.fixture
def listed(server, http):
    stored(server, "a00001", "benchmark", "succeeded", T0, kind="benchmark")
    stored(server, "a00002", "benchmark", "failed", T0 + 100, kind="benchmark", error="Boom: in cell 3")
    stored(server, "a00003", "compliance_audit", "succeeded", T0 + 200, kind="audit")
    stored(server, "a00004", "benchmark", "queued", T0 + 300, kind="benchmark")
    stored(server, "a00005", "bench%mark_", "succeeded", T0 + 400)  # LIKE's wildcards are no wildcards

    def ids(**params) -> list[str]:
        response = http.get("/runs", params=params)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["runs"]]

    return ids


def test_runs_filter_by_notebook_status_kind_and_time(listed):
    assert listed(notebook="benchmark") == ["a00004", "a00002", "a00001"]
    assert listed(notebook="benchmark", status="succeeded") == ["a00001"]
    assert listed(notebook="compliance_audit") == ["a00003"] and listed(kind="audit") == ["a00003"]
    assert listed(notebook="bench%mark_") == ["a00005"] and listed(notebook="bench") == []
    assert listed(notebook="no_such_notebook") == []  # an unknown name lists nothing; no error
    assert listed(since=str(T0 + 100), until=str(T0 + 300)) == ["a00003", "a00002"]  # since in, until out
    assert listed(since="2026-09-21T14:15:00Z") == ["a00005", "a00004", "a00003", "a00002"]  # ISO: T0 + 100 s
    assert listed(until="2026-09-21T14:13:20+00:00") == []  # exclusive: T0 itself is out
    assert listed(notebook="benchmark", limit=1) == ["a00004"]


def test_a_failed_run_lists_its_reason(listed, http):
    failed = http.get("/runs", params={"status": "failed"}).json()["runs"]
    assert [r["id"] for r in failed] == ["a00002"] and failed[0]["error"] == "Boom: in cell 3"


@pytest.mark.parametrize("params, field", [
    ({"since": "yesterday"}, "since"), ({"until": "1790000000000"}, "until"), ({"status": "done"}, "status"),
    ({"notebook": "x" * 201}, "notebook"), ({"limit": "0"}, "limit"), ({"limit": "ten"}, "limit"),
])
def test_bad_filters_are_400_naming_the_field(http, params, field):
    response = http.get("/runs", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"].get("field") == field


def test_notebook_parameters_have_a_format_for_the_form(make_nb_server):
    server = make_nb_server()
    notebooks = httpx.get(server.url + "/runs/notebooks", timeout=30).json()["notebooks"]
    formats = {name: {p: d["format"] for p, d in params.items()} for name, params in notebooks.items()}
    assert formats["compliance_audit"]["month"] == "month" and formats["compliance_audit"]["slo"] == "json"
    assert formats["compliance_audit"]["source"] == "text"
    bench = formats["benchmark"]
    assert bench["duration"] == "number" and bench["concurrency"] == "integer" and bench["targets"] == "json"
    assert bench["endpoints"] == "json" and bench["target_url"] == "text"
    diag = formats["incident_diagnosis"]
    assert diag["start"] == diag["end"] == diag["anomaly_start"] == "datetime"
    assert diag["incident_id"] == "integer" and diag["symptom_service"] == "text" and diag["history"] == "text"
    typed = formats["typed_parameters"]
    assert typed == {"count": "integer", "ratio": "number", "name": "text", "flag": "boolean", "items": "json",
                     "options": "json"}
    for name in ("compliance_audit", "benchmark"):  # helper C's parameter, once it is there
        assert formats[name].get("scheduled_for", "datetime") == "datetime"
    first = notebooks["benchmark"]["duration"]
    assert set(first) >= {"type", "default", "help", "kind", "format"}  # what was there stays


def test_rerun_link_redirects_to_the_prefilled_form_and_runs_nothing(server, http):
    stored(server, "b00001", "benchmark", "succeeded", T0)
    response = http.get("/runs/b00001/rerun", follow_redirects=False)
    assert response.status_code == 303 and response.headers["Location"] == "/#rerun=b00001"
    assert http.get("/runs").json()["count"] == 1  # nothing new
    missing = http.get("/runs/b00009/rerun", follow_redirects=False)
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "id"


def test_previous_is_the_last_finished_run_of_the_same_notebook(server, http):
    stored(server, "c00001", "benchmark", "succeeded", T0)
    stored(server, "c00002", "benchmark", "failed", T0 + 10, error="x")
    stored(server, "c00003", "compliance_audit", "succeeded", T0 + 20)  # another notebook
    stored(server, "c00004", "benchmark", "running", T0 + 30)  # not finished
    stored(server, "c00005", "benchmark", "succeeded", T0 + 40)
    stored(server, "c00006", "benchmark", "succeeded", T0 + 50)
    assert http.get("/runs/c00006/previous").json()["id"] == "c00005"
    assert http.get("/runs/c00005/previous").json()["id"] == "c00002"  # skips the running one
    previous = http.get("/runs/c00002/previous").json()
    assert previous["id"] == "c00001" and previous["notebook"] == "benchmark"  # the run's JSON
    for run_id in ("c00001", "c00003", "c00009"):  # the first of its notebook, the only one, no such run
        response = http.get(f"/runs/{run_id}/previous")
        assert response.status_code == 404 and "error" in response.json()
    assert http.get("/runs/c00005/previous", params={"status": "succeeded"}).json()["id"] == "c00001"  # not failed
    assert http.get("/runs/c00002/previous", params={"status": "failed"}).status_code == 404
    bad = http.get("/runs/c00005/previous", params={"status": "done"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "status"


@pytest.mark.parametrize("params, status, field", [
    ({"b": "d00001"}, 400, "a"), ({"a": "d00001"}, 400, "b"), ({"a": "d00001", "b": "../etc"}, 400, "b"),
    ({"a": "d00001", "b": "d00009"}, 404, "b"), ({"a": "d00009", "b": "d00001"}, 404, "a"),
    ({"a": "d00001", "b": "d00002"}, 400, "b"),  # different notebooks
])
def test_compare_refuses_missing_bad_unknown_and_different_runs(server, http, params, status, field):
    stored(server, "d00001", "benchmark", "succeeded", T0, summary={"p99_ms": 1.0})
    stored(server, "d00002", "compliance_audit", "succeeded", T0 + 1, summary={"score": 99.0})
    response = http.get("/runs/compare", params=params)
    assert response.status_code == status and response.json()["error"]["field"] == field
    if field == "b" and status == 400 and "d00002" in params.values():
        assert "same notebook" in response.json()["error"]["message"]


def test_compare_two_real_runs_and_a_failed_run_keeps_its_reason(make_nb_server, auth):
    server = make_nb_server(cell_timeout=60)
    http = httpx.Client(base_url=server.url, timeout=60)
    ids = [http.post("/runs", json={"notebook": "succeeds_with_a_figure", "parameters": {"x": x}},
                     headers=auth).json()["id"] for x in (1, 3)]
    bad = http.post("/runs", json={"notebook": "fails_in_cell_3"}, headers=auth).json()["id"]
    runs = [finished(http, run_id) for run_id in ids]
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    failed = finished(http, bad)
    assert failed["status"] == "failed" and failed["error"]  # the failure reason is in the run's JSON
    assert http.get("/runs", params={"notebook": "fails_in_cell_3"}).json()["runs"][0]["error"] == failed["error"]
    assert http.get(f"/runs/{ids[1]}/previous").json()["id"] == ids[0]
    page = http.get("/runs/compare", params={"a": ids[0], "b": ids[1]})
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "script-src" in page.headers["Content-Security-Policy"]
    assert "sandbox" in page.headers["Content-Security-Policy"]  # as the reports: an opaque origin
    assert 'data-key="x"' in page.text and ">+2<" in page.text and 'class="changed">changed' in page.text
    different = http.get("/runs/compare", params={"a": ids[0], "b": bad})
    assert different.status_code == 400 and different.json()["error"]["field"] == "b"


def test_a_rerun_gets_back_parameters_the_server_accepts(server, http, auth, settings):
    """The stored parameters hold the absolute paths the server made; a re-run sends them back relative."""
    from pathlib import Path

    data = Path(settings.data_dir).resolve()
    (data / "sub").mkdir(exist_ok=True)
    (data / "sub" / "platform.csv").write_text("time,score\n1,100\n")
    stored(server, "b00001", "compliance_audit", "succeeded", T0, kind="audit",
           parameters={"data_dir": str(data), "source": str(data / "sub" / "platform.csv"), "month": "2026-09"})
    stored(server, "b00002", "incident_diagnosis", "failed", T0,
           parameters={"incident_id": 7, "incident": {"id": 7, "title": "stored"}, "source": "/elsewhere/x.csv"})
    run = http.get("/runs/b00001").json()
    assert run["parameters"]["data_dir"] == str(data)  # as the notebook got it
    assert run["rerun_parameters"] == {"data_dir": ".", "source": "sub/platform.csv", "month": "2026-09"}
    diagnosis = http.get("/runs/b00002").json()["rerun_parameters"]
    assert diagnosis == {"incident_id": 7, "source": "/elsewhere/x.csv"}  # outside: unchanged; incident re-read
    sent = http.post("/runs", json={"notebook": "compliance_audit", "parameters": run["rerun_parameters"]},
                     headers=auth)
    assert sent.status_code == 201, sent.text
    assert sent.json()["parameters"]["data_dir"] == str(data)
    http.post(f"/runs/{sent.json()['id']}/cancel", headers=auth)
    refused = http.post("/runs", json={"notebook": "compliance_audit", "parameters": run["parameters"]}, headers=auth)
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "data_dir"  # why the re-run needs it


def test_a_benchmark_started_here_measures_this_server_by_default(server, http, auth):
    """The notebook's own default (127.0.0.1:8080) may be nobody: the form shows, and a run gets, this server."""
    shown = http.get("/runs/notebooks").json()["notebooks"]["benchmark"]["target_url"]["default"]
    assert shown == server.url
    started = http.post("/runs", json={"notebook": "benchmark", "parameters": {"duration": 1.0}}, headers=auth)
    assert started.status_code == 201, started.text
    assert started.json()["parameters"]["target_url"] == server.url
    http.post(f"/runs/{started.json()['id']}/cancel", headers=auth)
    given = http.post("/runs", json={"notebook": "benchmark", "parameters": {"target_url": "http://127.0.0.1:1"}},
                      headers=auth)
    assert given.status_code == 400 and given.json()["error"]["field"] == "target_url"  # a given one is checked
