"""The change feed of one session: an ordered log of what changed, for the IDE's file watcher.

Entries are keyed by the commit's versionstamp (plus a per-transaction counter as the user
version), so key order is commit order and appends never conflict with each other. A reader
at read version V sees every change committed at or before V, and every later commit gets a
larger versionstamp: resuming strictly after the last key delivered loses and repeats nothing,
across pages and long-polls alike.

Long-poll: every change also bumps the session's `head` counter (atomic ADD, conflict-free);
a reader with nothing to deliver watches that one key (`Database.watch`) until it moves or
`wait` runs out.

`seq` is the versionstamp in hex (24 digits, orders like the feed); `cursor` is an opaque token
bound to this session's feed (repo.cursor), so another session's cursor is `invalid_cursor`.

Ops: `created`, `modified`, `deleted`; a move is two entries in one commit, `moved_from` (old
path) then `moved_to` (new path) — like inotify's pair. Deleting or moving a directory is one
entry for the directory; its contents went with it.
"""

from __future__ import annotations

import json
import struct
import time

from coditect.files.models import Change, ChangeOp, ChangesPage
from coditect.files.paths import FilePath
from coditect.files.tree import FileSpace
from coditect.repo.cursor import encode_cursor, resume_range
from coditect.store import Database, Transaction
from coditect.store.versionstamp import pack_versionstamped

MAX_WAIT = 30.0
_QUERY = "files.changes"


def head_key(fs: FileSpace) -> bytes:
    return fs.space.key("head")


class ChangeLog:
    """Appends this transaction's changes; create one per transaction attempt."""

    def __init__(self, tr: Transaction, fs: FileSpace) -> None:
        self.tr, self.fs, self.count = tr, fs, 0

    def add(self, path: FilePath, op: ChangeOp, etag: str | None) -> None:
        key = pack_versionstamped((*self.fs.space.prefix, "c"), user_version=self.count)
        value = json.dumps({"p": path.text, "o": op, "e": etag}, separators=(",", ":")).encode()
        self.tr.set_versionstamped_key(key, value)
        self.tr.add(head_key(self.fs), 1)
        self.count += 1


def _decode(fs: FileSpace, key: bytes, value: bytes) -> Change:
    stamp = fs.space.unpack(key)[1]
    data = json.loads(value)
    # Versionstamp.to_bytes() needs libfdb_c loaded; its two parts are plain values.
    seq = bytes(stamp.tr_version) + struct.pack(">H", stamp.user_version)
    return Change(seq=seq.hex(), path=data["p"], op=data["o"], etag=data["e"])


def read_changes(
    db: Database, fs: FileSpace, since: str | None, *, limit: int = 200, wait: float = 0.0
) -> ChangesPage:
    """Changes strictly after cursor `since` (from the start when None), at most `limit`;
    with nothing to deliver, wait up to `wait` seconds (≤ 30) for the next change."""
    begin, end = fs.space.range("c")
    deadline = time.monotonic() + min(max(wait, 0.0), MAX_WAIT)

    def page(tr: Transaction) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
        fs.check(tr)
        lo, hi = resume_range(_QUERY, begin, end, since)
        return tr.get_range(lo, hi, limit=limit), tr.get(head_key(fs))

    while True:
        kvs, head = db.transact(page)
        remaining = deadline - time.monotonic()
        if kvs or remaining <= 0:
            break
        db.watch(head_key(fs), remaining, last_seen=head)
    if kvs:
        cursor = encode_cursor(_QUERY, begin, end, kvs[-1][0])
    else:
        cursor = since or encode_cursor(_QUERY, begin, end, begin)
    return ChangesPage(changes=[_decode(fs, k, v) for k, v in kvs], cursor=cursor)
