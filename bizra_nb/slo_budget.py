"""Error budgets of SLOs: attainment, budget consumed and left, burn rates, from a dataset frame or from Prometheus.

The arithmetic (pure functions on frames) is shared by the monthly audit (:func:`month_budgets`), the API and
the deploy gate (:func:`status`, :func:`deploy_decision`). Its rules:

- **Occurrences**: the allowance is ``(1 − target) ×`` the events measured; bad events are the ``bad`` column
  (or ``total − good``). A calendar period IN PROGRESS budgets the events it is expected to have: the events so
  far ÷ the elapsed share of the period (the month's budget is fixed up front at the rate so far, so a few
  errors in its first minutes do not exhaust it); at the period's end that is the events measured.
- **Timeslices**: the allowance is ``(1 − target) ×`` every slice of the WHOLE period (a calendar month of 31
  days has 44,640 minutes), also for a month in progress. A slice without data is neither good nor bad. When
  a slice is longer than the data's step, its value is the worst value in it (the highest for ``lte``/``lt``,
  the lowest for ``gte``/``gt``). A threshold query that keeps labels (several series) gives one value per
  slice: the slice is bad when ANY series is bad, and has data when any series has a value.
- **Burn rate** over W: the error ratio over the W before the end / ``(1 − target)``; an alert condition of
  :data:`~bizra_nb.slo_spec.BURN_ALERTS` holds when both its windows burn faster than its factor (``>``).

From Prometheus the same numbers are measured by :mod:`bizra_nb.slo_prometheus` (the queries, their deadline
and cache); this module turns them into budgets. A status (the budget *now*, :func:`status`) from a Prometheus
that answers but has no data for an SLO in both the last 5 minutes and the last hour is ``stale`` (the server is
down, the target wrong, nothing scraped): its counts are old, so the gate does not judge on them. A source that
does not answer gives a :class:`Budget` with ``error`` set (naming the URL without credentials), never an
exception.

Texts (``explanation``, ``error``, the gate's reason) are PLAIN text: whoever puts them into Markdown or HTML
escapes them there. A share of a budget is written by :func:`budget_percent` everywhere.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Sequence

import numpy as np
import pandas as pd

from bizra_nb import slo_spec
from bizra_nb.errors import BizraError
from bizra_nb.slo_prometheus import QUERY_TIMEOUT, Measurement, measure, slice_length
from bizra_nb.slo_spec import BURN_ALERTS, SLO, WINDOWS, timesliced
from bizra_nb.sources import to_timestamp

DERIVED_COLUMNS = ("ahsan_score_5m",)  # computed from the platform frame (platform_metrics.score_over_time)
NO_SOURCE = "no metric source: start the server with --prometheus-url or --audit-source"
HISTORY = pd.Timedelta(days=3)  # the longest burn-rate window: data read before a period's start
STALE_AFTER = pd.Timedelta(hours=1)  # a dataset whose data ends longer than this before the time asked: stale
_FAILING_WORDS = {"lte": "over", "lt": "at or over", "gte": "under", "gt": "at or under"}
_UNITS = {"s": ("second", "seconds"), "m": ("minute", "minutes"), "h": ("hour", "hours"), "d": ("day", "days")}


@dataclass
class Budget:
    """One SLO's error budget over an interval of its period (see the module docstring for the arithmetic)."""

    slo: str
    display_name: str
    service: str
    target: float
    window: str  # "calendar month" / "rolling 28 days"
    budgeting: str
    start: pd.Timestamp  # the interval measured
    end: pd.Timestamp
    period_start: pd.Timestamp  # the whole period (month, or rolling window)
    period_end: pd.Timestamp
    unit: str | None = None  # "requests" (events), "minutes" (time slices), None (error_ratio: no counts)
    total: float | None = None  # events measured, or slices in the whole period (the allowance's base)
    measured: float | None = None  # events / slices with data
    bad: float | None = None
    allowed: float | None = None  # (1 − target) × total
    attainment: float | None = None  # 1 − bad / measured
    consumed: float | None = None  # bad / allowed (may exceed 1)
    remaining: float | None = None  # 1 − consumed (may be negative)
    met: bool | None = None  # attainment ≥ target (None: no data)
    burn_rates: dict = field(default_factory=lambda: {w: None for w in WINDOWS})
    alerting: str | None = None  # "page" | "ticket" | None
    explanation: str = ""  # plain words, PLAIN text (escape it where it becomes Markdown or HTML)
    source: str = "dataset"  # "dataset" | "prometheus"
    error: str | None = None  # why there is no number
    as_of: pd.Timestamp | None = None  # the time the figures are for (status: now, or a dataset's last data)
    no_data: float | None = None  # slices of the interval without data (Timeslices)
    stale: bool = False  # the figures are old: a dataset's data ends more than STALE_AFTER before the time asked,
    # or Prometheus has no data for the SLO in the last hour
    stale_reason: str | None = None  # why it is stale, in plain words (the gate's reason)

    def to_dict(self) -> dict:
        """The budget as JSON-safe values: ISO-8601 times, floats or None."""
        out = {}
        for f in fields(self):
            out[f.name] = _json_value(getattr(self, f.name))
        return out


