"""The OpenSLO v1 reader: ``SLO``, ``SLI`` and ``Service`` documents into :class:`~bizra_nb.slo_model.SLO` s.

OpenSLO v1 (``apiVersion: openslo/v1``), one object per YAML document. Decisions:

- ``SLO`` documents become :class:`~bizra_nb.slo_model.SLO` s; an SLO with several ``objectives`` becomes one per objective,
  named ``<name>-<objective name>`` (else the slug of its ``displayName``, else its position from 1).
- ``SLI`` documents are what ``indicatorRef`` names (in the same file). ``Service`` documents are
  checked (name, ``spec.description``) and otherwise not used; an SLO's ``spec.service`` need not name one.
- ``AlertPolicy``, ``AlertCondition``, ``AlertNotificationTarget`` and ``DataSource`` documents are
  accepted (``apiVersion`` and ``metadata.name`` checked) and ignored, as is an SLO's ``alertPolicies``
  list and a ``metricSourceRef``: the platform's alerts are always the multiwindow burn-rate pair of
  :data:`~bizra_nb.slo_model.BURN_ALERTS`, and its metric source is its Prometheus (or dataset) source. Any other kind is an error.
- ``timeWindow``: one item, either ``duration: 1M`` with ``isRolling: false`` (a calendar month; an
  optional ``calendar`` needs ``timeZone: UTC`` and a ``startTime`` on the 1st at 00:00) or a rolling
  duration (``28d``, ``4w``, ``24h``) with ``isRolling: true``.
- ``budgetingMethod``: ``Occurrences`` or ``Timeslices``; ``RatioTimeslices`` is not supported. A
  ``thresholdMetric`` needs ``Timeslices``. ``Timeslices`` needs ``timeSliceWindow`` (no default: the
  spec says how long a slice is); a ratio indicator also needs ``timeSliceTarget``; on a threshold one
  (OpenSLO asks for it with Timeslices) it is checked to be a number in (0, 1] and ignored: the slice is bad
  when the value fails ``op value``.
- The queries are ``metricSource: {type: Prometheus, spec: {query: ...}}``. A ratio's queries need
  ``{{.window}}`` as their range (``{{ .window }}`` is accepted and written ``{{.window}}``); a threshold
  query may have it (then it is the time slice). A ``ratioMetric`` ``raw`` query with ``rawType:
  failure`` is an ``error_ratio`` indicator. With ``counter: true``, a good/bad/total query that is a bare
  selector (``http_requests_total{code=~"5.."}``: a metric name and/or label matchers, no function, range or
  operator) without ``{{.window}}`` is the counter's series and is read as
  ``sum(rate(<selector>[{{.window}}]))``; any other query without ``{{.window}}`` is an error.
- The indicator's ``metadata.displayName`` (inline, or of the SLI document ``indicatorRef`` names) is
  :attr:`~bizra_nb.slo_model.Indicator.display_name`, a noun phrase that fits "a minute is bad when <it> is over 100".
- ``metadata.labels`` (string values, Prometheus label names except ``slo``, ``severity``,
  ``priority``, ``service``) go on the alerts; ``metadata.annotations``: ``bizra.io/dataset-bad``,
  ``-good``, ``-total``, ``-value`` map the indicator onto dataset columns (also on an ``SLI``
  document; the SLO's win), ``bizra.io/runbook-url`` is the runbook link, other ``bizra.io/`` keys are
  errors, keys that are Prometheus label names go on the alerts as annotations, and the others
  (``example.com/owner``) are kept in the file only.
"""
from __future__ import annotations

import datetime as _dt
import re

from bizra_nb.slo_fields import (COLUMN, LABEL_NAME, RUNBOOK_LINK, Doc, as_percent, check_target, got,
                                 impossible_alerts, is_number, key_path, read_query, show, timeslice, typo)
from bizra_nb.slo_model import DEFAULT_RUNBOOK_URL, NAME, NAME_MAX, OPS, SLO, Indicator, Window

OPENSLO_KINDS = ("SLO", "SLI", "Service")
#: OpenSLO kinds that are read (apiVersion and metadata.name checked) and otherwise not used, see the module notes
IGNORED_KINDS = ("AlertPolicy", "AlertCondition", "AlertNotificationTarget", "DataSource")
_TOP = ("apiVersion", "kind", "metadata", "spec")
_METADATA = ("name", "displayName", "labels", "annotations")
_SLO_SPEC = ("description", "service", "indicator", "indicatorRef", "timeWindow", "budgetingMethod", "objectives",
             "alertPolicies")
