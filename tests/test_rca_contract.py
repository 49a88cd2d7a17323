"""The diagnosis contract as users see it: verdict, confidence and kinds in the CLI, the report, summary.json,
the API and the explore notebook; `--history`; a dependency without metrics; hostile names in the report."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bizra_nb.cmdb import Cmdb
from bizra_nb.dataset import write_dataset
from bizra_nb.fleet import Fault, demo_cmdb, generate
from bizra_nb.rca import KINDS, Diagnosis, rank_root_causes

START = pd.Timestamp("2026-10-01T10:00:00Z")
HOSTILE = "<img src=x onerror=\"document.title='pwned-img';window.pwned='img'\">"
NOT_RUN = "() => window.pwned === undefined && !document.title.includes('pwned')"
LINK = '<a href="https://evil.example/login">re-authenticate</a>'  # plotly renders links in its labels


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bizra_nb.cli", *args], capture_output=True, text=True, timeout=120)


def unmonitored(service: str = "cart-cache", *, cmdb: Cmdb | None = None) -> tuple[pd.DataFrame, Cmdb]:
    """A fault at ``service`` whose columns are dropped: only its callers show it (a database without an exporter)."""
    data = generate(start=START, duration="1h", faults=[Fault(service, "latency", START + pd.Timedelta("40min"))],
                    seed=3)
    frame = data.metrics.drop(columns=[c for c in data.metrics if c.startswith(service + "_")])
    return frame, cmdb or data.cmdb


def quiet() -> pd.DataFrame:
    return generate(start=START, duration="1h", seed=3).metrics


@pytest.fixture(scope="module")
def no_metrics_diagnosis() -> tuple[pd.DataFrame, Diagnosis]:
    frame, cmdb = unmonitored()
    return frame, rank_root_causes(frame, cmdb=cmdb)


@pytest.fixture(scope="module")
def quiet_diagnosis() -> Diagnosis:
    return rank_root_causes(quiet(), cmdb=demo_cmdb())


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Dataset files: ``unmonitored`` (cart-cache without columns), ``quiet`` (no fault), ``daily`` (27 h at 1 min,
    a fault 80 minutes into the last two hours), and the CMDB."""
    out = tmp_path_factory.mktemp("contract")
    frame, cmdb = unmonitored()
    daily = generate(start=START, duration="27h", step="1min", seed=5,
                     faults=[Fault("payment", "cpu_hog", START + pd.Timedelta("26h20min"))]).metrics
    paths = {"unmonitored": write_dataset(frame, out / "unmonitored.csv"),
             "quiet": write_dataset(quiet(), out / "quiet.csv"),
             "daily": write_dataset(daily, out / "daily.parquet"),
             "cmdb": out / "cmdb.yaml"}
    paths["cmdb"].write_text(cmdb.dumps("yaml"))
    return {k: str(v) for k, v in paths.items()}


# -- the engine's output used here -------------------------------------------------------------------------


def test_the_fixture_is_what_the_tests_assume(no_metrics_diagnosis, quiet_diagnosis):
    """A guard: when the engine changes, the tests below must still exercise a no_metrics top and a quiet window."""
    _, diagnosis = no_metrics_diagnosis
    top = diagnosis.ranking[0]
    assert (top.service, top.kind, top.callers, top.evidence, top.metric) == ("cart-cache", "no_metrics", ["cart"],
                                                                             [], "-")
    assert diagnosis.verdict == "root_cause" and top.anomalous
    assert quiet_diagnosis.verdict == "nothing_to_blame"


# -- the CLI -----------------------------------------------------------------------------------------------


