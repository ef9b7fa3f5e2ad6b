"""The soak's end check: read back through the API everything the ledger says was acknowledged.

- every acknowledged session, conversation and message exists (else: lost), and a message's
  content is the one sent under its Idempotency-Key (else: corrupt);
- no Idempotency-Key produced two objects (session names, conversation titles and message
  contents carry the key): duplicated;
- each file holds a whole write (bytes regenerated from its header: else torn) of the last
  acknowledged seq or a later one (a retried write whose answer was lost): an older one is lost.
Reads retry like the users' requests (soak_client.User.call) and are not part of the load figures.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soak_client import API, Failed, Stats, User, message_content, parse_file


@dataclass
class Check:
    acknowledged: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)  # torn files, altered message contents
    unreadable: list[str] = field(default_factory=list)  # the read-back itself failed

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.corrupt or self.unreadable)

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "acknowledged": dict(sorted(self.acknowledged.items())),
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "corrupt": len(self.corrupt),
            "unreadable": len(self.unreadable),
            "examples": (self.lost + self.duplicated + self.corrupt + self.unreadable)[:10],
        }


def read_ledger(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def check(ledger: Path, users: dict[int, User], parallel: int = 4) -> Check:
    """Verify `ledger` against the stack as `users` (their tokens) see it."""
    rows = read_ledger(ledger)
    result = Check()
    for row in rows:
        result.acknowledged[row["kind"]] += 1
    by_user: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_user[row["user"]].append(row)
    gate = asyncio.Semaphore(parallel)
    stats = Stats()

    async def one(index: int) -> None:
        async with gate:
            user = users[index]
            user.stats = stats  # read-back requests are not counted as load
            try:
                await _check_user(user, by_user[index], result)
            except Failed as e:
                result.unreadable.append(f"user {index}: {e}")

    await asyncio.gather(*(one(i) for i in sorted(by_user)))
    return result


async def _pages(user: User, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = ""
    while cursor is not None:
        r = await user.call("GET", path, params={"limit": 200, "cursor": cursor})
        data = r.json()["data"]
        items += data["items"]
        cursor = data["next_cursor"]
    return items


def _duplicates(what: str, names: list[str], result: Check) -> None:
    result.duplicated += [f"{what} {n} x{c}" for n, c in Counter(names).items() if c > 1]


async def _check_user(user: User, rows: list[dict[str, Any]], result: Check) -> None:
    kinds: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        kinds[row["kind"]].append(row)
    sessions = await _pages(user, f"{API}/sessions")
    _duplicates("session", [s["name"] for s in sessions], result)
    present = {s["id"] for s in sessions}
    result.lost += [f"session {r['id']}" for r in kinds["session"] if r["id"] not in present]
    conversations: list[dict[str, Any]] = []
    for sid in {r["id"] for r in kinds["session"]} & present:
        conversations += await _pages(user, f"{API}/sessions/{sid}/conversations")
    _duplicates("conversation", [c["title"] for c in conversations], result)
    present = {c["id"] for c in conversations}
    result.lost += [f"conversation {r['id']}" for r in kinds["conversation"] if r["id"] not in present]
    await _check_messages(user, kinds["message"], present, result)
    await _check_files(user, kinds["file"], result)


async def _check_messages(
    user: User, rows: list[dict[str, Any]], conversations: set[str], result: Check
) -> None:
    stored: dict[str, str] = {}
    keys: list[str] = []
    for cid in {r["conversation"] for r in rows} & conversations:
        for m in await _pages(user, f"{API}/conversations/{cid}/messages"):
            stored[m["id"]] = m["content"]
            keys.append(m["content"].partition("\n")[0].removeprefix("soak message "))
    _duplicates("message", keys, result)
    for r in rows:
        if r["id"] not in stored:
            result.lost.append(f"message {r['id']} ({r['key']})")
        elif stored[r["id"]] != message_content(r["key"]):
            result.corrupt.append(f"message {r['id']} ({r['key']}): content differs")


async def _check_files(user: User, rows: list[dict[str, Any]], result: Check) -> None:
    last: dict[tuple[str, str], int] = {}
    for r in rows:
        last[(r["session"], r["path"])] = max(r["seq"], last.get((r["session"], r["path"]), 0))
    for (sid, path), seq in sorted(last.items()):
        name = f"file {sid}/{path} (acknowledged #{seq})"
        try:
            r = await user.call("GET", f"{API}/sessions/{sid}/files/{path}")
        except Failed as e:
            (result.lost if e.status == 404 else result.unreadable).append(f"{name}: {e}")
            continue
        parsed = parse_file(r.content)
        if parsed is None or parsed[:2] != (user.index, path):
            result.corrupt.append(f"{name}: torn or foreign content {r.content[:40]!r}")
        elif parsed[2] < seq:
            result.lost.append(f"{name}: holds #{parsed[2]}")
