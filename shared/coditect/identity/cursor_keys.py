"""The keys that MAC pagination cursors: files in the key directory, rotated like the signing keys.

Layout, beside the signing keys (the same mounted Secret; both the signing and the public-keys
Secret carry these files, since every function that lists things signs cursors)::

    <dir>/cursor-<kid>.secret   32+ random bytes, mode 0600: one cursor key
    <dir>/cursor-active         the kid that MACs new cursors

A cursor verifies under ANY key present, so rotation needs no restart and loses no page:

1. Publish: add `cursor-<new>.secret` to the Secret (`generate_cursor_key(dir, activate=False)` in
   a scratch copy); roll out. Every function now accepts cursors MAC'd with it.
2. Switch: write `<new>` into `cursor-active`; roll out. New cursors use it; old ones still verify.
3. Retire: after a while (a cursor is a position in a listing a client pages through within
   minutes; a day is generous), delete `cursor-<old>.secret` and roll out. A client still holding
   an old cursor gets 400 `invalid_cursor` and restarts its listing.

There is no built-in default key: a process that finds no key and cannot create one (a read-only
mount without the files) fails with `KeyRingError` rather than MAC cursors with a public constant.
Locally the key is created on first start (`ensure_cursor_key`, called by the devstack and on first
use where the directory is writable, like the token pepper). Processes re-read the directory at
most every `RELOAD_SECONDS`, so a rotated Secret is picked up without a restart.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from coditect.identity.signing_keys import KeyRingError, is_valid_kid

PREFIX, SUFFIX, ACTIVE_FILE = "cursor-", ".secret", "cursor-active"
KEY_BYTES = 32
RELOAD_SECONDS = 60.0


@dataclass(frozen=True)
class CursorKeys:
    """The active key (MACs new cursors) and every accepted key, the active one first."""

    active: bytes
    accepted: tuple[bytes, ...]


def _path(directory: Path, kid: str) -> Path:
    return directory / f"{PREFIX}{kid}{SUFFIX}"


def _create(path: Path, data: bytes, mode: int) -> Path:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)
    return tmp


def generate_cursor_key(directory: Path, kid: str | None = None, *, activate: bool = True) -> str:
    """Create `cursor-<kid>.secret` (0600) and, with `activate`, point `cursor-active` at it."""
    kid = kid or f"{time.strftime('%Y%m%d', time.gmtime())}-{secrets.token_hex(4)}"
    if not is_valid_kid(kid):
        raise ValueError(f"invalid kid {kid!r}")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = _create(_path(directory, kid), secrets.token_bytes(KEY_BYTES), 0o600)
    try:
        os.link(tmp, _path(directory, kid))  # never replaces an existing key
    finally:
        tmp.unlink(missing_ok=True)
    if activate:
        active = _create(directory / ACTIVE_FILE, f"{kid}\n".encode("ascii"), 0o644)
        os.replace(active, directory / ACTIVE_FILE)
    return kid


def ensure_cursor_key(directory: Path) -> None:
    """Create and activate a cursor key unless one is active; safe when processes race."""
    if (directory / ACTIVE_FILE).exists():
        return
    kid = generate_cursor_key(directory, activate=False)
    active = _create(directory / ACTIVE_FILE, f"{kid}\n".encode("ascii"), 0o644)
    try:
        os.link(active, directory / ACTIVE_FILE)  # fails if another process won: theirs is active
    except FileExistsError:
        _path(directory, kid).unlink(missing_ok=True)
    finally:
        active.unlink(missing_ok=True)


def read_cursor_keys(directory: Path) -> CursorKeys:
    """Every `cursor-*.secret` of `directory`, the active one first; KeyRingError if unusable."""
    try:
        kid = (directory / ACTIVE_FILE).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        raise KeyRingError(f"no cursor key is active in {directory} ({ACTIVE_FILE} missing)") from None
    if not is_valid_kid(kid):
        raise KeyRingError(f"{directory / ACTIVE_FILE} does not hold a valid kid")
    keys: dict[str, bytes] = {}
    for path in directory.glob(f"{PREFIX}*{SUFFIX}"):
        name = path.name[len(PREFIX) : -len(SUFFIX)]
        if is_valid_kid(name):
            data = path.read_bytes()
            if len(data) < KEY_BYTES:
                raise KeyRingError(f"the cursor key {path.name} is shorter than {KEY_BYTES} bytes")
            keys[name] = data
    if kid not in keys:
        raise KeyRingError(f"the active cursor key {kid!r} has no {PREFIX}{kid}{SUFFIX}")
    return CursorKeys(keys[kid], (keys[kid], *(v for k, v in sorted(keys.items()) if k != kid)))


_lock = threading.Lock()
_cache: dict[Path, tuple[float, CursorKeys]] = {}


def cursor_keys(directory: Path) -> CursorKeys:
    """The keys of `directory`, created first where missing and writable; re-read every minute."""
    now = time.monotonic()
    with _lock:
        cached = _cache.get(directory)
        if cached is not None and now - cached[0] < RELOAD_SECONDS:
            return cached[1]
    if not (directory / ACTIVE_FILE).exists():
        try:
            ensure_cursor_key(directory)
        except OSError:
            pass  # read-only mount: read_cursor_keys says what is missing
    keys = read_cursor_keys(directory)
    with _lock:
        _cache[directory] = (now, keys)
    return keys


def forget() -> None:
    """Drop the cache (tests; a deliberate reload)."""
    with _lock:
        _cache.clear()
