"""Cookie mode of register/login/refresh/logout (coditect.identity.cookies): the refresh token in an
HttpOnly, SameSite=Strict cookie scoped to the refresh and logout paths, the CSRF checks (allowed
Origin + the custom header), and JSON mode unchanged."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from coditect.identity.cookies import COOKIE_NAME, LOGOUT_PATH, MODE_HEADER, REFRESH_PATH
from tests.helpers import check_envelope
from tests.plugins.identity import Accounts, FakeClock, strong_password

ORIGIN = "http://127.0.0.1:8080"  # in the default cors_origins
COOKIE_MODE = {MODE_HEADER: "cookie", "Origin": ORIGIN}


def set_cookies(response: Any) -> list[str]:
    return response.headers.getlist("Set-Cookie")


def attributes(header: str) -> tuple[str, dict[str, str]]:
    first, *rest = [part.strip() for part in header.split(";")]
    attrs = {}
    for part in rest:
        name, _, value = part.partition("=")
        attrs[name.lower()] = value
    return first, attrs


def token_of(response: Any) -> str:
    """The refresh token in the cookie scoped to the refresh path."""
    for header in set_cookies(response):
        first, attrs = attributes(header)
        if attrs["path"] == REFRESH_PATH:
            name, _, value = first.partition("=")
            assert name == COOKIE_NAME
            return value
    raise AssertionError(f"no refresh cookie in {set_cookies(response)}")


def register_cookie(accounts: Accounts, headers: dict[str, str] | None = None) -> Any:
    body = {"email": f"c{secrets.token_hex(6)}@example.test", "password": strong_password(), "name": "C"}
    return accounts.client("register").post(
        "/api/v5/auth/register", json=body, headers=headers or COOKIE_MODE
    )


def refresh_with(accounts: Accounts, token: str, headers: dict[str, str] | None = None, **kw: Any) -> Any:
    client = accounts.client("refresh")
    # the test client's cookie jar (it replaces any Cookie header): as the browser would send it
    client.set_cookie(COOKIE_NAME, token, path=REFRESH_PATH)
    return client.post(REFRESH_PATH, headers=headers or COOKIE_MODE, **kw)


def test_register_in_cookie_mode_sets_httponly_strict_cookies_on_two_paths_only(accounts: Accounts) -> None:
    response = register_cookie(accounts)
    data = check_envelope(response, 201)
    assert "refresh_token" not in data["tokens"], "the body must not carry the refresh token"
    assert data["tokens"]["access_token"] and data["tokens"]["token_type"] == "Bearer"
    cookies = [attributes(h) for h in set_cookies(response)]
    assert sorted(a["path"] for _, a in cookies) == sorted([REFRESH_PATH, LOGOUT_PATH])
    for first, attrs in cookies:
        assert first.startswith(f"{COOKIE_NAME}=crt_")
        assert "httponly" in attrs and attrs["samesite"] == "Strict"
        assert "secure" not in attrs, "an http origin gets no Secure flag (the browser would drop it)"
        assert int(attrs["max-age"]) > 86400
        assert "domain" not in attrs, "host-only cookie"


def test_https_origin_gets_secure_cookie(accounts: Accounts, monkeypatch: pytest.MonkeyPatch) -> None:
    from coditect.config import get_settings

    origin = "https://console.example.test"
    monkeypatch.setenv("CODITECT_CORS_ORIGINS", json.dumps([origin]))
    get_settings.cache_clear()  # before the first client: each function reads its settings once
    response = register_cookie(accounts, {MODE_HEADER: "cookie", "Origin": origin})
    check_envelope(response, 201)
    assert all("Secure" in h.split("; ") for h in set_cookies(response))


def test_refresh_in_cookie_mode_rotates_the_cookie_and_reuse_revokes(
    accounts: Accounts, identity_clock: FakeClock
) -> None:
    first = token_of(register_cookie(accounts))
    response = refresh_with(accounts, first)
    data = check_envelope(response, 200)
    assert "refresh_token" not in data["tokens"] and data["tokens"]["access_token"]
    second = token_of(response)
    assert second != first
    # the successor works once more; the first one, replayed after the grace, is reuse
    third = token_of(check_envelope_response(refresh_with(accounts, second), 200))
    assert third not in (first, second)
    identity_clock.t += 60  # past the grace window: replaying a spent cookie is reuse
    check_envelope(refresh_with(accounts, first), 401, "refresh_token_reused")
    check_envelope(refresh_with(accounts, third), 401, "session_revoked")


def check_envelope_response(response: Any, status: int) -> Any:
    check_envelope(response, status)
    return response


def test_refresh_cookie_mode_with_empty_json_object_body(accounts: Accounts) -> None:
    token = token_of(register_cookie(accounts))
    check_envelope(refresh_with(accounts, token, json={}), 200)


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({MODE_HEADER: "cookie"}, 403, "origin_not_allowed"),  # no Origin
        ({MODE_HEADER: "cookie", "Origin": "https://evil.example"}, 403, "origin_not_allowed"),
        ({MODE_HEADER: "cookie", "Origin": "null"}, 403, "origin_not_allowed"),
        ({MODE_HEADER: "cookie", "Origin": ORIGIN + "/"}, 403, "origin_not_allowed"),  # exact match only
        ({MODE_HEADER: "bearer", "Origin": ORIGIN}, 400, "invalid_token_mode"),
    ],
)
def test_cookie_mode_csrf_rejections(
    accounts: Accounts, headers: dict[str, str], status: int, code: str
) -> None:
    token = token_of(register_cookie(accounts))
    check_envelope(refresh_with(accounts, token, headers), status, code)
    # nothing was spent: the token still rotates with the right headers
    check_envelope(refresh_with(accounts, token), 200)
    # and a login/register asked in cookie mode from a foreign origin does not happen either
    before = register_cookie(accounts, headers)
    check_envelope(before, status, code)
    assert not set_cookies(before)


def test_cookie_without_the_mode_header_is_ignored(accounts: Accounts) -> None:
    """A cross-site form can make the browser send the cookie, not the header: no header, no cookie use."""
    token = token_of(register_cookie(accounts))
    client = accounts.client("refresh")
    client.set_cookie(COOKIE_NAME, token, path=REFRESH_PATH)
    response = client.post(REFRESH_PATH, headers={"Origin": ORIGIN})
    error = check_envelope(response, 422, "validation_failed")
    assert error["details"] == [{"loc": ["body", "refresh_token"], "type": "missing"}]
    check_envelope(refresh_with(accounts, token), 200)


def test_cookie_mode_without_cookie_or_with_body_token(accounts: Accounts) -> None:
    token = token_of(register_cookie(accounts))
    client = accounts.client("refresh")
    client.delete_cookie(COOKIE_NAME, path=REFRESH_PATH)
    check_envelope(client.post(REFRESH_PATH, headers=COOKIE_MODE), 401, "refresh_token_missing")
    check_envelope(refresh_with(accounts, token, json={"refresh_token": token}), 400, "token_mode_conflict")


def test_logout_in_cookie_mode_expires_both_cookies_and_revokes(accounts: Accounts) -> None:
    response = register_cookie(accounts)
    data = check_envelope(response, 201)
    token = token_of(response)
    bearer = {"Authorization": f"Bearer {data['tokens']['access_token']}"}
    out = accounts.client("logout").post(LOGOUT_PATH, headers={**COOKIE_MODE, **bearer})
    check_envelope(out, 204)
    cleared = [attributes(h) for h in set_cookies(out)]
    assert sorted(a["path"] for _, a in cleared) == sorted([REFRESH_PATH, LOGOUT_PATH])
    assert all(first == f"{COOKIE_NAME}=" and a["max-age"] == "0" for first, a in cleared)
    check_envelope(refresh_with(accounts, token), 401, "session_revoked")
    # cookie-mode logout from a foreign origin is refused before anything happens
    evil = {MODE_HEADER: "cookie", "Origin": "https://evil.example", **bearer}
    check_envelope(accounts.client("logout").post(LOGOUT_PATH, headers=evil), 403, "origin_not_allowed")


def test_json_mode_unchanged(accounts: Accounts) -> None:
    alice = accounts.register()
    response = accounts.client("refresh").post(REFRESH_PATH, json={"refresh_token": alice.refresh_token})
    data = check_envelope(response, 200)
    assert set(data["tokens"]) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert not set_cookies(response)
    login = accounts.login(alice.email, alice.password)
    assert set(check_envelope(login, 200)["tokens"]) == {
        "access_token",
        "refresh_token",
        "token_type",
        "expires_in",
    }
    assert not set_cookies(login)
    # explicit json mode is the same
    explicit = accounts.client("refresh").post(
        REFRESH_PATH, json={"refresh_token": data["tokens"]["refresh_token"]}, headers={MODE_HEADER: "json"}
    )
    assert "refresh_token" in check_envelope(explicit, 200)["tokens"]
    out = accounts.client("logout").post(
        LOGOUT_PATH, headers={"Authorization": f"Bearer {alice.access_token}"}
    )
    check_envelope(out, 204)
    assert not set_cookies(out)
