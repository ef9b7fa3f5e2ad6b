"""Run every benchmark and compose bench/RESULTS.md (what `nox -s bench` runs).

    python bench/run.py                 run every bench/bench_<area>.py, then compose
    python bench/run.py runtime files   run only these areas, then compose
    python bench/run.py --compose       only compose RESULTS.md from bench/results/*.json

Each bench/bench_<area>.py takes `--out bench/results/<area>.json` and writes a JSON object with
at least `title` (one line) and `markdown` (its result tables, figures compared with a baseline
measured in the same run); anything else in it is raw data. A benchmark that fails is reported in
RESULTS.md and makes this script exit non-zero, after the others ran.

The soak (`nox -s soak`, bench/soak.py; minutes long, so not one of the areas run here) writes
bench/results/soak.json in the same shape and recomposes RESULTS.md with `compose`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"


def run(area: str) -> tuple[bool, float]:
    started = time.monotonic()
    print(f"== bench_{area}.py", flush=True)
    out = RESULTS / f"{area}.json"
    code = subprocess.call(
        [sys.executable, str(BENCH / f"bench_{area}.py"), "--out", str(out)], cwd=BENCH.parent
    )
    return code == 0, time.monotonic() - started


def compose(failed: dict[str, str]) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Composed {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `nox -s bench` (`python bench/run.py`) from "
        "`bench/results/*.json`. Every figure is compared with a baseline measured in the same run.",
        "",
    ]
    for path in sorted(RESULTS.glob("*.json")):
        try:
            result = json.loads(path.read_text())
        except ValueError:
            continue
        lines += [f"## {path.stem}: {result.get('title', path.stem)}", "", result.get("markdown", "(no table)"),
                  "", f"Raw figures: [results/{path.name}](results/{path.name}).", ""]  # fmt: skip
    for area, why in sorted(failed.items()):
        lines += [f"## {area}: FAILED", "", why, ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("areas", nargs="*", help="areas to run (default: every bench_<area>.py)")
    parser.add_argument("--compose", action="store_true", help="do not run, only compose RESULTS.md")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    areas = args.areas or sorted(p.stem.removeprefix("bench_") for p in BENCH.glob("bench_*.py"))
    failed: dict[str, str] = {}
    if not args.compose:
        for area in areas:
            ok, took = run(area)
            print(f"== bench_{area}.py {'ok' if ok else 'FAILED'} in {took:.0f} s", flush=True)
            if not ok:
                failed[area] = f"`python bench/bench_{area}.py` failed (see the bench session's output)."
    (BENCH / "RESULTS.md").write_text(compose(failed))
    print(f"wrote {BENCH / 'RESULTS.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
