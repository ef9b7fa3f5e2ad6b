"""A benchmark's account: registered through the real register function over HTTP, as a user would."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Account:
    email: str
    password: str
    access_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def register(base_url: str, timeout: float = 60.0) -> Account:
    """A new account in a new tenant, through `POST /api/v5/auth/register` at `base_url` (the
    front door or the register function itself); raises unless it answers 201."""
    email, password = f"bench-{secrets.token_hex(4)}@example.test", f"quartz-{secrets.token_hex(8)}"
    answer = httpx.post(
        base_url + "/api/v5/auth/register",
        json={"email": email, "password": password, "name": "Bench"},
        timeout=timeout,
    )
    if answer.status_code != 201:
        raise RuntimeError(f"register answered {answer.status_code}: {answer.text}")
    return Account(email, password, answer.json()["data"]["tokens"]["access_token"])
