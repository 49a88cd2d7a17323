"""The monitoring stack with the real programs: promtool, amtool, Prometheus, Alertmanager, end to end."""
from __future__ import annotations

import json
import random
import re
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
import websocket
import yaml

from bizra_nb.audit import audit_month, load_platform_metrics
from bizra_nb.dataset import write_dataset
from bizra_nb.fleet import Fault, generate, platform_month
from bizra_nb.openmetrics import create_blocks
from bizra_nb.score import WEIGHTS, ahsan_score
from tests.ahsan_cases import REPLICATED, ahsan_case
from tests.conftest import need_binary, wait_until
from tests.prometheus_server import PrometheusProcess, free_port

ROOT = Path(__file__).parent.parent
MONITORING = ROOT / "monitoring"
RULE_FILES = sorted((MONITORING / "rules").glob("*.yml"))


def run(*cmd: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kwargs)


def test_promtool_checks_config_and_rules():
    promtool = need_binary("promtool")
    assert run(promtool, "check", "config", str(MONITORING / "prometheus.yml")).returncode == 0
    result = run(promtool, "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass():
    promtool = need_binary("promtool")
    result = run(promtool, "test", "rules", *map(str, sorted((MONITORING / "tests").glob("*.yml"))))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_unit_tests_labels_and_a_runbook_section():
    alerts = [r for name in ("alerts.yml", "slo.yml")  # slo.yml: generated from the SLO spec (make slo-rules)
              for g in yaml.safe_load((MONITORING / "rules" / name).read_text())["groups"]
              for r in g["rules"] if "alert" in r]
    tests = "".join((MONITORING / "tests" / name).read_text() for name in ("alerts_test.yml", "slo_test.yml"))
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", runbook, re.M)}
    assert {a["alert"] for a in alerts} >= {"AhsanScoreBelowThreshold", "HighViolationRate", "MonitoringDown",
                                            "AhsanScoreDegraded", "HighErrorRate", "HighMemoryUsage",
                                            "ErrorBudgetBurnPage", "ErrorBudgetBurnTicket"}
    for alert in alerts:
        assert f"alertname: {alert['alert']}" in tests, f"{alert['alert']} has no promtool test"
        assert alert["labels"]["severity"] in ("critical", "warning")
        assert alert["labels"]["priority"] in ("P0", "P1", "P2", "P3")
        assert {"summary", "description", "runbook_url"} <= set(alert["annotations"])
        assert alert["annotations"]["runbook_url"].split("#")[1] in anchors, alert["alert"]


def test_python_and_promql_agree_on_the_score(tmp_path):
    """Random steady rates per kind: promtool must find exactly Python's score (both round to 0.1)."""
    promtool = need_binary("promtool")
    rng = random.Random(1)
    tests = []
    for case in range(25):
        events = rng.choice([1, 3, 7, 20, 100, 250])  # per 15 s: 20 steps in 5 minutes
        per_kind = {k: rng.choice([0, 0, 1, 2, 5]) for k in WEIGHTS}
        series = [{"series": f'bizra_events_total{{job="bizra", instance="c{case}"}}', "values": f"0+{events}x40"}]
        for kind, n in per_kind.items():
            series.append({"series": f'bizra_violations_total{{job="bizra", instance="c{case}", kind="{kind}"}}',
                           "values": f"0+{n}x40"})
            series.append({"series": f'bizra_violation_weight{{job="bizra", instance="c{case}", kind="{kind}"}}',
                           "values": f"{WEIGHTS[kind]}x40"})
        expected = ahsan_score(20 * events, {k: 20 * n for k, n in per_kind.items()})
        tests.append({"name": f"case {case}: {events} events, {per_kind}", "interval": "15s", "input_series": series,
                      "promql_expr_test": [{"expr": "bizra:ahsan_score:5m", "eval_time": "8m", "exp_samples": [
                          {"labels": f'bizra:ahsan_score:5m{{job="bizra", instance="c{case}"}}', "value": expected}]}]})
    path = tmp_path / "agreement_test.yml"
    path.write_text(yaml.safe_dump({"rule_files": [str(MONITORING / "rules" / "recording.yml")],
                                    "evaluation_interval": "15s", "tests": tests}))
    result = run(promtool, "test", "rules", str(path))
    assert result.returncode == 0, result.stdout[-3000:]


def test_python_and_promql_agree_on_the_platform_score_over_replicas(tmp_path):
    """Two instances, one of them `--processes 2` (its series labelled replica): the platform rule is Python's
    score of the sums, and each instance's own rule still works with the replica label."""
    promtool = need_binary("promtool")
    rng = random.Random(2)
    tests = []
    for case in range(10):
        series, total_events, total = ahsan_case(rng, REPLICATED, [3, 7, 20, 100], lambda r: r.choice([0, 0, 1, 2]))
        expected = ahsan_score(total_events, total)
        tests.append({"name": f"platform case {case}", "interval": "15s", "input_series": series,
                      "promql_expr_test": [{"expr": "bizra:ahsan_score:platform:5m", "eval_time": "8m", "exp_samples": [
                          {"labels": 'bizra:ahsan_score:platform:5m{job="bizra"}', "value": expected}]}]})
    path = tmp_path / "platform_test.yml"
    path.write_text(yaml.safe_dump({"rule_files": [str(MONITORING / "rules" / "recording.yml")],
                                    "evaluation_interval": "15s", "tests": tests}))
    result = run(promtool, "test", "rules", str(path))
    assert result.returncode == 0, result.stdout[-3000:]


def test_amtool_checks_and_routes():
    amtool = need_binary("amtool")
    config = str(MONITORING / "alertmanager.yml")
    assert run(amtool, "check-config", config).returncode == 0
    for labels in (["severity=critical", "alertname=AhsanScoreBelowThreshold", "service=bizra-api"],
                   ["severity=warning", "alertname=HighErrorRate"], ["alertname=Other"],
                   ["severity=warning", "alertname=ErrorBudgetBurnTicket", "slo=bizra-api-latency", "priority=P3"]):
        result = run(amtool, "config", "routes", "test", f"--config.file={config}", "--verify.receivers=bizra-webhook",
                     *labels)
        assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_dashboard_is_provisionable():
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "bizra.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for needed in ("score", "violations", "request rate", "error ratio", "latency", "websocket", "runs"):
        assert needed in titles
    assert all(p["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"])
    provisioning = yaml.safe_load((MONITORING / "grafana" / "provisioning" / "dashboards" / "bizra.yml").read_text())
    assert provisioning["providers"][0]["type"] == "file"


# -- with a real Prometheus loaded with a demo month ----------------------------------------------------------


@pytest.fixture(scope="module")
def month_prometheus(tmp_path_factory):
    binary = need_binary("prometheus")
    promtool = need_binary("promtool")
    work = tmp_path_factory.mktemp("month")
    faults = [Fault("payment", "latency", pd.Timestamp("2026-09-12T10:00Z"), magnitude=2.0)]
    platform = platform_month("2026-09", faults=faults, seed=3)
    write_dataset(platform, work / "platform.parquet")
    create_blocks(None, work / "tsdb", promtool=promtool, work_dir=work, platform=platform)
    server = PrometheusProcess(binary, work / "prom", tsdb=work / "tsdb")
    yield server, work
    server.stop()


def test_dashboard_queries_are_valid_promql(month_prometheus):
    server, _ = month_prometheus
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "bizra.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"]]
    rules = [r["expr"] for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]]
    for expr in exprs + rules:
        response = httpx.get(server.url + "/api/v1/query", params={"query": expr, "time": "2026-09-20T00:00:00Z"})
        assert response.status_code == 200, f"{expr}: {response.text}"


