"""POST /runs confines path and URL parameters to the data dir and the configured sources; types are strict."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from tests.conftest import wait_until
from tests.test_parameters import write_reads_a_path

PROMETHEUS = "http://prometheus.example:9090"


@pytest.fixture
def confined(make_server, settings, tmp_path, monkeypatch):
    """A server that knows reads_a_path.ipynb, with a data dir holding a file, a symlink out and a subfolder."""
    import bizra_nb.runner as runner_module

    folder = tmp_path / "notebooks"
    shutil.copytree(runner_module.NOTEBOOKS_DIR, folder)
    write_reads_a_path(folder)
    monkeypatch.setattr(runner_module, "NOTEBOOKS_DIR", folder)
    data = Path(settings.data_dir)
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "metrics.csv").write_text("time,a_b\n1,2\n")
    (tmp_path / "secret.txt").write_text("SECRET")
    os.symlink(tmp_path / "secret.txt", data / "leads_out.txt")
    running = make_server(cell_timeout=60, prometheus_url=PROMETHEUS,
                          run_allowed_urls=("http://other.example:8000",))
    running.services.runner.notebooks_dir = folder
    running.http = httpx.Client(base_url=running.url, timeout=30)
    return running


def post_run(running, auth, notebook, **parameters):
    return running.http.post("/runs", json={"notebook": notebook, "parameters": parameters}, headers=auth)


@pytest.mark.parametrize("notebook, name, value", [
    ("incident_diagnosis", "source", "/etc/passwd"),
    ("incident_diagnosis", "source", "../x"),
    ("incident_diagnosis", "source", "sub/../../x"),
    ("incident_diagnosis", "source", "DATA_DIR/sub/metrics.csv"),  # absolute, even inside the data dir
    ("incident_diagnosis", "source", "leads_out.txt"),  # a symlink inside the data dir pointing out
    ("incident_diagnosis", "source", "http://169.254.169.254/latest/meta-data/"),
    ("incident_diagnosis", "cmdb", "/etc/shadow"),
    ("incident_diagnosis", "cmdb", PROMETHEUS + "/api/v1/query"),
    ("compliance_audit", "data_dir", "/"),
    ("compliance_audit", "source", "file:///etc/passwd"),
    ("benchmark", "target_url", "http://169.254.169.254/"),
    ("explore", "cmdb", "../../etc/hosts"),
    ("reads_a_path", "service_url", "https://attacker.example/"),
    ("incident_diagnosis", "cmdb", "api_token"),  # the server's own files inside the data dir
    ("incident_diagnosis", "source", "bizra.sqlite3"),
    ("incident_diagnosis", "source", "bizra.sqlite3-wal"),
    ("incident_diagnosis", "cmdb", "sub/.hidden.yaml"),
])
def test_paths_and_urls_leading_out_are_400_and_never_run(confined, auth, settings, notebook, name, value):
    value = value.replace("DATA_DIR", str(Path(settings.data_dir).resolve()))
    response = post_run(confined, auth, notebook, **{name: value})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == name and error["code"] == "invalid_input"
    assert any(words in error["message"] for words in ("data dir", "configured sources", "server's own files"))
    assert confined.http.get("/runs").json()["count"] == 0


def test_a_file_inside_the_data_dir_reaches_the_notebook_as_an_absolute_path(confined, auth, settings):
    own = confined.services.base_url  # a configured URL that answers the pre-flight check
    response = post_run(confined, auth, "reads_a_path", data="sub/metrics.csv", service_url=own,
                        source=own, label="/etc/passwd")
    assert response.status_code == 201, response.text
    expected = str((Path(settings.data_dir) / "sub" / "metrics.csv").resolve())
    stored = confined.http.get(f"/runs/{response.json()['id']}").json()
    assert stored["parameters"] == {"data": expected, "service_url": own, "source": own, "label": "/etc/passwd"}
    run = wait_until(lambda: (r := confined.http.get(f"/runs/{stored['id']}").json())["status"] in
                     ("succeeded", "failed") and r, timeout=120)
    assert run["status"] == "succeeded", run["error"]
    assert run["summary"]["data"] == expected and run["summary"]["size"] == len("time,a_b\n1,2\n")


def test_the_server_may_benchmark_itself(confined, auth):
    response = post_run(confined, auth, "benchmark", target_url=confined.services.base_url, duration=0.2, rate=5.0,
                        ws_clients=0)
    assert response.status_code == 201, response.text
    assert response.json()["parameters"]["target_url"] == confined.services.base_url
    confined.http.post(f"/runs/{response.json()['id']}/cancel", headers=auth)


@pytest.mark.parametrize("name, value", [("concurrency", True), ("rate", True), ("duration", False)])
def test_true_is_no_number_for_a_run(confined, auth, name, value):
    response = post_run(confined, auth, "benchmark", **{name: value})
    assert response.status_code == 400 and response.json()["error"]["field"] == name
    assert "must be of type" in response.json()["error"]["message"]


def test_the_notebooks_list_shows_which_parameters_are_paths_or_urls(confined):
    notebooks = confined.http.get("/runs/notebooks").json()["notebooks"]
    assert notebooks["incident_diagnosis"]["source"]["kind"] == "path|url"
    cmdb = notebooks["incident_diagnosis"]["cmdb"]
    assert cmdb["type"] == "str" and cmdb["kind"] == "path" and cmdb["help"].startswith("CMDB file")
    assert notebooks["benchmark"]["target_url"]["kind"] == "url"
    assert notebooks["benchmark"]["rate"]["kind"] is None
    assert notebooks["reads_a_path"]["data"]["kind"] == "path"


def test_rca_diagnose_confines_its_dataset_the_same_way(confined, auth, settings):
    for dataset in ("/etc/passwd", "leads_out.txt", str(Path(settings.data_dir).resolve() / "sub" / "metrics.csv")):
        response = confined.http.post("/rca/diagnose", json={"start": 1790848800, "end": 1790856000,
                                                             "dataset": dataset}, headers=auth)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["field"] == "dataset"


def reports_on_disk(confined) -> list[Path]:
    return sorted(p for p in Path(confined.services.runner.reports_dir).rglob("*") if p.name != ".index.lock")


@pytest.mark.parametrize("notebook, name, value, words", [
    ("reads_a_path", "data", "sub/missing.csv", "no such file"),  # a typo inside the data dir
    ("incident_diagnosis", "cmdb", "cmdb.yaml", "no such file"),
    ("compliance_audit", "data_dir", "sub/nope", "no such file"),
    ("incident_diagnosis", "source", PROMETHEUS, "does not answer"),  # configured, but nothing answers there
    ("reads_a_path", "service_url", "http://other.example:8000", "does not answer"),
])
def test_a_missing_file_or_a_silent_url_is_400_before_anything_is_recorded(confined, auth, notebook, name, value,
                                                                            words):
    before = reports_on_disk(confined)
    response = post_run(confined, auth, notebook, **{name: value})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == name and words in error["message"] and error["code"] == "invalid_input"
    assert confined.http.get("/runs").json()["count"] == 0
    assert reports_on_disk(confined) == before  # no run folder, no index entry


def test_the_preflight_of_a_url_does_not_block_the_server(confined, auth):
    """A URL that accepts the connection and never answers: while the pre-flight waits, the server answers others."""
    import socket
    import threading

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    silent.settimeout(60)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    confined.services.settings = confined.services.settings.replace(run_allowed_urls=(url,))
    result: dict = {}
    posting = threading.Thread(target=lambda: result.update(r=post_run(confined, auth, "reads_a_path",
                                                                      service_url=url)))
    posting.start()
    try:
        conn, _ = silent.accept()  # the pre-flight is connected and waiting for an answer now
        answered_while_pending = confined.http.get("/health").status_code == 200 and posting.is_alive()
        conn.close()
        posting.join(timeout=60)
    finally:
        silent.close()
    assert answered_while_pending
    assert result["r"].status_code == 400 and "does not answer" in result["r"].json()["error"]["message"]
    assert confined.http.get("/runs").json()["count"] == 0
