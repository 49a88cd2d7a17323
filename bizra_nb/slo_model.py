"""The SLO model: the dataclasses every spec is read into, the burn-rate alerts, and pure helpers on them.

Everything SLO-shaped in the platform reads this model: the generated Prometheus rules
(:mod:`bizra_nb.slo_rules`), the error-budget arithmetic of the audit and the API
(:mod:`bizra_nb.slo_budget`), the deploy gate and the status page's budget bars. The spec files it is read
from are :mod:`bizra_nb.slo_spec`'s (which re-exports every name here).

An :class:`SLO` has one objective (an OpenSLO SLO with several objectives becomes one
:class:`SLO` per objective) and one indicator of three kinds:

``ratio``
    PromQL ``bad`` (or ``good``) and ``total`` queries of event rates, with ``{{.window}}`` as their
    range; budgeting ``Occurrences`` (bad events / all events) or ``Timeslices`` (a slice of
    ``timeslice_window`` is bad when its good ratio is under ``timeslice_target``).
``error_ratio``
    One PromQL query of the error ratio itself with ``{{.window}}`` (Sloth's ``sli.raw``); ``Occurrences``.
``threshold``
    A PromQL query of a value (``{{.window}}``, when present, is the time slice) that must satisfy
    ``op`` ``value`` (``lte 100``); budgeting ``Timeslices``: a slice is bad when it does not.

``dataset`` maps the indicator onto the columns of a dataset source (the platform's per-minute
counts, :func:`bizra_nb.fleet.platform_month`): keys ``bad``/``good``/``total`` (ratio) or
``value`` (threshold), from the OpenSLO metadata annotations ``bizra.io/dataset-bad`` and so on.
An SLO without it is measured from Prometheus only.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from bizra_nb.errors import InvalidInput, NotFound, excerpt

if TYPE_CHECKING:  # pandas is imported where it is used: the server loads the spec at startup, before pandas
    import pandas as pd

#: the windows whose error ratio the generated rules record (besides the SLO's period)
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


@dataclass(frozen=True)
class BurnAlert:
    """One multiwindow burn-rate condition: the error ratio over ``long`` and over ``short`` above ``factor`` × budget."""

    kind: str  # "page" | "ticket"
    factor: float
    long: str
    short: str


#: the multiwindow, multi-burn-rate conditions (Google SRE workbook, ch. 5): a page when either of the
#: first two holds, a ticket when either of the last two does
BURN_ALERTS = (
    BurnAlert("page", 14.4, "1h", "5m"),
    BurnAlert("page", 6.0, "6h", "30m"),
    BurnAlert("ticket", 3.0, "1d", "2h"),
    BurnAlert("ticket", 1.0, "3d", "6h"),
)
#: labels of the two alerts: severity (what Alertmanager routes on) and priority (the incident level)
ALERT_LEVELS = {"page": {"severity": "critical", "priority": "P1"},
                "ticket": {"severity": "warning", "priority": "P3"}}
DEFAULT_ALERT_NAMES = {"page": "ErrorBudgetBurnPage", "ticket": "ErrorBudgetBurnTicket"}
DEFAULT_RUNBOOK_URL = "docs/runbook.md#errorbudgetburn"
OPS = ("lt", "lte", "gt", "gte")  # OpenSLO's operators: the good side of a threshold
FAILING = {"lte": ">", "lt": ">=", "gte": "<", "gt": "<="}  # each operator's bad side, as PromQL compares
DEFAULT_SLICE = "1m"  # a Timeslices SLO's time slice when the spec names none


@dataclass(frozen=True)
class Window:
    """The SLO's period: a calendar month (``1M``, not rolling) or a rolling duration (``28d``)."""

    duration: str  # "1M" for a calendar month; else a Prometheus duration: "28d", "30d", "7d", "4w"
    calendar: bool

    @property
    def promql_range(self) -> str:
        """The range of the period's recording rule: Prometheus has no calendar ranges, a calendar month records 30d."""
        return "30d" if self.calendar else self.duration

    def describe(self) -> str:
        """``"calendar month"`` or ``"rolling 28 days"`` (``"rolling 4 weeks"``, ``"rolling 24 hours"``)."""
        if self.calendar:
            return "calendar month"
        match = _DURATION.fullmatch(self.duration)
        if not match:
            return f"rolling {self.duration}"
        count, unit = int(match.group(1)), _UNIT_WORDS[match.group(2)]
        return f"rolling {count} {unit}{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class Indicator:
    kind: str  # "ratio" | "error_ratio" | "threshold"
    good: str | None = None  # PromQL with {{.window}}
    bad: str | None = None
    total: str | None = None
    query: str | None = None  # error_ratio and threshold
    op: str | None = None  # threshold: lt, lte, gt, gte (the good side)
    value: float | None = None
    dataset: dict = field(default_factory=dict)  # {"bad"|"good"|"total"|"value": column name}
    # what the indicator measures, as a noun phrase ("the API's p99 latency in ms"): the OpenSLO indicator's
    # metadata.displayName (inline or the SLI document indicatorRef names); "" when not given (and for Sloth)
    display_name: str = ""