def test_json_carries_verdict_confidence_and_kinds(files):
    result = run("diagnose", "--data", files["unmonitored"], "--cmdb", files["cmdb"], "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) >= {"anomaly_start", "anomaly_start_detected", "end", "ranking", "warnings",  # the old keys
                        "verdict", "confidence", "anomaly_start_confidence"}
    assert doc["verdict"] == "root_cause" and doc["anomaly_start_detected"] is True
    assert 0 <= doc["anomaly_start_confidence"] <= 1
    conf = doc["confidence"]
    assert conf["level"] in ("high", "medium", "low") and 0 <= conf["score"] <= 1
    assert isinstance(conf["reason"], str) and conf["reason"] and isinstance(conf["advice"], list)
    assert all(c["kind"] in KINDS for c in doc["ranking"])
    top = doc["ranking"][0]
    assert (top["service"], top["kind"], top["metric"], top["callers"], top["evidence"]) == (
        "cart-cache", "no_metrics", "-", ["cart"], [])
    assert "callers" not in doc["ranking"][-1] and "edge" not in doc["ranking"][-1]  # optional keys only when set


def test_a_given_start_has_no_start_confidence(files):
    result = run("diagnose", "--data", files["unmonitored"], "--anomaly-start", "2026-10-01T10:40:00Z",
                 "--format", "json")
    doc = json.loads(result.stdout)
    assert doc["anomaly_start_detected"] is False and doc["anomaly_start_confidence"] is None


def test_text_output_says_verdict_and_confidence_before_the_table(files):
    result = run("diagnose", "--data", files["unmonitored"], "--cmdb", files["cmdb"], "--top", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1] == "verdict: root cause cart-cache (no metrics of its own — blamed from its caller cart)"
    assert lines[2].startswith("confidence: ") and lines[2].split()[1] in ("high", "medium", "low")
    header = next(n for n, line in enumerate(lines) if line.lstrip().startswith("rank"))
    assert header > 2 and "cart-cache" in lines[header + 1]
    if lines[2].split()[1] != "high":
        assert lines[3].startswith("what would help: ")


def test_text_output_without_a_cmdb_advises_one(files):
    result = run("diagnose", "--data", files["unmonitored"], "--top", "3")
    lines = result.stdout.splitlines()
    level = lines[2].split()[1]
    assert level != "high" or "what would help" not in result.stdout
    if level != "high":
        assert "a CMDB" in next(line for line in lines if line.startswith("what would help: "))


