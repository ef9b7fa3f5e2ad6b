"""Module-level process bodies for the conformance suite (the "spawn" context imports them)."""

from __future__ import annotations

import os
import signal
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event

from coditect.store import Transaction, open_store
from coditect.store.versionstamp import pack_versionstamped


def atomic_adds(url: str, key: bytes, n: int) -> None:
    db = open_store(url)
    for _ in range(n):
        db.transact(lambda tr: tr.add(key, 1))


def read_modify_write(url: str, key: bytes, n: int) -> None:
    db = open_store(url)

    def increment(tr: Transaction) -> None:
        raw = tr.get(key)
        tr.set(key, str(int(raw or b"0") + 1).encode())

    for _ in range(n):
        db.transact(increment)


def move_between(url: str, a: bytes, b: bytes, n: int, seed: int) -> None:
    """Move 1..5 units between two keys n times; a + b stays constant in every commit."""
    db = open_store(url)

    def move(tr: Transaction, amount: int) -> None:
        va, vb = int(tr.get(a) or b"0"), int(tr.get(b) or b"0")
        tr.set(a, str(va - amount).encode())
        tr.set(b, str(vb + amount).encode())

    for i in range(n):
        db.transact(move, ((seed * 7 + i) % 5 + 1) * (1 if i % 2 else -1))


def write_then_hang(url: str, prefix: bytes, conn: Connection) -> None:
    """Commit entries one by one, reporting each after its commit, then stage an uncommitted
    write and wait to be killed with SIGKILL."""
    db = open_store(url)

    def commit_one(tr: Transaction, i: int) -> None:
        tr.set(prefix + b"entry/%06d" % i, b"%d" % i)
        tr.set(prefix + b"count", b"%d" % (i + 1))  # written with the entry: atomic pair

    for i in range(200):
        db.transact(commit_one, i)
        conn.send(i)
    tr = db.create_transaction()
    tr.set(prefix + b"uncommitted", b"x")
    tr.set(prefix + b"count", b"999999")
    conn.send("staged")
    time.sleep(60)  # the parent kills us long before this ends
    os.kill(os.getpid(), signal.SIGKILL)


def stamped_writes(url: str, prefix: tuple[object, ...], order_key: bytes, n: int) -> None:
    """Each commit reads and bumps a shared counter (so commits are serialized by conflicts) and
    writes a versionstamped key whose value is that counter: key order must equal value order."""
    db = open_store(url)

    def one(tr: Transaction) -> None:
        seq = int(tr.get(order_key) or b"0")
        tr.set(order_key, b"%d" % (seq + 1))
        tr.set_versionstamped_key(pack_versionstamped(prefix), b"%d" % seq)

    for _ in range(n):
        db.transact(one)


def write_when_told(url: str, key: bytes, go: Event) -> None:
    db = open_store(url)
    go.wait(30)
    db.transact(lambda tr: tr.set(key, b"changed"))
