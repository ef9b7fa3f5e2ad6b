"""Verify-only rings read public keys only; the signer must be able to sign."""

from __future__ import annotations

from pathlib import Path

import pytest

from coditect.config import Settings
from coditect.identity import keyring
from coditect.identity.signing_keys import KeyRingError, generate_key


@pytest.fixture(autouse=True)
def _fresh() -> None:
    keyring.clear_cache()


def test_verifier_never_opens_private_keys(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    kid = generate_key(directory)
    (directory / f"{kid}.key").write_text("not a key at all")  # would fail if it were parsed
    ring = keyring.verifier(Settings(keys_dir=directory))
    assert ring.kids == [kid] and not ring.can_sign
    with pytest.raises(KeyRingError):
        keyring.signer(Settings(keys_dir=directory))


def test_verify_only_directory(tmp_path: Path) -> None:
    full, pubs = tmp_path / "full", tmp_path / "pubs"
    kid = generate_key(full)
    pubs.mkdir()
    (pubs / f"{kid}.pub").write_bytes((full / f"{kid}.pub").read_bytes())
    assert keyring.verifier(Settings(keys_dir=pubs)).kids == [kid]
    with pytest.raises(KeyRingError):
        keyring.signer(Settings(keys_dir=pubs))
    assert keyring.signer(Settings(keys_dir=full)).can_sign
