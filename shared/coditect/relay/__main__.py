"""`python -m coditect.relay [--app module:attr --app-dir DIR] [--host H] [--port P]`.

Runs the relay (or the ASGI target `--app` of a function's source directory, as the container
and the local stack do for every function of kind "asgi") under coditect.relay.server: uvicorn
with the settings from `Settings`, draining on SIGTERM.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from coditect.config import get_settings


def load(target: str, app_dir: str | None) -> Any:
    """The ASGI callable named "module:attr", imported with `app_dir` first on sys.path."""
    module, _, attr = target.partition(":")
    if app_dir:
        sys.path.insert(0, app_dir)
    return getattr(importlib.import_module(module), attr or "app")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Coditect relay")
    parser.add_argument("--app", default=None, help="ASGI target module:attr (default: the relay)")
    parser.add_argument("--app-dir", default=None, help="directory to import --app from")
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a container listens on all interfaces
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)

    from coditect.relay import logs
    from coditect.relay.server import serve

    settings = get_settings()
    logs.configure(settings.log_level)
    if args.app:
        app = load(args.app, args.app_dir)
    else:
        from coditect.relay.app import create_app

        app = create_app(settings)
    serve(app, args.host, args.port, settings)


if __name__ == "__main__":
    main()
