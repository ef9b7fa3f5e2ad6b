"""Per-process key rings: a signing ring for register/login/refresh, a verify-only ring elsewhere.

`verifier()` reads only the `<kid>.pub` files, so a function that mounts the private key by
accident still never loads it. Both rings are cached per process and key directory. Rotation
without restarts: a token whose `kid` the cached verifier does not know triggers a reload, at
most once per `key_reload_interval` seconds (junk kids cannot make us re-read the directory on
every request), and every ring is re-read after `key_ring_max_age` seconds, which is how a
retired key stops verifying and a new `active` key starts signing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from time import monotonic

from coditect.config import Settings
from coditect.identity.signing_keys import KeyRing, KeyRingError, is_valid_kid


@dataclass
class _Entry:
    ring: KeyRing
    loaded: float  # monotonic() of the last load


_lock = threading.Lock()
_verifiers: dict[tuple[Path | None, Path], _Entry] = {}
_signers: dict[Path, _Entry] = {}


def verifier(settings: Settings, kid: object = None) -> KeyRing:
    """The cached verify-only ring; reloaded for an unknown `kid` (rate-limited) or when old."""
    # Keyed by the two settings the directory derives from: building the Path (and hashing the
    # new object) on every authenticated request cost more than the rest of this lookup.
    slot = (settings.keys_dir, settings.data_dir)
    now = monotonic()
    with _lock:
        entry = _verifiers.get(slot)
        stale = entry is None or now - entry.loaded >= settings.key_ring_max_age
        unknown = (
            entry is not None
            and is_valid_kid(kid)
            and entry.ring.public_key(kid) is None
            and now - entry.loaded >= settings.key_reload_interval
        )
        if entry is None or stale or unknown:
            entry = _Entry(KeyRing.load(settings.resolved_keys_dir, public_only=True), now)
            _verifiers[slot] = entry
        return entry.ring


def signer(settings: Settings) -> KeyRing:
    """The cached signing ring (private key of the active kid); re-read after max age."""
    directory = settings.resolved_keys_dir
    now = monotonic()
    with _lock:
        entry = _signers.get(directory)
        if entry is None or now - entry.loaded >= settings.key_ring_max_age:
            ring = KeyRing.load(directory)
            if not ring.can_sign:
                raise KeyRingError(f"no active private key in {directory}; this function must sign")
            entry = _Entry(ring, now)
            _signers[directory] = entry
        return entry.ring


def clear_cache() -> None:
    """Forget every cached ring (tests; a deliberate reload)."""
    with _lock:
        _verifiers.clear()
        _signers.clear()
