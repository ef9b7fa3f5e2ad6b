"""Issuing and verifying EdDSA access tokens (coditect.identity.access_tokens), including rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coditect.errors import Unauthorized
from coditect.identity.access_tokens import (
    MAX_ACCESS_TOKEN_TTL,
    REQUIRED_CLAIMS,
    AccessClaims,
    issue_access_token,
    verify_access_token,
)
from coditect.identity.signing_keys import KeyRing, KeyRingError, generate_key

ISS = "https://coditect.test/api/v5/auth"
AUD = "coditect-v5-api"
NOW = 1_700_000_000
USER, TENANT, SESSION = (str(uuid.uuid4()) for _ in range(3))
MESSAGES = {"The access token is invalid.", "The access token has expired."}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact(header: dict[str, Any], payload: Any, sign: Callable[[bytes], bytes]) -> str:
    """A hand-built JWS, so tests can make tokens PyJWT itself would refuse to produce."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def claims(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "iss": ISS, "aud": AUD, "sub": USER, "tid": TENANT, "sid": SESSION,
        "jti": str(uuid.uuid4()), "iat": NOW, "nbf": NOW, "exp": NOW + 900, "role": "member",
    }  # fmt: skip
    payload.update(changes)
    return payload


def header(**changes: Any) -> dict[str, Any]:
    return {"alg": "EdDSA", "kid": "k1", "typ": "at+jwt", **changes}


@pytest.fixture
def forge(key_dir: Path) -> Callable[..., str]:
    """Sign arbitrary header/payload with OUR active private key (what only a bug could emit)."""
    private = KeyRing.load(key_dir).signing_key().private_key

    def make(payload: Any = None, hdr: dict[str, Any] | None = None) -> str:
        return compact(hdr or header(), claims() if payload is None else payload, private.sign)

    return make


def issue(ring: KeyRing, **overrides: Any) -> tuple[str, AccessClaims]:
    args: dict[str, Any] = {
        "issuer": ISS, "audience": AUD, "user_id": USER, "tenant_id": TENANT,
        "session_id": SESSION, "role": "admin", "ttl_seconds": 900, "now": NOW,
    }  # fmt: skip
    args.update(overrides)
    return issue_access_token(ring, **args)


def verify(ring: KeyRing, token: Any, *, now: float = NOW + 1, leeway: float = 30) -> AccessClaims:
    return verify_access_token(ring, token, issuer=ISS, audience=AUD, leeway=leeway, now=now)


def rejected(ring: KeyRing, token: Any, code: str = "token_invalid", *, now: float = NOW + 1) -> None:
    with pytest.raises(Unauthorized) as caught:
        verify(ring, token, now=now)
    error = caught.value
    assert (error.status, error.code) == (401, code)
    assert error.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert error.message in MESSAGES  # fixed text: nothing from the underlying exception


# --- Happy path and issuing --------------------------------------------------------------------


def test_issue_then_verify_round_trips(ring: KeyRing) -> None:
    token, issued = issue(ring)
    header_segment = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header_segment == {"alg": "EdDSA", "kid": "k1", "typ": "at+jwt"}
    assert verify(ring, token) == issued
    assert (issued.sub, issued.tid, issued.sid, issued.role) == (USER, TENANT, SESSION, "admin")
    assert (issued.iat, issued.nbf, issued.exp) == (NOW, NOW, NOW + 900)
    assert uuid.UUID(issued.jti).version == 4
    assert issue(ring)[1].jti != issued.jti


def test_ids_are_signed_in_canonical_form(ring: KeyRing) -> None:
    user = uuid.uuid4()
    _, issued = issue(ring, user_id=user, tenant_id=TENANT.upper())
    assert (issued.sub, issued.tid) == (str(user), TENANT)