def _json_value(value):
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def budget_percent(ratio: float | None) -> str:
    """A share of an error budget as the platform writes it everywhere (audit, charts, explanations, the gate).

    The rule: under 100 % one decimal, a whole number without it ("74 %", "25.9 %", "0.7 %"); from 100 %
    whole numbers with thousands separators ("132 %", "1,400 %"); a share that would round to a bound it has
    not reached says so ("under 0.1 %", "over 99.9 %"), so that only a budget used exactly reads "100 %";
    a negative share (a remaining budget overspent) the same with its sign ("-31 %"); None: "—".

    Examples
    --------
    >>> [budget_percent(r) for r in (0.74, 0.259, 1.3149, 0.0004, 0.99996, 1.0, -0.31, None)]
    ['74 %', '25.9 %', '131 %', 'under 0.1 %', 'over 99.9 %', '100 %', '-31 %', '—']
    """
    if ratio is None or not math.isfinite(float(ratio)):
        return "—"
    p = float(ratio) * 100
    sign, p = ("-" if p < 0 else ""), abs(p)
    if p == 0:
        return "0 %"
    if p < 0.05:
        return "-0.1 %" if sign else "under 0.1 %"
    if p < 100:
        if p >= 99.95:
            return f"{sign}over 99.9 %"
        text = f"{p:.1f}"
        return f"{sign}{text[:-2] if text.endswith('.0') else text} %"
    return f"{sign}{p:,.0f} %"


class _NoNumber(Exception):
    """Why a budget has no figures (becomes Budget.error)."""


# -- the shared arithmetic ---------------------------------------------------------------------------------------


def _budget(slo: SLO) -> float:
    """1 − target, rounded so that 1 − 0.999 is 0.001 (not 0.0010000000000000009): 10 of 10 allowed is exhausted."""
    return round(1.0 - slo.target, 12)


def _slice_words(slice_: pd.Timedelta) -> tuple[str, str]:
    """("A minute", "minutes") for 1m; ("A 5-minute slice", "5-minute slices") for 5m."""
    seconds = int(slice_.total_seconds())
    for suffix, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds % size == 0:
            n, (one, many) = seconds // size, _UNITS[suffix]
            if n == 1:
                return ("An " if one == "hour" else "A ") + one, many
            return f"A {n}-{one} slice", f"{n}-{one} slices"
    return f"A {slice_} slice", f"{slice_} slices"


def _empty(slo: SLO, start, end, period, *, source: str, error: str | None = None, as_of=None) -> Budget:
    period_start, period_end = period
    return Budget(slo=slo.name, display_name=slo.display_name, service=slo.service, target=slo.target,
                  window=slo.window.describe(), budgeting=slo.budgeting, start=start, end=end,
                  period_start=period_start, period_end=period_end, source=source, error=error, as_of=as_of,
                  explanation="" if error is None else f"No figures: {error}")


def _alerting(burn: dict) -> str | None:
    """``"page"`` or ``"ticket"`` when a condition of BURN_ALERTS holds (both windows strictly above the factor)."""
    for kind in ("page", "ticket"):
        for alert in BURN_ALERTS:
            if alert.kind == kind and all(burn.get(w) is not None and burn[w] > alert.factor
                                          for w in (alert.long, alert.short)):
                return kind
    return None


