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


@pytest.fixture(autouse=True)
def cursor_key_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private key directory: cursor keys are created there on first use, never in the cwd."""
    from coditect.config import get_settings
    from coditect.identity import cursor_keys

    keys = tmp_path / "keys"
    monkeypatch.setenv("CODITECT_KEYS_DIR", str(keys))
    get_settings.cache_clear()
    cursor_keys.forget()
    yield keys
    get_settings.cache_clear()
    cursor_keys.forget()