@pytest.mark.parametrize(
    "overrides",
    [
        {"ttl_seconds": MAX_ACCESS_TOKEN_TTL + 1}, {"ttl_seconds": 0}, {"ttl_seconds": True},
        {"role": "root"}, {"user_id": "42"}, {"session_id": ""}, {"issuer": ""},
    ],
)  # fmt: skip
def test_issue_refuses_arguments_no_valid_token_carries(ring: KeyRing, overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        issue(ring, **overrides)


def test_leeway_above_30_seconds_is_a_programming_error(ring: KeyRing) -> None:
    token, _ = issue(ring)
    with pytest.raises(ValueError):
        verify(ring, token, leeway=31)


# --- Time, with an injected clock --------------------------------------------------------------


def test_expiry_boundaries_with_leeway(ring: KeyRing) -> None:
    token, issued = issue(ring, ttl_seconds=600)
    assert verify(ring, token, now=issued.exp + 29) == issued
    rejected(ring, token, "token_expired", now=issued.exp + 30)
    rejected(ring, token, "token_expired", now=issued.exp + 10_000)
    with pytest.raises(Unauthorized) as caught:
        verify(ring, token, now=issued.exp, leeway=0)
    assert caught.value.code == "token_expired"


def test_not_yet_valid_is_invalid_not_expired(ring: KeyRing) -> None:
    token, issued = issue(ring)
    assert verify(ring, token, now=issued.nbf - 30) == issued  # within leeway
    rejected(ring, token, now=issued.nbf - 31)


def test_nbf_in_the_future(ring: KeyRing, forge: Callable[..., str]) -> None:
    rejected(ring, forge(claims(nbf=NOW + 300)), now=NOW)


def test_iat_in_the_future(ring: KeyRing, forge: Callable[..., str]) -> None:
    rejected(ring, forge(claims(iat=NOW + 300, nbf=NOW + 300, exp=NOW + 600)), now=NOW)


def test_lifetime_longer_than_the_maximum_is_refused(ring: KeyRing, forge: Callable[..., str]) -> None:
    rejected(ring, forge(claims(exp=NOW + MAX_ACCESS_TOKEN_TTL + 1)))


def test_expired_forgery_says_invalid_not_expired(ring: KeyRing) -> None:
    # Expiry is only reported for a token whose signature is ours.
    stranger = Ed25519PrivateKey.generate()
    rejected(ring, compact(header(), claims(exp=NOW - 5000, iat=NOW - 5500, nbf=NOW - 5500), stranger.sign))


# --- Algorithm and key confusion ---------------------------------------------------------------


def test_alg_none(ring: KeyRing) -> None:
    rejected(ring, compact(header(alg="none"), claims(), lambda _: b""))
    rejected(ring, compact(header(alg="none"), claims(), lambda _: b"x"))
    rejected(ring, compact(header(alg="None"), claims(), lambda _: b"x"))


def test_signed_by_another_ed25519_key_with_our_kid(ring: KeyRing) -> None:
    rejected(ring, compact(header(), claims(), Ed25519PrivateKey.generate().sign))


def test_hs256_signed_with_our_public_key(ring: KeyRing, key_dir: Path) -> None:
    public = ring.public_key("k1")
    assert public is not None
    secrets_tried = [
        (key_dir / "k1.pub").read_bytes(),
        public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
    ]
    for secret in secrets_tried:

        def mac(data: bytes, secret: bytes = secret) -> bytes:
            return hmac.new(secret, data, hashlib.sha256).digest()

        rejected(ring, compact(header(alg="HS256"), claims(), mac))


def test_eddsa_alg_but_not_our_typ(ring: KeyRing, forge: Callable[..., str]) -> None:
    for typ in ["JWT", "at+JWT", "application/at+jwt", "", None]:
        rejected(ring, forge(hdr=header(typ=typ)))
    rejected(ring, forge(hdr={"alg": "EdDSA", "kid": "k1"}))


# --- Header: kid and remote key references -----------------------------------------------------


def test_unknown_kid(ring: KeyRing, forge: Callable[..., str]) -> None:
    rejected(ring, forge(hdr=header(kid="k2")))
    rejected(ring, forge(hdr={"alg": "EdDSA", "typ": "at+jwt"}))  # no kid at all


@pytest.mark.parametrize("kid", [None, 1, True, ["k1"], {"kid": "k1"}, "", "k" * 5000, "../k1", "k1\x00"])
def test_junk_kid(ring: KeyRing, forge: Callable[..., str], kid: object) -> None:
    rejected(ring, forge(hdr=header(kid=kid)))


@pytest.mark.parametrize(
    "extra",
    [
        {"jku": "https://evil.example/jwks.json"},
        {"x5u": "https://evil.example/cert.pem"},
        {"x5c": ["MIIB"]},
        {"crit": ["exp"]},
        {"b64": False, "crit": ["b64"]},
    ],
)
def test_remote_key_and_extension_headers_are_refused(
    ring: KeyRing, forge: Callable[..., str], extra: dict[str, Any]
) -> None:
    # Even with a valid signature by our own key: we never follow them, and never accept them.
    rejected(ring, forge(hdr=header(**extra)))


def test_embedded_jwk_header_is_refused(ring: KeyRing) -> None:
    attacker = Ed25519PrivateKey.generate()
    raw = attacker.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}
    rejected(ring, compact(header(jwk=jwk), claims(), attacker.sign))
    rejected(ring, compact({"alg": "EdDSA", "typ": "at+jwt", "jwk": jwk}, claims(), attacker.sign))


# --- Claims ------------------------------------------------------------------------------------


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_missing_claim(ring: KeyRing, forge: Callable[..., str], claim: str) -> None:
    payload = claims()
    del payload[claim]
    rejected(ring, forge(payload))
    rejected(ring, forge(claims(**{claim: None})))


@pytest.mark.parametrize(
    "iss",
    [ISS + ".evil.example", ISS + "/", ISS[:-1], "x" + ISS, ISS.upper(), "", [ISS], "https://evil.example"],
)
def test_wrong_issuer_including_prefixes_and_suffixes(
    ring: KeyRing, forge: Callable[..., str], iss: Any
) -> None:
    rejected(ring, forge(claims(iss=iss)))


