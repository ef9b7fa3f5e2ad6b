"""A store holding every kind of data the ops jobs must back up and check: two tenants, users,
login sessions, workspace sessions, conversations with messages, and files (one multi-chunk),
all made through the real functions in-process."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from coditect.config import Settings, get_settings
from coditect.store import Database, open_store
from tests.helpers import check_envelope


@dataclass
class Populated:
    accounts: Any
    data_dir: Path
    alice: Any
    bob: Any
    sessions: dict[str, str] = field(default_factory=dict)  # name → id (alice's)
    conversation: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    _db: Database | None = field(default=None, repr=False)  # see db()

    @property
    def settings(self) -> Settings:
        return get_settings()

    def db(self) -> Database:
        """The store the functions write: one handle, closed when the fixture ends."""
        if self._db is None:
            self._db = open_store(get_settings().store_url)
        return self._db

    def answers(self, client: Any = None) -> dict[str, Any]:
        """What the API says about alice's data (to compare across a restore)."""
        c = self.accounts.client
        h = self.alice.headers
        sid = self.sessions["main"]
        out: dict[str, Any] = {
            "sessions": check_envelope(c("sessions").get("/api/v5/sessions", headers=h), 200),
            "session": check_envelope(c("sessions").get(f"/api/v5/sessions/{sid}", headers=h), 200),
            "messages": check_envelope(
                c("messages").get(f"/api/v5/conversations/{self.conversation}/messages", headers=h), 200
            ),
            "listing": check_envelope(
                c("files").get(f"/api/v5/sessions/{sid}/files?recursive=true", headers=h), 200
            ),
        }
        for path in self.files:
            r = c("files").get(f"/api/v5/sessions/{sid}/files/{path}", headers=h)
            assert r.status_code == 200
            out[f"file:{path}"] = r.get_data()
        return out


def populate(accounts: Any, data_dir: Path) -> Populated:
    alice = accounts.register(tenant_name="Alpha")
    bob = accounts.register(tenant_name="Beta")
    p = Populated(accounts, data_dir, alice, bob)
    c = accounts.client
    for who, name in ((alice, "main"), (alice, "second"), (bob, "bobs")):
        r = c("sessions").post("/api/v5/sessions", json={"name": name}, headers=who.headers)
        sid = check_envelope(r, 201)["id"]
        if who is alice:
            p.sessions[name] = sid
    sid = p.sessions["main"]
    r = c("conversations").post(
        f"/api/v5/sessions/{sid}/conversations", json={"title": "t"}, headers=alice.headers
    )
    p.conversation = check_envelope(r, 201)["id"]
    for i in range(5):
        body = {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i} " + "x" * (i * 4000)}
        r = c("messages").post(
            f"/api/v5/conversations/{p.conversation}/messages", json=body, headers=alice.headers
        )
        check_envelope(r, 201)
    p.files = {"src/app.py": b"print('hello')\n", "data/big.bin": os.urandom(150_000), "README.md": b"# r\n"}
    for path, data in p.files.items():
        r = c("files").put(f"/api/v5/sessions/{sid}/files/{path}", data=data, headers=alice.headers)
        check_envelope(r, 201)
    r = c("files").put(f"/api/v5/sessions/{sid}/files/src/app.py", data=b"print(2)\n", headers=alice.headers)
    check_envelope(r, 200)
    p.files["src/app.py"] = b"print(2)\n"
    return p


@pytest.fixture
def populated(accounts: Any, data_dir: Path) -> Iterator[Populated]:
    p = populate(accounts, data_dir)
    yield p
    if p._db is not None:
        p._db.close()


@pytest.fixture
def store_at() -> Iterator[Callable[[Path], Database]]:
    """Opens the SQLite store at a path; each one is closed when the test ends."""
    opened: list[Database] = []

    def open_at(path: Path) -> Database:
        opened.append(open_store(f"sqlite://{path}"))
        return opened[-1]

    yield open_at
    for db in opened:
        db.close()
