"""Relay metrics in the process registry of `coditect.http.metrics`.

Bytes are counted per connection in plain ints and added here by the watcher once per sweep and
at close, so the per-message path never touches a lock.
"""

from __future__ import annotations

from coditect.http import metrics as _m

CONNECTIONS = _m.gauge("relay_connections", "Relayed WebSockets open now.")
BYTES = _m.counter("relay_bytes", "Bytes of WebSocket messages relayed, by direction.", ["direction"])
REFUSED = _m.counter("relay_refused", "Relay requests refused before forwarding, by status.", ["status"])
CLOSED = _m.counter("relay_closed", "Relayed WebSockets closed by the relay, by cause.", ["cause"])


def exposition() -> tuple[bytes, str]:
    return _m.exposition()