@pytest.mark.parametrize("aud", ["other-api", AUD + "x", AUD[:-1], [AUD], [AUD, "other"], ""])
def test_wrong_audience(ring: KeyRing, forge: Callable[..., str], aud: Any) -> None:
    rejected(ring, forge(claims(aud=aud)))


@pytest.mark.parametrize("role", ["superuser", "Owner", "", ["owner"], 1])
def test_unknown_role(ring: KeyRing, forge: Callable[..., str], role: Any) -> None:
    rejected(ring, forge(claims(role=role)))


@pytest.mark.parametrize("claim", ["sub", "tid", "sid", "jti"])
@pytest.mark.parametrize("value", ["42", USER.upper(), "{" + USER + "}", USER.replace("-", ""), 7, [USER]])
def test_ids_must_be_canonical_uuid_strings(
    ring: KeyRing, forge: Callable[..., str], claim: str, value: Any
) -> None:
    rejected(ring, forge(claims(**{claim: value})))


@pytest.mark.parametrize("claim", ["iat", "nbf", "exp"])
@pytest.mark.parametrize("kind", [float, str, bool])
def test_times_must_be_integers(ring: KeyRing, forge: Callable[..., str], claim: str, kind: type) -> None:
    rejected(ring, forge(claims(**{claim: kind(claims()[claim])})))


def test_forged_claims_with_our_key_but_valid_shape_do_verify(
    ring: KeyRing, forge: Callable[..., str]
) -> None:
    # Control for the negatives above: the forge helper itself makes acceptable tokens.
    assert verify(ring, forge()).role == "member"


# --- Tampering and garbage ---------------------------------------------------------------------


def test_tampered_payload(ring: KeyRing) -> None:
    token, _ = issue(ring)
    head, _, signature = token.split(".")
    escalated = b64(json.dumps(claims(role="owner")).encode())
    rejected(ring, f"{head}.{escalated}.{signature}")


def test_tampered_signature(ring: KeyRing) -> None:
    token, _ = issue(ring)
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    rejected(ring, flipped)
    rejected(ring, token.rsplit(".", 1)[0] + ".")


@pytest.mark.parametrize(
    "junk",
    [
        "", "abc", "a.b", "a.b.c", "...", "a.b.c.d.e", "x" * 10_000, "Bearer x.y.z",
        secrets.token_urlsafe(43),  # what an opaque refresh token or ticket looks like
        "eyJhbGciOiJFZERTQSJ9.bm90IGpzb24.AAAA", "e30.e30.AAAA", "W10.W10.AAAA",
        None, 123, b"a.b.c", "\u210c.\u210c.\u210c",
    ],
)  # fmt: skip
def test_garbage(ring: KeyRing, junk: Any) -> None:
    rejected(ring, junk)


def test_whitespace_around_a_valid_token_is_not_accepted(ring: KeyRing) -> None:
    token, _ = issue(ring)
    rejected(ring, f" {token}")
    rejected(ring, f"{token}\n")


# --- Key rotation ------------------------------------------------------------------------------


def test_key_rotation_end_to_end(key_dir: Path, tmp_path: Path) -> None:
    old_token, _ = issue(KeyRing.load(key_dir))

    # 1. Publish k2 without activating it: k1 still signs, both verify.
    generate_key(key_dir, kid="k2", activate=False)
    ring = KeyRing.load(key_dir)
    published_token, published = issue(ring)
    assert ring.signing_key().kid == "k1" and published.jti
    assert json.loads(base64.urlsafe_b64decode(published_token.split(".")[0] + "=="))["kid"] == "k1"

    # 2. Switch: new tokens carry k2; the old token still verifies (k1.pub is still there).
    (key_dir / "active").write_text("k2\n")
    ring = KeyRing.load(key_dir)
    new_token, _ = issue(ring)
    assert json.loads(base64.urlsafe_b64decode(new_token.split(".")[0] + "=="))["kid"] == "k2"
    verifier = KeyRing.load(_pub_only(key_dir, tmp_path / "verifier"))
    for token in (old_token, new_token):
        verify(ring, token)
        verify(verifier, token)

    # 3. Retire k1 after the maximum lifetime: its tokens fail, k2's still verify.
    (key_dir / "k1.pub").unlink()
    (key_dir / "k1.key").unlink()
    ring = KeyRing.load(key_dir)
    rejected(ring, old_token)
    verify(ring, new_token)


def test_verify_only_ring_verifies_but_cannot_issue(key_dir: Path, tmp_path: Path) -> None:
    token, issued = issue(KeyRing.load(key_dir))
    verifier = KeyRing.load(_pub_only(key_dir, tmp_path / "verifier"))
    assert verify(verifier, token) == issued
    with pytest.raises(KeyRingError):
        issue(verifier)


def _pub_only(source: Path, target: Path) -> Path:
    target.mkdir()
    for pub in source.glob("*.pub"):
        shutil.copy(pub, target / pub.name)
    return target
