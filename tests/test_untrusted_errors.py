"""Errors never echo file contents: CMDB and dataset parse errors, and run errors readable without a token.

Each message names the file (or the request body), the line/row and column and
what was expected, and quotes at most a short escaped excerpt: never a whole
line, never the secret on it.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import nbformat
import pytest

from bizra_nb.cmdb import Cmdb
from bizra_nb.errors import InvalidInput, clip_message, excerpt
from bizra_nb.sources import open_source
from tests.conftest import wait_until

SECRET = "SECRET-abc123-" + "9f8e7d6c5b4a" * 5
SHADOW = f"root:$6${SECRET}:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"

BAD_CMDB = {  # document → what the message must say
    "syntax": (f"items:\n  - {{id: a, kind: service}}\n  {SECRET}: x: y\n", "at line 3, column 3"),
    "alias": (f"items:\n  - {{id: a, kind: service}}\nrelations: *{SECRET}\n", "at line 3, column 12"),
    "tag": (f"items:\n  - !{SECRET} {{id: a, kind: service}}\n", "at line 2, column 5"),
    "unknown reference": (f"items: [{{id: a, kind: service}}]\nrelations: [{{source: a, target: {SECRET}}}]\n",
                          "relations[0]: unknown target 'SECRET-"),
    "bad id": (f"items: [{{id: '{SECRET} $', kind: service}}]\n", "items[0].id must be a name"),
    "unknown key": (f"items: []\n{SECRET}: 1\n", "unknown top-level key(s) 'SECRET-"),
    "bad type": (f"items: [{{id: a, kind: s}}, {{id: b, kind: s}}]\n"
                 f"relations: [{{source: a, target: b, type: {SECRET}}}]\n", "unknown type 'SECRET-"),
}


def test_excerpts_are_short_and_escaped():
    assert excerpt(SECRET) == repr(SECRET)[:38] + "…'" and len(excerpt(SECRET)) == 40
    assert excerpt("<b>\n") == "'<b>\\n'"
    assert SECRET not in clip_message(f"could not convert string to float: '{SECRET}'")
    assert clip_message(f"while scanning\n  in \"x\", line 1:\n    {SECRET}\n    ^\nexpected ':'") == \
        'while scanning in "x", line 1: expected \':\''


@pytest.mark.parametrize("case", BAD_CMDB)
def test_a_cmdb_import_error_names_the_place_not_the_content(http, auth, case):
    document, fragment = BAD_CMDB[case]
    response = http.post("/cmdb/import", content=document, headers=auth)
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert fragment in message and SECRET not in response.text


@pytest.mark.parametrize("case", BAD_CMDB)
def test_a_cmdb_file_error_names_the_file_not_the_content(tmp_path, case):
    path = tmp_path / "cmdb.yaml"
    path.write_text(BAD_CMDB[case][0])
    with pytest.raises(InvalidInput) as caught:
        Cmdb.load(path)
    assert str(path) in caught.value.message and SECRET not in caught.value.message


def test_a_cmdb_file_that_is_not_text(tmp_path):
    path = tmp_path / "cmdb.yaml"
    path.write_bytes(b"items: []\n\xff\xfe" + SECRET.encode())
    with pytest.raises(InvalidInput, match="not UTF-8 text") as caught:
        Cmdb.load(path)
    assert SECRET not in caught.value.message


BAD_DATASETS = {
    "no time column (a shadow file)": (SHADOW, "no 'time' column"),
    "a value that is no number": (f"time,api_cpu\n1790000000,1\n1790000060,{SECRET}\n",
                                  "row 3, column 'api_cpu': 'SECRET-"),
    "a time that is no time": (f"time,api_cpu\n{SECRET},1\n", "row 2, column 'time'"),
    "a column that is no series": (f"time,{SECRET}\n1790000000,1\n", "is not named <service>_<metric>"),
    "a long file's bad value": (f"time,service,metric,value\n1790000000,api,cpu,{SECRET}\n", "column 'value'"),
    "a long file's bad service": (f"time,service,metric,value\n1790000000,api_{SECRET},cpu,1\n",
                                  "row 2: service 'api_SECRET-"),
}


@pytest.mark.parametrize("case", BAD_DATASETS)
def test_a_dataset_error_names_the_place_not_the_content(tmp_path, case):
    content, fragment = BAD_DATASETS[case]
    path = tmp_path / "metrics.csv"
    path.write_text(content)
    with pytest.raises(InvalidInput) as caught:
        open_source(path).fetch()
    assert fragment in caught.value.message and str(path) in caught.value.message
    assert SECRET not in caught.value.message and SECRET[:40] not in str(caught.value.field)


def test_the_cli_says_where_a_dataset_is_wrong_without_its_content(tmp_path):
    path = tmp_path / "shadow.csv"
    path.write_text(SHADOW)
    result = subprocess.run([sys.executable, "-m", "bizra_nb.cli", "diagnose", "--data", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "no 'time' column" in result.stderr and str(path) in result.stderr
    assert SECRET not in result.stdout + result.stderr


PARSES_A_FILE = [
    ('data = ""  # a YAML file (no [path] marker: the test passes an absolute path)', {"tags": ["parameters"]}),
    ("import yaml\nyaml.safe_load(open(data).read())", {}),
]


@pytest.fixture
def parses_a_file(make_server, settings, tmp_path, monkeypatch):
    """A server that knows parses_a_file.ipynb (a cell that parses a data-dir file with yaml, unguarded)."""
    import bizra_nb.runner as runner_module

    folder = tmp_path / "notebooks"
    shutil.copytree(runner_module.NOTEBOOKS_DIR, folder)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source, metadata=meta) for source, meta in PARSES_A_FILE]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "parses_a_file.ipynb")
    monkeypatch.setattr(runner_module, "NOTEBOOKS_DIR", folder)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    (Path(settings.data_dir) / "shadow.yaml").write_text(f"root: *{SECRET}\n" + SHADOW)
    running = make_server(cell_timeout=60)
    running.services.runner.notebooks_dir = folder
    return running


def test_a_failed_run_shows_no_file_content_without_a_token(parses_a_file, auth, settings):
    http = httpx.Client(base_url=parses_a_file.url, timeout=30)
    shadow = str(Path(settings.data_dir).resolve() / "shadow.yaml")
    run_id = http.post("/runs", json={"notebook": "parses_a_file", "parameters": {"data": shadow}},
                       headers=auth).json()["id"]
    run = wait_until(lambda: (r := http.get(f"/runs/{run_id}").json())["status"] in ("succeeded", "failed") and r,
                     timeout=120)
    assert run["status"] == "failed" and "ComposerError" in run["error"] and "undefined alias" in run["error"]
    assert SECRET not in run["error"]
    assert SECRET not in http.get("/runs").text and SECRET not in http.get(run["links"]["summary"]).text
    assert SECRET not in http.get("/reports/").text
