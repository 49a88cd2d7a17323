"""The Sloth ``prometheus/v1`` reader: a service's ``slos`` into :class:`~bizra_nb.slo_model.SLO` s.

Sloth ``prometheus/v1`` (``version: prometheus/v1``): each of ``slos`` becomes an SLO named
``<service>-<name>``, window rolling 30d, ``Occurrences``; ``sli.events`` is a ratio (bad = error_query),
``sli.raw`` an error ratio; plugins (``sli.plugin``, a top-level ``slo_plugins``) are not supported (one
problem). ``alerting.name`` names both alerts (Sloth's behaviour); the spec's, the SLO's and ``alerting``'s
labels go on both alerts, and ``alerting.annotations`` too (``runbook_url`` is the runbook link);
``page_alert`` / ``ticket_alert`` labels and annotations go on that alert only (:attr:`~bizra_nb.slo_model.SLO.alert_labels`,
:attr:`~bizra_nb.slo_model.SLO.alert_annotations`), including a ``severity`` label: the spec's own routing, which the generated
rules let win over the platform's (``severity`` elsewhere, and ``slo``, ``priority``, ``service`` anywhere, stay
reserved); ``disable: true`` drops it. Annotation names must be Prometheus label names (promtool refuses
``runbook-link``).
"""
from __future__ import annotations

from bizra_nb.slo_fields import ALERT_NAME, RUNBOOK_LINK, Doc, check_target, got, read_query, show, typo
from bizra_nb.slo_model import DEFAULT_ALERT_NAMES, DEFAULT_RUNBOOK_URL, NAME, NAME_MAX, SLO, Indicator, Window

_SLOTH_TOP = ("version", "service", "labels", "slos")
_SLOTH_PLUGINS = "Sloth plugins are not supported"
_SLOTH_SLO = ("name", "objective", "description", "labels", "sli", "alerting")
_SLOTH_ALERTING = ("name", "labels", "annotations", "page_alert", "ticket_alert")
_SLOTH_ALERT = ("disable", "labels", "annotations")


def read_sloth(raw: dict, doc: Doc) -> list[SLO]:
    """The SLOs of a Sloth ``prometheus/v1`` document ``raw``, each problem added to ``doc``."""
    doc.kind = "Sloth service"
    if isinstance(raw.get("service"), str) and NAME.fullmatch(raw["service"]) and len(raw["service"]) <= NAME_MAX:
        doc.name = raw["service"]  # named in every message, also the first
    doc.mapping({k: v for k, v in raw.items() if k != "slo_plugins"}, "", _SLOTH_TOP,
                required=("version", "service", "slos"))
    plugged = [f"slos[{i}]" for i, item in enumerate(raw.get("slos") if isinstance(raw.get("slos"), list) else [])
               if isinstance(item, dict) and isinstance(item.get("sli"), dict) and "plugin" in item["sli"]]
    if "slo_plugins" in raw:  # one problem for the plugins, also for the SLIs that use one
        doc.add("slo_plugins", f"{_SLOTH_PLUGINS}: remove slo_plugins (and write the SLI"
                               + (f" of {', '.join(plugged)}" if plugged else "s") + " as events or raw)")
    if "version" in raw and raw["version"] != "prometheus/v1":
        doc.add("version", f"expected prometheus/v1 (the only Sloth version read), {got(raw['version'])}")
    service = doc.name_of(raw, "service", "") if "service" in raw else None
    labels = doc.labels(raw.get("labels"), "labels")
    slos_raw = raw.get("slos")
    if "slos" in raw and (not isinstance(slos_raw, list) or not slos_raw):
        doc.add("slos", f"expected a list of at least one SLO, {got(slos_raw) if not isinstance(slos_raw, list) else 'an empty list'}")
        return []
    out = []
    for i, item in enumerate(slos_raw or []):
        slo = _sloth_slo(doc, item, f"slos[{i}]", service, labels, plugins_reported="slo_plugins" in raw)
        if slo is not None:
            out.append(slo)
    return out


