"""Relative data paths, units and tables for people: the small rules the notebooks and reports rely on."""
from __future__ import annotations

import html
import pydoc
from pathlib import Path

import pandas as pd
import pytest

from bizra_nb import paths
from bizra_nb.errors import InvalidInput
from bizra_nb.tables import for_people, format_value, humanise_seconds
from bizra_nb.units import unit_of, with_unit


@pytest.fixture
def data_home(tmp_path, monkeypatch, fleet):
    """A data dir (BIZRA_DATA_DIR) holding the fleet under demo/, and a working directory elsewhere."""
    home = tmp_path / "data"
    (home / "demo").mkdir(parents=True)
    (home / "demo" / "metrics.csv").write_bytes(Path(fleet.metrics).read_bytes())
    (home / "demo" / "cmdb.yaml").write_bytes(Path(fleet.cmdb).read_bytes())
    elsewhere = tmp_path / "somewhere" / "notebooks"
    elsewhere.mkdir(parents=True)
    monkeypatch.setenv("BIZRA_DATA_DIR", str(home))
    monkeypatch.chdir(elsewhere)
    return home


def test_a_relative_path_is_read_from_the_data_dir_not_the_working_directory(data_home):
    assert paths.data_dir() == data_home
    assert paths.data_path("demo/cmdb.yaml") == data_home / "demo" / "cmdb.yaml"
    assert paths.data_path("/abs/x.csv") == Path("/abs/x.csv")


def test_without_the_variable_the_data_dir_is_data_in_the_project_folder(tmp_path, monkeypatch):
    project = tmp_path / "proj"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname='x'\n")
    monkeypatch.delenv("BIZRA_DATA_DIR", raising=False)
    monkeypatch.chdir(project / "notebooks")  # where `jupyter lab notebooks/explore.ipynb` starts the kernel
    assert paths.project_dir() == project
    assert paths.data_dir() == project / "data"
    monkeypatch.setenv("BIZRA_DATA_DIR", "elsewhere")  # relative: from the project folder too
    assert paths.data_dir() == project / "elsewhere"


def test_a_path_typed_in_a_shell_still_means_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("BIZRA_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here.csv").write_text("time,a_b\n")
    assert paths.data_path("here.csv") == tmp_path / "here.csv"


def test_open_source_and_cmdb_load_and_diagnose_resolve_through_the_data_dir(data_home):
    from bizra_nb.cmdb import Cmdb
    from bizra_nb.diagnose import diagnose
    from bizra_nb.sources import open_source

    graph = Cmdb.load("demo/cmdb.yaml")
    assert "catalog-db" in graph.items
    source = open_source("demo/metrics.csv")
    assert source.path == data_home / "demo" / "metrics.csv"
    diagnosis, _ = diagnose("demo/metrics.csv", cmdb="demo/cmdb.yaml")  # a path, as the notebooks' cmdb parameter
    assert diagnosis.ranking[0].service == "catalog-db" and diagnosis.ranking[0].path


def test_a_missing_file_is_named_with_where_it_was_looked_for(data_home):
    from bizra_nb.cmdb import Cmdb
    from bizra_nb.sources import open_source

    with pytest.raises(InvalidInput) as info:
        open_source("demo/nope.parquet")
    assert "dataset file demo/nope.parquet not found" in info.value.message and str(data_home) in info.value.message
    with pytest.raises(InvalidInput) as info:
        Cmdb.load("demo/nope.yaml")
    assert "demo/nope.yaml" in info.value.message and "BIZRA_DATA_DIR" in info.value.message


@pytest.mark.parametrize("name", ["bizra_nb.diagnose.diagnose", "bizra_nb.sources.open_source",
                                  "bizra_nb.cmdb.Cmdb.load", "bizra_nb.rca.Diagnosis.table",
                                  "bizra_nb.audit.audit_month", "bizra_nb.plots.ranking_bar",
                                  "bizra_nb.plots.candidate_series", "bizra_nb.plots.cmdb_graph",
                                  "bizra_nb.plots.latency_over_time", "bizra_nb.plots.latency_histogram",
                                  "bizra_nb.plots.score_over_time", "bizra_nb.plots.stacked_bars",
                                  "bizra_nb.tables.for_people"])
def test_public_functions_have_docstrings_that_help_shows(name):
    text = pydoc.render_doc(pydoc.locate(name), renderer=pydoc.plaintext)
    body = text.split("\n", 3)[-1]
    assert len(body.strip()) > 40, f"help({name}) shows no docstring"


def test_diagnosis_table_shows_explanations_in_full(fleet):
    from bizra_nb.diagnose import diagnose

    diagnosis, _ = diagnose(str(fleet.metrics), cmdb=str(fleet.cmdb))
    table = diagnosis.table(3)
    longest = max(table["explanation"], key=len)
    assert len(longest) > 50  # longer than pandas' default display.max_colwidth
    assert longest in html.unescape(table._repr_html_()) and longest in repr(table)
    assert list(table.reset_index().columns) == ["rank", "service", "score", "metric", "onset", "explanation"]


def test_units_come_from_the_metric_name_or_the_cmdb():
    assert [unit_of(m) for m in ("lat_50", "lat_99", "p99_ms", "cpu", "mem", "rate", "error", "disk_pct")] == \
        ["ms", "ms", "ms", "%", "MB", "req/s", "ratio", "%"]
    assert unit_of("queue_depth") == ""
    assert unit_of("cpu", {"units": {"cpu": "cores"}}) == "cores"  # the CMDB item overrides the convention
    assert with_unit(0.0123, "ratio") == "1.23 %" and with_unit(412.4, "ms") == "412 ms"
    assert with_unit(float("nan"), "ms") == "–"


def test_for_people_reads_like_a_report():
    frame = pd.DataFrame({"severity": ["P1", "P2"], "incidents": [2, 0], "MTTA_minutes": [6.5, None],
                          "MTTR_minutes": [95.0, float("nan")], "met": [True, False],
                          "note": ["<script>alert(1)</script>", None]}).set_index("severity")
    table = for_people(frame, {"severity": "Severity", "incidents": ("Incidents", "int"),
                               "MTTA_minutes": ("MTTA", "minutes"), "MTTR_minutes": ("MTTR", "minutes"),
                               "met": ("Met", "pass"), "note": "Note"})
    html = table.to_html()
    assert [c.header for c in table.columns] == ["Severity", "Incidents", "MTTA", "MTTR", "Met", "Note"]
    assert table.rows[0] == ["P1", "2", "6 min", "1 h 35 min", "✔ met", "<script>alert(1)</script>"]
    assert table.rows[1][2:5] == ["–", "–", "✖ missed"]
    assert "&lt;script&gt;" in html and "<script>" not in html  # autoescaped
    for word in ("NaN", "None", "True", "False", "nan"):
        assert f">{word}<" not in html
    assert 'text-align:left">P1' in html and 'text-align:right">2' in html  # text left, numbers right
    assert "overflow-x:auto" in html  # scrolls inside its box on a phone
    assert format_value(0.999371, "share") == "99.94 %" and format_value(996.44, "rps") == "996.4 req/s"
    assert humanise_seconds(45) == "45 s" and humanise_seconds(7500) == "2 h 05 min"


def test_for_people_drops_an_unnamed_index_and_keeps_a_named_one():
    plain = for_people(pd.DataFrame({"a": [1.5]}, index=[7]))
    assert [c.header for c in plain.columns] == ["A"]
    named = for_people(pd.DataFrame({"a": [1.5]}, index=pd.Index(["x"], name="objective")))
    assert [c.header for c in named.columns] == ["Objective", "A"]
