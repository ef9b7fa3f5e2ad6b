"""Inspect a store, like `fdbcli getrangekeys` but tuple-decoded and readable.

    python -m coditect.store keys "('t', '<tenant-uuid>')" --limit 20 [--url URL]
    python -m coditect.store get "('g', 'probe')"
    python -m coditect.store count "('t',)"

Tuples are Python literals (`ast.literal_eval`); `()` means the whole keyspace. Keys print as
tuples (raw bytes when a key is not tuple-encoded); values as their length and a short summary:
decoded JSON (also inside a blob's inline marker), an 8-byte counter, or a truncated repr.
Works on every backend: it only uses the store interface, in snapshot reads.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Iterator
from typing import Any

import fdb.tuple as fdbtuple

from coditect.store import Database, Transaction, open_store

BATCH = 1000
SHORT = 80


def parse_tuple(text: str) -> tuple[Any, ...]:
    """A Python tuple literal such as "('t', 'abc')"; a bare scalar counts as a 1-tuple."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise argparse.ArgumentTypeError(f"not a Python literal: {text!r}") from exc
    return value if isinstance(value, tuple) else (value,)


def tuple_range(prefix: tuple[Any, ...]) -> tuple[bytes, bytes]:
    """The key `prefix` itself and every key under it (not sibling strings like 'abc\\x00x')."""
    if not prefix:
        return b"", b"\xff"
    packed: bytes = fdbtuple.pack(prefix)
    return packed, packed + b"\xff"


def show_key(key: bytes) -> str:
    try:
        return repr(fdbtuple.unpack(key))
    except Exception:  # noqa: BLE001 — any undecodable key is shown raw
        return repr(key)


def _json(data: bytes) -> str | None:
    if data[:1] not in (b"{", b"["):
        return None
    try:
        return json.dumps(json.loads(data), separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        return None


def summarize(value: bytes, width: int = SHORT) -> str:
    """Length plus the most readable short form of `value`."""
    text = _json(value) or _json(value[1:])  # a blob stores JSON after a 1-byte marker
    if text is None and len(value) == 8:
        text = f"int64 {int.from_bytes(value, 'little', signed=True)}"
    if text is None:
        text = repr(value)
    if len(text) > width:
        text = text[: width - 1] + "…"
    return f"{len(value)} B  {text}"


def iter_range(db: Database, begin: bytes, end: bytes, limit: int = 0) -> Iterator[tuple[bytes, bytes]]:
    """Pairs in [begin, end), in batches of short snapshot transactions (no 5 s limit on a scan)."""
    seen = 0
    while begin < end:
        want = BATCH if not limit else min(BATCH, limit - seen)

        def read(tr: Transaction, lo: bytes = begin, n: int = want) -> list[tuple[bytes, bytes]]:
            return tr.snapshot.get_range(lo, end, limit=n)

        batch = db.transact(read)
        yield from batch
        seen += len(batch)
        if len(batch) < want or (limit and seen >= limit):
            return
        begin = batch[-1][0] + b"\x00"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coditect.store", description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="store URL (default: $CODITECT_STORE or the local data dir)")
    sub = parser.add_subparsers(dest="command", required=True)
    keys = sub.add_parser("keys", help="list keys under a tuple prefix with value summaries")
    keys.add_argument("prefix", type=parse_tuple)
    keys.add_argument("--limit", type=int, default=100)
    keys.add_argument("--url", dest="sub_url", help=argparse.SUPPRESS)
    get = sub.add_parser("get", help="print one value in full")
    get.add_argument("key", type=parse_tuple)
    get.add_argument("--url", dest="sub_url", help=argparse.SUPPRESS)
    count = sub.add_parser("count", help="count keys under a tuple prefix")
    count.add_argument("prefix", type=parse_tuple)
    count.add_argument("--url", dest="sub_url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    db = open_store(args.sub_url or args.url)
    try:
        if args.command == "keys":
            begin, end = tuple_range(args.prefix)
            for key, value in iter_range(db, begin, end, max(args.limit, 1)):
                print(f"{show_key(key)}  {summarize(value)}")
        elif args.command == "count":
            print(sum(1 for _ in iter_range(db, *tuple_range(args.prefix))))
        else:
            packed: bytes = fdbtuple.pack(args.key)
            found = db.transact(lambda tr: tr.snapshot.get(packed))
            if found is None:
                print("(not found)", file=sys.stderr)
                return 1
            text = _json(found) or _json(found[1:])
            print(json.dumps(json.loads(text), indent=2, ensure_ascii=False) if text else repr(found))
        return 0
    finally:
        db.close()


if __name__ == "__main__":
    sys.exit(main())
