"""The `bizra-nb` command: serve, diagnose, fleet, run, audit, bench, prometheus-load, store, demo, compare, report, slo."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Sequence

from bizra_nb import __version__
from bizra_nb.errors import BizraError
from bizra_nb.settings import env_name, load_settings, setting_fields

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse with errors on one line: ``bizra-nb diagnose: error: …`` and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    for f in setting_fields():
        default = f.default
        shown = ",".join(default) if isinstance(default, tuple) else default
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        kwargs = {"dest": f.name, "default": None,
                  "help": f"{f.metadata['help']} (default: {shown!s}; env {env_name(f.name)})"}
        if kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = f.name.upper()
        parser.add_argument("--" + f.name.replace("_", "-"), **kwargs)


def _settings_from(args: argparse.Namespace):
    names = [f.name for f in setting_fields()]
    return load_settings({name: getattr(args, name) for name in names if getattr(args, name, None) is not None})


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request's full URL at INFO ("HTTP Request: POST https://hooks.slack.com/services/..."):
    # a Slack webhook's path, a token in a query, an Alertmanager URL's user:password are secrets. Quiet them.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.root.level))


def page_url(host: str, port: int) -> str:
    """The status page's URL for a browser on this machine (a wildcard address is shown as 127.0.0.1)."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def cmd_serve(args: argparse.Namespace) -> int:
    from bizra_server.app import serve
    from bizra_server.processes import check_processes, serve_processes

    settings = _settings_from(args)
    check_processes(settings)
    _configure_logging(settings.log_level)

    def announce(info: dict) -> None:
        ports = info["ports"]
        print(f"bizra-nb {__version__} serving http://{settings.host}:{ports['http']}/health", flush=True)
        print(f"status page: {page_url(settings.host, ports['http'])}", flush=True)
        if "ws" in ports:
            print(f"live updates on ws://{settings.host}:{ports['ws']}/ws/live-updates "
                  f"and ws://{settings.host}:{ports['http']}/ws/live-updates", flush=True)
        if info.get("processes", 1) > 1:
            print(f"{info['processes']} processes (replicas {info['replica']}/0..{info['processes'] - 1}), "
                  f"pids {' '.join(map(str, info['pids']))}", flush=True)
        if info["token_generated"]:
            print(f"API token (generated, kept in {settings.data_dir / 'api_token'}):\n"
                  f"    Authorization: Bearer {info['token']}", flush=True)

    if settings.processes > 1:
        return serve_processes(settings, ready=announce)
    asyncio.run(serve(settings, ready=announce))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bizra_nb.demo import run_demo

    return run_demo(out=args.out, serve=args.serve, month=args.month, port=args.port)


def _runner(settings):
    from bizra_nb.runner import Runner, executor_for
    from bizra_nb.store import Store

    def show(run: dict) -> None:
        progress = run.get("progress") or {}
        if run["status"] == "running" and progress:
            print(f"  cell {progress['cell']}/{progress['cells']}", end="\r", file=sys.stderr, flush=True)
        elif run["status"] in ("succeeded", "failed", "cancelled"):
            print(f"  {run['status']}" + " " * 20, file=sys.stderr, flush=True)

    return Runner(Store.from_url(settings.store_url, data_dir=settings.data_dir), reports_dir=settings.reports_dir,
                  executor=executor_for(settings.dask_scheduler, 1), data_dir=settings.data_dir,
                  cell_timeout=settings.cell_timeout, run_timeout=settings.run_timeout,
                  on_event=show)


def _print_run(run: dict) -> int:
    from pathlib import Path

    folder = Path(run["folder"])
    print(f"run {run['id']}: {run['status']}")
    for name in ("report.html", "run.ipynb", "summary.json"):
        print(f"  {folder / name}")
    if run.get("error"):
        print(f"error: {run['error']}", file=sys.stderr)
    return 0 if run["status"] == "succeeded" else 1


