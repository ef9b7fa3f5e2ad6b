"""Fixtures for the identity primitives: a key directory as a mounted Secret would hold it."""

from __future__ import annotations

from pathlib import Path

import pytest

from coditect.identity.signing_keys import KeyRing, generate_key


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    """A signer's key directory with one active key, kid "k1"."""
    directory = tmp_path / "keys"
    generate_key(directory, kid="k1")
    return directory


@pytest.fixture
def ring(key_dir: Path) -> KeyRing:
    return KeyRing.load(key_dir)
