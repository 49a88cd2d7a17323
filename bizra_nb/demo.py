"""`bizra-nb demo`: the main job on the embedded defaults, everything in one folder.

Generates the demo fleet (CMDB, a month of metrics with incidents, the platform's
own metrics), records the month's incidents, starts a server on that store (its
status page URL is printed at once), then runs the three report notebooks: the
incident diagnosis of the last incident, a benchmark against that server, and the
monthly audit. Nothing else needs to run.

Everything the demo writes goes under one folder (``--out``; default ``demo`` in
the data dir, i.e. ``data/demo``)::

    metrics.parquet, platform.parquet, cmdb.yaml, truth.json   the generated fleet
    bizra.sqlite3, api_token                                   the store the server uses
    reports/<kind>/<date>-<id>/, reports/index.html            the reports
    .bizra-demo                                                marks the folder as the demo's

A second run replaces what the first wrote there and nothing else; a folder that
holds anything else and is not a demo folder is refused.
"""
from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd

from bizra_nb.errors import InvalidInput

MARKER = ".bizra-demo"
FLEET_FILES = ("metrics.parquet", "platform.parquet", "cmdb.yaml", "truth.json")
# What a demo run leaves in its folder: the fleet, the store and what its server writes, the reports.
OWN_ENTRIES = (MARKER, *FLEET_FILES, "bizra.sqlite3", "bizra.sqlite3-wal", "bizra.sqlite3-shm",
               "bizra.sqlite3-journal", "api_token", "cmdb.snapshot.yaml", ".write-probe", "reports")
DEFAULT_PORT = 8080


class Stopped(KeyboardInterrupt):
    """The demo was asked to stop by a signal (SIGTERM, SIGHUP)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def default_folder() -> Path:
    """``demo`` in the data dir: ``data/demo`` of the project (``$BIZRA_DATA_DIR/demo`` when that is set)."""
    from bizra_nb.paths import data_dir

    return data_dir() / "demo"


def start_server(data_dir: Path, *extra: str, port: int = 0,
                 on_start: Callable[[subprocess.Popen], None] | None = None) -> tuple[subprocess.Popen, str]:
    """Start ``bizra-nb serve`` on ``port`` (0: a free one); returns the process and its base URL.

    The WebSocket is on that port too (and on a free extra port). ``on_start`` gets the
    process as soon as it exists; when anything (a signal included) interrupts the start,
    the process is stopped again.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "bizra_nb.cli", "serve", "--port", str(port), "--ws-port", "0",
         "--data-dir", str(data_dir), "--log-level", "warning", *extra],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        if on_start is not None:
            on_start(proc)
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            found = re.search(r"serving (http://[\d.]+:\d+)/health", line)
            if found:
                threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
                return proc, found.group(1)
            if time.monotonic() > deadline:
                break
    except BaseException:
        stop_server(proc)
        raise
    stop_server(proc)
    raise RuntimeError("the server did not start (see its output above)")


def _drain(stream) -> None:
    """Read a child's remaining output so that it never blocks on a full pipe."""
    for _ in stream:
        pass


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM the server (it shuts down gracefully) and wait for it; SIGKILL after 20 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def prepare_folder(folder: Path) -> None:
    """Make ``folder`` an empty demo folder, removing only what an earlier demo wrote there.

    Raises
    ------
    InvalidInput
        When ``folder`` holds something else and is not a demo folder (nothing is removed).
    """
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"--out {folder} is a file, not a folder", field="out")
    entries = {entry.name for entry in folder.iterdir()} if folder.exists() else set()
    # A demo folder: marked, or (written by an older version) nothing in it but the demo's files.
    ours = MARKER in entries or ("truth.json" in entries and entries <= set(OWN_ENTRIES))
    if entries and not ours:
        raise InvalidInput(f"--out {folder} is not empty and is not a demo folder; give an empty or new folder "
                           f"(the demo writes its data, store and reports there)", field="out")
    for name in OWN_ENTRIES:
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("written by `bizra-nb demo`; a new demo run replaces this folder's demo files\n",
                                 encoding="utf-8")