def cmd_run(args: argparse.Namespace) -> int:
    from bizra_nb.runner import coerce_cli_value, declared_parameters, resolve_notebook

    settings = load_settings({"data_dir": args.data_dir, "reports_dir": args.reports_dir})
    path = resolve_notebook(args.notebook)
    declared = declared_parameters(path)
    parameters = {}
    for name, raw in args.parameter or []:
        expected = declared.get(name, {}).get("inferred_type_name", "str")
        parameters[name] = coerce_cli_value(raw, expected)
    runner = _runner(settings)
    run = runner.create(path, parameters, trigger="cli")  # validates before anything runs
    print(f"running {path.name} as run {run['id']} ...", file=sys.stderr, flush=True)
    return _print_run(runner.execute(run["id"]))


NO_AUDIT_SOURCE = ("no platform metrics to audit: set --audit-source (a dataset file or a Prometheus URL) or "
                   "--prometheus-url, or BIZRA_AUDIT_SOURCE or BIZRA_PROMETHEUS_URL")


def cmd_audit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bizra_nb.audit import month_bounds
    from bizra_nb.errors import InvalidSetting

    month_bounds(args.month)  # a clear error before anything runs
    settings = load_settings({"data_dir": args.data_dir, "reports_dir": args.reports_dir,
                              "audit_source": args.audit_source, "prometheus_url": args.prometheus_url,
                              "slo_spec": args.slo_spec})
    source = settings.audit_source or settings.prometheus_url  # as the server's scheduled audit
    if not source:
        raise InvalidSetting(NO_AUDIT_SOURCE, field="audit_source")
    if "://" not in source and Path(source).expanduser().exists():
        source = str(Path(source).expanduser().resolve())  # a file named in the shell: from this directory
    store = Path(settings.data_dir) / "bizra.sqlite3"
    if not settings.store_url and not store.is_file():
        raise InvalidSetting(f"no store in the data dir {settings.data_dir} ({store.name} is missing): set "
                             f"--data-dir or BIZRA_DATA_DIR to the server's data dir", field="data_dir")
    parameters = {"month": args.month, "source": source, "data_dir": str(Path(settings.data_dir).resolve())}
    if settings.slo_spec:  # a file named in the shell: from this directory; SpecError names slo_spec
        spec = Path(settings.slo_spec).expanduser()
        parameters["slo_spec"] = str(spec.resolve()) if spec.exists() else settings.slo_spec
    runner = _runner(settings)
    run = runner.create("compliance_audit", parameters, trigger="cli")
    print(f"auditing {args.month} as run {run['id']} ...", file=sys.stderr, flush=True)
    return _print_run(runner.execute(run["id"]))


EXIT_MISSED = 1  # bench: a target was missed (and run: the run failed)


def _targets(specs: list[str] | None) -> dict[str, float]:
    from bizra_nb.errors import InvalidInput
    from bizra_nb.loadgen import RUNBOOK_TARGETS

    targets: dict[str, float] = {}
    for spec in specs or []:
        name, _, value = spec.partition("=")
        try:
            if name not in RUNBOOK_TARGETS:
                raise ValueError
            targets[name] = float(value)
        except ValueError:
            raise InvalidInput(f"--target {spec!r}: expected NAME=NUMBER with NAME one of "
                               f"{', '.join(RUNBOOK_TARGETS)}", field="target") from None
    return targets


def cmd_bench(args: argparse.Namespace) -> int:
    """Exit 0 when every target is met, 1 when one is missed, 2 for a usage error or an unreachable server."""
    import asyncio
    import json

    from bizra_nb.loadgen import bench, check_reachable, default_rate

    targets = _targets(args.target)
    rate = args.rate if args.rate is not None else default_rate(targets)
    endpoints = args.endpoint or ["/health"]
    asyncio.run(check_reachable(args.url, path=endpoints[0]))  # a wrong URL, a closed port: one line, exit 2
    print(f"offering {rate:g} req/s for {args.duration:g} s to {args.url} ...", file=sys.stderr, flush=True)

    def progress(p: dict) -> None:
        print(f"  {p['elapsed_s']:5.1f} s  {p['sent']:>7} sent  {p['answered']:>7} answered  {p['errors']:>5} errors",
              file=sys.stderr, flush=True)

    result = bench(args.url, endpoints=endpoints, duration=args.duration, rate=rate, concurrency=args.concurrency,
                   ws_clients=args.ws_clients, progress=progress, check=False)
    passed = bool((result.verdicts(targets)["pass"] == True).all())  # noqa: E712 - None (not measured) is no pass
    if args.format == "json":
        print(json.dumps({**result.stats(), "targets": targets, "passed": passed,
                          "verdict": result.verdict(targets)}))
    else:
        print(result.table(targets))
        print(f"verdict: {result.verdict(targets)}")
    return 0 if passed else EXIT_MISSED


