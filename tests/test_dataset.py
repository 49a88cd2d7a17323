"""Dataset files: wide and long, CSV and Parquet, unix and ISO time, gaps; bad files get clear errors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bizra_nb.dataset import read_dataset, write_dataset
from bizra_nb.datachecks import check_frame, record_checks
from bizra_nb.errors import InvalidInput
from bizra_nb.fleet import generate
from bizra_nb.score import ScoreKeeper
from bizra_nb.sources import DatasetSource, open_source


@pytest.fixture
def fleet_frame() -> pd.DataFrame:
    return generate(duration="30min", seed=1).metrics


@pytest.mark.parametrize("name, layout", [("m.csv", "wide"), ("m.csv", "long"), ("m.parquet", "wide"),
                                          ("m.parquet", "long")])
def test_round_trip(tmp_path, fleet_frame, name, layout):
    path = write_dataset(fleet_frame, tmp_path / name, layout=layout)
    frame, in_order = read_dataset(path)
    assert in_order
    assert frame.shape == fleet_frame.shape
    assert list(frame.index) == list(fleet_frame.index)
    pd.testing.assert_series_equal(frame["catalog-db_cpu"], fleet_frame["catalog-db_cpu"], check_names=False,
                                   check_freq=False, check_index_type=False, atol=1e-3)


def test_iso_times_gaps_and_empty_cells(tmp_path):
    (tmp_path / "d.csv").write_text(
        "time,carts-db_cpu,front-end_lat_99\n"
        "2026-10-01T00:00:00Z,1.0,10\n"
        "2026-10-01T00:00:15Z,,11\n"
        "2026-10-01T00:02:00Z,1.2,\n"
    )
    frame, _ = read_dataset(tmp_path / "d.csv")
    assert list(frame.columns) == ["carts-db_cpu", "front-end_lat_99"]
    assert frame.index.tz is not None and frame.index[2] == pd.Timestamp("2026-10-01T00:02:00Z")
    assert np.isnan(frame.iloc[1, 0])


def test_unordered_rows_are_sorted_and_reported(tmp_path):
    (tmp_path / "d.csv").write_text("time,a_cpu\n30,3\n15,2\n0,1\n")
    frame, in_order = read_dataset(tmp_path / "d.csv")
    assert not in_order and list(frame["a_cpu"]) == [1, 2, 3]
    keeper = ScoreKeeper()
    fetch = DatasetSource(tmp_path / "d.csv", keeper=keeper).fetch()
    assert any("not in increasing order" in w for w in fetch.warnings)
    assert keeper.snapshot()["violations"]["assumption_violated"] == 1


@pytest.mark.parametrize("content, fragment", [
    ("when,a_cpu\n0,1\n", "no 'time' column"),
    ("time,a_cpu\n0,1\n15,abc\n", "row 3, column 'a_cpu': 'abc' is not a number"),
    ("time,acpu\n0,1\n", "column 'acpu' is not named <service>_<metric>"),
    ("time,a_cpu\n1790812800000,1\n", "looks like milliseconds"),
    ("time,a_cpu\nlast tuesday,1\n", "row 2, column 'time': 'last tuesday' is neither unix seconds nor ISO-8601"),
    ("time,service,metric,value\n0,a,cpu,x\n", "row 2, column 'value'"),
    ("time,service,metric,value\n0,a_b,cpu,1\n", "contains '_'"),
    ("time,a_cpu\n", "no rows"),
])
def test_bad_files_name_file_row_and_column(tmp_path, content, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(InvalidInput) as info:
        read_dataset(path)
    assert fragment in info.value.message and str(path) in info.value.message


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(InvalidInput, match="does not exist"):
        read_dataset(tmp_path / "nope.csv")
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(InvalidInput, match="expected .csv or .parquet"):
        read_dataset(tmp_path / "x.xlsx")


def test_data_checks_find_gaps_nans_and_stale_series():
    index = pd.date_range("2026-10-01", periods=100, freq="15s", tz="UTC")
    frame = pd.DataFrame({"a_cpu": np.ones(100), "b_cpu": np.ones(100), "c_cpu": np.ones(100)}, index=index)
    frame = frame.drop(index[40:50])  # a gap
    frame.loc[frame.index[:60], "b_cpu"] = np.nan  # mostly empty
    frame.loc[frame.index[-10:], "c_cpu"] = np.nan  # went silent
    results = {r.name: r for r in check_frame(frame)}
    assert not results["gaps"].ok and "1 gap(s)" in results["gaps"].message
    assert not results["missing values"].ok and "b_cpu" in results["missing values"].message
    assert not results["stale series"].ok and "c_cpu" in results["stale series"].message
    keeper = ScoreKeeper()
    warnings = record_checks(list(results.values()), keeper)
    assert len(warnings) == 3 and keeper.snapshot()["violations"]["validation_failed"] == 3


def test_source_window_and_services(tmp_path, fleet_frame):
    path = write_dataset(fleet_frame, tmp_path / "m.csv")
    source = open_source(path)
    start = fleet_frame.index[10]
    fetch = source.fetch(start=start.isoformat(), end=int(fleet_frame.index[20].timestamp()),
                         services=["cart", "cart-cache"])
    assert len(fetch.frame) == 11 and {c.split("_")[0] for c in fetch.frame.columns} == {"cart", "cart-cache"}
    assert fetch.warnings == [] and str(path) in fetch.queries[0]
    long = fetch.long()
    assert list(long.columns) == ["time", "service", "metric", "value"]
    with pytest.raises(InvalidInput, match="unknown service"):
        source.fetch(services=["nope"])
    with pytest.raises(InvalidInput, match="no data in the requested window"):
        source.fetch(start="2030-01-01", end="2030-01-02")
    with pytest.raises(InvalidInput, match="must be after start"):
        source.fetch(start=start, end=start)