def check_options(*, month: str | None, port: int) -> None:
    """Refuse a malformed ``--month`` or ``--port`` at once, naming the flag and what it accepts.

    Raises
    ------
    InvalidInput
        For a month that is not YYYY-MM or a port outside 0..65535.
    """
    from bizra_nb.audit import month_bounds

    if month is not None:
        try:
            month_bounds(month)
        except InvalidInput:
            raise InvalidInput(f"--month must be YYYY-MM (e.g. 2026-10), got {month!r}", field="month") from None
    if not 0 <= port <= 65535:
        raise InvalidInput(f"--port must be a port number 0..65535 (0: a free one), got {port}", field="port")


def free_port(host: str, port: int) -> bool:
    """Whether ``port`` can be listened on at ``host`` (as the server binds: SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@contextmanager
def stopped_by_signals(signums: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP)) -> Iterator[None]:
    """Turn ``signums`` into :class:`Stopped` in the main thread, so that ``finally`` blocks stop the children.

    A closed terminal (SIGHUP) or ``kill`` (SIGTERM) then stops the demo's server and its notebook
    run instead of leaving them running. Every handler (SIGINT's too) is restored on the way out.
    Outside the main thread, nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        raise Stopped(signum)

    previous = {signum: signal.getsignal(signum) for signum in (*signums, signal.SIGINT)}
    for signum in signums:
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)


def generate_fleet(data_dir: Path, month: str, *, seed: int = 7) -> dict:
    """Write the demo month: metrics.parquet, platform.parquet, cmdb.yaml, truth.json; returns the truth."""
    from bizra_nb.dataset import write_dataset
    from bizra_nb.fleet import Fault, demo_cmdb, generate, platform_month

    start = pd.Timestamp(month + "-01", tz="UTC")
    days = (start + pd.offsets.MonthBegin(1) - start).days
    faults = [
        Fault("payments-db", "latency", start + pd.Timedelta(days=4, hours=14, minutes=20), magnitude=1.2),
        Fault("catalog-db", "cpu_hog", start + pd.Timedelta(days=11, hours=9, minutes=5), magnitude=1.1),
        # the last fault is the demo's open, headline incident: one that propagates up to the alerting
        # api-gateway (cart-cache → cart → checkout → api-gateway), so its report draws the path
        Fault("cart-cache", "error_burst", start + pd.Timedelta(days=days - 5, hours=16, minutes=40), magnitude=1.0),
    ]
    for i, fault in enumerate(faults):  # each fault lasts 35 minutes
        faults[i] = Fault(fault.service, fault.kind, fault.start, fault.start + pd.Timedelta(minutes=35),
                          fault.magnitude)
    data = generate(start=start, duration=pd.Timedelta(days=days), step="1min", faults=faults, seed=seed,
                    cmdb=demo_cmdb())
    write_dataset(data.metrics, data_dir / "metrics.parquet")
    write_dataset(platform_month(month, seed=seed, faults=faults), data_dir / "platform.parquet")
    (data_dir / "cmdb.yaml").write_text(data.cmdb.dumps("yaml"), encoding="utf-8")
    truth = [f.as_dict() for f in faults]
    (data_dir / "truth.json").write_text(json.dumps(truth, indent=2), encoding="utf-8")
    return {"faults": faults, "cmdb": data.cmdb}


#: what each demo fault looks like from the alerting service: a fleet alert on its symptom
#: (never the platform's own AhsanScoreBelowThreshold, which is about the API's score)
FAULT_ALERTS = {"latency": "HighLatency", "cpu_hog": "HighLatency", "error_burst": "HighErrorRate"}
SYMPTOMS = {"HighLatency": "p99 latency above its normal range",
            "HighErrorRate": "error rate above its normal range"}


def demo_alert_labels(kind: str, level: str, service: str = "api-gateway") -> dict[str, str]:
    """The Alertmanager labels of a demo incident: a fleet symptom alert on the alerting service."""
    return {"alertname": FAULT_ALERTS.get(kind, "HighErrorRate"), "service": service,
            "severity": "critical" if level in ("P0", "P1") else "warning", "priority": level}


