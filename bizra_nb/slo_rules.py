"""Prometheus rules generated from SLO specs: error-ratio recordings, burn-rate alerts and their promtool tests.

For each :class:`~bizra_nb.slo_spec.SLO` the generated group records, with the labels ``slo`` and
``service`` (other labels the query keeps stay):

``slo:sli_error:ratio_rate<W>``
    the error ratio over each window of :data:`~bizra_nb.slo_spec.WINDOWS` and over the SLO's
    period (``ratio_rate30d`` for a calendar month: Prometheus has no calendar ranges);
``slo:sli_breach:bool``
    Timeslices only: 1 when the current slice (``timeslice_window``) is bad, 0 when good; the
    ratios are then ``avg_over_time`` of it (the share of bad slices). A slice without data is
    neither good nor bad: the recording is ``((query) >= -Inf) > bool value``, so a query that is
    NaN (a p99 of no traffic, 0/0) or absent records no sample at all, rather than a 0 (good) that
    would dilute the share of bad slices;
``slo:objective:ratio``, ``slo:error_budget:ratio``
    the target and 1 − target, for dashboards.

and the two multiwindow, multi-burn-rate alerts of :data:`~bizra_nb.slo_spec.BURN_ALERTS`
(page, ticket), written in burn-rate form (``slo:sli_error:ratio_rate1h{slo="x"} / 0.001 > 14.4 and
…``), so an alert's ``$value`` is the burn rate of the long window: its summary says how fast the
budget burns ("burns 75.8× as fast as the SLO allows (page)"), its description the windows, the
budget and how long until it is gone at each factor, and the error ratio now.

Labels and annotations: the spec's labels (the SLO's, then the alert's own) go on the alert under
ours, except that a ``severity`` the spec gives one alert (Sloth ``page_alert``/``ticket_alert``
labels) wins over ours for that alert; ``slo``, ``service``, ``priority`` (the incident level)
and ``runbook_url`` (the spec's runbook link, or the platform's) are always ours. The spec's
annotations go on the alerts, and its own ``summary`` / ``description`` (the SLO's, then the
alert's) win over ours; ``runbook_url`` is ours. Text from the spec that ends up in labels or
annotations is escaped for Prometheus' Go templating, so a display name such as
``{{ $labels.x }}`` stays literal text.
"""
from __future__ import annotations

import json
import re
from typing import Iterable

import yaml

from bizra_nb.slo_fields import WINDOW_VAR
from bizra_nb.slo_spec import (ALERT_LEVELS, BURN_ALERTS, DEFAULT_SLICE, FAILING, SLO, WINDOWS, duration,
                               timesliced)

_WORDS = {"5m": "5 m", "30m": "30 m", "1h": "1 h", "2h": "2 h", "6h": "6 h", "1d": "1 day", "3d": "3 days"}


# -- small formatting pieces ------------------------------------------------------------------------------------


def number(value: float) -> str:
    """A threshold as PromQL and people write it: ``0.0144``, not ``0.014400000000000001``."""
    return f"{value:.10g}"


def percent(value: float) -> str:
    """``0.001`` → ``"0.1 %"``."""
    return f"{value * 100:.4g} %"


def template_literal(text: str) -> str:
    """``text`` made inert for Prometheus' Go templating: each brace becomes an action printing it.

    Escaping the braces one by one (not the pairs) means no brace of the input can pair up with one
    of the inserted actions, whatever the input (``{}}``, ``{{{`` …).
    """
    return re.sub(r"[{}]", lambda m: '{{ "%s" }}' % m.group(), str(text))


def promql_string(value: str) -> str:
    """A PromQL string literal (double quotes, backslash escapes) for a label matcher."""
    return json.dumps(str(value), ensure_ascii=False)


def _days(value: float) -> str:
    text = f"{value:.1f}".removesuffix(".0")
    return f"{text} day" if text == "1" else f"{text} days"


def _selector(slo: SLO) -> str:
    return f"{{slo={promql_string(slo.name)}}}"


# -- recording rules --------------------------------------------------------------------------------------------


