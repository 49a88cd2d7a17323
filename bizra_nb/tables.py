"""Tables for people, not pandas: human headers, units, ✔/✖ marks, "–" for missing, one precision per kind.

:func:`for_people` turns a frame into a :class:`PeopleTable`, which a notebook
displays as HTML (rendered by a Jinja template with autoescape, so any text in
it is inert) and prints as aligned text. Each column has a *kind* that decides
how its values read:

============  ==================================  ===================
kind          value                               shown as
============  ==================================  ===================
``text``      anything                            as text, left-aligned
``int``       a count                             ``1,204``
``number``    a float                             ``12.35``
``share``     a ratio 0..1                        ``99.93 %``
``percent``   already in percent                  ``99.93 %``
``ms``        milliseconds                        ``412 ms`` / ``4.1 ms``
``rps``       requests per second                 ``996.4 req/s``
``minutes``   a duration in minutes               ``1 h 35 min``, ``6 min``
``duration``  a duration (Timedelta, or seconds)  ``2 h 05 min``, ``45 s``
``time``      a timestamp                         ``2026-10-27 16:40 UTC``
``pass``      True / False                        ``✔ met`` / ``✖ missed``
``score``     the Ahsan score                     ``99.9``
``unit:<u>``  a value in unit ``u``               see :func:`bizra_nb.units.with_unit`
============  ==================================  ===================

Missing values (None, NaN, NaT) read ``–`` in every kind.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import pandas as pd

from bizra_nb.units import with_unit

MISSING = "–"
NUMERIC = {"int", "number", "share", "percent", "ms", "rps", "minutes", "duration", "score"}
MARKS = {"✔": "pass", "✖": "fail"}


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def humanise_seconds(seconds: float) -> str:
    """``45 s``, ``6 min``, ``1 h 35 min``, ``2 d 3 h``: a duration as people say it."""
    seconds = float(seconds)
    if seconds < 0:
        return "-" + humanise_seconds(-seconds)
    if seconds == 0:
        return "0 min"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def format_value(value: Any, kind: str = "text", *, labels: tuple[str, str] = ("✔ met", "✖ missed")) -> str:
    """One cell as people read it (see the module's table of kinds); ``"–"`` when missing."""
    if isinstance(value, bool) and kind != "pass":
        kind = "pass"
    if _missing(value):
        return MISSING
    if kind == "pass":
        return labels[0] if bool(value) else labels[1]
    if kind == "text":
        return str(value)
    if kind == "time":
        stamp = pd.Timestamp(value, unit="s", tz="UTC") if isinstance(value, (int, float)) else pd.Timestamp(value)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        return stamp.strftime("%Y-%m-%d %H:%M UTC")
    if kind == "duration":
        seconds = value.total_seconds() if isinstance(value, (pd.Timedelta,)) or hasattr(value, "total_seconds") \
            else float(value)
        return humanise_seconds(seconds)
    if kind == "minutes":
        return humanise_seconds(float(value) * 60)
    number = float(value)
    if math.isinf(number):
        return "∞"
    if kind == "int":
        return f"{number:,.0f}"
    if kind == "share":
        return f"{number * 100:.2f} %"
    if kind == "percent":
        return f"{number:.2f} %"
    if kind == "ms":
        return f"{number:,.0f} ms" if abs(number) >= 100 else f"{number:.1f} ms"
    if kind == "rps":
        return f"{number:,.1f} req/s"
    if kind == "score":
        return f"{number:.1f}"
    if kind.startswith("unit:"):
        return with_unit(number, kind[5:])
    return f"{number:,.2f}"


def _guess_kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "pass"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "time"
    if pd.api.types.is_timedelta64_dtype(series):
        return "duration"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "number"
    values = [v for v in series if not _missing(v)]
    if values and all(isinstance(v, bool) for v in values):
        return "pass"
    return "text"


def _header(name: Any) -> str:
    text = str(name).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


@dataclass
class Column:
    """A shown column: where its values come from, its header, its kind and alignment."""

    source: Any
    header: str
    kind: str
    align: str = field(init=False)
    long: bool = False  # holds sentences: wraps, where other columns keep each cell on one line

    def __post_init__(self) -> None:
        self.align = "right" if self.kind in NUMERIC or self.kind.startswith("unit:") else "left"


class PeopleTable:
    """A formatted table: :meth:`_repr_html_` for notebooks and reports, ``str()`` for terminals.

    ``frame`` holds the cells as the reader sees them (strings), with the human headers.
    """

    def __init__(self, columns: list[Column], rows: list[list[str]], *, caption: str = "",
                 empty: str = "Nothing to show.") -> None:
        self.columns = columns
        self.rows = rows
        self.caption = caption
        self.empty = empty

    @property
    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=[c.header for c in self.columns])

    def to_html(self) -> str:
        from bizra_nb.reports import _templates

        return _templates().get_template("tables/people.html.j2").render(
            columns=self.columns, rows=self.rows, caption=self.caption, empty=self.empty, marks=MARKS, zip=zip)

    _repr_html_ = to_html

    def __str__(self) -> str:
        if not self.rows:
            return self.empty
        widths = [max(len(c.header), *(len(r[i]) for r in self.rows)) for i, c in enumerate(self.columns)]

        def line(cells: list[str]) -> str:
            return "  ".join(cell.rjust(w) if c.align == "right" else cell.ljust(w)
                             for cell, w, c in zip(cells, widths, self.columns)).rstrip()

        head = [self.caption] if self.caption else []
        return "\n".join(head + [line([c.header for c in self.columns])] + [line(r) for r in self.rows])

    def __repr__(self) -> str:
        return str(self)

    def __len__(self) -> int:
        return len(self.rows)