_SLI_SPEC = ("description", "thresholdMetric", "ratioMetric")
_OBJECTIVE = ("displayName", "name", "op", "value", "target", "targetPercent", "timeSliceTarget", "timeSliceWindow")
_COMPOSITE = "composite SLOs (an indicator per objective) are not supported: write one SLO per indicator"
_DATASET_KEYS = ("bad", "good", "total", "value")


def _object(doc: Doc, raw: dict) -> tuple[str | None, dict | None, dict | None]:
    """Check the envelope of an OpenSLO object: (kind, metadata, spec)."""
    if raw.get("kind") in OPENSLO_KINDS + IGNORED_KINDS:  # name the object in every message, also the first
        doc.kind = raw["kind"]
    peek = raw.get("metadata")
    if isinstance(peek, dict) and isinstance(peek.get("name"), str) and NAME.fullmatch(peek["name"]) \
            and len(peek["name"]) <= NAME_MAX:
        doc.name = peek["name"]
    doc.mapping(raw, "", _TOP, required=("apiVersion", "kind", "metadata", "spec"))
    kind = raw.get("kind")
    if "kind" in raw:
        if kind in OPENSLO_KINDS + IGNORED_KINDS:
            doc.kind = kind
        else:
            doc.add("kind", f"unknown kind; expected one of {', '.join(OPENSLO_KINDS + IGNORED_KINDS)}, {got(kind)}")
            kind = None
    if "apiVersion" in raw and raw["apiVersion"] != "openslo/v1":
        doc.add("apiVersion", f"expected openslo/v1 (the only OpenSLO version read), {got(raw['apiVersion'])}")
    metadata = doc.mapping(raw["metadata"], "metadata", _METADATA, required=("name",)) if "metadata" in raw else None
    if metadata is not None:
        doc.name = doc.name_of(metadata, "name", "metadata")
        if "displayName" in metadata:
            doc.string(metadata, "displayName", "metadata")
    spec = raw.get("spec")
    if "spec" in raw and not isinstance(spec, dict):
        doc.add("spec", f"expected a mapping, {got(spec)}")
        spec = None
    return kind, metadata, spec


def read_openslo(documents: list[tuple[int, dict]], source: str, problems: list[str]) -> list[SLO]:
    """The SLOs of a file's OpenSLO documents (``(index, mapping)``), each problem appended to ``problems``."""
    slis: dict[str, tuple[dict | None, dict, str]] = {}  # name -> (indicator, dataset annotations, displayName)
    slo_docs = []
    for index, raw in documents:
        doc = Doc(source, index, problems)
        kind, metadata, spec = _object(doc, raw)
        if kind is None or metadata is None or spec is None:
            continue
        if kind == "Service":
            doc.mapping(spec, "spec", ("description",))
            if "description" in spec and not isinstance(spec["description"], str):
                doc.add("spec.description", f"expected a text, {got(spec['description'])}")
        elif kind == "SLI":
            indicator = _sli_spec(doc, spec, "spec")
            dataset, _, _ = _annotations(doc, metadata.get("annotations"), "metadata.annotations")
            if doc.name:
                if doc.name in slis:
                    doc.add("metadata.name", "an SLI of this name is already in the file")
                shown = metadata.get("displayName")
                slis[doc.name] = (indicator, dataset, shown if isinstance(shown, str) else "")
        elif kind == "SLO":
            slo_docs.append((doc, metadata, spec))
    slos: list[SLO] = []
    for doc, metadata, spec in slo_docs:
        slos.extend(_openslo_slo(doc, metadata, spec, slis))
    return slos


