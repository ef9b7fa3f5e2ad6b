"""Shared fixtures: a fresh data directory and store per test, and in-process functions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# The store keeps no disk reserve in tests (each test opens fresh stores; see coditect.store.space);
# the full-disk tests set their own.
os.environ.setdefault("CODITECT_STORE_RESERVE_BYTES", "0")

pytest_plugins = ["tests.plugins.identity", "tests.plugins.small_disk"]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh CODITECT_DATA_DIR (and its SQLite store) for one test."""
    from coditect.config import get_settings

    d = tmp_path / "data"
    d.mkdir()
    monkeypatch.setenv("CODITECT_DATA_DIR", str(d))
    monkeypatch.delenv("CODITECT_STORE", raising=False)
    get_settings.cache_clear()
    yield d
    get_settings.cache_clear()


@pytest.fixture
def function_client(data_dir: Path):  # type: ignore[no-untyped-def]
    """`function_client("sessions")` → a Flask test client of functions/sessions/main.py,
    built the way functions-framework builds it in production."""
    from functions_framework import _function_registry, create_app

    def make(name: str):  # type: ignore[no-untyped-def]
        source = ROOT / "functions" / name / "main.py"
        # functions-framework remembers @cloud_event targets by name process-wide, and that wins
        # over the signature type given here: forget any CloudEvent function's "handle" first.
        _function_registry.REGISTRY_MAP.pop("handle", None)
        app = create_app("handle", str(source), "http")
        return app.test_client()

    yield make
    os.environ.pop("FUNCTION_TARGET", None)
