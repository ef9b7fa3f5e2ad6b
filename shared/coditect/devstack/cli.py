"""Command line of the local stack: `python -m coditect.devstack serve | routes`."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from coditect.devstack.plan import StackSettings, function_specs
from coditect.devstack.routing import RouteTable
from coditect.devstack.supervisor import Stack


def print_routes(settings: StackSettings) -> None:
    """The gateway's route table: method, path, function (what `serve` will route)."""
    specs = [spec for spec, _ in function_specs(settings)]
    table = RouteTable(specs)
    for rule in sorted(table.rules, key=lambda r: (r.rule, sorted(r.methods or []))):
        methods = ",".join(sorted((rule.methods or set()) - {"HEAD"}))
        print(f"{methods:<8} {rule.rule:<60} {rule.endpoint}")
    if table.relay:
        print(f"{'*':<8} {'/workspaces/... (HTTP and WebSocket)':<60} {table.relay}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coditect.devstack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="start every function, the gateway, the broker and the scheduler")
    commands.add_parser("routes", help="print the gateway's route table")
    args = parser.parse_args(argv)
    settings = StackSettings.from_env()
    if args.command == "routes":
        print_routes(settings)
        return 0
    return asyncio.run(Stack(settings).run())