def _annotations(doc: Doc, value, path: str) -> tuple[dict, str | None, dict]:
    """(dataset columns, runbook URL, alert annotations) from ``metadata.annotations``."""
    texts = doc.texts(value, path) or {}
    dataset: dict = {}
    runbook = None
    extra: dict = {}
    for key, val in texts.items():
        where = key_path(path, key)
        if key.startswith("bizra.io/dataset-") and key[len("bizra.io/dataset-"):] in _DATASET_KEYS:
            if COLUMN.fullmatch(val):
                dataset[key[len("bizra.io/dataset-"):]] = val
            else:
                doc.add(where, f"expected a dataset column name ([A-Za-z_][A-Za-z0-9_]*), {got(val)}")
        elif key == "bizra.io/runbook-url":
            if RUNBOOK_LINK.fullmatch(val):
                runbook = val
            else:
                doc.add(where, f"expected an http(s) URL or a relative link without spaces or quotes, {got(val)}")
        elif key.startswith("bizra.io/"):
            doc.add(where, "unknown annotation; expected one of "
                           + ", ".join([f"bizra.io/dataset-{k}" for k in _DATASET_KEYS] + ["bizra.io/runbook-url"]))
        elif LABEL_NAME.fullmatch(key) and not key.startswith("__"):
            extra[key] = val
    return dataset, runbook, extra


def _metric_source(doc: Doc, value, path: str, *, needs_window: bool, counter: bool = False) -> str | None:
    holder = doc.mapping(value, path, ("metricSource",), required=("metricSource",))
    if holder is None or "metricSource" not in holder:
        return None
    path = f"{path}.metricSource"
    source = doc.mapping(holder["metricSource"], path, ("metricSourceRef", "type", "spec"), required=("type", "spec"))
    if source is None:
        return None
    if "metricSourceRef" in source:
        doc.string(source, "metricSourceRef", path)
    if "type" in source and source["type"] != "Prometheus":
        doc.add(f"{path}.type", f"expected Prometheus (the only metric source read), {got(source['type'])}")
    spec = doc.mapping(source["spec"], f"{path}.spec", ("query",), required=("query",)) if "spec" in source else None
    if spec is None or "query" not in spec:
        return None
    text = doc.string(spec, "query", f"{path}.spec", expected="a PromQL query")
    return None if text is None else read_query(doc, text, f"{path}.spec.query", needs_window=needs_window, counter=counter)


def _sli_spec(doc: Doc, spec, path: str) -> dict | None:
    """The indicator of an SLI spec: {"kind", "good"/"bad"/"total"/"query"}, or None after problems."""
    spec = doc.mapping(spec, path, _SLI_SPEC)
    if spec is None:
        return None
    if "description" in spec and not isinstance(spec["description"], str):
        doc.add(f"{path}.description", f"expected a text, {got(spec['description'])}")
    metrics = [k for k in ("ratioMetric", "thresholdMetric") if k in spec]
    if len(metrics) != 1:
        if metrics or not typo(doc, path, "ratioMetric", "thresholdMetric"):
            doc.add(path, "expected exactly one of ratioMetric, thresholdMetric"
                          + (", got both" if metrics else ", got neither"))
        return None
    if metrics[0] == "thresholdMetric":
        query = _metric_source(doc, spec["thresholdMetric"], f"{path}.thresholdMetric", needs_window=False)
        return None if query is None else {"kind": "threshold", "query": query}
    path = f"{path}.ratioMetric"
    ratio = doc.mapping(spec["ratioMetric"], path, ("counter", "good", "bad", "total", "raw", "rawType"))
    if ratio is None:
        return None
    if "counter" in ratio:
        doc.boolean(ratio, "counter", path)
    if "raw" in ratio:
        if any(k in ratio for k in ("good", "bad", "total")):
            doc.add(path, "raw is a precomputed ratio: give raw (with rawType) or good/bad and total, not both")
            return None
        if ratio.get("rawType") != "failure":
            doc.add(f"{path}.rawType", "expected failure (a raw query of the error ratio; for a success ratio "
                                       f"give good and total), {got(ratio.get('rawType'))}")
            return None
        query = _metric_source(doc, ratio["raw"], f"{path}.raw", needs_window=True)
        return None if query is None else {"kind": "error_ratio", "query": query}
    if "rawType" in ratio:
        doc.add(f"{path}.rawType", "applies to raw only")
    sides = [k for k in ("good", "bad") if k in ratio]
    if len(sides) != 1 or "total" not in ratio:
        if len(sides) > 1 or not typo(doc, path, "good", "bad", "total", "raw"):
            doc.add(path, "expected total and exactly one of good, bad (or raw with rawType failure)")
        return None
    out = {"kind": "ratio"}
    counter = ratio.get("counter") is True
    for key in (sides[0], "total"):
        out[key] = _metric_source(doc, ratio[key], f"{path}.{key}", needs_window=True, counter=counter)
    return None if None in out.values() else out


