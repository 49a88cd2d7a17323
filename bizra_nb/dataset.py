"""Metric dataset files (CSV or Parquet, wide or long) read into wide frames with a UTC time index.

Wide: a ``time`` column (unix seconds or ISO-8601), then one column per series
named ``<service>_<metric>`` (the service is the text before the first
underscore: ``carts-db_cpu``, ``front-end_lat_99``). Long: columns ``time,
service, metric, value``. Empty cells are allowed; rows may skip times.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bizra_nb.errors import InvalidInput, clip_message, excerpt

LONG_COLUMNS = ("time", "service", "metric", "value")
MAX_UNIX_SECONDS = 1e11  # beyond year 5000: milliseconds, not seconds


def split_column(column: str) -> tuple[str, str]:
    """``"front-end_lat_99"`` → ``("front-end", "lat_99")``."""
    service, sep, metric = column.partition("_")
    if not sep or not service or not metric:
        raise ValueError(column)
    return service, metric


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".gz", ".txt"):
            return pd.read_csv(path)
    except FileNotFoundError:
        raise InvalidInput(f"dataset file {path} does not exist", field="data") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InvalidInput(f"cannot read dataset file {path}: {clip_message(str(exc), limit=200)}",
                           field="data") from None
    raise InvalidInput(f"dataset file {path}: unknown format {excerpt(suffix)}; expected .csv or .parquet",
                       field="data")


def parse_time(values: pd.Series, *, source: str) -> pd.DatetimeIndex:
    """Unix seconds or ISO-8601 text → UTC timestamps; a clear error names the first bad row."""
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.to_datetime(values, utc=True)
        return pd.DatetimeIndex(stamps)
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        if (numeric.abs() > MAX_UNIX_SECONDS).any():
            row = int(np.argmax(numeric.abs().to_numpy() > MAX_UNIX_SECONDS))
            raise InvalidInput(f"{source}: row {row + 2}, column 'time': {excerpt(values.iloc[row])} looks like "
                               "milliseconds; expected unix seconds or ISO-8601", field="time")
        return pd.DatetimeIndex(pd.to_datetime(numeric.astype("float64"), unit="s", utc=True))
    stamps = pd.to_datetime(values.astype("string"), utc=True, errors="coerce", format="ISO8601")
    if stamps.isna().any():
        row = int(np.argmax(stamps.isna().to_numpy()))
        raise InvalidInput(f"{source}: row {row + 2}, column 'time': {excerpt(values.iloc[row])} is neither unix "
                           "seconds nor ISO-8601", field="time")
    return pd.DatetimeIndex(stamps)


def read_dataset(path: str | Path) -> tuple[pd.DataFrame, bool]:
    """Read a dataset file into a wide frame; returns it and whether its times were already in order.

    Raises
    ------
    InvalidInput
        Naming the file, the row or column and what was expected.
    """
    path = Path(path)
    table = _read_table(path)
    source = str(path)
    if "time" not in table.columns:
        raise InvalidInput(f"{source}: no 'time' column; expected a wide file (time, <service>_<metric>, ...) "
                           f"or a long one ({', '.join(LONG_COLUMNS)}); found columns "
                           f"{', '.join(excerpt(c) for c in list(table.columns)[:8])}",
                           field="time")
    if len(table) == 0:
        raise InvalidInput(f"{source}: no rows", field="data")
    index = parse_time(table["time"], source=source)
    if set(LONG_COLUMNS) <= set(table.columns):
        frame = _pivot_long(table, index, source)
    else:
        frame = _wide(table, index, source)
    in_order = bool(frame.index.is_monotonic_increasing)
    if not in_order:
        frame = frame.sort_index(kind="stable")
    if frame.index.has_duplicates:
        frame = frame.groupby(level=0).mean()
    frame.index.name = "time"
    return frame, in_order


def _wide(table: pd.DataFrame, index: pd.DatetimeIndex, source: str) -> pd.DataFrame:
    values = table.drop(columns=["time"])
    for column in values.columns:
        try:
            split_column(str(column))
        except ValueError:
            raise InvalidInput(f"{source}: column {excerpt(column)} is not named <service>_<metric> "
                               "(e.g. carts-db_cpu, front-end_lat_99)", field="columns") from None
    converted = {}
    for column in values.columns:
        series = values[column]
        numbers = pd.to_numeric(series, errors="coerce")
        bad = numbers.isna() & series.notna() & (series.astype("string").str.strip() != "")
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise InvalidInput(f"{source}: row {row + 2}, column {excerpt(column)}: {excerpt(series.iloc[row])} "
                               "is not a number", field=str(column)[:64])
        converted[str(column)] = numbers.astype("float64").to_numpy()
    return pd.DataFrame(converted, index=index)


def _pivot_long(table: pd.DataFrame, index: pd.DatetimeIndex, source: str) -> pd.DataFrame:
    values = pd.to_numeric(table["value"], errors="coerce")
    bad = values.isna() & table["value"].notna()
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise InvalidInput(f"{source}: row {row + 2}, column 'value': {excerpt(table['value'].iloc[row])} "
                           "is not a number",
                           field="value")
    for name in ("service", "metric"):
        empty = table[name].isna() | (table[name].astype("string").str.strip() == "")
        if empty.any():
            row = int(np.argmax(empty.to_numpy()))
            raise InvalidInput(f"{source}: row {row + 2}: empty {name!r}", field=name)
    service = table["service"].astype("string")
    if service.str.contains("_").any():
        row = int(np.argmax(service.str.contains("_").to_numpy()))
        raise InvalidInput(f"{source}: row {row + 2}: service {excerpt(service.iloc[row])} contains '_', "
                           "which separates service from metric", field="service")
    long = pd.DataFrame({"time": index, "column": service + "_" + table["metric"].astype("string"),
                         "value": values.to_numpy()})
    frame = long.pivot_table(index="time", columns="column", values="value", aggfunc="mean", dropna=False)
    frame.columns = [str(c) for c in frame.columns]
    return frame.astype("float64")


def write_dataset(frame: pd.DataFrame, path: str | Path, *, layout: str = "wide") -> Path:
    """Write a wide frame as a dataset file (``.csv`` or ``.parquet``), wide or long; time in unix seconds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seconds = frame.index.as_unit("s").asi8  # pandas may keep us or ns: ask for seconds
    if layout == "long":
        stacked = frame.rename_axis("time").reset_index(drop=True)
        stacked.insert(0, "time", seconds)
        long = stacked.melt(id_vars="time", var_name="column", value_name="value").dropna(subset=["value"])
        parts = long["column"].str.split("_", n=1, expand=True)
        out = pd.DataFrame({"time": long["time"], "service": parts[0], "metric": parts[1], "value": long["value"]})
    elif layout == "wide":
        out = frame.reset_index(drop=True)
        out.insert(0, "time", seconds)
    else:
        raise ValueError(f"layout must be 'wide' or 'long', not {layout!r}")
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix.lower() in (".parquet", ".pq"):
        out.to_parquet(tmp, index=False)
    else:
        out.to_csv(tmp, index=False)
    tmp.replace(path)
    return path
