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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bizra-nb", description="BIZRA Node-0 SRE notebook platform")
    parser.add_argument("--version", action="version", version=f"bizra-nb {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the operations API and the live WebSocket")
    _add_setting_flags(serve)
    serve.set_defaults(func=cmd_serve)

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