def _finish(budget: Budget, slo: SLO, *, total=None, measured=None, bad=None, ratio=None, burn=None,
            no_data: float = 0.0, future: float = 0.0, about: bool = False, worst: bool = False,
            note: str = "") -> Budget:
    """Fill in the figures and the explanation from the counts (or, for error_ratio, the ratio).

    ``worst``: a slice's value was the worst of several data steps; ``about``: counts are rates × seconds.
    """
    budget.burn_rates = {w: (None if burn is None else burn.get(w)) for w in WINDOWS}
    budget.alerting = _alerting(budget.burn_rates)
    if slo.indicator.kind == "error_ratio":
        if ratio is None:
            return _failed(budget, _no_data(slo, budget))
        budget.attainment = 1.0 - ratio
        budget.consumed = ratio / _budget(slo)
        budget.remaining = 1.0 - budget.consumed
        budget.met = budget.attainment >= slo.target
        budget.explanation = note + (
            f"An error ratio of {_percent(ratio)} against a budget of {_percent(_budget(slo))} "
            f"({_percent(slo.target)} target); {_consumed_words(budget.consumed, budget.remaining)}.")
        return budget
    if not measured:
        budget.total, budget.measured = total, measured
        return _failed(budget, _no_data(slo, budget))
    estimated = False
    share = _elapsed_share(budget)
    if not timesliced(slo) and slo.window.calendar and share is not None and share < 1:
        total, estimated = float(measured) / share, True  # the period's events at the rate so far
    budget.total, budget.measured, budget.bad = float(total), float(measured), float(bad)
    budget.allowed = _budget(slo) * budget.total
    budget.attainment = 1.0 - budget.bad / budget.measured
    budget.consumed = budget.bad / budget.allowed
    budget.remaining = 1.0 - budget.consumed
    budget.met = budget.attainment >= slo.target - 1e-12
    if timesliced(slo):
        budget.no_data = float(no_data)
        budget.unit = _slice_words(slice_length(slo))[1]
    else:
        budget.unit = "requests"
    budget.explanation = note + _explain(slo, budget, no_data=no_data, future=future, about=about, worst=worst,
                                         estimated=estimated)
    return budget


def _no_data(slo: SLO, budget: Budget) -> str:
    return f"no data for {slo.name} between {_when(budget.start)} and {_when(budget.end)}"


def _elapsed_share(budget: Budget) -> float | None:
    """The share of the period the interval measured covers, when it runs from the period's start (else None)."""
    whole = budget.period_end - budget.period_start
    if budget.start != budget.period_start or whole <= pd.Timedelta(0) or budget.end <= budget.start:
        return None
    return min(1.0, (budget.end - budget.period_start) / whole)


def _explain(slo: SLO, b: Budget, *, no_data: float, future: float, about: bool, worst: bool,
             estimated: bool = False) -> str:
    """The arithmetic in words (plain text): "99.9 % of 10,000 requests allows 10 bad requests; 13 were bad; …"."""
    approx = "about " if about else ""
    count = (lambda x: f"{x:,.0f}") if about else _count  # rate × seconds is no exact count
    bad = f"{approx}{count(b.bad)} {'was' if round(b.bad) == 1 else 'were'} bad"
    if timesliced(slo):
        one, many = _slice_words(slice_length(slo))
        ind = slo.indicator
        if ind.kind == "threshold":
            name = ind.display_name
            if worst:
                what = f"the worst of {name} in it" if name else "its worst value"
            else:
                what = name or "its value"
            condition = f"{what} is {_FAILING_WORDS[ind.op]} {ind.value:,g}"
        else:
            condition = f"under {_percent(slo.timeslice_target)} of its events are good"
        extra = []
        if no_data:
            extra.append(f"{_count(no_data)} {many if no_data != 1 else one.split(' ', 1)[1]} had no data")
        if future:
            extra.append(f"{_count(future)} are still to come")
        bad += f" ({', '.join(extra)})" if extra else ""
        text = (f"{one} is bad when {condition}: {_percent(slo.target)} of {_count(b.total)} {many} allows "
                f"{_allowed(b.allowed)} bad {many}; {bad}; {_consumed_words(b.consumed, b.remaining)}.")
    elif estimated:
        text = (f"{_percent(slo.target)} of about {b.total:,.0f} requests this {_period_noun(slo)} at the rate so far "
                f"({approx}{count(b.measured)} so far) allows {_allowed(b.allowed)} bad requests; {bad}; "
                f"{_consumed_words(b.consumed, b.remaining)}.")
    else:
        text = (f"{_percent(slo.target)} of {approx}{count(b.total)} requests allows {_allowed(b.allowed)} bad "
                f"requests; {bad}; {_consumed_words(b.consumed, b.remaining)}.")
    if about:
        text += " The counts are approximate: Prometheus rates extrapolate to the edges of the window."
    return text