def _slice_error(slo: SLO) -> str:
    """PromQL that is 1 when the current time slice is bad, 0 when good, nothing without data (``slo:sli_breach:bool``).

    ``>= -Inf`` keeps every number (also ±Inf) and drops NaN, which a ``bool`` comparison would
    turn into 0 (a good slice). A threshold query that keeps labels (``sum by (code)``) is one slice, bad
    when any of its series is (``max``): as /slo and the audit count it (:mod:`bizra_nb.slo_budget`).
    """
    ind = slo.indicator
    window = slo.timeslice_window or DEFAULT_SLICE
    if ind.kind == "threshold":
        return (f"max((({ind.query.replace(WINDOW_VAR, window)}) >= -Inf) {FAILING[ind.op]} bool "
                f"{number(ind.value)})")
    allowed = 1.0 - (slo.timeslice_target if slo.timeslice_target is not None else slo.target)
    return f"(({_error_ratio(slo, window)}) >= -Inf) > bool {number(allowed)}"


def _error_ratio(slo: SLO, window: str) -> str:
    """The share of bad events over ``window`` (ratio and error_ratio indicators)."""
    ind = slo.indicator
    if ind.kind == "error_ratio":
        return ind.query.replace(WINDOW_VAR, window)
    total = ind.total.replace(WINDOW_VAR, window)
    if ind.bad:
        return f"({ind.bad.replace(WINDOW_VAR, window)})\n/\n({total})"
    return f"1 - (\n  ({ind.good.replace(WINDOW_VAR, window)})\n  /\n  ({total})\n)"


def recording_rules(slo: SLO) -> list[dict]:
    """The recording rules of one SLO: its error ratio over every window and its period, target and budget.

    Parameters
    ----------
    slo : SLO
        The SLO.

    Returns
    -------
    list of dict
        Prometheus rules (``record``, ``expr``, ``labels``), in evaluation order: a Timeslices SLO's
        ``slo:sli_breach:bool`` first, as its ratios average it.
    """
    labels = {"slo": slo.name, "service": slo.service}
    rules = []
    if timesliced(slo):
        rules.append({"record": "slo:sli_breach:bool", "expr": _slice_error(slo), "labels": dict(labels)})
    for window in (*WINDOWS, slo.window.promql_range):
        if timesliced(slo):
            expr = f"avg_over_time(slo:sli_breach:bool{_selector(slo)}[{window}])"
        else:
            expr = _error_ratio(slo, window)
        rules.append({"record": f"slo:sli_error:ratio_rate{window}", "expr": expr, "labels": dict(labels)})
    rules.append({"record": "slo:objective:ratio", "expr": f"vector({number(slo.target)})", "labels": dict(labels)})
    rules.append({"record": "slo:error_budget:ratio", "expr": f"vector({number(slo.budget)})",
                  "labels": dict(labels)})
    return rules


# -- alerts -----------------------------------------------------------------------------------------------------


def _conditions(kind: str) -> list:
    return [b for b in BURN_ALERTS if b.kind == kind]


def _what(slo: SLO) -> str:
    if timesliced(slo):
        return f"share of bad {slo.timeslice_window or DEFAULT_SLICE} time slices"
    return "error ratio (bad events / all events)" if slo.indicator.kind == "ratio" else "error ratio"


def _period_words(slo: SLO) -> tuple[str, float]:
    if slo.window.calendar:
        return "the month's budget", 30.0
    return f"the budget of the {slo.window.describe()}", duration(slo.window.duration).total_seconds() / 86400


#: the alert's value (the long window's burn rate) as the summary shows it
LIVE_BURN = '{{ $value | printf "%.1f" }}'


def burn_text(burn: float) -> str:
    """What ``{{ $value | printf "%.1f" }}`` renders for a burn rate: Go's ``%.1f`` (``75.8``)."""
    return f"{burn:.1f}"


def live_ratio(slo: SLO) -> str:
    """A template of the error ratio behind the alert's burn rate: ``$value`` × the budget, in PromQL (Prometheus'
    templates have no arithmetic), as a percentage (``1.5%``)."""
    return '{{ printf "%v * ' + number(slo.budget) + '" $value | query | first | value | humanizePercentage }}'


def _summary(slo: SLO, kind: str, literal=template_literal, burn: str = LIVE_BURN) -> str:
    """``API availability: the error budget burns 75.8× as fast as the SLO allows (page)``."""
    return f"{literal(slo.display_name)}: the error budget burns {burn}× as fast as the SLO allows ({kind})"