def _time_window(doc: Doc, value, path: str) -> Window | None:
    if not isinstance(value, list) or len(value) != 1:
        doc.add(path, "expected a list of exactly one item (duration: 1M with isRolling: false, "
                      f"or duration: 28d with isRolling: true), {got(value) if not isinstance(value, list) else f'{len(value)} items'}")
        return None
    path = f"{path}[0]"
    item = doc.mapping(value[0], path, ("duration", "isRolling", "calendar"), required=("duration",))
    if item is None:
        return None
    text = doc.string(item, "duration", path, expected="a duration (1M for a calendar month, or 28d)")
    calendar = item.get("calendar")
    if "calendar" in item:
        cal = doc.mapping(calendar, f"{path}.calendar", ("startTime", "timeZone"), required=("timeZone",))
        if cal is not None:
            if "timeZone" in cal and cal["timeZone"] != "UTC":
                doc.add(f"{path}.calendar.timeZone", f"expected UTC (calendar months are UTC months), {got(cal['timeZone'])}")
            if "startTime" in cal:
                _start_time(doc, cal["startTime"], f"{path}.calendar.startTime")
    if "isRolling" in item:
        rolling = doc.boolean(item, "isRolling", path)
    elif "calendar" in item:
        rolling = False
    else:
        doc.add(f"{path}.isRolling", "required field is missing (false for a calendar month, true for a rolling window)")
        rolling = None
    if text is None or rolling is None:
        return None
    if not rolling:
        if text != "1M":
            doc.add(f"{path}.duration", f"a calendar window must be 1M (a calendar month; no other calendar "
                                        f"periods are supported), {got(text)}")
            return None
        return Window("1M", True)
    if "calendar" in item:
        doc.add(f"{path}.calendar", "applies to a calendar window (isRolling: false) only")
    if text == "1M":
        doc.add(f"{path}.duration", "a rolling month is not supported: use 30d or 28d, or isRolling: false for a calendar month")
        return None
    if not re.fullmatch(r"[1-9][0-9]*[mhdw]", text):
        doc.add(f"{path}.duration", f"expected a rolling duration in minutes, hours, days or weeks (28d), {got(text)}")
        return None
    return Window(text, False)


def _start_time(doc: Doc, value, path: str) -> None:
    stamp = None
    if isinstance(value, _dt.datetime):
        stamp = value
    elif isinstance(value, _dt.date):
        stamp = _dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            stamp = _dt.datetime.fromisoformat(value.strip())
        except ValueError:
            stamp = None
    if stamp is not None and stamp.tzinfo is None:
        if stamp.day == 1 and stamp.time() == _dt.time(0):
            return
        doc.add(path, f"calendar months start on the 1st at 00:00 UTC, {got(str(value))}")
        return
    doc.add(path, f"expected a date and time without a time zone (2026-01-01 00:00:00), {got(value)}")