def record_history(store, faults, cmdb) -> list[dict]:
    """The month's incidents as on-call handled them: opened at the alert, acknowledged, resolved."""
    store.save_cmdb(cmdb.to_dict())
    incidents = []
    acks = (6, 14, 3)
    fixes = (48, 95, 31)
    levels = ("P1", "P2", "P1")
    for n, (fault, ack, fix, level) in enumerate(zip(faults, acks, fixes, levels)):
        opened = (fault.start + pd.Timedelta(minutes=2)).timestamp()
        last = n == len(faults) - 1  # the last one is still being worked on: the status page shows it open
        labels = demo_alert_labels(fault.kind, level)
        incident = store.create_incident(
            title=f"{labels['alertname']} on {labels['service']}",
            severity=level, service=labels["service"], source="alertmanager", group_key=f"demo-{fault.service}",
            opened_at=opened, acknowledged_at=opened + ack * 60, resolved_at=None if last else opened + fix * 60,
            status="acknowledged" if last else "resolved", anomaly_start=fault.start.timestamp(),
            symptom_service=labels["service"], labels=labels,
            # no runbook_url: the demo has no hosted runbook, and a made-up link is worse than none
            annotations={"summary": SYMPTOMS[labels["alertname"]] + " on " + labels["service"]},
        )
        incidents.append(incident)
    return incidents


def run_demo(*, out: str | Path | None = None, serve: bool = False, month: str | None = None,
             port: int = DEFAULT_PORT) -> int:
    """Run the demo into ``out`` (default :func:`default_folder`); returns the exit code.

    Parameters
    ----------
    out
        The one folder the demo writes to: fleet, store, reports (see the module docstring).
    serve
        Keep serving the status page after the reports, until Ctrl-C, SIGTERM or SIGHUP.
    month
        The month generated and audited, YYYY-MM (default: the previous month).
    port
        The status page's port; a free one when it is taken (0: always a free one).

    Returns
    -------
    int
        0 when done (with ``serve``: when stopped after the reports), 128 + the signal's
        number when a signal stopped it before, 1 when its server ended by itself.

    Raises
    ------
    InvalidInput
        When ``out`` is not empty and not a demo folder.
    """
    began = time.monotonic()
    check_options(month=month, port=port)  # before anything is generated
    folder = Path(out).expanduser() if out else default_folder()
    month = month or (datetime.now(timezone.utc).replace(day=1) - pd.Timedelta(days=1)).strftime("%Y-%m")
    prepare_folder(folder)
    demo = Demo(folder.resolve(), month, port=port, serve=serve)
    with stopped_by_signals():
        try:
            demo.run()
            say(f"done in {time.monotonic() - began:.0f} s. Everything is in {demo.folder}. Reports:")
            for name, path in demo.reports.items():
                print(f"  {name:<10} {path}", flush=True)
            if not serve:
                return 0
            say(f"serving the status page {demo.base}/ until Ctrl-C (or SIGTERM, or the terminal closing)")
            code = demo.server.wait()
            say(f"the server ended by itself (exit code {code})")
            return 1
        except KeyboardInterrupt as stop:  # Ctrl-C, or Stopped: SIGTERM, SIGHUP
            signum = getattr(stop, "signum", signal.SIGINT)
            if demo.finished:
                say("stopping the server")
                return 0
            say(f"stopped by {signal.Signals(signum).name}; stopping the server and the running notebook")
            return 128 + signum
        finally:
            demo.stop()


