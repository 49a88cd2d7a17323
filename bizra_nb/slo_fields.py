"""The problem-collecting field readers the OpenSLO and Sloth parsers share: each problem names its path.

Strict: every unknown field, at every level, is a problem naming the file, the document, the path in it
and the fields expected (and, when it is close to a missing known field, "did you mean budgetingMethod?":
then that field's own "required" problem is not reported, one problem per typo). Each problem is appended to
the one list :mod:`bizra_nb.slo_spec` raises as a :class:`~bizra_nb.slo_model.SpecError`. Values shown in
messages are cut to 80 characters (a query missing ``{{.window}}`` shows the 80 characters around its first
range, or its end, so the wrong ``[5m]`` is visible).

A target must leave every enabled burn alert of :data:`~bizra_nb.slo_model.BURN_ALERTS` possible: factor × (1 − target) under 1
for each factor of that alert's kind (a target of 0.9 leaves 10 %, and 14.4 × 10 % of the events can never
be bad). Otherwise a problem names the target, the alert and the least target that works (Sloth: "or disable
that alert"; OpenSLO specs cannot disable the platform's alerts), adding "did you mean 99.9?" when a percentage
was written as a fraction (Sloth ``objective: 0.999``, ``targetPercent: 0.999``) and "did you mean 0.995?"
for an OpenSLO ``target: 99.5`` (out of range anyway).
"""
from __future__ import annotations

import difflib
import math
import re
from typing import Sequence

from bizra_nb.errors import excerpt
from bizra_nb.slo_model import BURN_ALERTS, NAME, NAME_MAX, RESERVED_LABELS, SHOWN, UNIT_SECONDS

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
ALERT_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
#: a runbook link: an http(s) URL or a relative link, without spaces or quotes
RUNBOOK_LINK = re.compile(r"(https?://|(?![A-Za-z][A-Za-z0-9+.-]*:))[^\s<>\"'`]+")
WINDOW_VAR = "{{.window}}"
_WINDOW_ANY = re.compile(r"\{\{-?\s*\.window\s*-?\}\}")
#: a bare instant vector selector: a metric name and/or label matchers, no functions or operators
_SELECTOR = re.compile(r"""(?:[a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(?:\{(?:[^{}"'`]|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)*\})?""")
_RATIO_EXAMPLE = 'sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))'


def show(value) -> str:
    """An untrusted scalar for a message: its repr, at most :data:`SHOWN` characters."""
    return excerpt(value, SHOWN)


def got(value) -> str:
    """What was found, in words, without echoing more than one cut scalar."""
    if value is None:
        return "got nothing (null)"
    if isinstance(value, bool):
        return f"got {'true' if value else 'false'} (a boolean)"
    if isinstance(value, (int, float)):
        return f"got {show(value)} (a number)"
    if isinstance(value, str):
        return f"got the string {show(value)}"
    if isinstance(value, dict):
        return "got a mapping"
    if isinstance(value, list):
        return "got a list"
    return f"got a {type(value).__name__}"


def kind_of(value) -> str:
    """What a document is, by type and size only: it may be any file read as YAML (``/etc/passwd`` is a string)."""
    if isinstance(value, str):
        return f"got a string of {len(value):,} character{'' if len(value) == 1 else 's'}"
    if isinstance(value, list):
        return f"got a list of {len(value):,} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, bool):
        return "got a boolean"
    if isinstance(value, (int, float)):
        return "got a number"
    return f"got a {type(value).__name__}"


def key_path(path: str, key) -> str:
    """``path.key`` (``path["odd key"]`` when the key is not a plain word)."""
    text = str(key)
    if re.fullmatch(r"[A-Za-z0-9_-]{1,80}", text):
        return f"{path}.{text}" if path else text
    return f"{path}[{show(text)}]"


def _close(key: str, known: Sequence[str]) -> str | None:
    """The known field ``key`` is probably a typo of (``budgetingMetod`` → ``budgetingMethod``), or None."""
    lowered = {k.lower(): k for k in known}
    match = difflib.get_close_matches(key.lower(), list(lowered), n=1, cutoff=0.75)
    return lowered[match[0]] if match else None


