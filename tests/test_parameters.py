"""Notebook parameters: the [path]/[url] markers, type checks (``true`` is no number), the server's confinement."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from bizra_nb.errors import InvalidInput
from bizra_nb.parameters import (check_parameters, confine_parameters, confine_path, declared_parameters,
                                 parameter_kind, server_confinement)
from bizra_nb.runner import NOTEBOOKS_DIR, resolve_notebook
from bizra_nb.settings import load_settings

READS_A_PATH = '''# Parameters
data = ""  # [path] a file inside the data dir
service_url = ""  # [url] a service it may call
source = ""  # [path|url] a dataset file or a Prometheus URL
label = "plain"  # no marker: any text
count = 1
ratio = 0.5
'''


def write_reads_a_path(folder: Path) -> Path:
    """A tiny notebook with one parameter of each kind; it records the path it was given and its size."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(READS_A_PATH, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("from bizra_nb import notebook\n"
                                          "notebook.record(headline='read', data=data, "
                                          "size=len(open(data).read()) if data else 0)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "reads_a_path.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("comment, kind, help_", [
    ("[path] CMDB file", "path", "CMDB file"),
    ("[url] the server under test", "url", "the server under test"),
    ("[path|url] dataset file, or a Prometheus URL", "path|url", "dataset file, or a Prometheus URL"),
    ("[URL | Path]x", "path|url", "x"),
    ("a path, but not marked", None, "a path, but not marked"),
    ("", None, ""),
])
def test_the_marker_is_read_from_the_comment(comment, kind, help_):
    assert parameter_kind(comment) == (kind, help_)


def test_the_platform_notebooks_mark_every_path_and_url():
    kinds = {name: {p: d["kind"] for p, d in declared_parameters(resolve_notebook(name)).items() if d["kind"]}
             for name in ("incident_diagnosis", "benchmark", "compliance_audit", "explore")}
    assert kinds == {"incident_diagnosis": {"source": "path|url", "cmdb": "path"},
                     "benchmark": {"target_url": "url"},
                     "compliance_audit": {"source": "path|url", "data_dir": "path", "slo_spec": "path"},
                     "explore": {"source": "path|url", "cmdb": "path"}}
    assert declared_parameters(resolve_notebook("incident_diagnosis"))["cmdb"]["help"].startswith("CMDB file")


@pytest.mark.parametrize("name, value", [("concurrency", True), ("concurrency", False), ("rate", True),
                                         ("duration", False), ("ws_clients", [1])])
def test_true_is_not_a_number(name, value):
    with pytest.raises(InvalidInput, match="must be of type") as caught:
        check_parameters(NOTEBOOKS_DIR / "benchmark.ipynb", {name: value})
    assert caught.value.field == name


def test_numbers_of_their_type_pass():
    assert check_parameters(NOTEBOOKS_DIR / "benchmark.ipynb", {"rate": 10, "concurrency": 4, "duration": 1.5}) == \
        {"rate": 10, "concurrency": 4, "duration": 1.5}