def test_text_output_of_a_quiet_window_names_no_cause(files):
    result = run("diagnose", "--data", files["quiet"], "--cmdb", files["cmdb"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("verdict: nothing to blame: no series changed")
    assert "root cause" not in result.stdout
    assert "none of them a cause" in result.stdout  # the table that follows is not a ranking of causes


def test_history_is_fetched_before_the_start_and_compared_by_time_of_day(files):
    window = (START + pd.Timedelta("25h")).isoformat()  # a day of history and one hour
    plain = json.loads(run("diagnose", "--data", files["daily"], "--start", window, "--format", "json").stdout)
    result = run("diagnose", "--data", files["daily"], "--start", window, "--history", "25h", "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert any("same time of day" in w for w in doc["warnings"]), doc["warnings"]
    assert not any("same time of day" in w for w in plain["warnings"])
    assert doc["ranking"][0]["service"] == "payment"
    assert doc["anomaly_start"] >= pd.Timestamp(window).timestamp()  # the window still begins at --start


def test_the_library_fetches_start_minus_history(files):
    from bizra_nb.diagnose import diagnose

    start = START + pd.Timedelta("25h")
    diagnosis, fetched = diagnose(files["daily"], start=start, history="2h")
    assert fetched.frame.index[0] == start - pd.Timedelta("2h")
    _, without = diagnose(files["daily"], start=start)
    assert without.frame.index[0] == start


@pytest.mark.parametrize("args, fragment", [
    (["--start", "2026-10-02T00:00:00Z", "--history", "two days"],
     "--history must be a positive length such as 12h, 2d or 90min, got 'two days'"),
    (["--start", "2026-10-02T00:00:00Z", "--history=-2h"], "--history must be a positive length"),
    (["--start", "2026-10-02T00:00:00Z", "--history", "0s"], "--history must be a positive length"),
    (["--history", "2d"], "--history needs --start"),
    (["--start", "2026-10-02T00:00:00Z", "--history", "30d"], "history must be at most 14d"),
    (["--start", "nan", "--history", "2d"], "start: 'nan' is not a time"),
])
def test_history_errors_exit_2_with_one_line(files, args, fragment):
    result = run("diagnose", "--data", files["daily"], *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert result.stdout == ""


def test_history_in_the_library_names_its_field(files):
    from bizra_nb.diagnose import diagnose
    from bizra_nb.errors import InvalidInput

    for bad, fragment in (("soon", "history must be a positive length"), ("2d", "history needs start")):
        with pytest.raises(InvalidInput) as info:
            diagnose(files["daily"], start=None if bad == "2d" else START + pd.Timedelta("24h"), history=bad)
        assert info.value.field == "history" and fragment in info.value.message


# -- the report: summary, table, bars, series, summary.json ----------------------------------------------


def test_summary_names_a_dependency_blamed_from_its_callers(no_metrics_diagnosis):
    from bizra_nb.summaries import incident_summary

    _, diagnosis = no_metrics_diagnosis
    text = incident_summary(diagnosis, {"title": "HighLatency on cart"})
    paragraphs = text.split("\n\n")
    cause = next(p for p in paragraphs if p.startswith("**Most likely root cause"))
    assert "` cart-cache `" in cause and "no metrics of its own — blamed from its caller ` cart `" in cause
    confidence = next(p for p in paragraphs if p.startswith("**Confidence: "))
    assert paragraphs.index(confidence) == paragraphs.index(cause) + 1
    level = diagnosis.confidence["level"]
    assert f"**Confidence: {level} \\(" in confidence
    assert ("What would help" in confidence) == (level != "high" and bool(diagnosis.confidence["advice"]))
    quiet_line = next(p for p in paragraphs if "stayed within their normal range" in p)
    assert "` cart-cache `" not in quiet_line and "` cart `" not in quiet_line  # blamed and symptom: not quiet


def test_confidence_advice_is_shown_when_not_high(no_metrics_diagnosis):
    import copy

    from bizra_nb.summaries import incident_summary

    diagnosis = copy.deepcopy(no_metrics_diagnosis[1])
    diagnosis.confidence = {"level": "low", "score": 0.12, "reason": "the first candidate leads by 12%",
                            "advice": ["a CMDB of the services' dependencies (--cmdb)", "a longer window"]}
    text = incident_summary(diagnosis)
    assert "**Confidence: low \\(0\\.12\\) — the first candidate leads by 12%**. What would help: a CMDB" in text
    diagnosis.confidence = {**diagnosis.confidence, "level": "high"}
    assert "What would help" not in incident_summary(diagnosis)


def test_table_and_bars_show_the_dependency_without_metrics(no_metrics_diagnosis):
    from bizra_nb.plots import candidate_series, ranking_bar
    from bizra_nb.summaries import ranking_table

    frame, diagnosis = no_metrics_diagnosis
    table = ranking_table(diagnosis).frame
    first = table.iloc[0]
    assert first["Service"] == "cart-cache"
    assert first["Evidence"] == "no metrics of its own — blamed from its caller cart"
    assert first["Strongest metric"] == "– (no metrics)"
    assert list(table["Service"]) == [c.service for c in diagnosis.ranking if c.anomalous]
    bars = ranking_bar(diagnosis).data[0]
    assert bars.y[-1] == "cart-cache" and "blamed from its caller cart" in bars.text[-1]  # on top, in red
    assert set(bars.y) == {c.service for c in diagnosis.ranking if c.anomalous}
    fig = candidate_series(frame, diagnosis, k=2)
    assert fig.data[0].name.startswith("cart_")  # its caller's series
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0] == "cart-cache: no metrics of its own, its callers' cart lat_50 (ms)"


def test_series_of_a_candidate_without_any_series_get_a_note(no_metrics_diagnosis):
    from bizra_nb.plots import candidate_series

    frame, diagnosis = no_metrics_diagnosis
    without_callers = frame.drop(columns=[c for c in frame if c.startswith("cart_")])
    fig = candidate_series(without_callers, diagnosis, k=1)
    assert fig.data == ()
    assert "no series of it or its callers in the data" in [a.text for a in fig.layout.annotations]


def test_nothing_to_blame_is_said_first_and_names_no_candidate(quiet_diagnosis):
    from bizra_nb.plots import candidate_series, ranking_bar
    from bizra_nb.summaries import incident_record, incident_summary, ranking_table

    reason = quiet_diagnosis.confidence["reason"]
    assert reason
    text = incident_summary(quiet_diagnosis, {"title": "HighLatency on frontend", "severity": "P2"})
    paragraphs = text.split("\n\n")
    assert paragraphs[1].startswith("**Nothing to blame:** no series changed")
    assert "Most likely root cause" not in text and "Also anomalous" not in text
    table = ranking_table(quiet_diagnosis)
    assert len(table) == 0 and table.empty.startswith("No candidate: nothing to blame — no series changed")
    fig = ranking_bar(quiet_diagnosis)
    assert fig.data == ()  # no bars
    assert [a.text for a in fig.layout.annotations] == [f"Nothing to blame: {reason}."]
    assert "nothing to blame" in candidate_series(quiet(), quiet_diagnosis).layout.title.text
    record = incident_record(quiet_diagnosis)
    assert record["verdict"] == "nothing_to_blame" and record["top_causes"] == []
    assert record["headline"] == "nothing to blame"


def test_the_record_keeps_its_fields_and_adds_the_contract(no_metrics_diagnosis):
    from bizra_nb.summaries import incident_record

    _, diagnosis = no_metrics_diagnosis
    record = incident_record(diagnosis, incident_id=7)
    assert set(record) == {"headline", "incident_id", "anomaly_start", "anomaly_start_detected", "top_causes",
                           "warnings", "verdict", "confidence", "anomaly_start_confidence"}
    assert record["incident_id"] == 7 and record["verdict"] == "root_cause"
    assert record["confidence"] == diagnosis.confidence and record["anomaly_start_confidence"] == \
        diagnosis.start_confidence
    assert record["anomaly_start"] == diagnosis.anomaly_start.isoformat()
    top = record["top_causes"][0]
    assert (top["service"], top["kind"], top["callers"]) == ("cart-cache", "no_metrics", ["cart"])
    assert all("kind" in c and len(c["evidence"]) <= 2 for c in record["top_causes"])
    assert record["headline"] == "cart-cache (no metrics of its own — blamed from its caller cart)"
    json.dumps(record)  # summary.json


def test_kind_words():
    from bizra_nb.rca import Candidate
    from bizra_nb.summaries import kind_words

    edge = Candidate("payment", 7.0, "rate", None, kind="dependency_edge", edge=("checkout", "payment"),
                     callers=["checkout"])
    assert kind_words(edge) == "calls from checkout to payment slowed"
    assert kind_words(edge, lambda s: f"`{s}`") == "calls from `checkout` to `payment` slowed"
    blamed = Candidate("payment", 7.0, "lat_50", None, kind="code", callers=["checkout", "shipping"])
    assert "blamed from its callers checkout, shipping" in kind_words(blamed)
    assert kind_words(Candidate("cart", 7.0, "cpu", None)) == "its own metrics"


# -- the server ---------------------------------------------------------------------------------------------


def test_quick_diagnosis_returns_the_contract(rca_server, fleet, auth):
    _, http = rca_server
    start, end = fleet.data.metrics.index[0], fleet.data.metrics.index[-1]
    doc = http.post("/rca/diagnose", json={"start": start.isoformat(), "end": end.isoformat()}, headers=auth).json()
    assert doc["verdict"] == "root_cause" and doc["confidence"]["level"] in ("high", "medium", "low")
    assert "anomaly_start_confidence" in doc and doc["queries"]
    assert doc["ranking"][0]["service"] == "catalog-db" and doc["ranking"][0]["kind"] in KINDS


def test_an_incident_diagnosis_carries_verdict_confidence_and_kinds(rca_server, fleet, auth):
    import websocket

    from tests.conftest import wait_until

    running, http = rca_server
    ws = websocket.create_connection(running.ws_url, timeout=20)
    ws.send(json.dumps({"subscribe": ["incident", "rca"]}))
    opened = http.post("/rca/incidents", json={"title": "frontend slow", "service": "frontend", "diagnose": True,
                                               "anomaly_start": fleet.fault.start.timestamp()}, headers=auth)
    incident_id = opened.json()["id"]
    evidence = wait_until(lambda: (e := http.get(f"/rca/incidents/{incident_id}/evidence").json())["status"]
                          == "ready" and e, timeout=30)
    stored = evidence["diagnosis"]
    assert stored["verdict"] == "root_cause" and "confidence" in stored and stored["ranking"][0]["kind"] in KINDS
    assert http.get(f"/rca/incidents/{incident_id}").json()["diagnosis"]["verdict"] == "root_cause"
    seen = {}
    while not ("rca" in seen and seen.get("incident", {}).get("data", {}).get("action") == "diagnosed"):
        message = json.loads(ws.recv())
        if message["type"] == "rca" or message["data"].get("action") == "diagnosed":
            seen[message["type"]] = message
    ws.close()
    rca = seen["rca"]["data"]
    assert rca["verdict"] == "root_cause" and rca["confidence"] == stored["confidence"]
    assert rca["top_causes"][0]["service"] == "catalog-db"
    assert {"service", "score", "metric", "explanation", "kind"} <= set(rca["top_causes"][0])
    event = seen["incident"]["data"]
    assert event["top_cause"] == "catalog-db" and event["top_cause_kind"] == stored["ranking"][0]["kind"]
    assert event["verdict"] == "root_cause" and event["confidence"] == stored["confidence"]["level"]


def test_incident_events_name_no_cause_when_there_is_nothing_to_blame():
    from bizra_server.incident_flow import incident_event, top_causes

    quiet_doc = {"verdict": "nothing_to_blame", "confidence": {"level": "high"},
                 "ranking": [{"service": "frontend", "score": 2.0, "metric": "lat_99", "evidence": [],
                              "explanation": "", "kind": "resource"}]}
    assert top_causes(quiet_doc) == []
    event = incident_event({"id": 1, "diagnosis": quiet_doc}, "diagnosed")
    assert event["top_cause"] is None and event["verdict"] == "nothing_to_blame" and event["confidence"] == "high"
    old_doc = {"ranking": [{"service": "cart", "score": 9.0, "metric": "cpu", "explanation": "x",
                            "evidence": [{"metric": "cpu"}]}]}  # stored before verdicts existed
    assert incident_event({"id": 2, "diagnosis": old_doc}, "diagnosed")["top_cause"] == "cart"


# -- the explore notebook on the demo's month --------------------------------------------------------------


def test_explore_on_the_demo_month_blames_nothing_in_a_quiet_evening(tmp_path, monkeypatch):
    """The demo's last fault ends days before the data does: the last 6 hours (the evening dip) hold nothing."""
    import nbformat
    import papermill

    from bizra_nb.demo import generate_fleet
    from bizra_nb.runner import NOTEBOOKS_DIR, ensure_kernel

    truth = generate_fleet(tmp_path / "demo", "2026-10")
    frame_end = pd.Timestamp("2026-11-01T00:00Z")
    assert all(f.end < frame_end - pd.Timedelta("6h") for f in truth["faults"])  # none in the window
    monkeypatch.setenv("BIZRA_DATA_DIR", str(tmp_path))
    out = tmp_path / "explore.ipynb"
    papermill.execute_notebook(str(NOTEBOOKS_DIR / "explore.ipynb"), str(out), cwd=str(NOTEBOOKS_DIR),
                               kernel_name=ensure_kernel(), progress_bar=False)
    cell = nbformat.read(out, as_version=4).cells[-1]
    text = "".join(o.get("text", "") for o in cell.outputs) + "".join(
        o.get("data", {}).get("text/html", "") for o in cell.outputs)
    assert "verdict: nothing_to_blame" in text and "No candidate: nothing to blame" in text, text


# -- a hostile service name in the report, in Chromium ------------------------------------------------------


def hostile_report(tmp_path: Path, name: str = HOSTILE) -> Path:
    """A diagnosis report whose no_metrics root cause is a CMDB id carrying markup (bypassing the CMDB's checks,
    as a hand-built Cmdb can), exported as the runner exports reports."""
    import nbformat

    from bizra_nb import plots, summaries
    from bizra_nb.notebook import OfflineRenderer
    from bizra_nb.reports import export_html

    doc = demo_cmdb().to_dict()
    rename = {"cart-cache": name}
    items = {rename.get(i["id"], i["id"]): {**i, "id": rename.get(i["id"], i["id"])} for i in doc["items"]}
    relations = [{**r, "source": rename.get(r["source"], r["source"]), "target": rename.get(r["target"], r["target"])}
                 for r in doc["relations"]]
    frame, cmdb = unmonitored(cmdb=Cmdb(items, relations))
    diagnosis = rank_root_causes(frame, cmdb=cmdb)
    assert diagnosis.ranking[0].service == name and diagnosis.ranking[0].kind == "no_metrics"
    OfflineRenderer.sent_plotlyjs = False
    renderer = OfflineRenderer()
    outputs = [nbformat.v4.new_output("display_data", data={
                   "text/markdown": summaries.incident_summary(diagnosis, {"title": f"latency {name}"})}),
               nbformat.v4.new_output("display_data", data=renderer.to_mimebundle(
                   plots.ranking_bar(diagnosis).to_dict())),
               nbformat.v4.new_output("display_data", data={"text/html": summaries.ranking_table(diagnosis).to_html()}),
               nbformat.v4.new_output("display_data", data=renderer.to_mimebundle(
                   plots.candidate_series(frame, diagnosis).to_dict())),
               nbformat.v4.new_output("display_data", data=renderer.to_mimebundle(
                   plots.cmdb_graph(cmdb, anomalous={c.service for c in diagnosis.ranking if c.anomalous},
                                    path=diagnosis.ranking[0].path).to_dict()))]
    nb = nbformat.v4.new_notebook()
    for output in outputs:
        cell = nbformat.v4.new_code_cell("")
        cell.outputs = [output]
        nb.cells.append(cell)
    path = tmp_path / "report.html"
    path.write_text(export_html(nb, title="hostile"))
    return path


def test_a_hostile_name_of_a_dependency_without_metrics_is_text_in_chromium(browser, tmp_path):
    from tests.browser import Watched

    report = hostile_report(tmp_path)
    page = Watched(browser, report.as_uri(), viewport={"width": 1280, "height": 900})
    page.page.wait_for_selector(".main-svg")  # the report's own scripts (plotly) ran
    assert page.page.evaluate(NOT_RUN), (page.page.title(), page.page.evaluate("window.pwned"))
    assert page.page.query_selector_all("img[src='x'], img[onerror]") == []
    text = page.page.inner_text("body")
    assert f"Most likely root cause: {HOSTILE}" in text  # the summary, as text
    assert "no metrics of its own — blamed from its caller cart" in text  # the table's evidence column
    assert text.count(HOSTILE) >= 3, text.count(HOSTILE)  # summary, table row, explanation
    page.close()


def test_the_status_page_shows_the_suspected_cause_with_its_confidence(browser, rca_server, fleet, auth):
    from tests.browser import Watched

    running, http = rca_server
    page = Watched(browser, running.url + "/", viewport={"width": 1280, "height": 800})
    page.dot("green")
    incident_id = http.post("/rca/incidents", json={"title": "frontend slow", "service": "frontend", "diagnose": True,
                                                    "anomaly_start": fleet.fault.start.timestamp()},
                            headers=auth).json()["id"]
    level = page.page.wait_for_function(
        f"""() => {{ const li = document.querySelector("li[data-incident='{incident_id}']");
                   const m = li && li.textContent.match(/suspected cause catalog-db \\(confidence (\\w+)\\)/);
                   return m && m[1]; }}""", timeout=30000).json_value()
    assert level == http.get(f"/rca/incidents/{incident_id}").json()["diagnosis"]["confidence"]["level"]
    page.close()


def test_the_diagnosis_report_of_a_quiet_window_blames_nothing(files, tmp_path):
    """The real notebook, run as the platform runs it: the verdict first, no bars, summary.json says so."""
    from bizra_nb.runner import Runner
    from bizra_nb.store import Store

    runner = Runner(Store.open(tmp_path / "data"), reports_dir=tmp_path / "reports", workers=1, cell_timeout=120)
    try:
        run = runner.run("incident_diagnosis", {"source": files["quiet"], "cmdb": files["cmdb"],
                                                "start": START.isoformat(),
                                                "end": (START + pd.Timedelta("59min")).isoformat()})
    finally:
        runner.close()
    summary = run["summary"]
    assert summary["verdict"] == "nothing_to_blame" and summary["top_causes"] == []
    assert summary["headline"] == "nothing to blame" and summary["confidence"]["level"] == "high"
    html = (Path(run["folder"]) / "report.html").read_text()
    assert "Nothing to blame:" in html and "Most likely root cause" not in html
    assert html.index("Nothing to blame:") < html.index("Ranked root causes")
    assert "No candidate: nothing to blame" in html


def test_a_link_in_a_service_name_is_text_in_the_plots_not_a_link(browser, tmp_path):
    from tests.browser import Watched

    report = hostile_report(tmp_path, name=LINK)
    page = Watched(browser, report.as_uri(), viewport={"width": 1280, "height": 900})
    page.page.wait_for_selector(".main-svg")
    assert page.page.query_selector_all("a[href^='https://evil']") == []  # no link out: plots, table, text
    svg_text = page.page.evaluate("Array.from(document.querySelectorAll('.main-svg text')).map(t => t.textContent)"
                                  ".join(' ')")
    assert LINK in svg_text  # the bars' labels and the graph show the name as it is
    page.close()


def test_the_diagnosis_notebook_takes_a_history(files, tmp_path):
    """``history`` reaches the diagnosis: the half hour before the window is normal data (less than a day: no
    same-time-of-day comparison, and the warning says so); a bad value fails the run naming it."""
    from bizra_nb.runner import Runner
    from bizra_nb.store import Store

    runner = Runner(Store.open(tmp_path / "data"), reports_dir=tmp_path / "reports", workers=1, cell_timeout=120)
    window = {"source": files["quiet"], "cmdb": files["cmdb"], "start": (START + pd.Timedelta("30min")).isoformat(),
              "end": (START + pd.Timedelta("59min")).isoformat()}
    from bizra_nb.runner import RunFailed

    try:
        run = runner.run("incident_diagnosis", {**window, "history": "30min"})
        with pytest.raises(RunFailed, match="InvalidInput: history must be at most 14d"):
            runner.run("incident_diagnosis", {**window, "history": "15d"})
    finally:
        runner.close()
    assert any("(0 days 00:30:00) is used as normal data only" in w for w in run["summary"]["warnings"])


def test_a_bare_number_of_history_is_seconds():
    from bizra_nb.diagnose import history_span

    assert history_span("86400") == history_span(86400) == pd.Timedelta(days=1)
    assert history_span(" 1.5e3 ") == pd.Timedelta(seconds=1500) and history_span("2d") == pd.Timedelta(days=2)