class Demo:
    """The demo's steps; :attr:`server` is its running server process (stop it with :meth:`stop`)."""

    def __init__(self, folder: Path, month: str, *, port: int, serve: bool) -> None:
        self.folder = folder
        self.month = month
        self.port = port
        self.serve = serve
        self.server: subprocess.Popen | None = None
        self.base = ""
        self.reports: dict[str, Path] = {}
        self.finished = False

    def run(self) -> None:
        """Fleet, server, diagnosis, benchmark, audit, index; each report's path is printed once written."""
        from bizra_nb.runner import Runner
        from bizra_nb.store import Store

        folder, month = self.folder, self.month
        reports_dir = folder / "reports"
        say(f"1/5 generating the demo fleet for {month} into {folder} "
            f"(15 services, a month at 1-minute resolution, 3 faults) ...")
        fleet = generate_fleet(folder, month)
        store = Store.open(folder)
        incidents = record_history(store, fleet["faults"], fleet["cmdb"])
        say(f"      metrics.parquet, platform.parquet, cmdb.yaml, truth.json; {len(incidents)} incidents recorded")

        say("2/5 starting the server on the demo's store ...")
        self.start_server(reports_dir)
        token = (folder / "api_token").read_text().strip()
        until = "until you stop the demo" if self.serve else "while the demo runs"
        say(f"      status page: {self.base}/  ({until}; API token for its actions: {token})")

        def progress(run: dict) -> None:
            p = run.get("progress") or {}
            if run["status"] == "running" and p:
                end = "\n" if p["cell"] == p["cells"] else "\r"
                print(f"      cell {p['cell']}/{p['cells']}", end=end, flush=True)

        runner = Runner(store, reports_dir=reports_dir, workers=1, on_event=progress)
        last = incidents[-1]
        say(f"3/5 diagnosing incident {last['id']} ({last['title']}) with incident_diagnosis.ipynb ...")
        run = runner.run("incident_diagnosis", {
            "incident_id": last["id"], "incident": last, "source": str(folder / "metrics.parquet"),
            "cmdb": str(folder / "cmdb.yaml"), "symptom_service": "api-gateway"},
            trigger="demo", incident_id=last["id"])
        store.update_incident(last["id"], report_url=_link(run, reports_dir), report_run=run["id"],
                              diagnosis=_quick_diagnosis(last, fleet["cmdb"], folder / "metrics.parquet"))
        self._written("diagnosis", run, f"top cause: {run['summary'].get('headline')}; "
                                        f"the injected fault was at {fleet['faults'][-1].service}")
        say("4/5 benchmarking the server with benchmark.ipynb ...")
        run = runner.run("benchmark", {"target_url": self.base, "duration": 5.0, "rate": 1200.0,
                                       "concurrency": 32, "ws_clients": 5}, trigger="demo")
        self._written("benchmark", run, run["summary"].get("headline"))
        say(f"5/5 auditing {month} with compliance_audit.ipynb ...")
        run = runner.run("compliance_audit", {"month": month, "source": str(folder / "platform.parquet"),
                                              "data_dir": str(folder)}, trigger="demo")
        self._written("audit", run, run["summary"].get("headline"))
        self.reports["index"] = runner.write_index()
        self.finished = True

    def start_server(self, reports_dir: Path) -> None:
        port = self.port
        if port and not free_port("127.0.0.1", port):
            say(f"      port {port} is taken: the server listens on a free port instead")
            port = 0
        self.server, self.base = start_server(
            self.folder, "--dataset", str(self.folder / "metrics.parquet"), "--reports-dir", str(reports_dir),
            "--audit-source", str(self.folder / "platform.parquet"), port=port, on_start=self._started)

    def _started(self, proc: subprocess.Popen) -> None:
        self.server = proc  # known at once: a signal during the start stops it too

    def _written(self, name: str, run: dict, headline: str | None) -> None:
        path = Path(run["folder"]) / "report.html"
        self.reports[name] = path
        say(f"      {headline}")
        say(f"      report: {path}")

    def stop(self) -> None:
        """Stop the server (gracefully, waiting for it); further SIGTERM/SIGHUP/SIGINT cannot cut this short."""
        if self.server is None:
            return
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                signal.signal(signum, signal.SIG_IGN)
        stop_server(self.server)


def _quick_diagnosis(incident: dict, cmdb, metrics: Path) -> dict:
    """The incident's evidence, as the server stores it for an incident it diagnoses."""
    from bizra_nb.diagnose import diagnose, incident_window
    from bizra_nb.sources import open_source

    start, end = incident_window(incident)
    diagnosis, fetched = diagnose(open_source(metrics), start=start, end=end, cmdb=cmdb)
    return {**diagnosis.as_dict(), "queries": fetched.queries}


def _link(run: dict, reports_dir: Path) -> str:
    folder = Path(run["folder"]).resolve()
    return "/reports/" + str(folder.relative_to(Path(reports_dir).resolve()) / "report.html")
