"""`cdp audiences define | list | refresh`: audiences on a running profile service. Imported
to build the parser (light); the client is imported when a command runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from omnicdp.cli import common
from omnicdp.core.errors import DomainError

DEFAULT_PROFILE_ADDR = "127.0.0.1:50052"


def _client(args: argparse.Namespace):  # noqa: ANN202 (imported when run)
    from omnicdp.services.profile.client import AudienceClient

    return AudienceClient(args.profile_addr, deadline=args.deadline)


def define(args: argparse.Namespace) -> int:
    try:
        definition = json.loads(args.definition.read_text())
    except (OSError, ValueError) as error:
        print(f"cdp audiences define: cannot read {args.definition}: {error}", file=sys.stderr)
        return 2
    client = _client(args)
    try:
        state = client.put(args.name, definition)
    except DomainError as error:
        return common.fail("cdp audiences define", error)
    finally:
        client.close()
    result = {"name": args.name, "created": state.created, "joined": state.joined,
              "left": state.left, "members": state.members,
              "summary": state.audience.describe()}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.name} {'defined' if state.created else 'redefined'}: {state.members:,} "
              f"members ({state.joined:,} joined, {state.left:,} left): {result['summary']}")
    return 0


def list_audiences(args: argparse.Namespace) -> int:
    client = _client(args)
    states, token = [], ""
    try:
        while True:
            page, token = client.list(1000, token)
            states += page
            if not token:
                break
    except DomainError as error:
        return common.fail("cdp audiences list", error)
    finally:
        client.close()
    rows = [(s.audience.name, s.members, s.audience.describe()) for s in states]
    if args.json:
        print(json.dumps([{"name": n, "members": m, "summary": d} for n, m, d in rows]))
    else:
        from omnicdp.cli.tables import print_table

        print_table(f"{len(rows)} audiences", rows, headers=("name", "members", "rules"))
    return 0


def refresh(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        done = client.refresh(args.names)
    except DomainError as error:
        return common.fail("cdp audiences refresh", error)
    finally:
        client.close()
    if args.json:
        print(json.dumps([{"name": n, "joined": j, "left": left, "members": m}
                          for n, j, left, m in done]))
    else:
        for name, joined, left, members in done:
            print(f"{name}: {joined:,} joined, {left:,} left, {members:,} members")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """`cdp audiences ...` (light: nothing heavy is imported to build it)."""
    audiences = commands.add_parser("audiences", help="audiences on the profile service")
    actions = audiences.add_subparsers(dest="action", required=True, metavar="ACTION")

    def shared(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--profile-addr", default=DEFAULT_PROFILE_ADDR, metavar="ADDR",
                            help=f"the profile service, host:port (default "
                                 f"{DEFAULT_PROFILE_ADDR})")
        parser.add_argument("--deadline", type=float, default=300.0, metavar="SECONDS",
                            help="how long the call may take (default 300: evaluating an "
                                 "audience over every customer takes a while)")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    define_parser = actions.add_parser(
        "define", help="define or redefine an audience from a JSON file (README.md shows "
                       "one) and evaluate it over every customer")
    define_parser.add_argument("name", metavar="NAME", help="e.g. sofa-retargeting")
    define_parser.add_argument("definition", type=Path, metavar="FILE",
                               help="the definition: include, exclude, consent")
    shared(define_parser)
    define_parser.set_defaults(func=define)

    list_parser = actions.add_parser("list", help="every audience with its member count")
    shared(list_parser)
    list_parser.set_defaults(func=list_audiences)

    refresh_parser = actions.add_parser(
        "refresh", help="evaluate audiences again now, so memberships whose 'within N days' "
                        "window has closed end (the service also does it every "
                        "CDP_AUDIENCE_REFRESH_SECONDS)")
    refresh_parser.add_argument("names", nargs="*", metavar="NAME",
                                help="the audiences (default: all)")
    shared(refresh_parser)
    refresh_parser.set_defaults(func=refresh)
