"""A fresh embedded store per test for identity's unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from coditect.store import Database, open_store


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_store(f"sqlite://{tmp_path / 'store.db'}")
    yield database
    database.close()
