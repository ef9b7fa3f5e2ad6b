"""Access-token negatives through a real function (users): each is 401 with WWW-Authenticate.

The exhaustive matrix of malformed tokens is in tests/unit/auth/test_auth_access_tokens.py; here
every category goes through the HTTP middleware at least once.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coditect.config import get_settings
from coditect.identity import keyring
from coditect.identity.access_tokens import REQUIRED_CLAIMS
from coditect.identity.signing_keys import KeyRing, generate_key
from tests.functional.identity.conftest import claims_of, forge, forge_raw
from tests.helpers import check_envelope
from tests.plugins.identity import Account, Accounts, FakeClock


def get_me(accounts: Accounts, token: str | None, *, raw_header: str | None = None) -> Any:
    headers = {}
    if raw_header is not None:
        headers["Authorization"] = raw_header
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return accounts.client("users").get("/api/v5/users/me", headers=headers)


def assert_401(response: Any, code: str = "token_invalid") -> None:
    check_envelope(response, 401, code)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.fixture
def alice(accounts: Accounts) -> Account:
    return accounts.register()


def valid_claims(alice: Account, **overrides: Any) -> dict[str, Any]:
    t = int(time.time())
    claims = claims_of(alice.access_token) | {"iat": t, "nbf": t, "exp": t + 600}
    claims.update(overrides)
    return claims


def test_a_genuine_token_works_and_forgeries_with_our_key_of_the_same_shape_work(
    accounts: Accounts, alice: Account, signing_ring: KeyRing
) -> None:
    check_envelope(get_me(accounts, alice.access_token), 200)
    # Sanity for the forger below: with our key and valid claims a forged token is accepted.
    check_envelope(get_me(accounts, forge(signing_ring, valid_claims(alice))), 200)


def test_missing_and_malformed_authorization(accounts: Accounts, alice: Account) -> None:
    assert_401(get_me(accounts, None), "token_missing")
    for header in (
        "Basic abc",
        "Bearer",
        "Bearer ",
        f"bearer  {alice.access_token}",
        f"Token {alice.access_token}",
    ):
        assert_401(get_me(accounts, None, raw_header=header))


def test_alg_none(accounts: Accounts, alice: Account) -> None:
    token = jwt.encode(valid_claims(alice), None, algorithm="none", headers={"typ": "at+jwt"})
    assert_401(get_me(accounts, token))


def test_wrong_key(accounts: Accounts, alice: Account, signing_ring: KeyRing) -> None:
    other = Ed25519PrivateKey.generate()
    assert_401(get_me(accounts, forge(signing_ring, valid_claims(alice), key=other)))


def test_hs256_signed_with_our_public_key(accounts: Accounts, alice: Account, identity_env: Path) -> None:
    kid = (identity_env / "active").read_text().strip()
    pem = (identity_env / f"{kid}.pub").read_bytes()
    header = {"alg": "HS256", "kid": kid, "typ": "at+jwt"}
    segments = [
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")
        for part in (header, valid_claims(alice))
    ]
    import hashlib
    import hmac

    signing_input = b".".join(segments)
    signature = base64.urlsafe_b64encode(hmac.new(pem, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    assert_401(get_me(accounts, (signing_input + b"." + signature).decode()))


def test_expired(accounts: Accounts, alice: Account, signing_ring: KeyRing) -> None:
    t = int(time.time()) - 3600
    assert_401(
        get_me(accounts, forge(signing_ring, valid_claims(alice, iat=t, nbf=t, exp=t + 900))), "token_expired"
    )


def test_expired_by_the_clock(accounts: Accounts, alice: Account, identity_clock: FakeClock) -> None:
    check_envelope(get_me(accounts, alice.access_token), 200)  # now in the verified-token cache
    # From the token's own `exp`: alice's token was issued before the fake clock started, by
    # the real one, so "start + 929 s" was past the leeway whenever a second boundary fell in between.
    exp = claims_of(alice.access_token)["exp"]
    identity_clock.set(exp + 29)
    check_envelope(get_me(accounts, alice.access_token), 200)  # within the 30 s leeway
    identity_clock.set(exp + 30)  # PyJWT's boundary: expired once exp <= now - leeway
    assert_401(get_me(accounts, alice.access_token), "token_expired")


def test_nbf_in_the_future(accounts: Accounts, alice: Account, signing_ring: KeyRing) -> None:
    t = int(time.time())
    assert_401(get_me(accounts, forge(signing_ring, valid_claims(alice, iat=t, nbf=t + 120, exp=t + 600))))


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_missing_claim(accounts: Accounts, alice: Account, signing_ring: KeyRing, claim: str) -> None:
    claims = valid_claims(alice)
    del claims[claim]
    assert_401(get_me(accounts, forge(signing_ring, claims)))


@pytest.mark.parametrize(
    "iss", ["https://coditect.local.evil", "https://coditect.loca", "", "HTTPS://CODITECT.LOCAL"]
)
def test_wrong_or_prefix_issuer(accounts: Accounts, alice: Account, signing_ring: KeyRing, iss: str) -> None:
    assert get_settings().issuer == "https://coditect.local"
    assert_401(get_me(accounts, forge(signing_ring, valid_claims(alice, iss=iss))))


@pytest.mark.parametrize("aud", ["coditect", "coditect-api-x", ["coditect-api", "other"], ""])
def test_wrong_audience(accounts: Accounts, alice: Account, signing_ring: KeyRing, aud: Any) -> None:
    assert_401(get_me(accounts, forge(signing_ring, valid_claims(alice, aud=aud))))


@pytest.mark.parametrize("kid", ["unknown-kid", "../../etc/passwd", "", 7, None])
def test_unknown_or_junk_kid(accounts: Accounts, alice: Account, signing_ring: KeyRing, kid: Any) -> None:
    headers: dict[str, Any] = {"alg": "EdDSA", "typ": "at+jwt"}
    if kid is not None:
        headers["kid"] = kid
    assert_401(get_me(accounts, forge_raw(signing_ring, headers, valid_claims(alice))))


def test_jku_and_jwk_headers(accounts: Accounts, alice: Account, signing_ring: KeyRing) -> None:
    kid = signing_ring.signing_key().kid
    attacker = Ed25519PrivateKey.generate()
    x = (
        base64.urlsafe_b64encode(
            attacker.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
        .rstrip(b"=")
        .decode()
    )
    for extra in (
        {"jku": "https://attacker.example/jwks.json"},
        {"x5u": "https://attacker.example/cert.pem"},
        {"jwk": {"kty": "OKP", "crv": "Ed25519", "x": x}},
    ):
        # Signed with OUR key, so only the header parameter itself can be the reason for refusal.
        token = forge(signing_ring, valid_claims(alice), headers={"kid": kid, "typ": "at+jwt", **extra})
        assert_401(get_me(accounts, token))
    self_signed = forge(
        signing_ring,
        valid_claims(alice),
        key=attacker,
        headers={"kid": kid, "typ": "at+jwt", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": x}},
    )
    assert_401(get_me(accounts, self_signed))


def test_refresh_token_or_ticket_used_as_access_token(accounts: Accounts, alice: Account) -> None:
    assert_401(get_me(accounts, alice.refresh_token))
    # A workspace ticket is an opaque random string (see coditect.workspaces): same treatment.
    assert_401(get_me(accounts, "tkt_" + "A" * 43))
    invite = check_envelope(
        accounts.client("tenant").post(
            "/api/v5/tenant/invites", json={"role": "member"}, headers=alice.headers
        ),
        201,
    )["invite_token"]
    assert_401(get_me(accounts, invite))


def test_tampered_payload(accounts: Accounts, alice: Account) -> None:
    head, _payload, sig = alice.access_token.split(".")
    claims = claims_of(alice.access_token) | {"role": "owner", "sub": str(uuid.uuid4())}
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert_401(get_me(accounts, f"{head}.{forged_payload}.{sig}"))


def test_revoked_sid(accounts: Accounts, alice: Account) -> None:
    check_envelope(accounts.client("logout").post("/api/v5/auth/logout", headers=alice.headers), 204)
    assert_401(get_me(accounts, alice.access_token), "session_revoked")


def test_disabled_user(accounts: Accounts, alice: Account) -> None:
    bob = accounts.invite(alice)
    check_envelope(get_me(accounts, bob.access_token), 200)
    check_envelope(
        accounts.client("tenant").delete(f"/api/v5/tenant/users/{bob.user_id}", headers=alice.headers), 204
    )
    assert_401(get_me(accounts, bob.access_token), "session_revoked")
    check_envelope(accounts.login(bob.email, bob.password), 401, "invalid_credentials")


def test_key_rotation_without_restart(
    accounts: Accounts, alice: Account, identity_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publish a new key, switch to it: tokens of both keys verify in the running verifier."""
    check_envelope(get_me(accounts, alice.access_token), 200)  # the verifier has cached the ring
    new_kid = generate_key(identity_env, kid="rotated-2", activate=False)
    new_ring = KeyRing.load(identity_env)
    # Force the signer to switch (a roll-out of the signers, simulated by a ring with the new key).
    from coditect.identity.signing_keys import SigningKey

    key = serialization.load_pem_private_key((identity_env / f"{new_kid}.key").read_bytes(), password=None)
    switched = KeyRing({k: new_ring.public_key(k) for k in new_ring.kids}, SigningKey(new_kid, key))  # type: ignore[misc,arg-type]
    token = forge(switched, valid_claims(alice))
    assert jwt.get_unverified_header(token)["kid"] == new_kid
    # The cached verifier has never seen "rotated-2". Within key_reload_interval of its last load
    # an unknown kid does not make it re-read the directory (junk kids cannot force reloads)...
    assert_401(get_me(accounts, token))
    # ...after it, the unknown kid triggers one reload, without a restart.
    later = time.monotonic() + get_settings().key_reload_interval + 1
    monkeypatch.setattr(keyring, "monotonic", lambda: later)
    check_envelope(get_me(accounts, token), 200)
    check_envelope(get_me(accounts, alice.access_token), 200)  # the old key still verifies
    jwks = accounts.client("jwks").get("/api/v5/auth/jwks").get_json()
    assert {k["kid"] for k in jwks["keys"]} >= {new_kid, claims_of_kid(alice.access_token)}


def claims_of_kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])
