"""The `cdp` command line (PRODUCT.md): serve, up, generate, demo, identity, ltv, attribution.

Building the parser imports only the services' light settings modules, so `cdp --help` stays
fast; a command imports what it runs when it runs."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from omnicdp.cli import attribution, audiences, identity, ltv
from omnicdp.core import settings

# The services `cdp serve` runs. Each has the same shape: a light `settings` module (its
# flags, read to build this parser) and `server.build`, imported only when it runs.
SERVICES = ("identity", "profile", "attribution", "gateway")


def _settings_class(service: str) -> type:
    return importlib.import_module(f"omnicdp.services.{service}.settings").Settings


def _serve(args: argparse.Namespace) -> int:
    from omnicdp.core.server import serve

    server = importlib.import_module(f"omnicdp.services.{args.service}.server")
    return serve(args.service, _settings_class(args.service), server.build, args)


def _up(args: argparse.Namespace) -> int:
    from omnicdp.cli.supervisor import Stack, StartupError, catch_stop_signals, run_until_signal

    os.umask(0o077)  # data files and logs readable by their owner only
    stop_requested = catch_stop_signals()
    stack = Stack(data_dir=args.data_dir, http_port=args.http_port, api_keys=args.api_keys)
    try:
        stack.start(progress=lambda m: print(m, file=sys.stderr, flush=True))
    except StartupError as error:
        print(f"cdp up: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({**stack.describe(), "api_key": stack.api_key}), flush=True)
    else:
        print(f"omnicdp is up: {stack.gateway_url}  (API docs: {stack.gateway_url}/docs)")
        if stack.api_key:
            print(f"local API key (all scopes): {stack.api_key}")
        print("press Ctrl-C to stop", flush=True)
    code = run_until_signal(stack, stop_requested)
    print("stopped", file=sys.stderr)
    return code


def _generate(args: argparse.Namespace) -> int:
    from omnicdp.synth import generate_retailer

    def progress(stage: str, done: int, total: int) -> None:
        print(f"\r{stage}: {done}/{total}", end="", file=sys.stderr, flush=True)

    summary = generate_retailer(args.customers, args.seed, args.out, progress=progress)
    print(file=sys.stderr)
    if args.json:
        print(json.dumps(summary.to_dict(), default=str))
    else:
        from omnicdp.cli.tables import print_table

        print_table("generated", [(k, v) for k, v in summary.to_dict().items()
                                  if not isinstance(v, dict | list)])
    return 0


def _demo(args: argparse.Namespace) -> int:
    from omnicdp.cli.demo import run_demo

    return run_demo(args.data_dir, customers=args.customers, seed=args.seed, as_json=args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdp", description="omnicdp: a Customer Data Platform "
                                     "for omnichannel retailers.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run one service (how Kubernetes runs it)")
    services = serve.add_subparsers(dest="service", required=True, metavar="SERVICE")
    for name in SERVICES:
        sub = services.add_parser(name, help=f"the {name} service")
        settings.add_arguments(sub, _settings_class(name))
    serve.set_defaults(func=_serve)

    up = commands.add_parser("up", help="start the whole system on this machine")
    up.add_argument("--data-dir", type=Path, default=Path(".cdp"),
                    help="where embedded data lives (default ./.cdp)")
    up.add_argument("--http-port", type=int, default=0, help="gateway port (default: free)")
    up.add_argument("--api-keys", type=Path, default=None,
                    help="API keys file (default: a local all-scopes key in DATA_DIR)")
    up.add_argument("--json", action="store_true", help="print the addresses as JSON")
    up.set_defaults(func=_up)

    generate = commands.add_parser("generate", help="write a synthetic omnichannel retailer")
    generate.add_argument("--customers", type=int, default=1000)
    generate.add_argument("--seed", type=int, default=42)
    generate.add_argument("--out", type=Path, required=True)
    generate.add_argument("--json", action="store_true")
    generate.set_defaults(func=_generate)

    demo = commands.add_parser("demo", help="the main job on embedded defaults, from nothing")
    demo.add_argument("--data-dir", type=Path, default=Path(".cdp/demo"))
    demo.add_argument("--customers", type=int, default=300)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(func=_demo)

    identity.add_parser(commands)
    ltv.add_parser(commands)
    audiences.add_parser(commands)

    attribution.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