def _sloth_slo(doc: Doc, raw, path: str, service: str | None, top_labels: dict, *,
               plugins_reported: bool = False) -> SLO | None:
    start = doc.count
    item = doc.mapping(raw, path, _SLOTH_SLO, required=("name", "objective", "sli"))
    if item is None:
        return None
    own = doc.name_of(item, "name", path) if "name" in item else None
    objective = doc.number(item, "objective", path, low=0, high=100, expected="(a percentage: 99.9)") \
        if "objective" in item else None
    description = doc.string(item, "description", path) or "" if "description" in item else ""
    labels = {**top_labels, **doc.labels(item.get("labels"), f"{path}.labels")}
    indicator = None
    if "sli" in item:
        sli = doc.mapping(item["sli"], f"{path}.sli", ("events", "raw", "plugin"))
        if sli is not None:
            kinds = [k for k in ("events", "raw", "plugin") if k in sli]
            if len(kinds) != 1:
                if kinds or not typo(doc, f"{path}.sli", "events", "raw", "plugin"):
                    doc.add(f"{path}.sli", "expected exactly one of events, raw, plugin"
                                           + (", got several" if kinds else ", got none"))
            elif kinds[0] == "plugin":
                if plugins_reported:  # named in the one slo_plugins problem; still a problem of this SLO
                    doc.count += 1
                else:
                    doc.add(f"{path}.sli.plugin", f"{_SLOTH_PLUGINS}: write the SLI as sli.events (error_query, "
                                                  "total_query) or sli.raw (error_ratio_query)")
            elif kinds[0] == "events":
                where = f"{path}.sli.events"
                events = doc.mapping(sli["events"], where, ("error_query", "total_query"),
                                     required=("error_query", "total_query"))
                if events is not None and "error_query" in events and "total_query" in events:
                    queries = {}
                    for key in ("error_query", "total_query"):
                        text = doc.string(events, key, where, expected="a PromQL query")
                        queries[key] = None if text is None else read_query(doc, text, f"{where}.{key}", needs_window=True)
                    if None not in queries.values():
                        indicator = Indicator("ratio", bad=queries["error_query"], total=queries["total_query"])
            else:
                where = f"{path}.sli.raw"
                rawq = doc.mapping(sli["raw"], where, ("error_ratio_query",), required=("error_ratio_query",))
                if rawq is not None and "error_ratio_query" in rawq:
                    text = doc.string(rawq, "error_ratio_query", where, expected="a PromQL query")
                    query = None if text is None else read_query(doc, text, f"{where}.error_ratio_query", needs_window=True)
                    if query is not None:
                        indicator = Indicator("error_ratio", query=query)
    alert_names = dict(DEFAULT_ALERT_NAMES)
    annotations: dict = {}
    alert_labels: dict = {}
    alert_annotations: dict = {}
    disabled: set = set()
    runbook = None
    if "alerting" in item:
        where = f"{path}.alerting"
        alerting = doc.mapping(item["alerting"], where, _SLOTH_ALERTING)
        if alerting is not None:
            if "name" in alerting:
                name = doc.string(alerting, "name", where, pattern=ALERT_NAME,
                                  expected="a Prometheus alert name ([a-zA-Z_:][a-zA-Z0-9_:]*)")
                if name:
                    alert_names = {"page": name, "ticket": name}
            labels.update(doc.labels(alerting.get("labels"), f"{where}.labels"))
            annotations = doc.texts(alerting.get("annotations"), f"{where}.annotations", names=True) or {}
            runbook = annotations.pop("runbook_url", None)
            for level, key in (("page", "page_alert"), ("ticket", "ticket_alert")):
                if key not in alerting:
                    continue
                alert = doc.mapping(alerting[key], f"{where}.{key}", _SLOTH_ALERT)
                if alert is None:
                    continue
                if "disable" in alert and doc.boolean(alert, "disable", f"{where}.{key}"):
                    disabled.add(level)
                given = alert.get("labels") or {}
                severity = None
                if isinstance(given, dict) and "severity" in given:  # the spec's own routing: it wins over ours
                    severity = given["severity"]
                    given = {k: v for k, v in given.items() if k != "severity"}
                    if not isinstance(severity, str) or not severity:
                        doc.add(f"{where}.{key}.labels.severity", f"expected a text label value, {got(severity)}")
                        severity = None
                extra = doc.labels(given, f"{where}.{key}.labels")
                if severity is not None:
                    extra = {"severity": severity, **extra}
                if extra:
                    alert_labels[level] = extra
                notes = doc.texts(alert.get("annotations"), f"{where}.{key}.annotations", names=True) or {}
                if notes:
                    alert_annotations[level] = notes
    if runbook is not None and not RUNBOOK_LINK.fullmatch(runbook):
        doc.add(f"{path}.alerting.annotations.runbook_url",
                f"expected an http(s) URL or a relative link without spaces or quotes, {got(runbook)}")
    if objective is not None:
        check_target(doc, f"{path}.objective", round(objective / 100.0, 12), percent=True, word="objective",
                      disabled=disabled, can_disable=True)
    if doc.count > start or service is None or own is None or objective is None or indicator is None:
        return None
    name = f"{service}-{own}"
    if len(name) > NAME_MAX:
        doc.add(f"{path}.name", f"the SLO's name {show(name)} (service-name) is longer than {NAME_MAX} characters")
        return None
    return SLO(name=name, display_name=own, description=description, service=service,
               target=round(objective / 100.0, 12), window=Window("30d", False), budgeting="Occurrences",
               indicator=indicator, labels=labels, annotations=annotations, alert_names=alert_names,
               disabled_alerts=frozenset(disabled), runbook_url=runbook or DEFAULT_RUNBOOK_URL, source=doc.source,
               alert_labels=alert_labels, alert_annotations=alert_annotations)