class FullTextFrame(pd.DataFrame):
    """A DataFrame shown with its text in full: no ``…`` at pandas' ``display.max_colwidth`` (50)."""

    @property
    def _constructor(self):  # operations on it give ordinary frames
        return pd.DataFrame

    def _repr_html_(self) -> str | None:
        with pd.option_context("display.max_colwidth", None):
            return super()._repr_html_()

    def __repr__(self) -> str:
        with pd.option_context("display.max_colwidth", None, "display.max_columns", None, "display.width", 10_000):
            return super().__repr__()


def for_people(frame: pd.DataFrame, columns: Mapping[Any, str | tuple[str, str]] | None = None, *,
               caption: str = "", empty: str = "Nothing to show.",
               labels: tuple[str, str] = ("✔ met", "✖ missed")) -> PeopleTable:
    """``frame`` as a table a manager reads: human headers, units, marks, "–" for missing, no pandas index.

    Parameters
    ----------
    frame
        The data. A named index (or a MultiIndex) becomes ordinary first column(s); an
        unnamed range index is dropped.
    columns
        ``{column: header}`` or ``{column: (header, kind)}``, in the order to show; columns
        not named are left out. None: every column, its header from its name, its kind
        guessed from its dtype (bool → ``pass``, floats → ``number``, ...).
    caption
        A line above the table.
    empty
        What the table says when it has no rows.
    labels
        The words of ``pass`` cells, e.g. ``("✔ pass", "✖ fail")``.

    Returns
    -------
    PeopleTable
        Displayed as HTML in notebooks and reports, as aligned text by ``print``.

    Examples
    --------
    >>> slo = pd.DataFrame({"objective": ["availability"], "achieved": [0.99937], "met": [True]})
    >>> print(for_people(slo, {"objective": "Objective", "achieved": ("Achieved", "share"), "met": ("Met", "pass")}))
    Objective     Achieved  Met
    availability   99.94 %  ✔ met
    """
    data = frame
    if not isinstance(data.index, pd.RangeIndex) or any(n is not None for n in data.index.names):
        data = data.reset_index() if any(n is not None for n in data.index.names) else data.reset_index(drop=True)
    if columns is None:
        columns = {name: (_header(name), _guess_kind(data[name])) for name in data.columns}
    shown: list[Column] = []
    for name, spec in columns.items():
        if name not in data.columns:
            raise KeyError(f"for_people: no column {name!r}; the frame has {list(data.columns)}")
        header, kind = (spec, None) if isinstance(spec, str) else spec
        shown.append(Column(name, header, kind or _guess_kind(data[name])))
    rows = [[format_value(value, column.kind, labels=labels) for value, column in zip(values, shown)]
            for values in zip(*(data[c.source].tolist() for c in shown))] if len(data) else []
    for i, column in enumerate(shown):
        column.long = any(len(row[i]) > 40 for row in rows)
    return PeopleTable(shown, rows, caption=caption, empty=empty)
