"""The soak's simulated users: real API calls through the front door, retried idempotently, and
every acknowledged (2xx) write appended to a ledger (JSONL) that `soak_check.py` verifies later.

A user registers, creates a session and a conversation, then loops (paced) over: a file PUT whose
bytes are derived from (user, path, seq) so any read can be checked for tearing, a message append
with an `Idempotency-Key`, a file read checked against what was acknowledged, and now and then a
new session (+ conversation) with a key. A 502/503/504/408/429 or a network error is retried
with the same request (same key, same bytes) until `RETRY_FOR` seconds have passed; a request
that never got an answer is counted as abandoned, never written to the ledger.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

API = "/api/v5"
RETRYABLE = {408, 429, 502, 503, 504}
RETRY_FOR = 90.0  # seconds: longer than a whole-stack restart on a loaded 2-core machine
FILE_PATHS = ("notes.txt", "src/main.py", "data/blob.bin", "deep/a/b/c.md")


def file_bytes(user: int, path: str, seq: int) -> bytes:
    """The content of write `seq` of `path` by `user`: a header naming it, then filler derived
    from the header (256 B to 20 KiB), so a reader can regenerate it and detect a torn record."""
    head = f"soak u{user} {path} #{seq}\n".encode()
    seed = hashlib.sha256(head).hexdigest().encode()
    size = 256 + int(seed[:8], 16) % (20 * 1024)
    return head + (seed * (size // len(seed) + 1))[:size]


def parse_file(content: bytes) -> tuple[int, str, int] | None:
    """(user, path, seq) if `content` is exactly one of file_bytes()'s outputs, else None (torn)."""
    head, _, _ = content.partition(b"\n")
    try:
        _, user, path, seq = head.decode().split(" ")
        parsed = int(user.removeprefix("u")), path, int(seq.removeprefix("#"))
    except ValueError:
        return None
    return parsed if file_bytes(*parsed) == content else None


def message_content(key: str) -> str:
    return f"soak message {key}\n" + hashlib.sha256(key.encode()).hexdigest() * 4


