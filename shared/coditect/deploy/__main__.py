"""`python -m coditect.deploy render [--check] [--root DIR]` (see coditect.deploy)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coditect.deploy.render import REGENERATE, check, write


def default_root() -> Path:
    """The repository root: the nearest directory above this file (or the cwd) holding knative/."""
    for base in (Path.cwd(), *Path(__file__).resolve().parents):
        if (base / "knative").is_dir() and (base / "functions").is_dir():
            return base
    return Path.cwd()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coditect.deploy")
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser(
        "render",
        help="write knative/, infra/ (relay, eventing, routes) and the image recipe from the registry",
    )
    render.add_argument("--check", action="store_true", help="write nothing; exit 1 listing drifted files")
    render.add_argument("--root", type=Path, default=None, help="repository root (default: found from here)")
    args = parser.parse_args(argv)
    root = args.root or default_root()
    if args.check:
        problems = check(root)
        for problem in problems:
            print(problem)
        if problems:
            print(
                f"\nthe generated deployment files are out of date: run `{REGENERATE}` and commit the result"
            )
            return 1
        print("generated deployment files are up to date")
        return 0
    for path in write(root):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
