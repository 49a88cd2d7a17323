"""Latency of the on-call endpoints (issue 15): notes, timeline, postmortem, run comparison, report PDF, notification.

Usage: python benchmarks/oncall_latency.py [--repeat 20] [--heavy-repeat 5] [--events 500] [--run-timeout 120]

Starts ``bizra-nb serve`` in a temporary folder with a ``--notify-routes`` file that routes
``incident_opened`` to a generic webhook on a local receiver (a small ``http.server`` in a thread of
this script), without scheduled runs and without a diagnosis notebook per alert
(``--no-diagnose-with-notebook``: the alerts here only open incidents; the server's warnings that it cannot
diagnose them, having no metric source, are expected). Then:

1. starts two short real runs of the benchmark notebook through ``POST /runs`` (``duration`` 1 s, a small
   ``rate``; their target is the server itself, the server's default), and while they run, opens an
   incident and adds ``--events`` notes to it through ``POST /rca/incidents/{id}/notes`` (filling, not
   measured: printed for information); waits for both runs to succeed;
2. on that incident, ``--repeat`` times each: ``POST …/notes``, ``GET …/timeline`` (all its events),
   ``GET …/postmortem`` (HTML) and ``GET …/postmortem?format=markdown``;
3. ``GET /runs/compare?a=&b=`` on the two runs, ``--heavy-repeat`` times;
4. ``GET /reports/<folder>/report.pdf``: the first request of each run's report (Chromium prints it: two
   figures at most) and ``--repeat`` cached requests; skipped, with a note, when Chromium is missing;
5. notifications: ``--repeat`` times, POSTs a new firing Alertmanager group to ``/alerts/webhook`` (each opens
   an incident) and measures from the webhook's answer to the arrival of that incident's
   ``incident_opened`` body at the receiver (same process, same clock; negative when it came first).

Each figure is the median and the max (ms) of its requests, one after the other on one keep-alive
connection. Targets (the product's: an on-call page must feel instant), on the median unless said:
note and timeline <= 50 ms, postmortem (HTML and Markdown) <= 500 ms, compare <= 1 s, cached PDF <= 100 ms,
first PDF <= 10 s (max), notification delivered <= 2 s after the webhook answered (max).
Exit 0 when every target is met, 1 otherwise (2: the benchmark could not run).
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from bizra_nb import pdf
from bizra_nb.demo import start_server, stop_server

TOKEN = "bench-token"
POLL = 0.2  # seconds between two polls of a run
FINISHED = ("succeeded", "failed", "cancelled")
# name -> (target in ms, statistic the verdict is on)
TARGETS = {
    "POST notes": (50.0, "median"),
    "GET timeline": (50.0, "median"),
    "GET postmortem (HTML)": (500.0, "median"),
    "GET postmortem (Markdown)": (500.0, "median"),
    "GET runs/compare": (1000.0, "median"),
    "GET report.pdf, first": (10_000.0, "max"),
    "GET report.pdf, cached": (100.0, "median"),
    "notification delivered": (2000.0, "max"),
}


class Receiver:
    """A local webhook receiver: records each JSON body with the ``perf_counter`` of its arrival."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, dict]] = []
        self.lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                arrived = time.perf_counter()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = {}
                with receiver.lock:
                    receiver.arrivals.append((arrived, doc))
                    receiver.lock.notify_all()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def arrival(self, event: str, incident_id: int, timeout: float = 30.0) -> float:
        """When the ``event`` body of incident ``incident_id`` arrived (waits up to ``timeout`` s for it)."""
        def found() -> float | None:
            return next((t for t, doc in self.arrivals if doc.get("event") == event
                         and (doc.get("incident") or {}).get("id") == incident_id), None)

        with self.lock:
            if not self.lock.wait_for(lambda: found() is not None, timeout):
                raise RuntimeError(f"no {event} notification of incident {incident_id} within {timeout:g} s")
            return found()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def alert_group(n: int) -> dict:
    """A firing Alertmanager (version 4) group of one alert; ``n`` makes its group key and fingerprint new."""
    labels = {"alertname": "ApiErrors", "severity": "critical", "service": "api-gateway"}
    summary = {"summary": "API errors above their normal range"}
    return {
        "version": "4", "groupKey": f'{{}}:{{alertname="ApiErrors", bench="{n}"}}', "status": "firing",
        "receiver": "bizra", "groupLabels": {"alertname": "ApiErrors"}, "commonLabels": labels,
        "commonAnnotations": summary, "externalURL": "http://am:9093",
        "alerts": [{"status": "firing", "labels": labels, "annotations": summary,
                    "startsAt": "2026-11-30T12:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "fingerprint": f"oncall{n:04d}", "generatorURL": "http://prom:9090/graph"}],
    }


def timed(client: httpx.Client, method: str, url: str, *, expect: int = 200, **kwargs) -> tuple[float, httpx.Response]:
    """``(milliseconds, response)`` of one request; a status other than ``expect`` is an error."""
    began = time.perf_counter()
    response = client.request(method, url, **kwargs)
    elapsed = (time.perf_counter() - began) * 1000
    if response.status_code != expect:
        raise RuntimeError(f"{method} {url}: HTTP {response.status_code}: {response.text[:300]}")
    return elapsed, response


def wait_for_run(client: httpx.Client, run_id: str, timeout: float) -> dict:
    """The run once finished; an error when it did not succeed or did not finish within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        run = client.get(f"/runs/{run_id}").json()
        if run["status"] in FINISHED:
            if run["status"] != "succeeded":
                raise RuntimeError(f"run {run_id} {run['status']}: {run.get('error')}")
            return run
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run_id} is still {run['status']} after {timeout:g} s")
        time.sleep(POLL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--repeat", type=int, default=20,
                        help="requests of each light measurement and alerts for the notification (default 20)")
    parser.add_argument("--heavy-repeat", type=int, default=5, help="comparisons of the two runs (default 5)")
    parser.add_argument("--events", type=int, default=500, help="notes on the incident before measuring (default 500)")
    parser.add_argument("--rate", type=float, default=20.0,
                        help="requests per second of the two benchmark runs (default 20; their duration is 1 s)")
    parser.add_argument("--run-timeout", type=float, default=120.0,
                        help="seconds to wait for the two benchmark runs (default 120)")
    args = parser.parse_args()
    if min(args.repeat, args.heavy_repeat) < 1 or args.events < 0:
        parser.error("--repeat and --heavy-repeat must be at least 1, --events at least 0")

    work = Path(tempfile.mkdtemp(prefix="bizra-oncall-"))
    receiver = Receiver()
    routes = work / "routes.yaml"
    routes.write_text(f"channels:\n  hook: {{type: webhook, url: \"{receiver.url}\"}}\n"
                      "routes:\n  - {event: incident_opened, channel: hook}\n")
    (work / "data").mkdir()
    began = time.monotonic()
    proc = None
    figures: dict[str, list[float]] = {name: [] for name in TARGETS}
    notes: list[str] = []
    try:
        proc, base = start_server(work / "data", "--api-token", TOKEN, "--reports-dir", str(work / "reports"),
                                  "--notify-routes", str(routes), "--no-diagnose-with-notebook",
                                  "--audit-schedule", "", "--benchmark-schedule", "")
        with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            # 1. two real runs (in the background, on the server's run workers) while the incident fills
            parameters = {"duration": 1, "rate": args.rate, "concurrency": 4, "ws_clients": 0}
            run_ids = [timed(client, "POST", "/runs", expect=201,
                             json={"notebook": "benchmark", "parameters": parameters})[1].json()["id"]
                       for _ in range(2)]
            incident = timed(client, "POST", "/rca/incidents", expect=201,
                             json={"title": "on-call benchmark", "severity": "P2"})[1].json()
            path = f"/rca/incidents/{incident['id']}"
            fill = [timed(client, "POST", f"{path}/notes", expect=201, json={"text": f"note {n}: checked the pods"})[0]
                    for n in range(args.events)]
            if fill:
                print(f"filled incident {incident['id']} with {len(fill)} notes: "
                      f"median {statistics.median(fill):.1f} ms, "
                      f"max {max(fill):.1f} ms (while the two benchmark runs ran; not a target)", flush=True)
            runs = [wait_for_run(client, run_id, args.run_timeout - (time.monotonic() - began)) for run_id in run_ids]
            print(f"runs {run_ids[0]} and {run_ids[1]} succeeded after {time.monotonic() - began:.1f} s", flush=True)

            # 2. notes, timeline, postmortem on the incident
            for n in range(args.repeat):
                figures["POST notes"].append(timed(client, "POST", f"{path}/notes", expect=201,
                                                   json={"text": f"measured note {n}"})[0])
            events = 0
            for _ in range(args.repeat):
                elapsed, response = timed(client, "GET", f"{path}/timeline")
                figures["GET timeline"].append(elapsed)
                events = len(response.json()["events"])
            notes.append(f"the timeline had {events} events")
            for _ in range(args.repeat):
                elapsed, response = timed(client, "GET", f"{path}/postmortem")
                figures["GET postmortem (HTML)"].append(elapsed)
            notes.append(f"the HTML postmortem is {len(response.content) // 1024} KiB")
            for _ in range(args.repeat):
                elapsed, response = timed(client, "GET", f"{path}/postmortem", params={"format": "markdown"})
                figures["GET postmortem (Markdown)"].append(elapsed)
            notes.append(f"the Markdown postmortem is {len(response.content) // 1024} KiB")

            # 3. the two runs compared
            for _ in range(args.heavy_repeat):
                elapsed, response = timed(client, "GET", "/runs/compare", params={"a": run_ids[0], "b": run_ids[1]})
                figures["GET runs/compare"].append(elapsed)
            notes.append(f"the comparison is {len(response.content) // 1024} KiB")

            # 4. each run's report as PDF: printed at the first request, then served from its cache
            pdfs = [run["links"]["pdf"] for run in runs]
            if pdf.chromium_path() is None:
                notes.append(f"report.pdf skipped: no Chromium ({pdf.INSTALL_HINT})")
                del figures["GET report.pdf, first"], figures["GET report.pdf, cached"]
            else:
                for url in pdfs:
                    elapsed, response = timed(client, "GET", url)
                    if not response.content.startswith(b"%PDF-"):
                        raise RuntimeError(f"{url} is not a PDF")
                    figures["GET report.pdf, first"].append(elapsed)
                notes.append(f"the first PDF is {len(response.content) // 1024} KiB")
                for n in range(args.repeat):
                    figures["GET report.pdf, cached"].append(timed(client, "GET", pdfs[n % len(pdfs)])[0])

            # 5. an alert opens an incident: its notification reaches the receiver
            for n in range(args.repeat):
                response = client.post("/alerts/webhook", json=alert_group(n))
                answered = time.perf_counter()
                response.raise_for_status()
                body = response.json()
                if body.get("action") != "opened":
                    raise RuntimeError(f"alert {n} did not open an incident: {body}")
                arrived = receiver.arrival("incident_opened", body["incident_id"])
                figures["notification delivered"].append((arrived - answered) * 1000)
    except (RuntimeError, httpx.HTTPError, KeyError) as exc:
        print(f"error: {exc!r}", file=sys.stderr)
        return 2
    finally:
        if proc is not None:
            stop_server(proc)
        receiver.close()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{'measurement':<28}{'n':>4}{'median ms':>12}{'max ms':>12}   target")
    ok = True
    for name, values in figures.items():
        limit, on = TARGETS[name]
        value = statistics.median(values) if on == "median" else max(values)
        met = value <= limit
        ok &= met
        print(f"{name:<28}{len(values):>4}{statistics.median(values):>12.1f}{max(values):>12.1f}   "
              f"{on} <= {limit:g} ms {'PASS' if met else 'FAIL'}")
    for note in notes:
        print(f"note: {note}")
    print(f"total {time.monotonic() - began:.0f} s; {'all targets met' if ok else 'some targets missed'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
