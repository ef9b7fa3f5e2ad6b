from __future__ import annotations

from pathlib import Path

import pytest

from coditect.config import Settings
from coditect.store import open_store


@pytest.mark.parametrize("url", ["redis://x", "postgres:///db", "mem://"])
def test_unknown_scheme_names_accepted_ones(url: str) -> None:
    with pytest.raises(ValueError, match="accepted: sqlite, fdb"):
        open_store(url)


def test_sqlite_url_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="absolute"):
        open_store("sqlite://relative/data.db")


def test_default_url_uses_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CODITECT_STORE", raising=False)
    monkeypatch.setenv("CODITECT_DATA_DIR", str(tmp_path))
    db = open_store(Settings().store_url)
    assert db.url == f"sqlite://{tmp_path / 'store.db'}"
    db.close()
