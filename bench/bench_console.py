"""The web console's first load in headless Chromium on the real local stack, and its JS sizes.

    python bench/bench_console.py --out bench/results/console.json [--runs 5]

Needs the console built (`nox -s console`) and Debian's chromium. Each run opens a fresh browser
context (empty cache) and measures navigation start → the login screen's "Log in" button
visible (the app fetched, parsed, run and rendered). Baseline in the same run and browser: the
same measure for a page the gateway answers with no script (GET /api/v5/health). A second load
in the same context shows the immutable caching. Sizes: the first screen's JavaScript (the entry
script and what it imports statically) gzipped, and the lazily loaded editor and terminal chunks.
"""

from __future__ import annotations

import gzip
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from run import arguments, publish  # bench/ is not a package

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DIST = ROOT / "functions" / "console" / "dist"
GOAL_LOAD_S, GOAL_JS_KB = 3.0, 300.0


def gz_kb(path: Path) -> float:
    twin = path.with_name(path.name + ".gz")
    data = twin.read_bytes() if twin.is_file() else gzip.compress(path.read_bytes(), 9)
    return len(data) / 1024


def first_screen_js() -> tuple[list[Path], list[Path]]:
    """(the entry script with its static imports, every other JS chunk)."""
    html = (DIST / "index.html").read_text()
    entry = [DIST / src.lstrip("/") for src in re.findall(r'<script[^>]+src="([^"]+)"', html)]
    seen: list[Path] = []
    todo = list(entry)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.append(path)
        text = path.read_text()
        # static imports only (import"./x.js" / from"./x.js"); dynamic import("./x.js") is lazy
        for name in re.findall(r'(?:from|import)\s*"\./([^"]+\.js)"', text):
            todo.append(path.parent / name)
    others = [p for p in (DIST / "assets").glob("*.js") if p not in seen]
    return seen, others


def main() -> int:
    parser = arguments(__doc__, "console")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not (DIST / "index.html").is_file():
        print("the console is not built: run `nox -s console`", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    from tests.e2e.console.conftest import CHROMIUM, FLAGS
    from tests.e2e.stack import start_stack

    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
                figures = measure(browser, stack.url, args.runs)
                browser.close()
        finally:
            stack.stop()

    entry, lazy = first_screen_js()
    first_kb = sum(gz_kb(p) for p in entry)
    editor = [p for p in lazy if p.name.startswith("editor-")]
    terminal = [p for p in lazy if p.name.startswith("terminal-")]
    load, warm, base = figures["console_cold_s"], figures["console_warm_s"], figures["baseline_s"]
    ok = "✅" if statistics.median(load) < GOAL_LOAD_S else "❌"
    ok_js = "✅" if first_kb < GOAL_JS_KB else "❌"
    md = "\n".join(
        [
            f"Machine: {platform.machine()}, Python {platform.python_version()}, headless Chromium "
            f"({CHROMIUM}), local stack (`tests/e2e/stack.py`), {args.runs} runs, medians.",
            "",
            "| load | median (s) | max (s) |",
            "|---|---|---|",
            f"| baseline: GET /api/v5/health as a page, fresh context | {statistics.median(base):.3f} "
            f"| {max(base):.3f} |",
            f"| console `/` → login screen, fresh context (cold cache) | {statistics.median(load):.3f} "
            f"| {max(load):.3f} |",
            f"| console `/` again, same context (immutable assets cached) | {statistics.median(warm):.3f} "
            f"| {max(warm):.3f} |",
            "",
            f"First load median {statistics.median(load):.3f} s (goal < {GOAL_LOAD_S} s) {ok}; "
            f"{statistics.median(load) / statistics.median(base):.1f} times the baseline page.",
            "",
            f"First screen JavaScript: **{first_kb:.1f} KB gzipped** ({len(entry)} file(s); goal < "
            f"{GOAL_JS_KB:.0f} KB) {ok_js}; loaded when first needed: editor "
            f"{sum(gz_kb(p) for p in editor):.1f} KB, terminal {sum(gz_kb(p) for p in terminal):.1f} KB, "
            f"language modes {sum(gz_kb(p) for p in lazy if p not in editor + terminal):.1f} KB (gzip).",
        ]
    )
    report: dict[str, Any] = {
        "title": "web console: first load in headless Chromium, JavaScript sizes",
        "markdown": md,
        "first_screen_js_gzip_kb": round(first_kb, 1),
        **{k: [round(x, 4) for x in v] for k, v in figures.items()},
    }
    publish(args.out, report)
    print(md)
    return 0


def measure(browser: Any, url: str, runs: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {"baseline_s": [], "console_cold_s": [], "console_warm_s": []}
    for _ in range(runs + 1):  # the first round warms the stack's processes up and is dropped
        context = browser.new_context()
        page = context.new_page()
        started = time.perf_counter()
        page.goto(f"{url}/api/v5/health")
        page.wait_for_selector("body")
        base = time.perf_counter() - started
        timings = []
        for _load in range(2):
            started = time.perf_counter()
            page.goto(f"{url}/")
            page.get_by_role("button", name="Log in").wait_for(state="visible")
            timings.append(time.perf_counter() - started)
        context.close()
        figures["baseline_s"].append(base)
        figures["console_cold_s"].append(timings[0])
        figures["console_warm_s"].append(timings[1])
    return {k: v[1:] for k, v in figures.items()}


if __name__ == "__main__":
    raise SystemExit(main())