@pytest.fixture
def data_dir(tmp_path):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "metrics.csv").write_text("time,a_b\n1,2\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    os.symlink(outside, root / "leads_out.txt")
    os.symlink(tmp_path, root / "dir_out")
    os.symlink(root / "metrics.csv", root / "sub" / "inside.csv")
    return root


def test_a_path_inside_the_data_dir_becomes_absolute(data_dir):
    assert confine_path("metrics.csv", data_dir=data_dir, name="x") == str((data_dir / "metrics.csv").resolve())
    assert confine_path("sub/inside.csv", data_dir=data_dir, name="x") == str((data_dir / "metrics.csv").resolve())
    assert confine_path("new/not-yet.csv", data_dir=data_dir, name="x").startswith(str(data_dir.resolve()))
    assert confine_path(".", data_dir=data_dir, name="x") == str(data_dir.resolve())


@pytest.mark.parametrize("value", ["/etc/passwd", "../outside.txt", "sub/../../outside.txt", "leads_out.txt",
                                   "dir_out/outside.txt", "~/x", "a\x00b", "ABSOLUTE", ""])
def test_a_path_leading_out_is_refused(data_dir, value):
    value = str(data_dir / "metrics.csv") if value == "ABSOLUTE" else value
    with pytest.raises(InvalidInput, match="inside the server's data dir") as caught:
        confine_path(value, data_dir=data_dir, name="data")
    assert caught.value.field == "data"


DECLARED = {"data": {"kind": "path"}, "service_url": {"kind": "url"}, "source": {"kind": "path|url"},
            "label": {"kind": None}}


def test_confine_parameters(data_dir):
    allowed = ("http://prom:9090", "data/demo/metrics.parquet")
    out = confine_parameters(DECLARED, {"data": "metrics.csv", "service_url": "http://prom:9090/", "source": "",
                                        "label": "/etc/passwd"}, data_dir=data_dir, allowed_sources=allowed)
    assert out == {"data": str((data_dir / "metrics.csv").resolve()), "service_url": "http://prom:9090/",
                   "source": "", "label": "/etc/passwd"}  # an unmarked value is no path
    assert confine_parameters(DECLARED, {"source": "data/demo/metrics.parquet"}, data_dir=data_dir,
                              allowed_sources=allowed) == {"source": "data/demo/metrics.parquet"}  # configured


@pytest.mark.parametrize("name, value, fragment", [
    ("service_url", "http://169.254.169.254/latest/meta-data", "one of the configured sources (http://prom:9090"),
    ("service_url", "metrics.csv", "one of the configured sources"),
    ("source", "https://evil.example/", "a file inside the server's data dir or one of the configured sources"),
    ("source", "/etc/passwd", "inside the server's data dir"),
    ("data", "http://prom:9090/other", "inside the server's data dir"),
    ("data", "file:///etc/passwd", "inside the server's data dir"),
])
def test_confine_parameters_refuses(data_dir, name, value, fragment):
    with pytest.raises(InvalidInput) as caught:
        confine_parameters(DECLARED, {name: value}, data_dir=data_dir, allowed_sources=("http://prom:9090",))
    assert caught.value.field == name and fragment in caught.value.message


def test_server_confinement_names_the_configured_sources(tmp_path):
    settings = load_settings({"data_dir": tmp_path, "prometheus_url": "http://prom:9090", "dataset": "",
                              "audit_source": "audit.parquet"},
                             environ={"BIZRA_RUN_ALLOWED_URLS": "http://a.example, http://b.example"})
    assert server_confinement(settings, also=["http://127.0.0.1:8080"]) == {
        "data_dir": tmp_path, "allowed_sources": ("http://prom:9090", "audit.parquet", "http://a.example",
                                                  "http://b.example", "http://127.0.0.1:8080")}


def test_check_parameters_confines_only_when_asked(data_dir, tmp_path):
    path = write_reads_a_path(tmp_path)
    assert check_parameters(path, {"data": "/etc/hostname"}) == {"data": "/etc/hostname"}  # the CLI's call
    confine = {"data_dir": data_dir, "allowed_sources": ()}
    assert check_parameters(path, {"data": "metrics.csv"}, confine=confine) == \
        {"data": str((data_dir / "metrics.csv").resolve())}
    with pytest.raises(InvalidInput, match="inside the server's data dir"):
        check_parameters(path, {"data": "/etc/hostname"}, confine=confine)


def test_the_cli_reads_any_local_path(tmp_path):
    outside = tmp_path / "anywhere.txt"
    outside.write_text("12345")
    result = subprocess.run([sys.executable, "-m", "bizra_nb.cli", "run", str(write_reads_a_path(tmp_path)),
                             "-p", "data", str(outside), "--data-dir", str(tmp_path / "data"),
                             "--reports-dir", str(tmp_path / "reports")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = next((tmp_path / "reports").glob("*/*/summary.json"))
    assert json.loads(summary.read_text())["summary"]["size"] == 5


def test_scheduled_runs_pass_the_real_notebooks_checks_and_the_confinement(tmp_path):
    """The scheduler's server-chosen parameters (audit source, data dir, its own URL) survive its confinement."""
    import types
    from datetime import datetime, timezone

    from bizra_nb.score import ScoreKeeper
    from bizra_nb.store import Store
    from bizra_server.scheduler import Scheduler

    class CheckingRunner:
        def __init__(self):
            self.checked = []

        def create(self, notebook, parameters, *, confine=None, **kwargs):
            assert confine is not None, "a scheduled run is a server run: confined"
            self.checked.append((notebook, check_parameters(resolve_notebook(notebook), parameters, confine=confine)))
            return {"id": str(len(self.checked))}

        def submit(self, run):
            pass

    settings = load_settings({"data_dir": tmp_path, "audit_schedule": "0 6 1 * *", "benchmark_schedule": "0 3 * * 1",
                              "audit_source": "http://prom:9090"}, environ={})
    runner = CheckingRunner()
    services = types.SimpleNamespace(settings=settings, store=Store.open(tmp_path), runner=runner,
                                     scorekeeper=ScoreKeeper())
    scheduler = Scheduler.from_settings(services, lambda: "http://127.0.0.1:8080")
    scheduler.tick(datetime(2026, 10, 31, 12, tzinfo=timezone.utc))
    scheduler.tick(datetime(2026, 11, 2, 9, tzinfo=timezone.utc))
    checked = dict(runner.checked)
    assert checked["compliance_audit"]["data_dir"] == str(tmp_path.resolve())
    assert checked["compliance_audit"]["source"] == "http://prom:9090"
    assert checked["benchmark"]["target_url"] == "http://127.0.0.1:8080"