def _description(slo: SLO, kind: str, literal=template_literal, ratio: str | None = None,
                 burn: str = LIVE_BURN) -> str:
    """What burns, above which factors over which windows, what the budget is and how long it lasts at each
    factor; ends with the live error ratio and burn rate of the long window (``$value``).

    ``literal`` escapes the spec's text; ``ratio`` and ``burn`` are the live values' text (the templates,
    or in a test's expectation what Prometheus renders).
    """
    ratio = live_ratio(slo) if ratio is None else ratio
    budget_words, days = _period_words(slo)
    conditions = _conditions(kind)
    over = ", or ".join(f"above {number(b.factor)}x the budget ({percent(b.factor * slo.budget)}) over both "
                        f"{_WORDS.get(b.long, b.long)} and {_WORDS.get(b.short, b.short)}" for b in conditions)
    gone = ", ".join(f"at {number(b.factor)}x in {_days(days / b.factor)}" for b in conditions)
    longs = " (or ".join(_WORDS.get(b.long, b.long) for b in conditions) + ")" * (len(conditions) - 1)
    what = _what(slo)
    return (f"{literal(slo.display_name)} ({literal(slo.name)}, service {literal(slo.service)}, target "
            f"{percent(slo.target)}, error budget {percent(slo.budget)}): the {what} is {over}. "
            f"At this rate {budget_words} is gone {gone}. The {what} over {longs} is now {ratio}: "
            f"the budget burns {burn}x as fast as the SLO allows.")


def _expr(slo: SLO, kind: str) -> str:
    """Burn-rate form: ``ratio_rate<long> / budget > factor and ratio_rate<short> / budget > factor`` (or the next
    condition), so the alert's value is the long window's burn rate."""
    sel, budget = _selector(slo), number(slo.budget)
    parts = [f"(slo:sli_error:ratio_rate{b.long}{sel} / {budget} > {number(b.factor)}"
             f" and slo:sli_error:ratio_rate{b.short}{sel} / {budget} > {number(b.factor)})"
             for b in _conditions(kind)]
    return "\nor\n".join(parts)


#: annotations of the spec that win over ours (the rest of ours always win)
SPEC_ANNOTATIONS = ("summary", "description")


def alert_labels(slo: SLO, kind: str) -> dict:
    """The labels of the ``kind`` (page, ticket) alert as written in the rule: :func:`rendered_labels`, escaped."""
    return {k: template_literal(v) for k, v in rendered_labels(slo, kind).items()}


def _spec_annotations(slo: SLO, kind: str) -> dict:
    return {**slo.annotations, **slo.alert_annotations.get(kind, {})}


def alert_annotations(slo: SLO, kind: str) -> dict:
    """The annotations of the ``kind`` alert as written in the rule: the spec's text escaped; ours win, except
    over the spec's own summary and description."""
    theirs = _spec_annotations(slo, kind)
    ours = {"summary": _summary(slo, kind), "description": _description(slo, kind),
            "runbook_url": template_literal(slo.runbook_url)}
    return {**{k: template_literal(v) for k, v in theirs.items()},
            **{k: v for k, v in ours.items() if k not in theirs or k not in SPEC_ANNOTATIONS}}


def alert_rules(slo: SLO) -> list[dict]:
    """The burn-rate alerts of one SLO: page and ticket, less the spec's disabled ones.

    Parameters
    ----------
    slo : SLO
        The SLO.

    Returns
    -------
    list of dict
        Prometheus alerting rules (``alert``, ``expr``, ``labels``, ``annotations``). Each fires while
        either of its :data:`~bizra_nb.slo_spec.BURN_ALERTS` conditions holds (both windows above the
        factor × the error budget), without ``for:``: the short window ends it soon after the burn stops. The
        expressions are in burn-rate form (error ratio / error budget > factor), so the alert's value is the
        burn rate of the long window (of the first condition that holds).
    """
    return [_alert_rule(slo, kind) for kind in _kinds(slo)]


def _kinds(slo: SLO) -> list[str]:
    return [kind for kind in ("page", "ticket") if kind not in slo.disabled_alerts]


def _alert_rule(slo: SLO, kind: str) -> dict:
    return {"alert": slo.alert_names.get(kind) or kind, "expr": _expr(slo, kind),
            "labels": alert_labels(slo, kind), "annotations": alert_annotations(slo, kind)}


def _alert_comment(slo: SLO, kind: str) -> str:
    factors = " or ".join(f"{number(b.factor)}x over {b.long} and {b.short}" for b in _conditions(kind))
    return f"{kind}: {factors} (x the error budget {number(slo.budget)})"


# -- the files --------------------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (the alert expressions), plain otherwise."""


def _str(dumper: yaml.SafeDumper, value: str):
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def _dump(data) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000, default_flow_style=False)


def _indent(text: str, spaces: int) -> str:
    return "".join(" " * spaces + line if line.strip() else line for line in text.splitlines(keepends=True))