def cmd_diagnose(args: argparse.Namespace) -> int:
    import json

    from bizra_nb.cmdb import Cmdb
    from bizra_nb.diagnose import diagnose, history_span
    from bizra_nb.errors import InvalidInput
    from bizra_nb.sources import open_source

    if bool(args.data) == bool(args.prometheus):
        raise InvalidInput("give exactly one of --data PATH or --prometheus URL", field="data")
    if args.prometheus and (args.start is None or args.end is None):
        raise InvalidInput("--prometheus needs --start and --end", field="start")
    try:
        history = history_span(args.history)
    except InvalidInput as exc:
        if "at most" in str(exc):
            raise InvalidInput(f"--{exc}", field="history") from None
        raise InvalidInput(f"--history must be a positive length such as 12h, 2d or 90min, got {args.history!r}",
                           field="history") from None
    if history is not None and args.start is None:
        raise InvalidInput("--history needs --start: the history is the data before the window's --start",
                           field="history")
    cmdb = Cmdb.load(args.cmdb) if args.cmdb else None
    services = [s.strip() for s in args.services.split(",") if s.strip()] if args.services else None
    if args.data:
        source = open_source(args.data)
    else:
        source = open_source(args.prometheus, token=args.token, tenant=args.tenant, timeout=args.timeout, cmdb=cmdb)
    diagnosis, fetched = diagnose(source, start=args.start, end=args.end, anomaly_start=args.anomaly_start,
                                  services=services, cmdb=cmdb, history=history)
    if args.format == "json":
        print(json.dumps(diagnosis.as_dict(), ensure_ascii=False))
        return 0
    import pandas as pd

    from bizra_nb.summaries import causes, confidence_lines, kind_words

    detected = ""
    if diagnosis.anomaly_start_detected:
        sure = diagnosis.start_confidence
        detected = " (detected" + (f", confidence {sure:.2f})" if sure is not None else ")")
    print(f"anomaly start: {diagnosis.anomaly_start.isoformat()}{detected}; end: {diagnosis.end.isoformat()}")
    shown = causes(diagnosis)
    confidence, helps = confidence_lines(diagnosis, reason=diagnosis.verdict != "nothing_to_blame")
    if diagnosis.verdict == "nothing_to_blame":
        print(f"verdict: nothing to blame: {diagnosis.confidence.get('reason') or 'no service changed'}")
    elif shown:
        print(f"verdict: root cause {shown[0].service} ({kind_words(shown[0])})")
    else:
        print("verdict: no candidate")
    print(f"confidence: {confidence}")
    if helps:
        print(f"what would help: {helps}")
    if diagnosis.verdict == "nothing_to_blame":
        print("the services by deviation, none of them a cause:")
    with pd.option_context("display.max_colwidth", 120, "display.width", 200):
        table = diagnosis.table(args.top)
        print(table.reset_index().to_string(index=False, justify="left"))
    for warning in diagnosis.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _span(text: str, flag: str):
    """A positive length such as ``15s``, ``2h`` or ``30d`` as a Timedelta; else one clear error naming ``flag``."""
    import pandas as pd

    from bizra_nb.errors import InvalidInput

    try:
        span = pd.Timedelta(text)
    except (ValueError, TypeError):
        span = None
    if span is None or pd.isna(span) or span <= pd.Timedelta(0):
        raise InvalidInput(f"{flag} must be a positive length such as 15s, 1min, 2h or 30d, got {text!r}",
                           field=flag.lstrip("-"))
    return span


