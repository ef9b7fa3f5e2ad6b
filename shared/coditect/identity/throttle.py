"""Identity's rate-limit policies (numbers from the settings; see docs/identity.md)."""

from __future__ import annotations

from dataclasses import replace

from coditect.config import Settings
from coditect.ratelimit import Policy


def login_account(s: Settings) -> Policy:
    """Attempts per account (normalised email); one probe after each block (lockout)."""
    return Policy(
        "login-account",
        s.login_account_limit,
        s.login_account_window,
        s.login_account_backoff,
        s.login_account_backoff_cap,
        probe_after_block=True,
    )


def login_ip(s: Settings) -> Policy:
    """Attempts per client IP across accounts (credential stuffing); successes are forgiven."""
    return Policy(
        "login-ip",
        s.login_ip_limit,
        s.login_ip_window,
        s.login_ip_backoff,
        s.login_ip_backoff_cap,
        probe_after_block=True,
    )


def password_change(s: Settings) -> Policy:
    """Current-password checks per user: a stolen access token cannot brute-force the password.
    The same numbers as the per-account login limit, counted separately."""
    return replace(login_account(s), name="password-change")


def register_ip(s: Settings) -> Policy:
    return Policy(
        "register-ip",
        s.register_ip_limit,
        s.register_ip_window,
        s.register_ip_window,
        s.register_ip_window * 8,
    )


def refresh_ip(s: Settings) -> Policy:
    return Policy(
        "refresh-ip", s.refresh_ip_limit, s.refresh_ip_window, s.refresh_ip_window, s.refresh_ip_window * 8
    )
