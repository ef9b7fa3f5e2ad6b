"""Opaque cursor pagination over key ranges, bound to the query that issued it.

A cursor is `base64url(0x01 ‖ mac ‖ suffix)`: `suffix` is the last key returned, minus the
range's common prefix (so cursors stay short and reveal nothing outside the range), and `mac`
is a keyed BLAKE2b over (query id, range, full key). A cursor from another query, another
range (another tenant), a tampered one or garbage is `BadRequest(code="invalid_cursor")`.

A cursor grants no authority: the range is always computed by the caller from its own
`TenantContext`, and a decoded key outside that range is refused. The MAC stops clients from
steering a listing to arbitrary positions or replaying a cursor across queries. Its keys are
secret files in the key directory (`coditect.identity.cursor_keys`: created on first start locally,
mounted from the Secret in a cluster, rotated like the signing keys — a cursor verifies under any
key present); there is no built-in default.

An empty cursor (`?cursor=`) is the first page, as an absent one.

Pages resume strictly after the last key returned, so records appended while paging are
neither lost nor repeated; `limit + 1` pairs are read to know whether a next page exists.
Range reads only, never offsets.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct

from coditect.config import get_settings
from coditect.errors import BadRequest
from coditect.identity.cursor_keys import CursorKeys, cursor_keys
from coditect.repo import blobs
from coditect.store.base import KeyValue, Transaction

_VERSION = b"\x01"
_MAC_SIZE = 16


def _keys() -> CursorKeys:
    return cursor_keys(get_settings().resolved_keys_dir)


def _common_prefix(begin: bytes, end: bytes) -> bytes:
    # Every key k with begin <= k < end starts with the common prefix of begin and end.
    n = 0
    for a, b in zip(begin, end, strict=False):
        if a != b:
            break
        n += 1
    return begin[:n]


def _mac(query: str, begin: bytes, end: bytes, key: bytes, secret: bytes) -> bytes:
    h = hashlib.blake2b(key=secret[:64], digest_size=_MAC_SIZE, person=b"coditect-cursor")
    for part in (query.encode(), begin, end, key):
        h.update(struct.pack(">I", len(part)) + part)  # length-prefixed: no ambiguous joins
    return h.digest()


def _invalid() -> BadRequest:
    return BadRequest("The cursor is not valid for this listing.", code="invalid_cursor")


def encode_cursor(query: str, begin: bytes, end: bytes, last_key: bytes) -> str:
    """The cursor resuming after `last_key` in the range `[begin, end)` of `query`."""
    suffix = last_key[len(_common_prefix(begin, end)) :]
    raw = _VERSION + _mac(query, begin, end, last_key, _keys().active) + suffix
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(query: str, begin: bytes, end: bytes, cursor: str) -> bytes:
    """The last key a valid cursor stands for; `invalid_cursor` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise _invalid() from None
    if len(raw) < 1 + _MAC_SIZE or raw[:1] != _VERSION:
        raise _invalid()
    key = _common_prefix(begin, end) + raw[1 + _MAC_SIZE :]
    if not begin <= key < end:
        raise _invalid()
    given = raw[1 : 1 + _MAC_SIZE]
    # Every accepted key (the active one first): a rotation never breaks a client's paging.
    if not any(hmac.compare_digest(given, _mac(query, begin, end, key, k)) for k in _keys().accepted):
        raise _invalid()
    return key


def resume_range(
    query: str, begin: bytes, end: bytes, cursor: str | None, *, reverse: bool = False
) -> tuple[bytes, bytes]:
    """The part of `[begin, end)` still to read after `cursor` (strictly after its key);
    None or "" (an empty `?cursor=`) is the whole range: the first page."""
    if not cursor:
        return begin, end
    last = decode_cursor(query, begin, end, cursor)
    return (begin, last) if reverse else (last + b"\x00", end)


def paginate(
    tr: Transaction,
    begin: bytes,
    end: bytes,
    *,
    limit: int,
    cursor: str | None,
    query: str,
    reverse: bool = False,
    snapshot: bool = False,
    blob_records: bool = False,
) -> tuple[list[KeyValue], str | None]:
    """One page of at most `limit` pairs of `[begin, end)` and the cursor of the next (or None).

    `blob_records`: the range holds blob records (`coditect.repo.blobs`), and a page is `limit`
    records, each as its key and whole value (chunk keys are read, not counted)."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    lo, hi = resume_range(query, begin, end, cursor, reverse=reverse)
    if blob_records:
        kvs = list(blobs.scan_values(tr, lo, hi, limit=limit + 1, reverse=reverse, snapshot=snapshot))
    else:
        kvs = tr.get_range(lo, hi, limit=limit + 1, reverse=reverse, snapshot=snapshot)
    if len(kvs) <= limit:
        return kvs, None
    page = kvs[:limit]
    return page, encode_cursor(query, begin, end, page[-1][0])
