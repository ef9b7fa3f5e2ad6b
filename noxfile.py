"""Every developer and CI command of the repository (`nox -l` lists them).

    nox -s serve      the whole platform on this machine (python -m coditect.devstack serve)
    nox -s tests      the full suite with the coverage floor (extra args: pytest on what they select)
    nox -s lint       ruff check + ruff format --check
    nox -s typecheck  mypy, strict on shared/
    nox -s bench      every bench/bench_*.py, then bench/RESULTS.md

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


@nox.session(python=PYTHON, reuse_venv=True)
def serve(session: nox.Session) -> None:
    """Start every function, the gateway, the broker and the scheduler (Ctrl-C stops all)."""
    _install(session, "-e", "shared[relay,k8s]")
    session.run("python", "-m", "coditect.devstack", "serve", *session.posargs)


@nox.session(python=PYTHON, reuse_venv=True)
def tests(session: nox.Session) -> None:
    """pytest over tests/ (unit, functional, conformance, e2e). `nox -s tests -- -k health -x`.

    Without arguments (CI): the full suite, measured against the coverage floor of `shared/`
    (`[tool.coverage.report] fail_under`), and collecting no test at all (pytest's exit code 5)
    fails. With arguments, pytest runs what they select, and a selection that matches nothing
    (e.g. a `-k` typo) is not a failure.
    """
    _install(session, "-e", "shared[dev,relay,k8s]")
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
    _install(session, "-e", "shared[dev,relay,k8s]")
    session.run("mypy", "-p", "coditect")


@nox.session(python=PYTHON, reuse_venv=True)
def bench(session: nox.Session) -> None:
    """Run every bench/bench_*.py (each writes bench/results/<area>.json), then compose RESULTS.md.

    Load generator: `wrk` when it is on PATH (`apt-get install wrk`), otherwise the bundled Python
    asyncio generator; the results say which one was used.
    """
    _install(session, "-e", "shared[dev,relay,k8s]")
    if not shutil.which("wrk") and shutil.which("apt-get") and os.geteuid() == 0:
        # Debian's wrk, best effort: without it bench/loadgen.py falls back to its Python generator.
        apt = {"env": {"DEBIAN_FRONTEND": "noninteractive"}, "silent": True, "success_codes": [0, 100]}
        for step in (["install", "-y", "-q", "wrk"], ["update", "-q"], ["install", "-y", "-q", "wrk"]):
            if not shutil.which("wrk"):
                session.run("apt-get", *step, external=True, **apt)
    session.log(f"load generator: {'wrk' if shutil.which('wrk') else 'python-asyncio (bench/loadgen.py)'}")
    session.run("python", "bench/run.py", *session.posargs)