def _comments(lines: Iterable[str], spaces: int) -> str:
    return "".join(f"{' ' * spaces}# {line}\n" if line else f"{' ' * spaces}#\n" for line in lines)


def _rule_text(rule: dict, comment: str | None = None) -> str:
    text = _dump([rule])
    return (_comments([comment], 6) if comment else "") + _indent(text, 6)


def rule_file(slos: list[SLO], *, command: str) -> str:
    """The Prometheus rule file of ``slos``: one group per SLO (recordings, then its alerts).

    Parameters
    ----------
    slos : list of SLO
        The SLOs, in the order of the spec.
    command : str
        The command that generates it, named in the header.

    Returns
    -------
    str
        YAML text, the same for the same SLOs (no timestamps).
    """
    header = [f"GENERATED by `{command}` from the SLO spec: do not edit.",
              "Change the spec and regenerate with `make slo-rules` (a test fails when this file differs).",
              "",
              "Per SLO (labels slo, service): slo:sli_error:ratio_rate<W> the error ratio over "
              + ", ".join(WINDOWS) + " and the period,",
              "slo:objective:ratio, slo:error_budget:ratio; Timeslices SLOs first record slo:sli_breach:bool (1: the",
              "slice is bad) and their ratios are the share of bad slices. A calendar month's period is recorded as",
              "ratio_rate30d: Prometheus has no calendar ranges (the audit and /slo count the real month).",
              "Alerts: multiwindow, multi-burn-rate (page: 14.4x over 1h and 5m or 6x over 6h and 30m; ticket: 3x",
              "over 1d and 2h or 1x over 3d and 6h; x = times the error budget). An alert's value is the burn rate",
              "of its long window (error ratio / error budget); a slice without data records no breach sample."]
    out = [_comments(header, 0), "groups:\n"]
    for slo in slos:
        out.append(f"  - name: slo-{slo.name}\n")
        about = [f"{slo.name}: {number(slo.target)} over the {slo.window.describe()}, {slo.budgeting}, "
                 f"indicator {slo.indicator.kind}"]
        if slo.window.calendar:
            about.append(f"the period's ratio_rate{slo.window.promql_range} stands in for the calendar month")
        out.append(_comments(about, 4))
        out.append("    rules:\n")
        for rule in recording_rules(slo):
            out.append(_rule_text(rule))
        for kind in _kinds(slo):
            out.append(_rule_text(_alert_rule(slo, kind), _alert_comment(slo, kind)))
    return "".join(out)


# -- the promtool unit tests ------------------------------------------------------------------------------------


def humanize_percentage(value: float) -> str:
    """Prometheus' ``humanizePercentage`` (Go ``%.4g`` of ``value × 100``, then ``%``)."""
    text = f"{value * 100:.4g}"
    return text + "%"


def alert_value(slo: SLO, error_ratio: float) -> float:
    """The value of a firing alert whose long window's error ratio is ``error_ratio``: its burn rate, as PromQL
    computes it (``ratio / budget``, the budget as written in the rule)."""
    return error_ratio / float(number(slo.budget))


def rendered_annotations(slo: SLO, kind: str, value: float) -> dict:
    """The annotations of the ``kind`` alert as Prometheus renders them for an alert value ``value`` (the long
    window's burn rate, :func:`alert_value`)."""
    def same(text):
        return str(text)

    theirs = {k: str(v) for k, v in _spec_annotations(slo, kind).items()}
    burn = burn_text(value)
    ours = {"summary": _summary(slo, kind, same, burn),
            "description": _description(slo, kind, same, humanize_percentage(value * float(number(slo.budget))),
                                        burn),
            "runbook_url": slo.runbook_url}
    return {**theirs, **{k: v for k, v in ours.items() if k not in theirs or k not in SPEC_ANNOTATIONS}}


def rendered_labels(slo: SLO, kind: str) -> dict:
    """The labels of the ``kind`` alert as it fires on a series labelled only ``slo`` and ``service``: the
    spec's (the SLO's, then the alert's own) under ours; the alert's own ``severity`` wins over ours."""
    own = slo.alert_labels.get(kind, {})
    levels = {**ALERT_LEVELS[kind], **({"severity": own["severity"]} if own.get("severity") else {})}
    ours = {**levels, "slo": slo.name, "service": slo.service, "runbook_url": slo.runbook_url}
    return {k: str(v) for k, v in {**slo.labels, **own, **ours}.items()}


