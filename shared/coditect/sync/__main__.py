"""`python -m coditect.sync ...`: the workspace sync agent (docs/workspaces-sync.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from coditect.sync.agent import Agent, Options


def parse(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m coditect.sync", description=__doc__)
    parser.add_argument("--api-url", required=True, help="base URL of the API (the front door)")
    parser.add_argument("--session-id", required=True, help="the session whose files are synced")
    parser.add_argument("--workspace-id", required=True, help="the workspace the report is about")
    parser.add_argument("--root", required=True, type=Path, help="the workspace directory")
    parser.add_argument("--credential-file", required=True, type=Path, help="file with the bearer credential")
    parser.add_argument("--health-port", required=True, type=int, help="127.0.0.1 port of /healthz, /status")
    parser.add_argument("--state-file", required=True, type=Path, help="sync state (outside the tree)")
    parser.add_argument("--flush-timeout", type=float, default=20.0, help="seconds to flush at stop")
    args = parser.parse_args(argv)
    return Options(api_url=args.api_url, session_id=args.session_id, workspace_id=args.workspace_id,
                   root=args.root, credential_file=args.credential_file, health_port=args.health_port,
                   state_file=args.state_file, flush_timeout=args.flush_timeout)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")  # fmt: skip
    for chatty in ("httpx", "watchfiles"):  # a line per request / per event batch
        logging.getLogger(chatty).setLevel(logging.WARNING)
    logging.getLogger("coditect.sync").info("agent started for session %s", options.session_id)
    return asyncio.run(Agent(options).run())


if __name__ == "__main__":
    sys.exit(main())