def _openslo_slo(doc: Doc, metadata: dict, spec: dict, slis: dict) -> list[SLO]:
    start = doc.count
    doc.mapping(spec, "spec", _SLO_SPEC, required=("service", "timeWindow", "budgetingMethod", "objectives"))
    description = ""
    if "description" in spec:
        description = doc.string(spec, "description", "spec") or ""
    service = doc.name_of(spec, "service", "spec", required=False) if "service" in spec else None
    labels = doc.labels(metadata.get("labels"), "metadata.labels")
    dataset, runbook, annotations = _annotations(doc, metadata.get("annotations"), "metadata.annotations")
    display = metadata.get("displayName") if isinstance(metadata.get("displayName"), str) else None

    indicator = None
    indicator_name = ""
    if ("indicator" in spec) == ("indicatorRef" in spec):
        if "indicator" in spec or not typo(doc, "spec", "indicator", "indicatorRef"):
            doc.add("spec", "expected exactly one of indicator, indicatorRef"
                            + (", got both" if "indicator" in spec else ", got neither"))
    elif "indicator" in spec:
        inline = doc.mapping(spec["indicator"], "spec.indicator", ("metadata", "spec"), required=("spec",))
        if inline is not None:
            if "metadata" in inline:
                meta = doc.mapping(inline["metadata"], "spec.indicator.metadata", _METADATA)
                if meta is not None:
                    if "name" in meta:
                        doc.name_of(meta, "name", "spec.indicator.metadata")
                    if "displayName" in meta:
                        indicator_name = doc.string(meta, "displayName", "spec.indicator.metadata") or ""
                    doc.labels(meta.get("labels"), "spec.indicator.metadata.labels")
                    sli_dataset, _, _ = _annotations(doc, meta.get("annotations"), "spec.indicator.metadata.annotations")
                    dataset = {**sli_dataset, **dataset}
            if "spec" in inline:
                indicator = _sli_spec(doc, inline["spec"], "spec.indicator.spec")
    else:
        ref = doc.name_of(spec, "indicatorRef", "spec")
        if ref is not None:
            if ref not in slis:
                doc.add("spec.indicatorRef", f"no SLI document of this name in the file, {got(ref)}"
                                             + (f"; SLIs: {', '.join(sorted(slis))}" if slis else ""))
            else:
                indicator, sli_dataset, indicator_name = slis[ref]
                dataset = {**sli_dataset, **dataset}
                if indicator is None:
                    doc.add("spec.indicatorRef", f"the SLI {ref} has problems (above)")

    window = _time_window(doc, spec["timeWindow"], "spec.timeWindow") if "timeWindow" in spec else None
    budgeting = spec.get("budgetingMethod")
    if "budgetingMethod" in spec:
        if budgeting == "RatioTimeslices":
            doc.add("spec.budgetingMethod", "RatioTimeslices is not supported; expected Occurrences or Timeslices")
            budgeting = None
        elif budgeting not in ("Occurrences", "Timeslices"):
            doc.add("spec.budgetingMethod", f"expected Occurrences or Timeslices, {got(budgeting)}")
            budgeting = None
    kind = indicator["kind"] if indicator else None
    if budgeting == "Occurrences" and kind == "threshold":
        doc.add("spec.budgetingMethod", "a thresholdMetric has no events to count, only values over time: use "
                                        "budgetingMethod Timeslices with a timeSliceWindow (1m); a slice is bad when "
                                        "its value fails the objective's op and value")
        budgeting = None
    if budgeting == "Timeslices" and kind == "error_ratio":
        doc.add("spec.budgetingMethod", "a raw error ratio is budgeted by Occurrences only")
        budgeting = None
    if dataset and kind:
        allowed = {"threshold": {"value"}, "ratio": {"bad", "good", "total"}, "error_ratio": set()}[kind]
        wrong = sorted(set(dataset) - allowed)
        if wrong:
            doc.add("metadata.annotations", f"bizra.io/dataset-{wrong[0]} does not fit a {kind} indicator; expected "
                                            + (", ".join(f"bizra.io/dataset-{k}" for k in sorted(allowed)) or "none"))
        elif kind == "ratio" and ("total" not in dataset or not ({"bad", "good"} & set(dataset))):
            doc.add("metadata.annotations", "a ratio's dataset needs bizra.io/dataset-total and bizra.io/dataset-bad or -good")

    objectives = spec.get("objectives")
    parsed = []
    if "objectives" in spec:
        if not isinstance(objectives, list) or not objectives:
            doc.add("spec.objectives", f"expected a list of at least one objective, {got(objectives) if not isinstance(objectives, list) else 'an empty list'}")
        else:
            for i, raw in enumerate(objectives):
                parsed.append(_objective(doc, raw, f"spec.objectives[{i}]", kind, budgeting))
    if doc.count > start or not doc.name or None in parsed or indicator is None or window is None or not budgeting:
        return []
    slos = []
    several = len(parsed) > 1
    for i, obj in enumerate(parsed, start=1):
        name = doc.name
        obj_display = obj["displayName"]
        if several:
            suffix = obj["name"] or (_slug(obj_display) if obj_display and _slug(obj_display) else str(i))
            name = f"{doc.name}-{suffix}"
            shown = obj_display or f"{display or doc.name} ({suffix})"
        else:
            shown = display or obj_display or doc.name
        if not NAME.fullmatch(name) or len(name) > NAME_MAX:
            doc.add(f"spec.objectives[{i - 1}]", f"the SLO's name {show(name)} (name-objective) is not a valid name "
                                                 f"of at most {NAME_MAX} characters; give the objective a shorter name")
            continue
        ind = Indicator(kind=indicator["kind"], good=indicator.get("good"), bad=indicator.get("bad"),
                        total=indicator.get("total"), query=indicator.get("query"), op=obj["op"], value=obj["value"],
                        dataset=dict(dataset), display_name=indicator_name)
        slos.append(SLO(name=name, display_name=shown, description=description, service=service or "",
                        target=obj["target"], window=window, budgeting=budgeting, indicator=ind,
                        timeslice_target=obj["timeSliceTarget"], timeslice_window=obj["timeSliceWindow"],
                        labels=dict(labels), annotations=dict(annotations),
                        runbook_url=runbook or DEFAULT_RUNBOOK_URL, source=doc.source))
    return slos