@dataclass(frozen=True)
class SLO:
    name: str  # [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters; unique in a spec set
    display_name: str
    description: str
    service: str
    target: float  # 0 < target < 1 (0.999)
    window: Window
    budgeting: str  # "Occurrences" | "Timeslices"
    indicator: Indicator
    timeslice_target: float | None = None  # Timeslices with a ratio indicator
    timeslice_window: str | None = None  # Timeslices: "1m"
    labels: dict = field(default_factory=dict)  # extra labels on the generated alerts
    annotations: dict = field(default_factory=dict)  # extra annotations on the generated alerts
    alert_names: dict = field(default_factory=lambda: dict(DEFAULT_ALERT_NAMES))  # {"page": ..., "ticket": ...}
    disabled_alerts: frozenset = frozenset()  # subset of {"page", "ticket"}
    runbook_url: str = DEFAULT_RUNBOOK_URL
    source: str = ""  # the file it was read from (for messages)
    # the hex SHA-256 of the bytes it was parsed from ("" when built in code); provenance, not part of the SLO:
    # two SLOs read alike from different bytes compare equal
    source_sha256: str = field(default="", compare=False)
    # Sloth's page_alert / ticket_alert labels and annotations, for that alert only: {"page": {...}, "ticket": {...}}
    alert_labels: dict = field(default_factory=dict)
    alert_annotations: dict = field(default_factory=dict)

    @property
    def budget(self) -> float:
        """The error budget as a ratio: 1 − target."""
        return 1.0 - self.target


def timesliced(slo: SLO) -> bool:
    """Whether the SLO counts bad time slices: ``Timeslices`` budgeting, or a threshold indicator (it has no
    event counts)."""
    return slo.budgeting == "Timeslices" or slo.indicator.kind == "threshold"


#: values echoed in an error message are cut to this many characters
SHOWN = 80
#: an SLO's name: unique in a spec set
NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
NAME_MAX = 63
#: labels the generated alerts set themselves: a spec may not set them
RESERVED_LABELS = ("slo", "severity", "priority", "service")
_DURATION = re.compile(r"([1-9][0-9]*)([smhdw])")
_UNIT_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week"}
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class SpecError(InvalidInput):
    """A spec has problems: ``problems`` lists each (``"FILE: document N (SLO x): path: what"``)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems) or "invalid SLO spec", field="slo_spec")


def find(slos: Sequence[SLO], name: str) -> SLO:
    """The SLO called ``name``.

    Raises
    ------
    NotFound
        Naming the known SLOs.
    """
    for slo in slos:
        if slo.name == name:
            return slo
    known = ", ".join(s.name for s in slos) or "none"
    raise NotFound(f"no SLO named {excerpt(str(name), SHOWN)}; known: {known}", field="slo")


def duration(text: str) -> pd.Timedelta:
    """A Prometheus-style duration (``30s``, ``1m``, ``24h``, ``28d``, ``4w``) as a Timedelta.

    Raises
    ------
    ValueError
        When ``text`` is not one (``1M`` is a calendar month, not a duration).
    """
    import pandas as pd

    match = _DURATION.fullmatch(str(text))
    if not match:
        raise ValueError(f"not a duration: {excerpt(text, SHOWN)}; expected a number and s, m, h, d or w (28d)")
    return pd.Timedelta(seconds=int(match.group(1)) * UNIT_SECONDS[match.group(2)])


def window_bounds(window: Window, at) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The period of ``window`` containing ``at`` (UTC; a naive ``at`` is taken as UTC).

    Calendar: ``[first of at's month 00:00 UTC, first of the next month)``; rolling: ``[at − duration, at)``.

    Examples
    --------
    >>> import pandas as pd
    >>> window_bounds(Window("1M", True), pd.Timestamp("2024-02-10 12:00", tz="UTC"))
    (Timestamp('2024-02-01 00:00:00+0000', tz='UTC'), Timestamp('2024-03-01 00:00:00+0000', tz='UTC'))
    >>> window_bounds(Window("28d", False), pd.Timestamp("2024-03-01", tz="UTC"))[0]
    Timestamp('2024-02-02 00:00:00+0000', tz='UTC')
    """
    import pandas as pd

    at = pd.Timestamp(at)
    at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
    if window.calendar:
        start = pd.Timestamp(year=at.year, month=at.month, day=1, tz="UTC")
        end = pd.Timestamp(year=at.year + (at.month == 12), month=at.month % 12 + 1, day=1, tz="UTC")
        return start, end
    return at - duration(window.duration), at