def _count(x: float) -> str:
    return f"{x:,.0f}" if abs(x - round(x)) < 0.05 else f"{x:,.1f}"


def _allowed(x: float) -> str:
    """One decimal from 100 up (446.4, 1,791.2), three significant digits under it (44.6, 10, 0.03)."""
    if x < 100:
        return f"{x:.3g}"
    text = f"{x:,.1f}"
    return text[:-2] if text.endswith(".0") else text


def _percent(r: float) -> str:
    """A ratio or target as a percentage, up to 4 decimals: ``99.9 %``, ``0.0417 %``."""
    return f"{round(r * 100, 4):g} %"


def _period_noun(slo: SLO) -> str:
    return "month" if slo.window.calendar else "period"


def _consumed_words(consumed: float, remaining: float) -> str:
    tail = "the budget is exhausted" if remaining <= 0 else f"{budget_percent(remaining)} left"
    return f"{budget_percent(consumed)} of the budget consumed, {tail}"


def _when(t: pd.Timestamp) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _coverage_note(first, last_end, start, end, step) -> str:
    """A sentence when the data does not cover the interval measured (by more than one step)."""
    if first is None:
        return ""
    if first - start > step or end - last_end > step:
        return f"The data covers only {_when(max(first, start))} to {_when(min(last_end, end))} of this interval. "
    return ""


# -- from a dataset frame ----------------------------------------------------------------------------------------


def _step(frame: pd.DataFrame) -> pd.Timedelta:
    if len(frame.index) < 2:
        return pd.Timedelta(minutes=1)
    return pd.Timedelta(frame.index.to_series().diff().median())


def _column(slo: SLO, frame: pd.DataFrame, key: str) -> pd.Series:
    name = slo.indicator.dataset[key]
    if name in frame.columns:
        return pd.to_numeric(frame[name], errors="coerce").astype(float)
    if name in DERIVED_COLUMNS:  # "ahsan_score_5m", the only one
        from bizra_nb.platform_metrics import score_over_time
        from bizra_nb.score import WEIGHTS

        needed = ["bizra_events"] + [f"bizra_violations_{k}" for k in WEIGHTS]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise _NoNumber(f"the data has no column(s) {', '.join(missing)} to compute {name} for {slo.name}")
        score = score_over_time(frame[needed])
        return score.where(frame["bizra_events"].notna())
    raise _NoNumber(f"the data has no column {name} (the bizra.io/dataset-{key} of {slo.name})")