def typo(doc: "Doc", path: str, *keys: str) -> bool:
    """Whether an unknown field under ``path`` was already reported as a typo of one of ``keys``."""
    return any(key_path(path, k) in doc.typos for k in keys)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class Doc:
    """The problems of one document, each prefixed with the file, the document and the object's name."""

    def __init__(self, source: str, index: int, problems: list[str]) -> None:
        self.source, self.index, self.problems = source, index, problems
        self.kind: str | None = None
        self.name: str | None = None
        self.count = 0
        #: paths of known fields an unknown field was taken as a typo of ("did you mean ...?"): the field's own
        #: "required" problems are not reported (one problem per typo)
        self.typos: set[str] = set()

    def add(self, path: str, what: str) -> None:
        self.count += 1
        if path in self.typos:
            return  # the unknown field that is probably this one is reported (it still counts as a problem)
        if self.kind and self.name:
            label = f" ({self.kind} {self.name})"
        elif self.kind:
            label = f" ({self.kind})"
        else:
            label = ""
        self.problems.append(f"{self.source}: document {self.index}{label}: {path}: {what}" if path else
                             f"{self.source}: document {self.index}{label}: {what}")

    def mapping(self, value, path: str, allowed: Sequence[str], required: Sequence[str] = (),
                hints: dict | None = None) -> dict | None:
        """``value`` when it is a mapping; each unknown key and each missing required key a problem."""
        if not isinstance(value, dict):
            self.add(path, f"expected a mapping, {got(value)}")
            return None
        for key in value:
            if not isinstance(key, str):
                self.add(path, f"{show(key)}: expected a text key, {got(key)}")
            elif key not in allowed:
                hint = (hints or {}).get(key)
                meant = None if hint else _close(key, [k for k in allowed if k not in value])
                if meant is not None:
                    self.add(key_path(path, key), f"unknown field; did you mean {meant}? expected one of {', '.join(allowed)}")
                    self.typos.add(key_path(path, meant))
                else:
                    self.add(key_path(path, key), hint or f"unknown field; expected one of {', '.join(allowed)}")
        for key in required:
            if key not in value:
                self.add(key_path(path, key), "required field is missing")
        return value

    def string(self, parent: dict, key: str, path: str, *, required: bool = False, pattern: re.Pattern | None = None,
               expected: str = "") -> str | None:
        """``parent[key]`` when it is a non-empty string (matching ``pattern``), else None and a problem."""
        if key not in parent:
            if required:
                self.add(key_path(path, key), "required field is missing")
            return None
        value = parent[key]
        if not isinstance(value, str) or not value:
            self.add(key_path(path, key), f"expected {expected or 'a text'}, {got(value)}")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.add(key_path(path, key), f"expected {expected}, {got(value)}")
            return None
        return value

    def name_of(self, parent: dict, key: str, path: str, *, required: bool = True) -> str | None:
        expected = (f"a name of lowercase letters, digits and '-' (at most {NAME_MAX} characters, "
                    "starting and ending with a letter or digit)")
        value = self.string(parent, key, path, required=required, pattern=NAME, expected=expected)
        if value is not None and len(value) > NAME_MAX:
            self.add(key_path(path, key), f"expected {expected}, got {len(value)} characters")
            return None
        return value

    def number(self, parent: dict, key: str, path: str, *, low: float, high: float, low_open: bool = True,
               high_open: bool = True, expected: str = "", hint: str = "") -> float | None:
        value = parent.get(key)
        if not is_number(value):
            self.add(key_path(path, key), f"expected a number{(' ' + expected) if expected else ''}, {got(value)}")
            return None
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (above and below):
            rng = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            self.add(key_path(path, key), f"expected a number in {rng}{(' ' + expected) if expected else ''}, {got(value)}"
                                      + (f"; {hint}" if hint else ""))
            return None
        return float(value)

    def boolean(self, parent: dict, key: str, path: str) -> bool | None:
        value = parent.get(key)
        if not isinstance(value, bool):
            self.add(key_path(path, key), f"expected true or false, {got(value)}")
            return None
        return value

    def labels(self, value, path: str) -> dict:
        """Alert labels: string values under Prometheus label names, none of :data:`RESERVED_LABELS`."""
        out: dict = {}
        if value is None:
            return out
        if not isinstance(value, dict):
            self.add(path, f"expected a mapping of label names to texts, {got(value)}")
            return out
        for key, val in value.items():
            where = key_path(path, key)
            if not isinstance(key, str) or not LABEL_NAME.fullmatch(key) or key.startswith("__"):
                self.add(where, f"expected a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __), {got(key)}")
            elif key in RESERVED_LABELS:
                self.add(where, f"the generated alerts set this label themselves; reserved: {', '.join(RESERVED_LABELS)}")
            elif not isinstance(val, str):
                self.add(where, f"expected a text label value, {got(val)}")
            else:
                out[key] = val
        return out

    def texts(self, value, path: str, *, names: bool = False) -> dict | None:
        """A mapping of text keys to text values (annotations); ``names``: the keys must be Prometheus label names
        (what promtool accepts as an alert's annotation names)."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(path, f"expected a mapping of names to texts, {got(value)}")
            return None
        out = {}
        for key, val in value.items():
            if not isinstance(key, str):
                self.add(path, f"{show(key)}: expected a text key, {got(key)}")
            elif names and not (LABEL_NAME.fullmatch(key) and not key.startswith("__")):
                self.add(key_path(path, key), "expected an annotation name Prometheus accepts ([a-zA-Z_][a-zA-Z0-9_]*, "
                                          f"not starting with __; runbook_url, not runbook-link), {got(key)}")
            elif not isinstance(val, str):
                self.add(key_path(path, key), f"expected a text, {got(val)}")
            else:
                out[key] = val
        return out


def read_query(doc: Doc, text: str, path: str, *, needs_window: bool, counter: bool = False) -> str | None:
    """A PromQL query with ``{{ .window }}`` normalised to ``{{.window}}``; it must have it when ``needs_window``.

    ``counter`` (an OpenSLO ``ratioMetric`` with ``counter: true``): a bare selector without the window
    (``http_requests_total{code="500"}``) is a counter's series, read as ``sum(rate(<selector>[{{.window}}]))``.
    """
    query = _WINDOW_ANY.sub(WINDOW_VAR, text).strip()
    if "{{" in query.replace(WINDOW_VAR, ""):
        doc.add(path, f"only {WINDOW_VAR} is filled in a query; remove the other '{{{{ ... }}}}', got {show(text)}")
        return None
    if needs_window and WINDOW_VAR not in query:
        if counter and _SELECTOR.fullmatch(query) and query:
            return f"sum(rate({query}[{WINDOW_VAR}]))"
        doc.add(path, f"a ratio's query needs {WINDOW_VAR} as its range (the generator fills in each window), "
                      f"e.g. {_RATIO_EXAMPLE}; got {_around_range(query)}")
        return None
    return query


def _around_range(query: str) -> str:
    """The part of a query a missing ``{{.window}}`` concerns, for a message: all of it when short, else the
    :data:`SHOWN` characters around its first range (``[5m]``), or its end when it has none."""
    flat = " ".join(query.split())
    if len(repr(flat)) <= SHOWN:
        return show(flat)
    span = SHOWN - 10  # room for the quotes, the escapes and the "…"s
    found = re.search(r"\[[^\[\]]*\]", flat)
    end = min(len(flat), found.end() + span // 3) if found else len(flat)
    start = max(0, end - span)
    part = flat[start:end]
    shown = repr(part)
    if len(shown) > SHOWN:  # escapes made it longer
        return show(part)
    return ("…" if start else "") + shown + ("…" if end < len(flat) else "")


def timeslice(doc: Doc, parent: dict, key: str, path: str) -> str | None:
    """A time slice: a duration (``1m``) or a number of seconds, written as a duration."""
    value = parent.get(key)
    if is_number(value) and not isinstance(value, float) and value > 0:
        seconds = int(value)
        for unit in ("h", "m"):
            if seconds % UNIT_SECONDS[unit] == 0:
                return f"{seconds // UNIT_SECONDS[unit]}{unit}"
        return f"{seconds}s"
    if isinstance(value, str) and re.fullmatch(r"[1-9][0-9]*[smh]", value):
        return value
    doc.add(key_path(path, key), f"expected a duration in seconds, minutes or hours (1m) or a number of seconds, {got(value)}")
    return None


def as_percent(ratio: float) -> str:
    """A ratio as a percentage without float noise: 0.1 → ``10``, 0.99001 → ``99.001``."""
    return f"{round(ratio * 100, 6):g}"


def _least_target(factor: float) -> float:
    """The smallest target (4 decimals) whose budget × ``factor`` stays under 1: 14.4 → 0.9306."""
    least = math.ceil((1 - 1 / factor) * 10_000 - 1e-9) / 10_000
    return least if factor * (1 - least) < 1 else least + 0.0001


def impossible_alerts(target: float, disabled: frozenset | set = frozenset()) -> list[tuple[str, float]]:
    """The enabled alert kinds of :data:`BURN_ALERTS` with a condition ``target`` makes impossible, each with its
    largest factor: a burn rate of ``factor`` means an error ratio of factor × (1 − target), which cannot reach 1."""
    out: dict[str, float] = {}
    for alert in BURN_ALERTS:
        if alert.kind not in disabled and alert.factor * (1 - target) >= 1 - 1e-12:
            out[alert.kind] = max(alert.factor, out.get(alert.kind, 0.0))
    return list(out.items())


def check_target(doc: Doc, path: str, target: float, *, percent: bool, word: str = "target",
                  disabled: frozenset | set = frozenset(), can_disable: bool = False) -> None:
    """A problem at ``path`` when ``target`` (a ratio) leaves a budget some enabled burn alert cannot reach.

    ``percent``: the spec wrote it as a percentage (Sloth ``objective``, OpenSLO ``targetPercent``); a value
    under 1 there was probably meant as a fraction, and the message says what it probably should be.
    """
    impossible = impossible_alerts(target, disabled)
    if not impossible:
        return
    which = " and ".join(f"the {kind} alert ({factor:g} × the budget)" for kind, factor in impossible)
    least = max(_least_target(factor) for _, factor in impossible)
    shown = f"{round(least * 100, 2):g}" if percent else f"{least:.4f}"
    what = (f"{as_percent(target) if percent else show(target)} leaves an error budget of {as_percent(1 - target)} %: "
            f"{which} could never fire; use {'an' if word[0] in 'aeiou' else 'a'} {word} of at least {shown}"
            + (f" or disable {'that alert' if len(impossible) == 1 else 'those alerts'}" if can_disable else ""))
    if percent and target * 100 < 1 and not impossible_alerts(target * 100, disabled):
        what += f"; did you mean {as_percent(target * 100)}?"  # 0.999 written for 99.9 %
    doc.add(path, what)
