"""`GET /slo` and the deploy gate against a real Prometheus loaded with a month that exhausts the availability budget.

One Prometheus (module) holds two stretches of the platform's counters (:func:`bizra_nb.fleet.platform_month`):
September 2026 with four large error faults (the availability budget is spent twice over by the month's end;
latency and the Ahsan score stay within theirs), and the current month up to now, without faults. The ground
truth is recomputed from the frames here, independently of the server.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import types
from datetime import datetime, timezone

import httpx
import pandas as pd
import pytest

from bizra_nb.audit import score_over_time
from bizra_nb.dataset import write_dataset
from bizra_nb.fleet import Fault, platform_month
from bizra_nb.openmetrics import create_blocks
from bizra_nb.settings import load_settings
from tests.conftest import TOKEN, RunningServer, need_binary, wait_until
from tests.prometheus_server import PrometheusProcess, free_port

MONTH = "2026-09"
FAULT_STARTS = [pd.Timestamp(f"2026-09-{day}T12:00Z") for day in (10, 15, 20, 25)]
MONTH_END = "2026-09-30T23:59:00Z"  # the month's last minute
IN_FIRST_FAULT = "2026-09-10T12:06:00Z"  # six minutes into the first fault: the budget is not spent yet
AVAILABILITY, LATENCY, SCORE = "bizra-api-availability", "bizra-api-latency", "bizra-ahsan-score"
GATE = "/slo/bizra-api-availability/deploy-allowed"
NAMES = ["bizra-api-availability", "bizra-api-latency", "bizra-ahsan-score"]  # the default spec's SLOs, in order
PAGE_FACTOR = 14.4  # BURN_ALERTS' first page: 14.4x over 1h and 5m


def availability_truth(frame: pd.DataFrame, end: pd.Timestamp) -> dict:
    """Occurrences: bad requests / (0.1 % of the month's requests), from the frame's rows up to ``end``.

    A month in progress budgets the requests it would have at the rate so far: those so far × the month's
    minutes / the minutes gone (API16b 4).
    """
    rows = frame[frame.index <= end]
    bad, so_far = rows["bizra_errors"].sum(), rows["bizra_requests"].sum()
    month = end.tz_convert("UTC").tz_localize(None).to_period("M")
    start, minutes = month.start_time.tz_localize("UTC"), month.days_in_month * 1440
    gone = (end - start) / pd.Timedelta(minutes=1)
    total = so_far * minutes / gone if 0 < gone < minutes else so_far

    def burn(window: str) -> float:
        recent = rows[rows.index > end - pd.Timedelta(window)]
        return recent["bizra_errors"].sum() / recent["bizra_requests"].sum() / 0.001

    return {"bad": bad, "total": total, "so_far": so_far, "remaining": 1 - bad / (0.001 * total),
            "burn_5m": burn("5min"),
            "burn_1h": burn("1h")}


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """The frames, the September dataset file and a real Prometheus holding September and this month so far."""
    binary, promtool = need_binary("prometheus"), need_binary("promtool")
    work = tmp_path_factory.mktemp("slo")
    faults = [Fault("bizra", "error_burst", start, magnitude=3.0) for start in FAULT_STARTS]
    september = platform_month(MONTH, faults=faults, seed=16)
    now = pd.Timestamp.now(tz="UTC")
    current = platform_month(now.strftime("%Y-%m"), seed=17)
    current = current[current.index <= now.floor("min")]
    parquet = write_dataset(september, work / "platform.parquet")
    create_blocks(None, work / "tsdb", promtool=promtool, work_dir=work, platform=pd.concat([september, current]))
    prometheus = PrometheusProcess(binary, work / "prom", tsdb=work / "tsdb")
    yield types.SimpleNamespace(url=prometheus.url, september=september, current=current, parquet=parquet, now=now)
    prometheus.stop()


def test_the_month_exhausts_availability_only():
    """The ground truth the API tests rest on, from the frame alone (seeded: the same every run)."""
    september = platform_month(MONTH, faults=[Fault("bizra", "error_burst", s, magnitude=3.0) for s in FAULT_STARTS],
                               seed=16)
    end = availability_truth(september, pd.Timestamp(MONTH_END))
    assert end["remaining"] < -0.5  # spent well over once
    slices = len(september)  # Timeslices: every minute of the month is the allowance's base
    assert (september["bizra_lat_p99"] > 100).sum() < 0.5 * 0.01 * slices  # latency: under half its budget
    assert (score_over_time(september) < 97).sum() < 0.5 * 0.01 * slices  # the score: too
    early = availability_truth(september, pd.Timestamp(IN_FIRST_FAULT))
    assert early["remaining"] > 0.3 and early["burn_5m"] > 5 * PAGE_FACTOR and early["burn_1h"] > 2 * PAGE_FACTOR


def server_settings(tmp_path, **overrides):
    return load_settings({
        "host": "127.0.0.1", "port": 0, "ws_port": 0, "data_dir": tmp_path / "data", "reports_dir": tmp_path / "reports",
        "controller_interval": 0.2, "heartbeat_interval": 0.5, "api_token": TOKEN, "log_level": "warning",
        "audit_schedule": "", "benchmark_schedule": "", "diagnose_with_notebook": False, "kernel_pool": 0,
        **overrides}, environ={})


@pytest.fixture(scope="module")
def prom_api(platform, tmp_path_factory):
    """(module) One server reading ``platform``'s Prometheus, with an httpx client on it."""
    running = RunningServer(server_settings(tmp_path_factory.mktemp("slo-server"), prometheus_url=platform.url))
    with httpx.Client(base_url=running.url, timeout=60) as client:
        yield running, client
    running.stop()


def by_name(body: dict) -> dict:
    return {entry["slo"]: entry for entry in body["slos"]}


def test_the_month_end_shows_availability_exhausted(prom_api, platform):
    running, http = prom_api
    response = http.get("/slo", params={"at": MONTH_END})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["source"] == "prometheus" and body["as_of"] == "2026-09-30T23:59:00Z"
    slos = by_name(body)
    assert set(slos) == {AVAILABILITY, LATENCY, SCORE}
    truth = availability_truth(platform.september, pd.Timestamp(MONTH_END))
    availability = slos[AVAILABILITY]
    assert availability["remaining"] < 0 and availability["state"] == "exhausted"
    assert availability["deploy_allowed"] is False and availability["reason"].startswith(
        "budget exhausted: API availability has used ")
    assert availability["reason"].endswith(" of its error budget for September 2026 (calendar month, target 99.9 %)")
    assert availability["stale"] is False and "\\" not in availability["explanation"]
    assert availability["remaining"] == pytest.approx(truth["remaining"], abs=0.05)
    assert availability["bad"] == pytest.approx(truth["bad"], rel=0.02)
    for name in (LATENCY, SCORE):
        assert slos[name]["remaining"] > 0.3, name  # well within (the frame says under half spent)
        assert slos[name]["state"] in ("ok", "warning") and slos[name]["deploy_allowed"] is True, name
    one = http.get(f"/slo/{AVAILABILITY}", params={"at": MONTH_END}).json()
    assert one["slo"] == AVAILABILITY and one["remaining"] == availability["remaining"]

    gate = http.get(GATE, params={"at": MONTH_END})
    assert gate.status_code == 409 and gate.headers["Cache-Control"] == "no-store"
    blocked = gate.json()
    assert blocked["allowed"] is False and blocked["reason"].startswith("budget exhausted: ")
    assert blocked["error"] == {"code": "deploy_blocked", "message": blocked["reason"]}
    assert blocked["slo"] == AVAILABILITY and blocked["budget_remaining"] == availability["remaining"]
    latency = http.get(f"/slo/{LATENCY}/deploy-allowed", params={"at": MONTH_END})
    assert latency.status_code == 200
    assert latency.json()["allowed"] is True and latency.json()["as_of"] == "2026-09-30T23:59:00Z"


def test_inside_the_first_fault_the_gate_says_fast_burn(prom_api):
    _, http = prom_api
    entry = http.get(f"/slo/{AVAILABILITY}", params={"at": IN_FIRST_FAULT}).json()
    assert entry["remaining"] > 0.3 and entry["alerting"] == "page" and entry["state"] == "fast_burn"
    assert entry["burn_rates"]["5m"] > PAGE_FACTOR and entry["burn_rates"]["1h"] > PAGE_FACTOR
    gate = http.get(GATE, params={"at": IN_FIRST_FAULT.replace("Z", "+02:00").replace("T12", "T14")})  # same instant
    assert gate.status_code == 409
    body = gate.json()
    assert body["reason"].startswith("fast burn: ") and body["error"]["code"] == "deploy_blocked"
    assert body["as_of"] == IN_FIRST_FAULT and body["budget_remaining"] > 0.3


def test_now_agrees_with_the_frame_and_is_evaluated_once(prom_api, platform):
    running, http = prom_api
    board = running.services.error_budgets
    before = board.evaluations
    body = http.get("/slo").json()
    as_of = pd.Timestamp(body["as_of"])
    assert platform.now - pd.Timedelta("1min") <= as_of <= pd.Timestamp.now(tz="UTC")
    availability = by_name(body)[AVAILABILITY]
    assert http.get("/slo").json()["as_of"] == body["as_of"]  # reused within the TTL
    assert board.evaluations == before + 1
    if len(platform.current) >= 30:  # the first half hour of a month holds too little to compare
        truth = availability_truth(platform.current, as_of)
        assert availability["measured"] == pytest.approx(truth["so_far"], rel=0.05)
        assert availability["total"] == pytest.approx(truth["total"], rel=0.05)  # the month's, at the rate so far
        assert availability["remaining"] == pytest.approx(truth["remaining"], abs=0.1)
        assert availability["state"] in ("ok", "warning")


def test_concurrent_requests_share_one_evaluation(prom_api):
    """Twenty gate requests arriving while an evaluation is in flight all get that one evaluation's answer."""
    running, http = prom_api
    board = running.services.error_budgets
    entered, release = [], threading.Event()
    evaluation, budgets = board.evaluation, board._budgets

    async def counted(services, at=None):
        entered.append(at)
        return await evaluation(services, at)

    def held(at):
        release.wait(30)
        return budgets(at)

    running.call(lambda: setattr(board, "_current", None))  # the cached one has gone stale
    board.evaluation, board._budgets = counted, held
    before, answers = board.evaluations, []
    try:
        threads = [threading.Thread(target=lambda: answers.append(httpx.get(running.url + GATE, timeout=60)))
                   for _ in range(20)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(entered) == 20, timeout=30)  # all twenty are waiting on the one evaluation
        release.set()
        for thread in threads:
            thread.join(60)
    finally:
        release.set()
        del board.evaluation, board._budgets
    assert board.evaluations == before + 1
    assert len({(a.status_code, a.json()["as_of"]) for a in answers}) == 1 and len(answers) == 20


SEPTEMBER_END = "2026-10-01T00:00:00Z"  # the dataset's data ends here: the whole of September, measured


def test_a_dataset_source_stale_now_exact_at_its_end_and_the_one_line_curl_gate(make_server, platform, prom_api):
    curl = need_binary("curl")
    running = make_server(audit_source=str(platform.parquet))
    with httpx.Client(base_url=running.url, timeout=60) as http:
        body = http.get("/slo").json()  # now: the data (September) ended weeks ago
        assert body["source"] == "dataset"
        assert [entry["slo"] for entry in body["slos"]] == NAMES  # every SLO: the all() below is over all three
        assert all(entry["stale"] is True for entry in body["slos"])
        stale = http.get(GATE)
        assert stale.status_code == 503 and stale.json()["error"]["code"] == "slo_unknown"
        assert stale.json()["stale"] is True
        assert "the data ends at 2026-10-01 00:00 UTC, more than 1 h before" in stale.json()["reason"]
        body = http.get("/slo", params={"at": SEPTEMBER_END}).json()  # at the data's end: fresh, the whole month
        availability = by_name(body)[AVAILABILITY]
        truth = availability_truth(platform.september, pd.Timestamp(SEPTEMBER_END))
        assert availability["stale"] is False and availability["total"] == truth["so_far"]
        assert availability["remaining"] == pytest.approx(truth["remaining"], abs=1e-6)  # the same rows, exactly
        assert availability["bad"] == truth["bad"] and availability["state"] == "exhausted"
        assert http.get(GATE, params={"at": SEPTEMBER_END}).status_code == 409

    def gate(url: str) -> subprocess.CompletedProcess:  # the documented command, as a pipeline runs it
        return subprocess.run([curl, "--fail-with-body", "--silent", "--show-error", url],
                              capture_output=True, text=True, timeout=60)

    blocked = gate(f"{running.url}{GATE}?at={SEPTEMBER_END}")
    assert blocked.returncode == 22, blocked.stderr  # the pipeline step fails ...
    said = json.loads(blocked.stdout)  # ... and its log shows why
    assert said["reason"].startswith("budget exhausted: API availability has used ")
    assert said["reason"].endswith("for September 2026 (calendar month, target 99.9 %)")
    unknown = gate(running.url + GATE)
    assert unknown.returncode == 22 and json.loads(unknown.stdout)["error"]["code"] == "slo_unknown"
    current, _ = prom_api  # this month so far: no fault, most of the budget left
    if len(platform.current) >= 30:
        allowed = gate(current.url + GATE)
        assert allowed.returncode == 0 and '"allowed": true' in allowed.stdout


def test_at_evaluations_run_on_their_own_bounded_threads_are_kept_by_the_minute_and_refused_when_too_many(prom_api):
    """Distinct ?at= times queue on two threads of their own (never the diagnoses' workers); past four waiting,
    a new one is a 429 naming ``at``; the same minute again is answered from the cache."""
    running, http = prom_api
    board = running.services.error_budgets
    threads_used, release = [], threading.Event()
    budgets = board._budgets

    def held(at):
        threads_used.append(threading.current_thread().name)
        release.wait(30)
        return budgets(at)

    minutes = [f"2026-09-0{day}T06:0{day}:00Z" for day in range(1, 8)]  # never asked elsewhere in this module
    board._budgets, answers = held, {}
    before = board.evaluations
    try:
        first_six = [threading.Thread(target=lambda m=m: answers.setdefault(m, http_get(running, "/slo", at=m)))
                     for m in minutes[:6]]
        for thread in first_six:
            thread.start()
        wait_until(lambda: len([k for k in board._flights if k is not None]) == 6 and len(threads_used) == 2,
                   timeout=30)  # two running, four waiting for a thread
        refused = http_get(running, GATE, at=minutes[6])
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "5"
        assert refused.json()["error"]["code"] == "too_many_requests" and refused.json()["error"]["field"] == "at"
        shared = threading.Thread(target=lambda: answers.setdefault(  # the same minute as one waiting: it joins it
            "same", http_get(running, GATE, at=minutes[0].replace(":00Z", ":42Z"))))
        shared.start()
        release.set()
        for thread in [*first_six, shared]:
            thread.join(60)
    finally:
        release.set()
        del board._budgets
    assert all(answers[m].status_code == 200 for m in minutes[:6]) and answers["same"].status_code == 200
    assert answers["same"].json()["as_of"] == minutes[0]  # taken to the minute
    assert len(threads_used) == 6 and {name.rsplit("_", 1)[0] for name in threads_used} == {"bizra-slo-at"}
    assert len(set(threads_used)) == 2  # two threads of their own
    assert board.evaluations == before + 6
    again = http_get(running, "/slo", at=minutes[1].replace(":00Z", ":59.5Z"))  # kept: no new evaluation
    assert again.json() == answers[minutes[1]].json() and board.evaluations == before + 6
    assert http_get(running, "/slo", at=minutes[6]).status_code == 200  # room again


def http_get(running, path: str, **params) -> httpx.Response:
    return httpx.get(running.url + path, params=params, timeout=60)


def test_a_prometheus_too_slow_for_the_deadline_makes_the_gate_503(make_server, monkeypatch):
    """Each query answers within its own timeout, but not all of them within the evaluation's deadline."""
    from bizra_nb import slo_prometheus
    from tests.test_slo_budget import SlowPrometheus

    monkeypatch.setattr(slo_prometheus, "EVALUATION_DEADLINE", 0.5)
    slow = SlowPrometheus(0.25)
    try:
        running = make_server(prometheus_url=slow.url)
        gate = http_get(running, GATE)
    finally:
        slow.close()
    assert gate.status_code == 503 and gate.json()["error"]["code"] == "slo_unknown"
    assert gate.json()["reason"] == f"Prometheus at {slow.url} did not answer all queries within 0.5 s"


def rolling_spec(path) -> str:
    """The default spec with each SLO over a rolling 28 days instead of the calendar month."""
    import re

    from bizra_nb.slo_spec import default_spec_path

    text = re.sub(r'duration: 1M\n(\s+)isRolling: false\n\s+calendar:\n\s+startTime: "[^"]*"(\n\s+timeZone: \S+)?',
                  r"duration: 28d\n\1isRolling: true", default_spec_path().read_text())
    assert text.count("duration: 28d") == 3
    path.write_text(text)
    return str(path)


def test_a_prometheus_without_data_in_the_last_hour_is_stale_and_the_gate_503(make_server, platform, tmp_path):
    """Prometheus answers, its 28 days reach September's counts, but it has nothing since (the server down):
    the budgets are stale and unknown, and the gate answers 503 instead of judging on old counts."""
    running = make_server(prometheus_url=platform.url, slo_spec=rolling_spec(tmp_path / "rolling.yaml"))
    gap = "2026-10-02T00:00:00Z"  # a day after September's data ends; the current month's starts later
    with httpx.Client(base_url=running.url, timeout=60) as http:
        entries = by_name(http.get("/slo", params={"at": gap}).json())
        assert list(entries) == NAMES  # every SLO: the loop below checks all three
        for name, entry in entries.items():
            assert entry["error"] is None and entry["measured"] > 0, name  # old counts, there ...
            assert entry["stale"] is True and entry["state"] == "unknown" and entry["deploy_allowed"] is None, name
            assert entry["reason"].endswith(f"no data from Prometheus for {name} in the last hour"), name
        gate = http.get(GATE, params={"at": gap})
        assert gate.status_code == 503 and gate.json()["error"]["code"] == "slo_unknown"
        assert gate.json()["stale"] is True and gate.json()["state"] == "unknown" and gate.json()["allowed"] is False
        assert gate.json()["reason"] == f"{platform.url}: no data from Prometheus for {AVAILABILITY} in the last hour"
        live = http.get(GATE, params={"at": MONTH_END})  # data up to that minute: judged (the faults: blocked)
        assert live.status_code == 409 and live.json()["stale"] is False


def test_now_runs_on_its_own_thread_never_behind_the_diagnoses(prom_api, platform):
    """Every diagnosis thread busy (an incident storm): the gate for now still answers, from a thread of its own."""
    running, http = prom_api
    board, workers = running.services.error_budgets, running.services.workers
    held, release, used, answers = [], threading.Event(), [], []
    budgets = board._budgets

    def hold():
        held.append(threading.current_thread().name)
        release.wait(60)

    def recorded(at):
        used.append(threading.current_thread().name)
        return budgets(at)

    futures = [workers.submit(hold) for _ in range(workers._max_workers)]
    try:
        wait_until(lambda: len(held) == workers._max_workers, timeout=30)  # no worker is free
        running.call(lambda: setattr(board, "_current", None))  # no cached answer: an evaluation now
        board._budgets = recorded
        asking = threading.Thread(target=lambda: answers.append(http_get(running, GATE)))
        asking.start()
        wait_until(lambda: answers, timeout=30)  # answered while every worker is still held
        assert len(held) == workers._max_workers and not any(f.done() for f in futures)
    finally:
        release.set()
        del board._budgets
    asking.join(60)
    assert answers[0].status_code in (200, 409, 503) and "as_of" in answers[0].json()
    # evaluated, not failed: a 503 (no number) only while this month holds too little data (in its first minute
    # Prometheus has nothing for it: "no data for …"); the first half hour is not judged elsewhere in this file either
    judged = (200, 409) if len(platform.current) >= 30 else (200, 409, 503)
    assert answers[0].status_code in judged, answers[0].text
    assert [name.rsplit("_", 1)[0] for name in used] == ["bizra-slo-now"]
    assert not set(used) & set(held)


def test_budget_state_is_unknown_when_stale_or_the_gate_cannot_answer():
    from bizra_server.slo import budget_state

    fine = {"remaining": 0.8, "alerting": None, "error": None, "stale": False, "deploy_allowed": True}
    assert budget_state(fine) == "ok"
    assert budget_state({**fine, "remaining": 0.1}) == "warning"
    assert budget_state({**fine, "stale": True, "deploy_allowed": None}) == "unknown"  # was "ok": old numbers
    assert budget_state({**fine, "stale": True}) == "unknown"
    assert budget_state({**fine, "remaining": -0.2, "stale": True, "deploy_allowed": None}) == "unknown"
    assert budget_state({**fine, "deploy_allowed": None}) == "unknown"  # the gate says 503: never "ok"
    assert budget_state({**fine, "remaining": -0.2, "deploy_allowed": False}) == "exhausted"
    assert budget_state({**fine, "alerting": "page", "deploy_allowed": False}) == "fast_burn"


def test_no_source_is_unknown_and_the_gate_is_503(make_server):
    running = make_server()
    with httpx.Client(base_url=running.url, timeout=30) as http:
        body = http.get("/slo").json()
        assert body["source"] is None and len(body["slos"]) == 3
        assert all(e["state"] == "unknown" and "--audit-source" in e["error"] for e in body["slos"])
        gate = http.get(GATE)
        assert gate.status_code == 503 and gate.headers["Cache-Control"] == "no-store"
        assert gate.json()["allowed"] is False and gate.json()["error"]["code"] == "slo_unknown"
        assert "--prometheus-url" in gate.json()["error"]["message"]
    assert running.services.scorekeeper.total_violations["http_error"] == 0  # not our failure


def test_a_source_that_does_not_answer_is_named_without_its_login(make_server):
    port = free_port()  # nothing listens there
    running = make_server(prometheus_url=f"http://alice:s3cret@127.0.0.1:{port}")
    with httpx.Client(base_url=running.url, timeout=60) as http:
        gate = http.get(GATE)
        entries = http.get("/slo").json()["slos"]
    assert gate.status_code == 503
    message = gate.json()["error"]["message"]
    assert f"http://127.0.0.1:{port}" in message
    assert all(e["state"] == "unknown" for e in entries)
    assert "s3cret" not in gate.text + str(entries) and "alice" not in gate.text + str(entries)


def test_names_and_times_are_checked(prom_api):
    _, http = prom_api
    unknown = http.get("/slo/no-such-slo/deploy-allowed")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["field"] == "name" and AVAILABILITY in unknown.json()["error"]["message"]
    assert http.get("/slo/no-such-slo").status_code == 404
    for hostile in ("%3Cscript%3Ealert(1)%3C%2Fscript%3E", "..%2F..%2Fetc%2Fpasswd", "a" * 3000, "%00", "UPPER"):
        for path in (f"/slo/{hostile}", f"/slo/{hostile}/deploy-allowed"):
            response = http.get(path)
            assert response.status_code == 404 and response.headers["Content-Type"].startswith("application/json")
            assert "<script" not in response.text and "passwd" not in response.text and "a" * 100 not in response.text
    future = (datetime.now(timezone.utc) + pd.Timedelta("1h")).isoformat()
    for bad, said in (("yesterday", "ISO-8601"), ("2026-09-30T23:59:00", "offset"), (future, "future"),
                      ("2026-09-30T23:59:00 02:00", "%2B"), ("x" * 5000, "ISO-8601"), ("0001-01-01T00:00Z", "1970"),
                      # offsets that push the time out of what a datetime holds (these were a 500)
                      ("9999-12-31T23:59:59-23:59", "future"), ("0001-01-01T00:00:00+23:59", "1970"),
                      ("9999-12-31T23:59:59.999999-00:01", "future"), ("0001-01-01T00:00:00.000001+00:01", "1970")):
        for path in ("/slo", GATE):
            response = http.get(path, params={"at": bad})
            assert response.status_code == 400, (bad, path)
            error = response.json()["error"]
            assert error["field"] == "at" and said in error["message"], (bad, error)
            assert "x" * 100 not in error["message"]
            assert error["message"].startswith("at: ") and (repr(bad)[:20] in error["message"] or "%2B" in said)


BAD_SPEC = """\
apiVersion: openslo/v1
kind: SLO
metadata: {name: checkout-availability}
spec:
  service: checkout
  budgetingMethod: Occurrences
  timeWindow: [{duration: 1M, isRolling: false}]
  objectives: [{target: 1.5}]
  colour: blue
"""


def test_a_bad_spec_stops_serve_with_one_line_per_problem(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(BAD_SPEC)
    result = subprocess.run([sys.executable, "-m", "bizra_nb.cli", "serve", "--slo-spec", str(spec), "--port", "0",
                             "--data-dir", str(tmp_path / "data")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("bizra-nb serve: error: ") and "Traceback" not in result.stderr
    assert len(lines) >= 2 and all("bad.yaml" in line for line in lines), lines  # one line a problem, each naming it
    assert "colour" in result.stderr and "target" in result.stderr
    assert result.stdout == ""  # it never started serving