def test_audit_on_prometheus_matches_the_dataset(month_prometheus):
    server, work = month_prometheus
    from_prom, queries, warnings = load_platform_metrics(server.url, "2026-09")
    from_file, _, _ = load_platform_metrics(str(work / "platform.parquet"), "2026-09")
    a, b = audit_month(from_file, "2026-09").summary, audit_month(from_prom, "2026-09").summary
    for key in ("verdict", "score", "tier", "availability", "events", "violations", "requests", "minutes_below_97",
                "minutes_below_95", "coverage", "error_budget_used"):
        assert a[key] == b[key], key
    assert abs(a["latency_attainment"] - b["latency_attainment"]) < 0.001  # exact p99 vs histogram buckets
    # the SLO budgets: counted from the same per-step counts, exact for counters, close for the histogram's p99
    file_slos, prom_slos = ({s["slo"]: s for s in x["slos"]} for x in (a, b))
    assert list(file_slos) == list(prom_slos) == ["bizra-api-availability", "bizra-api-latency", "bizra-ahsan-score"]
    for name in ("bizra-api-availability", "bizra-ahsan-score"):
        assert (file_slos[name]["bad"], file_slos[name]["total"]) == (prom_slos[name]["bad"], prom_slos[name]["total"])
    assert abs(file_slos["bizra-api-latency"]["bad"] - prom_slos["bizra-api-latency"]["bad"]) <= 5
    assert [s["met"] for s in a["slos"]] == [s["met"] for s in b["slos"]] and all(s["error"] is None for s in b["slos"])
    assert warnings == [] and any("histogram_quantile" in q for q in queries)
    from bizra_nb.audit import alerts_fired

    fired = alerts_fired(server.url, "2026-09").set_index("alertname")
    below95 = from_file.pipe(lambda f: (audit_month(f, "2026-09").score < 95).sum())
    assert fired.loc["AhsanScoreBelowThreshold", "episodes"] >= 1
    assert fired.loc["AhsanScoreBelowThreshold", "minutes_firing"] == below95  # one step a minute in this data
    assert alerts_fired(str(work / "platform.parquet"), "2026-09").empty


