"""No secret at rest, in a response or in a log: a full register/login/refresh/logout flow."""

from __future__ import annotations

import base64
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from coditect.config import get_settings
from coditect.identity import tokens
from coditect.identity.accounts import pepper_of
from tests.helpers import check_envelope
from tests.plugins.identity import Accounts


def flow(accounts: Accounts) -> tuple[list[str], list[str], list[str]]:
    """Run every identity endpoint; returns (passwords, tokens, response texts)."""
    responses: list[Any] = []

    def keep(response: Any) -> Any:
        responses.append(response)
        return response

    password, new_password = "first-secret-passphrase-1", "second-secret-passphrase-2"
    body = {"email": "scan@example.test", "password": password, "name": "Scan", "tenant_name": "Scanners"}
    reg = check_envelope(keep(accounts.client("register").post("/api/v5/auth/register", json=body)), 201)
    auth = {"Authorization": f"Bearer {reg['tokens']['access_token']}"}
    log = check_envelope(keep(accounts.login("scan@example.test", password)), 200)
    ref = check_envelope(
        keep(
            accounts.client("refresh").post(
                "/api/v5/auth/refresh", json={"refresh_token": log["tokens"]["refresh_token"]}
            )
        ),
        200,
    )
    inv = check_envelope(
        keep(accounts.client("tenant").post("/api/v5/tenant/invites", json={"role": "member"}, headers=auth)),
        201,
    )
    users = accounts.client("users")
    keep(users.get("/api/v5/users/me", headers=auth))
    keep(users.get("/api/v5/users/me/auth-sessions", headers=auth))
    keep(
        users.put(
            "/api/v5/users/me/password",
            json={"current_password": password, "new_password": new_password},
            headers=auth,
        )
    )
    keep(accounts.client("tenant").get("/api/v5/tenant/users", headers=auth))
    keep(accounts.client("audit").get("/api/v5/audit", headers=auth))
    keep(accounts.login("scan@example.test", "a-wrong-password-attempt"))
    keep(accounts.login("nobody-scan@example.test", "a-wrong-password-attempt"))
    keep(accounts.client("logout").post("/api/v5/auth/logout", headers=auth))
    secrets = [
        reg["tokens"]["access_token"],
        reg["tokens"]["refresh_token"],
        log["tokens"]["access_token"],
        log["tokens"]["refresh_token"],
        ref["tokens"]["access_token"],
        ref["tokens"]["refresh_token"],
        inv["invite_token"],
    ]
    return (
        [password, new_password, "a-wrong-password-attempt"],
        secrets,
        [r.get_data(as_text=True) for r in responses],
    )


def variants(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, base64.b64encode(raw), raw.hex().encode()]


def test_store_holds_no_password_or_token(accounts: Accounts, data_dir: Path) -> None:
    passwords, secrets, _ = flow(accounts)
    db_path = data_dir / "store.db"
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT key, value FROM kv").fetchall()
    assert len(rows) > 20
    for key, value in rows:
        blob = bytes(key) + b"\x00" + bytes(value)
        for secret in passwords + secrets:
            for form in variants(secret):
                assert form not in blob, (secret[:8], bytes(key)[:60])
    # And nothing in the files themselves (WAL included), in any form we know of.
    raw_files = b"".join(p.read_bytes() for p in data_dir.glob("store.db*"))
    for secret in passwords + secrets:
        assert secret.encode() not in raw_files


def test_no_response_carries_a_hash_or_digest(accounts: Accounts) -> None:
    _, secrets, texts = flow(accounts)
    pepper = pepper_of(get_settings())
    digests = [d for s in secrets if (d := tokens.refresh_digest(pepper, s)) is not None]
    digests += [d for s in secrets if (d := tokens.invite_digest(s)) is not None]
    assert len(digests) == 4
    for text in texts:
        assert "$argon2" not in text and "password_hash" not in text and "family_nonce" not in text
        for digest in digests:
            assert (
                digest.hex() not in text and base64.urlsafe_b64encode(digest).decode().rstrip("=") not in text
            )


def test_logs_hold_no_password_token_or_authorization(
    accounts: Accounts, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    passwords, secrets, _ = flow(accounts)
    out, err = capfd.readouterr()
    records = "\n".join(
        f"{r.getMessage()} {getattr(r, 'fields', '')} {r.exc_text or ''}" for r in caplog.records
    )
    assert "login failed" in records  # the logs were captured
    for text in (records, out, err):
        assert "Bearer " not in text and "Authorization" not in text
        for secret in passwords + secrets:
            assert secret not in text
            assert secret.split(".")[-1] not in text  # not even a JWT's signature