def _objective(doc: Doc, raw, path: str, kind: str | None, budgeting: str | None) -> dict | None:
    start = doc.count
    obj = doc.mapping(raw, path, _OBJECTIVE, hints={k: _COMPOSITE for k in ("indicator", "indicatorRef", "compositeWeight")})
    if obj is None:
        return None
    out = {"displayName": None, "name": None, "op": None, "value": None, "target": None,
           "timeSliceTarget": None, "timeSliceWindow": None}
    if "displayName" in obj:
        out["displayName"] = doc.string(obj, "displayName", path)
    if "name" in obj:
        out["name"] = doc.name_of(obj, "name", path)
    if ("target" in obj) == ("targetPercent" in obj):
        if "target" in obj or not typo(doc, path, "target", "targetPercent"):
            doc.add(path, "expected exactly one of target (0.999), targetPercent (99.9)"
                          + (", got both" if "target" in obj else ", got neither"))
    elif "target" in obj:
        given = obj["target"]
        meant = is_number(given) and 1 < given < 100 and not impossible_alerts(given / 100)  # 99.5 written for 0.995
        out["target"] = doc.number(obj, "target", path, low=0, high=1, expected="(0.999 for 99.9 %)",
                                   hint=f"did you mean {as_percent(given / 10_000)}?" if meant else "")
        if out["target"] is not None:
            check_target(doc, key_path(path, "target"), out["target"], percent=False)
    else:
        percent = doc.number(obj, "targetPercent", path, low=0, high=100, expected="(99.9)")
        out["target"] = None if percent is None else round(percent / 100.0, 12)
        if out["target"] is not None:
            check_target(doc, key_path(path, "targetPercent"), out["target"], percent=True, word="targetPercent")
    if kind == "threshold":
        if "op" not in obj:
            doc.add(key_path(path, "op"), f"required for a thresholdMetric: the good side, one of {', '.join(OPS)}")
        elif obj["op"] not in OPS:
            doc.add(key_path(path, "op"), f"expected one of {', '.join(OPS)}, {got(obj['op'])}")
        else:
            out["op"] = obj["op"]
        if "value" not in obj:
            doc.add(key_path(path, "value"), "required for a thresholdMetric: the threshold the op compares with")
        elif not is_number(obj["value"]):
            doc.add(key_path(path, "value"), f"expected a number, {got(obj['value'])}")
        else:
            out["value"] = float(obj["value"])
    elif kind is not None:
        for key in ("op", "value"):
            if key in obj:
                doc.add(key_path(path, key), "applies to a thresholdMetric only")
    if budgeting == "Timeslices":
        if "timeSliceWindow" not in obj:
            doc.add(key_path(path, "timeSliceWindow"), "required with budgetingMethod Timeslices: how long one slice is (1m)")
        else:
            out["timeSliceWindow"] = timeslice(doc, obj, "timeSliceWindow", path)
        if kind == "ratio":
            if "timeSliceTarget" not in obj:
                doc.add(key_path(path, "timeSliceTarget"), "required with a ratio and Timeslices: the good ratio a slice needs (0.95)")
            else:
                out["timeSliceTarget"] = doc.number(obj, "timeSliceTarget", path, low=0, high=1, high_open=False)
        elif kind == "threshold" and "timeSliceTarget" in obj:
            # OpenSLO asks for it with Timeslices; a threshold's slice is bad when its value fails op and value
            doc.number(obj, "timeSliceTarget", path, low=0, high=1, high_open=False)  # checked, then ignored
    elif budgeting == "Occurrences":
        for key in ("timeSliceTarget", "timeSliceWindow"):
            if key in obj:
                doc.add(key_path(path, key), "applies to budgetingMethod Timeslices only")
    return out if doc.count == start else None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