class Ledger:
    """Append-only JSONL of acknowledged writes, flushed line by line (one asyncio process writes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("a", encoding="utf-8")

    def record(self, **row: Any) -> None:
        self._file.write(json.dumps(row, sort_keys=True) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclass
class Stats:
    """Every answer's status (network errors as "network_error"), 2xx latencies with their
    monotonic time, and the outcomes that are not statuses."""

    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (monotonic end, seconds)
    abandoned: int = 0
    read_mismatches: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # unexpected non-retryable answers

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


class Failed(Exception):
    """A request that got a final non-2xx answer (`status`), or none at all within RETRY_FOR."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class User:
    """One simulated user with its own connection pool, tokens and ledger rows."""

    def __init__(self, index: int, base_url: str, run_id: str, ledger: Ledger, stats: Stats) -> None:
        self.index, self.run_id, self.ledger, self.stats = index, run_id, ledger, stats
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30.0)
        self.tokens: dict[str, str] = {}
        self.sessions: list[str] = []
        self.conversations: list[tuple[str, str]] = []  # (session id, conversation id)
        self.file_seq: dict[tuple[str, str], int] = {}  # (session, path) → last attempted seq
        self.file_acked: dict[tuple[str, str], int] = {}  # (session, path) → last acknowledged seq
        self.counter = 0
        self.rng = random.Random(f"{run_id}-{index}")

    async def close(self) -> None:
        await self.http.aclose()

    def key(self, what: str) -> str:
        self.counter += 1
        return f"soak-{self.run_id}-u{self.index}-{what}{self.counter}"

    # -- transport ---------------------------------------------------------------------------
    async def call(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> httpx.Response:
        """Send until a final answer: retryable statuses and network errors are repeated with the
        same request; a 401 token_expired refreshes the tokens once and repeats."""
        deadline = time.monotonic() + RETRY_FOR
        delay, refreshed = 0.1, False
        while True:
            headers = dict(kwargs.pop("headers", None) or {})
            if auth:
                headers["Authorization"] = f"Bearer {self.tokens['access_token']}"
            kwargs["headers"] = headers
            started = time.monotonic()
            try:
                r = await self.http.request(method, path, **kwargs)
            except httpx.TransportError:
                self.stats.statuses["network_error"] += 1
            else:
                self.stats.statuses[str(r.status_code)] += 1
                if r.is_success:
                    self.stats.latencies.append((time.monotonic(), time.monotonic() - started))
                    return r
                if auth and r.status_code == 401 and not refreshed and _code(r) == "token_expired":
                    refreshed = True
                    await self.refresh()
                    continue
                if r.status_code not in RETRYABLE:
                    self.stats.errors.append(f"{method} {path}: {r.status_code} {r.text[:200]}")
                    raise Failed(f"{method} {path}: {r.status_code}", r.status_code)
                delay = max(delay, _retry_after(r))
            if time.monotonic() + delay > deadline:
                self.stats.abandoned += 1
                raise Failed(f"{method} {path}: no final answer within {RETRY_FOR:.0f} s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def refresh(self) -> None:
        body = {"refresh_token": self.tokens["refresh_token"]}
        r = await self.call("POST", f"{API}/auth/refresh", auth=False, json=body)
        self.tokens = r.json()["data"]["tokens"]

    # -- operations --------------------------------------------------------------------------
    async def register(self) -> None:
        body = {
            "email": f"soak-{self.run_id}-{self.index}@example.test",
            "password": f"soak-quartz-{uuid.uuid4().hex}",
            "name": f"Soak {self.index}",
        }
        r = await self.call("POST", f"{API}/auth/register", auth=False, json=body)
        self.tokens = r.json()["data"]["tokens"]
        await self.create_session()

    async def create_session(self) -> None:
        key = self.key("s")
        r = await self.call("POST", f"{API}/sessions", json={"name": key}, headers={"Idempotency-Key": key})
        sid = r.json()["data"]["id"]
        self.ledger.record(kind="session", user=self.index, key=key, id=sid)
        self.sessions.append(sid)
        ckey = self.key("c")
        r = await self.call(
            "POST", f"{API}/sessions/{sid}/conversations", json={"title": ckey},
            headers={"Idempotency-Key": ckey},
        )  # fmt: skip
        cid = r.json()["data"]["id"]
        self.ledger.record(kind="conversation", user=self.index, key=ckey, id=cid, session=sid)
        self.conversations.append((sid, cid))

    async def append_message(self) -> None:
        _, cid = self.rng.choice(self.conversations)
        key = self.key("m")
        body = {"role": self.rng.choice(("user", "assistant")), "content": message_content(key)}
        r = await self.call(
            "POST", f"{API}/conversations/{cid}/messages", json=body, headers={"Idempotency-Key": key}
        )
        self.ledger.record(
            kind="message", user=self.index, key=key, id=r.json()["data"]["id"], conversation=cid
        )

    async def put_file(self) -> None:
        sid, path = self.rng.choice(self.sessions), self.rng.choice(FILE_PATHS)
        seq = self.file_seq.get((sid, path), 0) + 1
        self.file_seq[(sid, path)] = seq  # a write that is not acknowledged may still have landed
        content = file_bytes(self.index, path, seq)
        await self.call("PUT", f"{API}/sessions/{sid}/files/{path}", content=content)
        self.file_acked[(sid, path)] = seq
        self.ledger.record(kind="file", user=self.index, session=sid, path=path, seq=seq,
                           sha256=hashlib.sha256(content).hexdigest())  # fmt: skip

    async def read_file(self) -> None:
        """Read back a file written earlier: it must be whole and no older than acknowledged."""
        if not self.file_acked:
            return
        (sid, path), acked = self.rng.choice(sorted(self.file_acked.items()))
        r = await self.call("GET", f"{API}/sessions/{sid}/files/{path}")
        parsed = parse_file(r.content)
        if (
            parsed is None
            or parsed[:2] != (self.index, path)
            or not acked <= parsed[2] <= self.file_seq[(sid, path)]
        ):
            self.stats.read_mismatches.append(f"{sid}/{path}: {r.content[:60]!r}")

    async def step(self) -> None:
        """One paced operation: 40 % file write, 40 % message, 15 % read, 5 % new session."""
        roll = self.rng.random()
        if roll < 0.40:
            await self.put_file()
        elif roll < 0.80:
            await self.append_message()
        elif roll < 0.95:
            await self.read_file()
        else:
            await self.create_session()

    async def run(self, until: float, interval: float) -> None:
        """Operations every `interval` seconds (no bursts to catch up) until monotonic `until`."""
        next_at = time.monotonic()
        while time.monotonic() < until:
            try:
                await self.step()
            except Failed:
                pass  # counted in stats; the next operation goes on
            next_at = max(next_at + interval, time.monotonic())
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def _code(r: httpx.Response) -> str:
    try:
        return str(r.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""


def _retry_after(r: httpx.Response) -> float:
    try:
        return min(float(r.headers.get("Retry-After", "0")), 5.0)
    except ValueError:
        return 0.0
