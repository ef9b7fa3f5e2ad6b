"""Fixtures for the files functions: real accounts, real sessions, in-process functions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.helpers import check_envelope


@dataclass
class Files:
    """The three in-process functions files tests talk to, and shortcuts to their routes."""

    accounts: Any

    @property
    def files(self) -> Any:
        return self.accounts.client("files")

    @property
    def ops(self) -> Any:
        return self.accounts.client("files-ops")

    @property
    def db(self) -> Any:
        return self.accounts.app("files").db

    def session(self, account: Any, name: str = "work") -> str:
        response = self.accounts.client("sessions").post(
            "/api/v5/sessions", json={"name": name}, headers=account.headers
        )
        return str(check_envelope(response, 201)["id"])

    @staticmethod
    def url(sid: str, path: str = "") -> str:
        return f"/api/v5/sessions/{sid}/files" + (f"/{path}" if path else "")

    def put(self, account: Any, sid: str, path: str, data: bytes, **kwargs: Any) -> Any:
        headers = {**account.headers, **kwargs.pop("headers", {})}
        return self.files.put(self.url(sid, path), data=data, headers=headers, **kwargs)

    def get(self, account: Any, sid: str, path: str, **kwargs: Any) -> Any:
        headers = {**account.headers, **kwargs.pop("headers", {})}
        return self.files.get(self.url(sid, path), headers=headers, **kwargs)

    def op(self, account: Any, sid: str, name: str, **kwargs: Any) -> Any:
        headers = {**account.headers, **kwargs.pop("headers", {})}
        method = self.ops.get if name in ("versions", "changes") else self.ops.post
        return method(f"/api/v5/sessions/{sid}/files:{name}", headers=headers, **kwargs)

    def listing(self, account: Any, sid: str, **query: Any) -> Any:
        return self.files.get(self.url(sid), headers=account.headers, query_string=query)


@pytest.fixture
def fx(accounts: Any) -> Iterator[Files]:
    yield Files(accounts)
