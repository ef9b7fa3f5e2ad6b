"""Command line of the local stack: `python -m coditect.devstack serve | routes`."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from coditect.deploy.routes import route_table
from coditect.devstack.plan import StackSettings, function_specs
from coditect.devstack.supervisor import Stack


def print_routes(settings: StackSettings) -> None:
    """The front door's route table, in match order: methods, path, function (what `serve` and
    the production ingress route)."""
    specs = [spec for spec, _ in function_specs(settings)]
    for entry in route_table(specs):
        for name, methods in sorted(entry.owners.items()):
            print(f"{','.join(sorted(methods)):<18} {entry.rule:<60} {name}")
    relay = next((spec.name for spec in specs if spec.kind == "asgi"), None)
    if relay:
        print(f"{'*':<18} {'/workspaces/... (HTTP and WebSocket)':<60} {relay}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coditect.devstack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "serve", help="start every function, the front door (Caddy), the broker and the scheduler"
    )
    commands.add_parser("routes", help="print the front door's route table")
    args = parser.parse_args(argv)
    try:
        settings = StackSettings.from_env()
    except ValueError as exc:  # a malformed setting: say which, no traceback
        parser.exit(2, f"[devstack] ERROR: {exc}\n")
    if args.command == "routes":
        print_routes(settings)
        return 0
    return asyncio.run(Stack(settings).run())