def cmd_fleet(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import pandas as pd

    from bizra_nb.dataset import write_dataset
    from bizra_nb.errors import InvalidInput
    from bizra_nb.fleet import FAULT_KINDS, Fault, demo_cmdb, generate

    from bizra_nb.times import parse_time

    start = pd.Timestamp(parse_time(args.start, name="--start"), unit="s", tz="UTC")
    step = _span(args.step, "--step")
    duration = _span(args.duration, "--duration")
    if duration < step:
        raise InvalidInput(f"--duration {args.duration!r} is shorter than one --step ({args.step}): "
                           f"nothing to generate", field="duration")
    cmdb = demo_cmdb()
    faults = []
    for spec in args.fault or []:
        service, _, rest = spec.partition(":")
        kind, _, at = rest.partition("@")
        if service not in cmdb.items or kind not in FAULT_KINDS:
            raise InvalidInput(f"--fault {spec!r}: expected SERVICE:KIND[@TIME] with a service of "
                               f"{', '.join(cmdb.items)} and KIND one of {', '.join(FAULT_KINDS)}", field="fault")
        when = (pd.Timestamp(parse_time(at, name=f"--fault {spec!r}: TIME"), unit="s", tz="UTC") if at
                else start + duration * 0.7)
        faults.append(Fault(service=service, kind=kind, start=when.floor(step)))
    data = generate(start=start, duration=duration, step=step, faults=faults, seed=args.seed)
    out = Path(args.out)
    metrics = write_dataset(data.metrics, out / f"metrics.{args.format}", layout=args.layout)
    (out / "cmdb.yaml").write_text(data.cmdb.dumps("yaml"), encoding="utf-8")
    (out / "truth.json").write_text(json.dumps([f.as_dict() for f in data.faults], indent=2), encoding="utf-8")
    print(f"{metrics} ({data.metrics.shape[0]} rows x {data.metrics.shape[1]} series)")
    print(out / "cmdb.yaml")
    print(out / "truth.json")
    return 0


def cmd_prometheus_load(args: argparse.Namespace) -> int:
    import time

    from bizra_nb.audit import month_bounds
    from bizra_nb.fleet import demo_cmdb, generate, platform_month
    from bizra_nb.openmetrics import create_blocks

    start, end = month_bounds(args.month)
    began = time.monotonic()
    platform = platform_month(args.month, seed=args.seed)
    fleet = None if args.platform_only else generate(start=start, duration=end - start, step=args.step,
                                                     seed=args.seed, cmdb=demo_cmdb()).metrics
    out = create_blocks(fleet, args.out, platform=platform)
    print(f"{out}: {args.month} loaded in {time.monotonic() - began:.1f} s; start Prometheus with "
          f"--storage.tsdb.path={out} --storage.tsdb.retention.time=10y")
    return 0


def _run_document(spec: str, settings) -> dict:
    """RUN as the commands take it: a path that exists (a run folder, or its summary.json) is read from there;
    anything else is a run id of the store (``--data-dir``, ``BIZRA_DATA_DIR`` or ``BIZRA_STORE_URL``)."""
    from pathlib import Path

    from bizra_nb.compare import read_document, run_document
    from bizra_nb.errors import NotFound, excerpt
    from bizra_nb.store import Store

    if Path(spec).expanduser().exists():
        return {**read_document(Path(spec).expanduser()), "folder": str(Path(spec).expanduser().resolve())}
    if not settings.store_url and not (Path(settings.data_dir) / "bizra.sqlite3").is_file():
        raise NotFound(f"no run {excerpt(spec)}: it is no folder, and {settings.data_dir} has no store to look it "
                       "up in (--data-dir, BIZRA_DATA_DIR or BIZRA_STORE_URL)", field="run")  # nothing created
    store = Store.from_url(settings.store_url, data_dir=settings.data_dir)
    try:
        run = store.get_run(spec)  # NotFound: "no run 'x'"
    finally:
        store.close()
    return {**run_document(run), "folder": run.get("folder")}


def cmd_compare(args: argparse.Namespace) -> int:
    """Write the comparison of two runs of one notebook (HTML) and print its path."""
    from pathlib import Path

    from bizra_nb.compare import RUN_ID, write_comparison

    settings = load_settings({"data_dir": args.data_dir})
    a, b = _run_document(args.run_a, settings), _run_document(args.run_b, settings)
    names = [str(d.get("run_id")) if RUN_ID.fullmatch(str(d.get("run_id"))) else n for n, d in (("a", a), ("b", b))]
    out = Path(args.out) if args.out else Path(f"compare-{names[0]}-{names[1]}.html")
    print(write_comparison(a, b, out))
    return 0


def _slos_text(count: int) -> str:
    """``"1 SLO"``, ``"3 SLOs"``."""
    return f"{count} SLO" if count == 1 else f"{count} SLOs"


def _default_spec_note(paths) -> str | None:
    """``"spec: …/monitoring/slo/bizra.yaml (the platform's default)"`` when no spec file is named, else None."""
    from bizra_nb.slo_spec import default_spec_path

    if any(str(p) for p in paths or ()):
        return None
    return f"spec: {default_spec_path()} (the platform's default)"


def _spec_words(paths) -> list[str]:
    """The spec files as the generated file's header names them, however they were typed: relative to the working
    directory when inside it (``./x.yaml``, an absolute path), and the default spec as
    ``monitoring/slo/bizra.yaml`` (so `make slo-rules`, the README's line and a bare command write the same bytes)."""
    import os
    from pathlib import Path

    given = [str(p) for p in paths or () if str(p)]
    if not given:
        return ["monitoring/slo/bizra.yaml"]
    here = Path.cwd().resolve()
    words = []
    for path in given:
        full = Path(path).resolve()
        words.append(full.relative_to(here).as_posix() if full.is_relative_to(here) else os.path.normpath(path))
    return words


def _load_slos(paths):
    """The SLOs of the spec files (none: the default spec), or None after printing each problem on stderr."""
    from bizra_nb.slo_spec import SpecError, load_specs

    try:
        return load_specs(paths)
    except SpecError as exc:
        for problem in exc.problems or [exc.message]:
            print(f"bizra-nb slo: error: {problem}", file=sys.stderr)
        return None


def cmd_slo_generate(args: argparse.Namespace) -> int:
    """Write the Prometheus rules of the SLO spec (and their promtool tests); nothing when the spec is wrong."""
    import os
    from pathlib import Path

    from bizra_nb.errors import InvalidInput
    from bizra_nb.reports import write_atomic
    from bizra_nb.slo_rules import rule_file, unit_tests

    if args.tests and args.out == "-":
        raise InvalidInput("--tests needs the rules in a file (--out FILE, not -): the tests name it",
                           field="tests")
    slos = _load_slos(args.spec)
    if slos is None:
        return EXIT_USAGE
    rules = rule_file(slos, command=" ".join(["bizra-nb slo generate", *_spec_words(args.spec)]))
    tests = None
    if args.tests:
        rules_path = os.path.relpath(Path(args.out).absolute(), Path(args.tests).absolute().parent)
        tests = unit_tests(slos, rules_path=Path(rules_path).as_posix())
    if args.out == "-":
        sys.stdout.write(rules)
    else:
        write_atomic(Path(args.out), rules)
        print(f"{args.out}: rules of {_slos_text(len(slos))}", file=sys.stderr)
    if _default_spec_note(args.spec):
        print(_default_spec_note(args.spec), file=sys.stderr)
    if tests is not None:
        write_atomic(Path(args.tests), tests)
        print(f"{args.tests}: promtool tests of their alerts", file=sys.stderr)
    return 0


def cmd_slo_check(args: argparse.Namespace) -> int:
    """Read the SLO spec and print each SLO; exit 2 with the problems when it is wrong."""
    from bizra_nb.slo_rules import number, percent

    slos = _load_slos(args.spec)
    if slos is None:
        return EXIT_USAGE
    if _default_spec_note(args.spec):
        print(_default_spec_note(args.spec))
    for slo in slos:
        print(f"{slo.name}: target {number(slo.target)} ({percent(slo.target)}), {slo.window.describe()}, "
              f"{slo.budgeting}, indicator {slo.indicator.kind}")
    print(f"{_slos_text(len(slos))}, spec OK")
    return 0


def cmd_report_pdf(args: argparse.Namespace) -> int:
    """Print a run's report.html to PDF with headless Chromium and print the PDF's path."""
    from pathlib import Path

    from bizra_nb.errors import InvalidInput
    from bizra_nb.pdf import html_to_pdf

    settings = load_settings({"data_dir": args.data_dir})
    spec = Path(args.run).expanduser()
    if spec.is_file() and spec.suffix == ".html":
        html = spec
    else:
        folder = _run_document(args.run, settings).get("folder")
        html = Path(folder or "") / "report.html"
        if not folder or not html.is_file():
            raise InvalidInput(f"run {args.run!r} has no report.html (yet)", field="run")
    out = Path(args.out) if args.out else html.with_name("report.pdf")
    print(html_to_pdf(html, out, timeout=args.timeout))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="bizra-nb", description="BIZRA Node-0 SRE notebook platform")
    parser.add_argument("--version", action="version", version=f"bizra-nb {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    serve = commands.add_parser("serve", help="run the operations API and the live WebSocket")
    _add_setting_flags(serve)
    serve.set_defaults(func=cmd_serve)

    diag = commands.add_parser(
        "diagnose", help="rank the root causes of an incident from a dataset file or Prometheus",
        description="Rank every service of the data as a root-cause candidate. TIME is unix seconds or ISO-8601.")
    where = diag.add_argument_group("source (exactly one)")
    where.add_argument("--data", metavar="PATH", help="dataset file: CSV or Parquet, wide or long")
    where.add_argument("--prometheus", metavar="URL", help="Prometheus HTTP API base URL (Thanos, Mimir, ...)")
    diag.add_argument("--start", metavar="TIME", help="window start (required with --prometheus)")
    diag.add_argument("--end", metavar="TIME", help="window end (required with --prometheus)")
    diag.add_argument("--anomaly-start", metavar="TIME", help="when the incident began; detected when omitted")
    diag.add_argument("--history", metavar="DURATION",
                      help="also fetch this much data before --start as history, e.g. 12h or 2d, at most 14d "
                           "(needs --start): the window still begins at --start, the history is normal data; "
                           "with a day or more, each series is compared with its usual value at the same time "
                           "of day (default: no history)")
    diag.add_argument("--services", metavar="A,B", help="only these services")
    diag.add_argument("--cmdb", metavar="PATH", help="CMDB file (YAML or JSON) for topology-aware ranking")
    diag.add_argument("--format", choices=("json", "table"), default="table", help="output format (default: table)")
    diag.add_argument("--top", type=int, default=None, metavar="N", help="table: show the first N only")
    diag.add_argument("--token", metavar="TOKEN", help="Prometheus: bearer token")
    diag.add_argument("--tenant", metavar="ID", help="Prometheus: X-Scope-OrgID tenant header")
    diag.add_argument("--timeout", type=float, default=30.0, metavar="S", help="Prometheus: seconds per request")
    diag.set_defaults(func=cmd_diagnose)

    fleet = commands.add_parser("fleet", help="generate the demo fleet: metrics, CMDB and the injected faults' truth")
    fleet.add_argument("--out", default="data/fleet", help="output folder (default: data/fleet)")
    fleet.add_argument("--start", default="2026-10-01T00:00:00", help="first timestamp: ISO-8601 (UTC unless it says) or unix seconds")
    fleet.add_argument("--duration", default="2h", help="length, e.g. 2h, 30d (default: 2h)")
    fleet.add_argument("--step", default="15s", help="resolution (default: 15s)")
    fleet.add_argument("--fault", action="append", metavar="SERVICE:KIND[@TIME]",
                       help="inject a fault (repeatable); TIME as --start; default: 70%% into the window")
    fleet.add_argument("--seed", type=int, default=0)
    fleet.add_argument("--format", choices=("csv", "parquet"), default="csv")
    fleet.add_argument("--layout", choices=("wide", "long"), default="wide")
    fleet.set_defaults(func=cmd_fleet)

    run = commands.add_parser("run", help="run a notebook with parameters into a report folder",
                              description="Run NOTEBOOK (a name in notebooks/, e.g. incident_diagnosis, or a path). "
                                          "Parameters are checked against those the notebook declares before it runs.")
    run.add_argument("notebook", metavar="NOTEBOOK")
    run.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                     help="a parameter (repeatable); VALUE is JSON when it parses, else text")
    run.add_argument("--data-dir", default=None, help="the store (default: data in the project folder, or BIZRA_DATA_DIR)")
    run.add_argument("--reports-dir", default=None, help="where reports go (default: reports in the project folder)")
    run.set_defaults(func=cmd_run)

    audit = commands.add_parser("audit", help="run the monthly compliance audit (for cron: --month YYYY-MM)")
    audit.add_argument("--month", required=True, metavar="YYYY-MM", help="the calendar month to audit")
    audit.add_argument("--audit-source", "--source", dest="audit_source", default=None, metavar="SOURCE",
                       help="platform metrics: dataset file or Prometheus URL (default: BIZRA_AUDIT_SOURCE, "
                            "else the Prometheus URL)")
    audit.add_argument("--prometheus-url", default=None, metavar="URL",
                       help="Prometheus HTTP API base URL (default: BIZRA_PROMETHEUS_URL)")
    audit.add_argument("--data-dir", default=None,
                       help="the server's data dir: the store with incidents and runs (default: data in the project folder, or BIZRA_DATA_DIR)")
    audit.add_argument("--reports-dir", default=None, help="where reports go (default: reports in the project folder)")
    audit.add_argument("--slo-spec", default=None, metavar="FILE",
                       help="the SLO spec audited: OpenSLO v1 or Sloth prometheus/v1 (default: BIZRA_SLO_SPEC, "
                            "else the platform's monitoring/slo/bizra.yaml)")
    audit.set_defaults(func=cmd_audit)

    bench_cmd = commands.add_parser(
        "bench", help="open-loop load test of a server against the runbook's targets, with a WebSocket probe",
        description="Offer a constant request rate and judge the answers against the runbook's targets "
                    "(P50 < 20 ms, P95 < 50 ms, P99 < 100 ms, errors < 1%, throughput > 1000 req/s achieved, "
                    "WebSocket < 10 ms). The default rate offers 10% above the throughput target: the achieved "
                    "rate includes the open loop's ramp-down, so offering exactly the target reads just under it. "
                    "Exit status: 0 every target met, 1 a target missed, 2 a usage error or a server that "
                    "cannot be reached.")
    bench_cmd.add_argument("url", metavar="URL", help="http://host:port of the server")
    bench_cmd.add_argument("--endpoint", action="append", help="path to request (repeatable; default /health)")
    bench_cmd.add_argument("--duration", type=float, default=10.0, help="seconds (default 10)")
    bench_cmd.add_argument("--rate", type=float, default=None,
                           help="requests per second offered (default: the throughput target + 10%%, i.e. 1100)")
    bench_cmd.add_argument("--concurrency", type=int, default=32, help="connections (default 32)")
    bench_cmd.add_argument("--ws-clients", type=int, default=5, help="WebSocket probe clients (default 5, 0: off)")
    bench_cmd.add_argument("--target", action="append", metavar="NAME=VALUE",
                           help="override a target (repeatable), e.g. throughput_rps=500 or p99_ms=50")
    bench_cmd.add_argument("--format", choices=("table", "json"), default="table")
    bench_cmd.add_argument("--check", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for scripts
    bench_cmd.set_defaults(func=cmd_bench)

    load = commands.add_parser("prometheus-load", help="write a demo month into a Prometheus data dir (promtool)")
    load.add_argument("--month", required=True, metavar="YYYY-MM")
    load.add_argument("--out", default="data/prometheus-demo", help="the TSDB folder (default: data/prometheus-demo)")
    load.add_argument("--step", default="1min", help="resolution of the fleet's metrics (default: 1min)")
    load.add_argument("--seed", type=int, default=7)
    load.add_argument("--platform-only", action="store_true", help="only the server's own counters, not the fleet")
    load.set_defaults(func=cmd_prometheus_load)

    compare = commands.add_parser(
        "compare", help="compare two runs of one notebook: numbers, deltas, verdicts, figures (HTML)",
        description="RUN_A and RUN_B are run ids of the store (--data-dir) or run folders (a path that exists, "
                    "or its summary.json). Writes a self-contained HTML page and prints its path.")
    compare.add_argument("run_a", metavar="RUN_A", help="the base run (deltas are B - A)")
    compare.add_argument("run_b", metavar="RUN_B", help="the run compared with it")
    compare.add_argument("--out", metavar="FILE", help="the HTML file (default: compare-A-B.html here)")
    compare.add_argument("--data-dir", default=None, help="the store (default: data in the project folder, or "
                                                          "BIZRA_DATA_DIR)")
    compare.set_defaults(func=cmd_compare)

    report = commands.add_parser("report", help="a run's report in another form: report pdf RUN")
    report_commands = report.add_subparsers(dest="report_command", required=True, metavar="FORM",
                                            parser_class=Parser)
    pdf = report_commands.add_parser(
        "pdf", help="print a run's report to PDF with headless Chromium (figures drawn)",
        description="RUN is a run id of the store (--data-dir), a run folder or a report.html. Needs Chromium "
                    "(Debian: apt-get install chromium; or BIZRA_CHROMIUM=/path/to/chrome). Prints the PDF's path.")
    pdf.add_argument("run", metavar="RUN")
    pdf.add_argument("--out", metavar="FILE", help="the PDF (default: report.pdf next to report.html)")
    pdf.add_argument("--data-dir", default=None, help="the store (default: data in the project folder, or "
                                                      "BIZRA_DATA_DIR)")
    pdf.add_argument("--timeout", type=float, default=60.0, metavar="S", help="seconds for Chromium (default 60)")
    pdf.set_defaults(func=cmd_report_pdf)

    slo = commands.add_parser("slo", help="SLOs as code: slo generate (Prometheus rules), slo check (the spec)")
    slo_commands = slo.add_subparsers(dest="slo_command", required=True, metavar="ACTION", parser_class=Parser)
    generate_cmd = slo_commands.add_parser(
        "generate", help="write the recording rules and burn-rate alerts of an SLO spec",
        description="SPEC: OpenSLO v1 or Sloth prometheus/v1 files (none: the platform's default spec, "
                    "monitoring/slo/bizra.yaml). The rules file is deterministic; `make slo-rules` regenerates the "
                    "committed monitoring/rules/slo.yml and monitoring/tests/slo_test.yml.")
    generate_cmd.add_argument("spec", nargs="*", metavar="SPEC")
    generate_cmd.add_argument("--out", required=True, metavar="FILE", help="the rule file (-: standard output)")
    generate_cmd.add_argument("--tests", metavar="FILE", help="also write promtool unit tests of the alerts here")
    generate_cmd.set_defaults(func=cmd_slo_generate)
    check_cmd = slo_commands.add_parser("check", help="read an SLO spec and list its SLOs (exit 2 when it is wrong)")
    check_cmd.add_argument("spec", nargs="*", metavar="SPEC", help="spec files (none: the default spec)")
    check_cmd.set_defaults(func=cmd_slo_check)

    from bizra_nb import store_admin

    store_admin.add_commands(commands)
    demo = commands.add_parser("demo", help="the main job on a generated fleet: diagnosis, benchmark, audit reports")
    demo.add_argument("--out", default=None, metavar="DIR",
                      help="the one folder the demo writes: generated data, store, reports/ (default: data/demo, "
                           "i.e. demo in $BIZRA_DATA_DIR when set); a new run replaces an earlier demo's files there")
    demo.add_argument("--month", default=None, metavar="YYYY-MM", help="the demo month (default: the previous month)")
    demo.add_argument("--port", type=int, default=8080,
                      help="the status page's port (default: 8080; a free one when taken; 0: a free one)")
    demo.add_argument("--serve", action="store_true",
                      help="then keep serving the status page until Ctrl-C, SIGTERM or SIGHUP")
    demo.set_defaults(func=cmd_demo)
    return parser


EXIT_BROKEN_PIPE = 141  # what a shell reports for a process ended by SIGPIPE (128 + 13), e.g. `... | head`


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Errors are one line on stderr, never a traceback: exit 2 for what the user
    can fix (a usage error, a wrong value, a missing file, a server that cannot be reached), 1 for
    a failed run or a missed target, 141 when the reader of the output went away (``| head``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except BizraError as exc:
        print(f"bizra-nb {args.command}: error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # a file or folder the command could not read or write
        print(f"bizra-nb {args.command}: error: {exc}", file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null: the interpreter's final flush must not raise on the closed pipe again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