#: (name, {window: burn rate × budget}, which alert fires and its value's window); unnamed windows are 0
CASES = (
    ("a fast burn pages (1h and 5m at 15x the budget)", {"1h": 15, "5m": 15}, {"page": "1h"}),
    ("a very fast burn pages with its rate rounded (1h and 5m at 75.83x: 75.8x)", {"1h": 75.83, "5m": 75.83},
     {"page": "1h"}),
    ("a slow burn pages (6h and 30m at 6.5x)", {"6h": 6.5, "30m": 6.5}, {"page": "6h"}),
    ("a steady 3.5x burn tickets and does not page (1d, 2h, 1h, 5m at 3.5x)",
     {"1d": 3.5, "2h": 3.5, "1h": 3.5, "5m": 3.5}, {"ticket": "1d"}),
    ("a slow 1.5x burn tickets (3d, 6h, 30m at 1.5x)", {"3d": 1.5, "6h": 1.5, "30m": 1.5}, {"ticket": "3d"}),
    ("below every threshold nothing fires (all windows at 0.9x)", dict.fromkeys(WINDOWS, 0.9), {}),
    ("just under each factor nothing fires (98 % of 14.4x, 6x, 3x, 1x)",
     {"1h": 14.112, "5m": 14.112, "6h": 5.88, "30m": 5.88, "1d": 2.94, "2h": 2.94, "3d": 0.98}, {}),
    ("long windows over, short windows under: the burn stopped, nothing fires",
     {"1h": 15, "5m": 0.5, "6h": 6.5, "30m": 0.5, "1d": 3.5, "2h": 0.5, "3d": 0.5}, {}),
    ("3 days over but 6 hours under: nothing fires", {"3d": 1.5, "6h": 0.5}, {}),
)


def _labels_text(labels: dict) -> str:
    return ", ".join(f"{k}={promql_string(v)}" for k, v in labels.items())


def unit_tests(slos: list[SLO], *, rules_path: str) -> str:
    """``promtool test rules`` tests of the alerts of ``slos`` in the rule file at ``rules_path``.

    Input series are the recorded ``slo:sli_error:ratio_rate<W>{slo, service}`` themselves: the
    recording rules find no raw metrics in a test, so they record nothing and the input drives the
    alerts (the recording expressions have their own end-to-end tests with raw metrics).

    Parameters
    ----------
    slos : list of SLO
        The SLOs of the rule file.
    rules_path : str
        The rule file as the test file names it (relative to the test file, or absolute).

    Returns
    -------
    str
        YAML text, deterministic.
    """
    tests = []
    for slo in slos:
        kinds = _kinds(slo)
        series_labels = {"slo": slo.name, "service": slo.service}
        for name, rates, fires in CASES:
            inputs = []
            for window in WINDOWS:
                value = float(number(rates.get(window, 0) * slo.budget))
                inputs.append({"series": f"slo:sli_error:ratio_rate{window}{{{_labels_text(series_labels)}}}",
                               "values": f"{number(value)}x30"})
            checks: dict[str, list] = {}  # by alert name: a spec may give page and ticket the same name
            for kind in kinds:
                expected = checks.setdefault(slo.alert_names.get(kind) or kind, [])
                if kind in fires:
                    value = alert_value(slo, float(number(rates[fires[kind]] * slo.budget)))
                    expected.append({"exp_labels": rendered_labels(slo, kind),
                                     "exp_annotations": rendered_annotations(slo, kind, value)})
            checks = [{"eval_time": "10m", "alertname": name, "exp_alerts": expected}
                      for name, expected in checks.items()]
            tests.append({"name": f"{slo.name}: {name}", "interval": "1m", "input_series": inputs,
                          "alert_rule_test": checks})
    header = ["GENERATED by `bizra-nb slo generate` with the rules next to it: do not edit; regenerate with",
              "`make slo-rules`. Run: promtool test rules monitoring/tests/slo_test.yml",
              "",
              "The input series are the RECORDED error ratios slo:sli_error:ratio_rate<W>{slo, service}: the raw",
              "metrics the recording rules read are absent here, so those rules record nothing and the input",
              "drives the alerts. Per SLO: a fast burn and a slow burn that page, two burns that ticket and do",
              "not page, burns below every threshold and just under each, and long windows over with their short",
              "windows under (nothing fires). The recording expressions are tested with raw metrics in",
              "tests/test_slo_rules.py."]
    body = {"rule_files": [rules_path], "evaluation_interval": "1m", "tests": tests}
    return _comments(header, 0) + _dump(body)