def _ratio_counts(slo: SLO, frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per step: bad events and all events (NaN where either is missing)."""
    mapping = slo.indicator.dataset
    if "total" not in mapping or not ({"bad", "good"} & set(mapping)):
        raise _NoNumber(f"{slo.name}: a ratio SLO's dataset mapping needs total and bad (or good) columns")
    total = _column(slo, frame, "total")
    bad = _column(slo, frame, "bad") if "bad" in mapping else total - _column(slo, frame, "good")
    missing = total.isna() | bad.isna()
    return bad.mask(missing), total.mask(missing)


def _slice_states(slo: SLO, frame: pd.DataFrame) -> tuple[pd.Series, float]:
    """Per time slice (indexed by its start): 1.0 bad, 0.0 good, NaN no data; and the slices one row stands for."""
    slice_, step = slice_length(slo), _step(frame)
    ind = slo.indicator
    if ind.kind == "threshold":
        values = _column(slo, frame, "value")
        if slice_ > step:
            worst = "max" if ind.op in ("lt", "lte") else "min"
            values = values.resample(slice_, origin="epoch").agg(worst)
        failing = {"lte": values > ind.value, "lt": values >= ind.value,
                   "gte": values < ind.value, "gt": values <= ind.value}[ind.op]
        states = failing.astype(float).where(values.notna())
    else:
        bad, total = _ratio_counts(slo, frame)
        if slice_ > step:
            bad = bad.resample(slice_, origin="epoch").sum(min_count=1)
            total = total.resample(slice_, origin="epoch").sum(min_count=1)
        good_ratio = 1.0 - bad / total.where(total > 0)
        states = (good_ratio < slo.timeslice_target).astype(float).where(good_ratio.notna())
    weight = step / slice_ if slice_ < step else 1.0
    return states, float(weight)


def _within(series: pd.Series, start, end) -> pd.Series:
    return series[(series.index >= start) & (series.index < end)]


def budget_from_frame(slo: SLO, frame: pd.DataFrame, start, end, *, period=None) -> Budget:
    """An SLO's error budget over ``[start, end)`` from per-step counts (the platform frame).

    Parameters
    ----------
    slo
        The SLO; its ``indicator.dataset`` names the columns (``ahsan_score_5m`` is derived).
    frame
        Per-step data with a UTC index (each row the step starting there); reaching back 3 days before
        ``end`` gives every burn rate.
    start, end
        The interval measured.
    period
        ``(period_start, period_end)``, the whole period (default: the interval). Timeslices' allowance counts
        every slice of it.

    Returns
    -------
    Budget
        With ``error`` set (and no figures) when the SLO has no dataset mapping, a column is missing, or the
        interval has no data.
    """
    start, end = to_timestamp(start, name="start"), to_timestamp(end, name="end")
    period = tuple(to_timestamp(p) for p in period) if period else (start, end)
    budget = _empty(slo, start, end, period, source="dataset")
    if not slo.indicator.dataset:
        return _failed(budget, f"{slo.name} is measured from Prometheus only (no bizra.io/dataset-* annotations)")
    if slo.indicator.kind == "error_ratio" and not {"bad", "good"} & set(slo.indicator.dataset):
        return _failed(budget, f"{slo.name}: an error-ratio SLO's dataset mapping needs total and bad (or good)")
    if not isinstance(frame.index, pd.DatetimeIndex) or frame.empty:
        return _finish(budget, slo, total=None, measured=0)
    if frame.index.tz is None:
        frame = frame.tz_localize("UTC")
    try:
        step = _step(frame)
        inside = frame.index[(frame.index >= start) & (frame.index < end)]
        note = _coverage_note(inside.min() if len(inside) else None, inside.max() + step if len(inside) else None,
                              start, end, step)
        burn = {}
        if timesliced(slo):
            states, weight = _slice_states(slo, frame)
            slice_ = slice_length(slo)
            part = _within(states, start, end)
            bad, measured = float(part.sum()) * weight, float(part.notna().sum()) * weight
            elapsed = math.floor((end - start) / slice_)
            total = math.floor((period[1] - period[0]) / slice_)
            for w in WINDOWS:
                recent = _within(states, end - slo_spec.duration(w), end)
                seen = recent.notna().sum()
                burn[w] = float(recent.sum() / seen) / _budget(slo) if seen else None
            return _finish(budget, slo, total=total, measured=measured, bad=bad, burn=burn,
                           no_data=max(0, elapsed - measured), future=max(0, total - elapsed), note=note,
                           worst=slo.indicator.kind == "threshold" and slice_ > step)
        bad, total = _ratio_counts(slo, frame)
        b, t = _within(bad, start, end), _within(total, start, end)
        for w in WINDOWS:
            rt = _within(total, end - slo_spec.duration(w), end).sum()
            burn[w] = float(_within(bad, end - slo_spec.duration(w), end).sum() / rt) / _budget(slo) if rt > 0 else None
        if slo.indicator.kind == "error_ratio":
            return _finish(budget, slo, ratio=float(b.sum() / t.sum()) if t.sum() > 0 else None, burn=burn, note=note)
        return _finish(budget, slo, total=float(t.sum()), measured=float(t.sum()), bad=float(b.sum()), burn=burn,
                       note=note)
    except _NoNumber as exc:
        return _failed(budget, str(exc))


def _failed(budget: Budget, error: str) -> Budget:
    budget.error = error
    budget.explanation = f"No figures: {error}"
    return budget


# -- from Prometheus (the measuring is bizra_nb.slo_prometheus's) ------------------------------------------------


def _from_measurement(slo: SLO, budget: Budget, m: Measurement) -> Budget:
    """Fill ``budget`` from what Prometheus measured; stale when it saw no data in the last hour (status)."""
    if m.error:
        return _failed(budget, m.error)
    burn = {w: (None if m.error_ratios.get(w) is None else m.error_ratios[w] / _budget(slo)) for w in WINDOWS}
    if slo.indicator.kind == "error_ratio":
        budget = _finish(budget, slo, ratio=m.ratio, burn=burn)
    elif timesliced(slo):
        budget = _finish(budget, slo, total=m.total, measured=m.measured, bad=m.bad, burn=burn, no_data=m.no_data,
                         future=m.future)
    else:
        budget = _finish(budget, slo, total=m.total, measured=m.measured, bad=m.bad, burn=burn, about=True)
    if m.fresh is False and budget.error is None:  # old counts: not what the source sees now
        budget.stale = True
        budget.stale_reason = f"no data from Prometheus for {slo.name} in the last hour"
    return budget


def budget_from_prometheus(slo: SLO, url: str, start, end, *, period=None, timeout: float = QUERY_TIMEOUT,
                           deadline: float | None = None) -> Budget:
    """An SLO's error budget over ``[start, end)`` from Prometheus: instant queries at ``end``, run concurrently.

    Parameters
    ----------
    slo
        The SLO; its PromQL queries get ``{{.window}}`` = the interval in seconds (counts: rate × seconds),
        the time slice (threshold: subqueries with the slice as step), or each burn-rate window.
    url
        The Prometheus HTTP API base URL (``user:password@`` in it is sent as basic auth, never shown).
    start, end
        The interval measured.
    period
        ``(period_start, period_end)`` (default: the interval).
    timeout
        Seconds per query.
    deadline
        Seconds for all the queries (default :data:`bizra_nb.slo_prometheus.EVALUATION_DEADLINE`).

    Returns
    -------
    Budget
        ``error`` names the URL (without credentials) when Prometheus does not answer or refuses a query.
    """
    start, end = to_timestamp(start, name="start"), to_timestamp(end, name="end")
    period = tuple(to_timestamp(p) for p in period) if period else (start, end)
    return _prometheus_budgets([(slo, start, end, period)], url, timeout=timeout, deadline=deadline)[0]


# -- the audit and the API ---------------------------------------------------------------------------------------


def _is_url(source: str) -> bool:
    return str(source).startswith(("http://", "https://"))


def _period(window, as_of: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The period containing ``as_of``; at the very start of a period, the one that just ended."""
    start, end = slo_spec.window_bounds(window, as_of)
    if start >= as_of:
        start, end = slo_spec.window_bounds(window, as_of - pd.Timedelta(seconds=1))
    return start, end


def month_budgets(slos: Sequence[SLO], month: str, *, frame: pd.DataFrame | None = None,
                  source: str = "") -> list[Budget]:
    """Each SLO over ``month`` (calendar) or the rolling window ending at the month's end: the audit's budgets.

    Parameters
    ----------
    slos
        The SLOs (e.g. :func:`bizra_nb.slo_spec.load_specs`).
    month
        ``YYYY-MM``.
    frame
        The platform's per-step counts (what the audit loaded); what it does not cover of a rolling window is
        read from ``source`` when given, else the explanation says what the data covered. None with a
        Prometheus ``source``: every SLO is measured from Prometheus (its PromQL over the interval).
    source
        A dataset file or Prometheus URL. SLOs without a dataset mapping are measured from a Prometheus
        source over the interval (on a dataset source they get ``error``).

    Returns
    -------
    list[Budget]
        In the order of ``slos``; burn rates are those at the interval's end.
    """
    from bizra_nb.platform_metrics import month_bounds

    month_start, month_end = month_bounds(month)
    periods = {s.name: (month_start, month_end) if s.window.calendar else slo_spec.window_bounds(s.window, month_end)
               for s in slos}
    on_prometheus = _is_url(source)
    chosen = [i for i, s in enumerate(slos) if on_prometheus and (frame is None or not s.indicator.dataset)]
    mapped = [s for i, s in enumerate(slos) if s.indicator.dataset and i not in chosen]
    load_error = None
    if mapped:
        need = min(periods[s.name][0] for s in mapped)
        try:
            frame = _complete(frame, need, month_end, source)
        except BizraError as exc:
            load_error = exc.message
    jobs = [(slos[i], *periods[slos[i].name], periods[slos[i].name]) for i in chosen]
    measured = dict(zip(chosen, _prometheus_budgets(jobs, source, timeout=QUERY_TIMEOUT,
                                                                 deadline=math.inf))) if jobs else {}
    budgets = []
    for i, slo in enumerate(slos):
        start, end = periods[slo.name]
        if i in measured:
            budgets.append(measured[i])
        elif not slo.indicator.dataset:
            budgets.append(budget_from_frame(slo, pd.DataFrame(), start, end, period=(start, end)))
        elif frame is None:
            budgets.append(_failed(_empty(slo, start, end, (start, end), source="dataset"),
                                   load_error or "no platform metrics to measure it from"))
        else:
            budgets.append(budget_from_frame(slo, frame, start, end, period=(start, end)))
    return budgets


def _complete(frame: pd.DataFrame | None, need: pd.Timestamp, end: pd.Timestamp, source: str) -> pd.DataFrame | None:
    """``frame`` with what it lacks of ``[need, end)`` read from ``source`` (a dataset file or Prometheus)."""
    if frame is not None and len(frame) and frame.index.min() <= need + _step(frame):
        return frame
    if not source:
        return frame
    stop = end if frame is None or not len(frame) else frame.index.min()
    if _is_url(source):
        from bizra_nb.platform_metrics import load_platform_metrics

        parts, cursor = [], need.tz_convert("UTC").normalize().replace(day=1)
        while cursor < stop:
            parts.append(load_platform_metrics(source, cursor.strftime("%Y-%m"))[0])
            cursor += pd.offsets.MonthBegin(1)
        extra = pd.concat(parts) if parts else pd.DataFrame()
    else:
        from bizra_nb.sources import open_source

        extra = open_source(source).fetch(start=need, end=stop - pd.Timedelta(seconds=1)).frame
    extra = extra[(extra.index >= need) & (extra.index < stop)]
    if frame is None or not len(frame):
        return extra
    return pd.concat([extra, frame]).sort_index()


def status(slos: Sequence[SLO], source: str, *, at=None, timeout: float = QUERY_TIMEOUT,
           deadline: float | None = None) -> list[Budget]:
    """Each SLO over its current period so far, with burn rates and alerting: what ``GET /slo`` shows.

    Parameters
    ----------
    slos
        The SLOs.
    source
        ``""`` (every budget's error says so), a dataset file (read once; the figures are as of its last data
        when that is earlier than ``at``) or a Prometheus URL.
    at
        The time (ISO-8601, Unix seconds, datetime or Timestamp; default now).
    timeout
        Seconds per Prometheus query.
    deadline
        Seconds for all the Prometheus queries (default :data:`bizra_nb.slo_prometheus.EVALUATION_DEADLINE`);
        past it, every budget's error says Prometheus did not answer all queries in time.

    Returns
    -------
    list[Budget]
        In the order of ``slos``; ``stale`` (with ``stale_reason``) when a dataset's data ends more than
        :data:`STALE_AFTER` before ``at``, or when Prometheus answers but has no data for the SLO in the last 5
        minutes nor the last hour before ``at``; a source problem is each budget's ``error``, never an exception.

    Raises
    ------
    InvalidInput
        ``at`` is not a time (naming ``at``).
    """
    at = to_timestamp(at, name="at") if at is not None else pd.Timestamp.now(tz="UTC").floor("s")
    if source and not _is_url(source):
        return _dataset_status(slos, source, at)
    periods = [_period(s.window, at) for s in slos]
    if not source:
        return [_failed(_empty(s, *period, period, source="dataset", as_of=at), NO_SOURCE)
                for s, period in zip(slos, periods)]
    return _prometheus_budgets([(s, period[0], at, period) for s, period in zip(slos, periods)], source,
                               timeout=timeout, deadline=deadline, as_of=at)


def _prometheus_budgets(jobs: list, url: str, *, timeout: float, deadline: float | None = None,
                        as_of=None) -> list[Budget]:
    """Budgets of ``jobs`` (``(slo, start, end, period)``) from Prometheus, every query of them run together.

    With ``as_of`` (a status: the budget now), an SLO without data in the last hour is ``stale``."""
    measured = measure(jobs, url, timeout=timeout, deadline=deadline, fresh=as_of is not None)
    return [_from_measurement(slo, _empty(slo, start, end, period, source="prometheus", as_of=as_of), m)
            for (slo, start, end, period), m in zip(jobs, measured)]


def _dataset_status(slos: Sequence[SLO], source: str, at: pd.Timestamp) -> list[Budget]:
    from bizra_nb.sources import open_source

    try:
        src = open_source(source)
        whole = getattr(src, "frame", None)
        as_of = at
        if whole is not None and len(whole):
            as_of = min(at, whole.index.max() + _step(whole))
        periods = {s.name: _period(s.window, as_of) for s in slos}
        earliest = min(p[0] for p in periods.values()) - HISTORY
        frame = src.fetch(start=earliest, end=as_of).frame
        if whole is None and len(frame):
            as_of = min(at, frame.index.max() + _step(frame))
            periods = {s.name: _period(s.window, as_of) for s in slos}
    except BizraError as exc:
        return [_failed(_empty(s, *period, period, source="dataset", as_of=at), exc.message)
                for s, period in ((s, _period(s.window, at)) for s in slos)]
    stale = at - as_of > STALE_AFTER  # as_of is where the data ends when that is before `at`
    budgets = []
    for slo in slos:
        start, end = periods[slo.name]
        budget = budget_from_frame(slo, frame, start, as_of, period=(start, end))
        budget.as_of, budget.stale = as_of, bool(stale)
        budget.stale_reason = _stale_words(as_of) if stale else None
        budgets.append(budget)
    return budgets


def deploy_decision(budget: Budget) -> tuple[bool, str | None]:
    """Whether a deploy may go ahead under this SLO: ``(True, None)`` or ``(False, reason)``.

    A deploy waits when the budget is exhausted (``remaining ≤ 0``), when a fast burn pages, and when the
    budget is unknown (``error``: no source, source down; ``stale``: the data ends long before the time asked, or
    Prometheus has none for the last hour; the reason is ``stale_reason``):
    a gate that cannot see must not say yes. The reason names the SLO (its display name) and the period:
    "budget exhausted: API availability has used 132 % of its error budget for November 2026 (calendar month,
    target 99.9 %)"; a rolling window: "… for the 28 days to 2026-11-05 15:00 UTC (target 99.9 %)".
    """
    if budget.error:
        return False, f"budget unknown: {budget.error}"
    if budget.stale:
        return False, f"budget unknown: {budget.stale_reason or _stale_words(budget.as_of)}"
    name = budget.display_name or budget.slo
    period, rules = _period_words(budget)
    if budget.remaining is not None and budget.remaining <= 0:
        return False, (f"budget exhausted: {name} has used {budget_percent(budget.consumed)} of its error budget "
                       f"for {period} ({rules})")
    if budget.alerting == "page":
        for alert in BURN_ALERTS:
            rates = budget.burn_rates
            if alert.kind == "page" and all(rates.get(w) is not None and rates[w] > alert.factor
                                            for w in (alert.long, alert.short)):
                return False, (f"fast burn: {name} is burning its error budget for {period} at "
                               f"{rates[alert.long]:.1f}× over {alert.long} and {rates[alert.short]:.1f}× over "
                               f"{alert.short} (a page fires above {alert.factor:g}×; {rules})")
        return False, f"fast burn: {name} is burning its error budget for {period} fast enough to page ({rules})"
    return True, None


def _stale_words(as_of: pd.Timestamp | None) -> str:
    """Why a dataset's figures are old: "the data ends at …, more than 1 h before the time asked for (…)"."""
    ends = _when(as_of) if as_of is not None else "an unknown time"
    return (f"the data ends at {ends}, more than {_hours(STALE_AFTER)} before the time asked for "
            "(is the dataset still being written?)")


def _hours(delta: pd.Timedelta) -> str:
    hours = delta / pd.Timedelta(hours=1)
    return f"{hours:g} h"


def _period_words(budget: Budget) -> tuple[str, str]:
    """("November 2026", "calendar month, target 99.9 %") or ("the 28 days to 2026-11-05 15:00 UTC", "target …")."""
    target = f"target {_percent(budget.target)}"
    if budget.window == "calendar month":
        return budget.period_start.strftime("%B %Y"), f"calendar month, {target}"
    length = budget.window.removeprefix("rolling ")
    return f"the {length} to {_when(budget.end)}", target
