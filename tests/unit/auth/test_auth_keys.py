"""The Ed25519 key ring on a directory of PEM files (coditect.identity.signing_keys)."""

from __future__ import annotations

import base64
import shutil
import stat
import threading
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coditect.identity.signing_keys import KeyRing, KeyRingError, ensure_keys, generate_key, is_valid_kid
from tests.helpers import run_threads


def pub_only_copy(source: Path, target: Path) -> Path:
    """What a verify-only function mounts: the .pub files alone."""
    target.mkdir()
    for pub in source.glob("*.pub"):
        shutil.copy(pub, target / pub.name)
    return target


def test_generate_key_writes_a_0600_private_key_and_activates_it(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "keys"
    kid = generate_key(directory)
    assert is_valid_kid(kid)
    assert stat.S_IMODE((directory / f"{kid}.key").stat().st_mode) == 0o600
    assert (directory / "active").read_text().strip() == kid
    ring = KeyRing.load(directory)
    assert ring.can_sign and ring.signing_key().kid == kid and ring.kids == [kid]
    assert (directory / f"{kid}.key").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert (directory / f"{kid}.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")


def test_generate_key_never_overwrites_and_refuses_path_like_kids(key_dir: Path) -> None:
    before = (key_dir / "k1.key").read_bytes()
    with pytest.raises(FileExistsError):
        generate_key(key_dir, kid="k1")
    assert (key_dir / "k1.key").read_bytes() == before
    for kid in ["../evil", "a/b", "", "x" * 65, "dot.ted", "sp ace"]:
        with pytest.raises(ValueError):
            generate_key(key_dir, kid=kid)
    assert not (key_dir.parent / "evil.key").exists()


def test_ensure_keys_creates_one_key_once(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    ensure_keys(directory)
    ensure_keys(directory)
    assert len(list(directory.glob("*.pub"))) == 1
    assert KeyRing.load(directory).can_sign


def test_ensure_keys_racing_processes_leave_exactly_one_key(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir()
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        ensure_keys(directory)

    run_threads([start] * 8)
    pubs, keys = list(directory.glob("*.pub")), list(directory.glob("*.key"))
    assert len(pubs) == len(keys) == 1
    assert (directory / "active").read_text().strip() == pubs[0].stem
    assert not list(directory.glob(".*"))  # no temporary files left behind


def test_verify_only_ring_has_public_keys_but_cannot_sign(key_dir: Path, tmp_path: Path) -> None:
    ring = KeyRing.load(pub_only_copy(key_dir, tmp_path / "verifier"))
    assert not ring.can_sign
    with pytest.raises(KeyRingError):
        ring.signing_key()
    assert ring.public_key("k1") is not None


def test_active_without_private_key_is_verify_only(key_dir: Path) -> None:
    # Same Secret, private keys left out of the projection: `active` is present but unusable.
    (key_dir / "k1.key").unlink()
    ring = KeyRing.load(key_dir)
    assert not ring.can_sign and ring.kids == ["k1"]


def test_published_but_inactive_key_does_not_sign(key_dir: Path) -> None:
    generate_key(key_dir, kid="k2", activate=False)
    ring = KeyRing.load(key_dir)
    assert ring.signing_key().kid == "k1"
    assert ring.kids == ["k1", "k2"]
    assert [key["kid"] for key in ring.jwks()["keys"]] == ["k1", "k2"]


def test_active_key_must_be_published(key_dir: Path) -> None:
    (key_dir / "k1.pub").unlink()
    generate_key(key_dir, kid="k0", activate=False)  # some other key is published
    with pytest.raises(KeyRingError):
        KeyRing.load(key_dir)


def test_active_private_key_must_match_its_pub(key_dir: Path) -> None:
    other = Ed25519PrivateKey.generate().public_key()
    (key_dir / "k1.pub").write_bytes(
        other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(KeyRingError):
        KeyRing.load(key_dir)


@pytest.mark.parametrize(
    "content", [b"", b"not a pem", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"]
)
def test_malformed_pub_fails_fast(key_dir: Path, content: bytes) -> None:
    (key_dir / "k9.pub").write_bytes(content)
    with pytest.raises(KeyRingError):
        KeyRing.load(key_dir)


def test_non_ed25519_key_is_refused(key_dir: Path) -> None:
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    (key_dir / "k9.pub").write_bytes(
        p256.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(KeyRingError):
        KeyRing.load(key_dir)


@pytest.mark.parametrize("content", ["", "../k1", "k1 k2", "nope"])
def test_bad_active_file_fails_fast(key_dir: Path, content: str) -> None:
    (key_dir / "active").write_text(content)
    with pytest.raises(KeyRingError):
        KeyRing.load(key_dir)


def test_missing_or_empty_directory_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(KeyRingError):
        KeyRing.load(tmp_path / "absent")
    with pytest.raises(KeyRingError):
        KeyRing.load(tmp_path)


def test_kubernetes_secret_layout_with_symlinks_loads(key_dir: Path, tmp_path: Path) -> None:
    # A mounted Secret: visible names are symlinks into a hidden, timestamped data directory.
    mount = tmp_path / "mount"
    data = mount / "..2026_01_01_00_00_00.1"
    shutil.copytree(key_dir, data)
    (mount / "..data").symlink_to(data.name)
    for name in ["k1.pub", "k1.key", "active"]:
        (mount / name).symlink_to(f"..data/{name}")
    ring = KeyRing.load(mount)
    assert ring.can_sign and ring.kids == ["k1"]


@pytest.mark.parametrize("kid", [None, 1, ["k1"], {"k": "k1"}, "", "k" * 65, "../keys/k1", "K1", "k1 "])
def test_public_key_lookup_of_junk_kids_is_none(ring: KeyRing, kid: object) -> None:
    assert ring.public_key(kid) is None


def test_jwks_is_public_only_and_usable_by_a_standard_client(ring: KeyRing, key_dir: Path) -> None:
    generate_key(key_dir, kid="k2", activate=False)
    ring = KeyRing.load(key_dir)
    jwks = ring.jwks()
    assert [set(key) for key in jwks["keys"]] == [{"kty", "crv", "x", "kid", "use", "alg"}] * 2
    for key in jwks["keys"]:
        assert "d" not in key
        assert (key["kty"], key["crv"], key["use"], key["alg"]) == ("OKP", "Ed25519", "sig", "EdDSA")
        raw = base64.urlsafe_b64decode(key["x"] + "=" * (-len(key["x"]) % 4))
        public = ring.public_key(key["kid"])
        assert public is not None
        assert raw == public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    # A verifier elsewhere, given only the JWKS, checks a signature made with k1's private key.
    private = ring.signing_key().private_key
    token = jwt.encode({"x": 1}, private, algorithm="EdDSA")
    k1 = jwt.PyJWKSet.from_dict(jwks)["k1"]
    assert jwt.decode(token, k1.key, algorithms=["EdDSA"]) == {"x": 1}