def test_the_audit_notebook_on_prometheus(month_prometheus, tmp_path):
    from bizra_nb.runner import Runner
    from bizra_nb.store import Store

    server, work = month_prometheus
    runner = Runner(Store.open(tmp_path / "d"), reports_dir=tmp_path / "r", workers=1)
    on_prom = runner.run("compliance_audit", {"month": "2026-09", "source": server.url,
                                              "data_dir": str(tmp_path / "d")})["summary"]
    on_file = runner.run("compliance_audit", {"month": "2026-09", "source": str(work / "platform.parquet"),
                                              "data_dir": str(tmp_path / "d")})["summary"]
    runner.close()
    assert on_prom["verdict"] == on_file["verdict"] and on_prom["score"] == on_file["score"]
    assert on_prom["availability"] == on_file["availability"]


# -- end to end: errors → alert → Alertmanager → incident → diagnosis report → resolution ------------------------


FAST = [(r"\[5m\]", "[20s]"), (r"\[1m\]", "[10s]"), (r"for: 1m", "for: 3s"), (r"for: 2m", "for: 5s"),
        (r"for: 3m", "for: 8s"), (r"for: 5m", "for: 10s")]


def fast_rules(folder: Path) -> list[str]:
    """Our rules with short windows and `for:` so the whole story takes a minute or two."""
    names = []
    for path in RULE_FILES:
        text = path.read_text()
        for pattern, repl in FAST:
            text = re.sub(pattern, repl, text)
        (folder / path.name).write_text(text)
        names.append(path.name)
    return names


