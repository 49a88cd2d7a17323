"""The `bizra-nb` command: serve, demo (more subcommands arrive with their features)."""
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


def cmd_serve(args: argparse.Namespace) -> int:
    from server.app import serve

    settings = _settings_from(args)
    _configure_logging(settings.log_level)

    def announce(info: dict) -> None:
        ports = info["ports"]
        print(f"bizra-nb {__version__} serving http://{settings.host}:{ports['http']}/health", flush=True)
        if "ws" in ports:
            print(f"live updates on ws://{settings.host}:{ports['ws']}/ws/live-updates "
                  f"and ws://{settings.host}:{ports['http']}/ws/live-updates", flush=True)
        if info["token_generated"]:
            print(f"API token (generated, kept in {settings.data_dir / 'api_token'}):\n"
                  f"    Authorization: Bearer {info['token']}", flush=True)

    asyncio.run(serve(settings, ready=announce))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bizra_nb.demo import run_demo

    return run_demo(out=args.out, seconds=args.seconds)


def cmd_diagnose(args: argparse.Namespace) -> int:
    import json

    from bizra_nb.cmdb import Cmdb
    from bizra_nb.diagnose import diagnose
    from bizra_nb.errors import InvalidInput
    from bizra_nb.sources import open_source

    if bool(args.data) == bool(args.prometheus):
        raise InvalidInput("give exactly one of --data PATH or --prometheus URL", field="data")
    if args.prometheus and (args.start is None or args.end is None):
        raise InvalidInput("--prometheus needs --start and --end", field="start")
    cmdb = Cmdb.load(args.cmdb) if args.cmdb else None
    services = [s.strip() for s in args.services.split(",") if s.strip()] if args.services else None
    if args.data:
        source = open_source(args.data)
    else:
        source = open_source(args.prometheus, token=args.token, tenant=args.tenant, timeout=args.timeout, cmdb=cmdb)
    diagnosis, fetched = diagnose(source, start=args.start, end=args.end, anomaly_start=args.anomaly_start,
                                  services=services, cmdb=cmdb)
    if args.format == "json":
        print(json.dumps(diagnosis.as_dict(), ensure_ascii=False))
        return 0
    import pandas as pd

    detected = " (detected)" if diagnosis.anomaly_start_detected else ""
    print(f"anomaly start: {diagnosis.anomaly_start.isoformat()}{detected}; end: {diagnosis.end.isoformat()}")
    with pd.option_context("display.max_colwidth", 120, "display.width", 200):
        table = diagnosis.table(args.top)
        table["onset"] = [o.strftime("%H:%M:%S") if o is not None and not pd.isna(o) else "-" for o in table["onset"]]
        print(table.reset_index().to_string(index=False, justify="left"))
    for warning in diagnosis.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import pandas as pd

    from bizra_nb.dataset import write_dataset
    from bizra_nb.errors import InvalidInput
    from bizra_nb.fleet import FAULT_KINDS, Fault, demo_cmdb, generate

    cmdb = demo_cmdb()
    faults = []
    for spec in args.fault or []:
        service, _, rest = spec.partition(":")
        kind, _, at = rest.partition("@")
        if service not in cmdb.items or kind not in FAULT_KINDS:
            raise InvalidInput(f"--fault {spec!r}: expected SERVICE:KIND[@TIME] with a service of "
                               f"{', '.join(cmdb.items)} and KIND one of {', '.join(FAULT_KINDS)}", field="fault")
        start = pd.Timestamp(args.start, tz="UTC")
        when = pd.Timestamp(at, tz="UTC") if at else start + pd.Timedelta(args.duration) * 0.7
        faults.append(Fault(service=service, kind=kind, start=when.floor(args.step)))
    data = generate(start=args.start, duration=args.duration, step=args.step, faults=faults, seed=args.seed)
    out = Path(args.out)
    metrics = write_dataset(data.metrics, out / f"metrics.{args.format}", layout=args.layout)
    (out / "cmdb.yaml").write_text(data.cmdb.dumps("yaml"), encoding="utf-8")
    (out / "truth.json").write_text(json.dumps([f.as_dict() for f in data.faults], indent=2), encoding="utf-8")
    print(f"{metrics} ({data.metrics.shape[0]} rows x {data.metrics.shape[1]} series)")
    print(out / "cmdb.yaml")
    print(out / "truth.json")
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
    fleet.add_argument("--start", default="2026-10-01T00:00:00", help="first timestamp, UTC")
    fleet.add_argument("--duration", default="2h", help="length, e.g. 2h, 30d (default: 2h)")
    fleet.add_argument("--step", default="15s", help="resolution (default: 15s)")
    fleet.add_argument("--fault", action="append", metavar="SERVICE:KIND[@TIME]",
                       help="inject a fault (repeatable); default time: 70%% into the window")
    fleet.add_argument("--seed", type=int, default=0)
    fleet.add_argument("--format", choices=("csv", "parquet"), default="csv")
    fleet.add_argument("--layout", choices=("wide", "long"), default="wide")
    fleet.set_defaults(func=cmd_fleet)

    demo = commands.add_parser("demo", help="run the main job on a generated fleet, on the embedded defaults")
    demo.add_argument("--out", default="reports", help="folder for the reports (default: reports)")
    demo.add_argument("--seconds", type=float, default=3.0, help="how long the demo server runs (default: 3)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BizraError as exc:
        print(f"bizra-nb {args.command}: error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
