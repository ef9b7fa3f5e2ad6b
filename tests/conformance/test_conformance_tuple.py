"""Keys are `fdb.tuple`-encoded everywhere; that encoding must work without libfdb_c."""

from __future__ import annotations

import subprocess
import sys

import fdb.tuple as fdbtuple

from coditect.store.versionstamp import fill, make_stamp, pack_versionstamped

PROBE = """
import sys
import fdb.tuple as t
key = t.pack(("t", "3f0c2a9e-0000-4000-8000-000000000000", "users", 7, b"\\x00\\xff", None, 1.5))
assert t.unpack(key)[3] == 7
assert t.pack(("a",)) < t.pack(("a", 0)) < t.pack(("b",))
print("fdb.impl" in sys.modules)
"""


def test_tuple_packing_works_without_loading_libfdb_c() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # the C library was never loaded


def test_tuple_order_matches_bytes_order() -> None:
    # Element-wise, by type code first (bytes < str < int), then value; a prefix sorts first.
    tuples = [("a",), ("a", b"z"), ("a", "x"), ("a", 0), ("a", 1), ("a\x00",), ("b",), ("b", b"\xff")]
    assert sorted(tuples, key=fdbtuple.pack) == tuples


def test_versionstamped_key_encoding_decodes_with_fdb_tuple() -> None:
    param = pack_versionstamped(("log",), user_version=3, suffix=("tail",))
    key = fill(param, make_stamp(0x0102030405060708, 9))
    prefix, stamp, suffix = fdbtuple.unpack(key)
    assert (prefix, suffix) == ("log", "tail")
    assert isinstance(stamp, fdbtuple.Versionstamp)
    assert stamp.tr_version == bytes.fromhex("0102030405060708") + b"\x00\x09"
    assert stamp.user_version == 3