def test_end_to_end_from_errors_to_a_resolved_incident_with_a_report(tmp_path):
    prometheus_bin = need_binary("prometheus")
    alertmanager_bin = need_binary("prometheus-alertmanager")
    from bizra_nb.demo import start_server, stop_server

    token = "e2e-token"
    now = pd.Timestamp.now(tz="UTC").floor("15s")
    fault = Fault("cart-cache", "latency", now - pd.Timedelta("8min"))
    fleet = generate(start=now - pd.Timedelta("2h"), duration="2h15min", faults=[fault], seed=5)
    write_dataset(fleet.metrics, tmp_path / "fleet.parquet")
    data = tmp_path / "data"
    proc, base = start_server(data, "--api-token", token, "--dataset", str(tmp_path / "fleet.parquet"),
                              "--reports-dir", str(tmp_path / "reports"), "--controller-interval", "1",
                              "--audit-schedule", "", "--benchmark-schedule", "")
    (data / "api_token").write_text(token)
    am_port = free_port()
    am_dir = tmp_path / "am"
    am_dir.mkdir()
    (am_dir / "alertmanager.yml").write_text(yaml.safe_dump({
        "global": {"resolve_timeout": "5m"},
        "route": {"receiver": "bizra", "group_by": ["alertname", "service"], "group_wait": "1s",
                  "group_interval": "2s", "repeat_interval": "1h"},
        "receivers": [{"name": "bizra", "webhook_configs": [{
            "url": base + "/alerts/webhook", "send_resolved": True,
            "http_config": {"authorization": {"type": "Bearer", "credentials_file": str(data / "api_token")}}}]}],
    }))
    am_log = open(am_dir / "log", "w")
    am = subprocess.Popen([alertmanager_bin, f"--config.file={am_dir / 'alertmanager.yml'}",
                           f"--storage.path={am_dir}", f"--web.listen-address=127.0.0.1:{am_port}",
                           "--cluster.listen-address="], stdout=am_log, stderr=subprocess.STDOUT)
    prom_dir = tmp_path / "prom"
    prom_dir.mkdir()
    rules = fast_rules(prom_dir)
    config = yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": rules,
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [{"job_name": "bizra", "static_configs": [
            {"targets": [base.removeprefix("http://")], "labels": {"service": "bizra-api"}}]}],
    })
    prometheus = PrometheusProcess(prometheus_bin, prom_dir, config=config)
    auth = {"Authorization": f"Bearer {token}"}
    http = httpx.Client(base_url=base, timeout=30)
    ws = websocket.create_connection(base.replace("http", "ws") + "/ws/live-updates", timeout=120)
    ws.send(json.dumps({"subscribe": ["incident", "rca"]}))
    events: list[dict] = []
    reader = threading.Thread(target=lambda: _read_all(ws, events), daemon=True)
    reader.start()
    try:
        wait_until(lambda: _prom_value(prometheus.url, 'up{job="bizra"}') == 1.0, timeout=30)
        http.get("/health")
        # the injected failure: the store locked by another writer; /ready answers 503 while it lasts
        first_error = time.monotonic()
        locker = sqlite3.connect(data / "bizra.sqlite3", isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            codes = [http.get("/ready").status_code for _ in range(15)]  # 15 errors: a score near 85
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert codes.count(503) == 15
        incident = wait_until(lambda: _incident(http, "AhsanScoreBelowThreshold"), timeout=90, interval=0.5)
        assert incident["severity"] == "P1" and incident["source"] == "alertmanager"
        linked = wait_until(lambda: (i := http.get(f"/rca/incidents/{incident['id']}").json())["report_url"] and i,
                            timeout=120, interval=0.5)
        report_seconds = time.monotonic() - first_error
        report = http.get(linked["report_url"])
        assert report.status_code == 200 and "Most likely root cause" in report.text
        assert any(e["type"] == "rca" and e["data"].get("report_url") == linked["report_url"] for e in events)
        assert linked["diagnosis"]["ranking"][0]["service"] == "cart-cache"
        resolved = wait_until(lambda: (i := http.get(f"/rca/incidents/{incident['id']}").json())["status"] ==
                              "resolved" and i, timeout=120, interval=1)
        assert resolved["ttr_seconds"] > 0
        assert any(e["type"] == "incident" and e["data"]["id"] == incident["id"] and e["data"]["status"] == "resolved"
                   for e in events)
        print(f"\nfirst error -> report link: {report_seconds:.1f} s; -> resolved: {time.monotonic() - first_error:.1f} s")
    finally:
        ws.close()
        prometheus.stop()
        am.send_signal(signal.SIGTERM)
        am.wait(timeout=20)
        am_log.close()
        stop_server(proc)


def _read_all(ws, events):
    try:
        while True:
            events.append(json.loads(ws.recv()))
    except Exception:  # noqa: BLE001 - the socket closes at the end of the test
        return


def _prom_value(url, query):
    result = httpx.get(url + "/api/v1/query", params={"query": query}).json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _incident(http, alertname):
    for incident in http.get("/rca/incidents").json()["incidents"]:
        if incident["title"].startswith(alertname):
            return incident
    return None
