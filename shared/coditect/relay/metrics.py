"""Relay metrics in the process registry of `coditect.http.metrics` (when that module exists).

Bytes are counted per connection in plain ints and added here by the watcher once per sweep and
at close, so the per-message path never touches a lock.
"""

from __future__ import annotations

from typing import Any

try:
    from coditect.http import metrics as _m
except ImportError:  # the metrics runtime is optional for the relay
    _m = None  # type: ignore[assignment]


class _Null:
    def labels(self, *args: Any, **kwargs: Any) -> _Null:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass


if _m is not None:
    CONNECTIONS: Any = _m.gauge("relay_connections", "Relayed WebSockets open now.")
    BYTES: Any = _m.counter(
        "relay_bytes", "Bytes of WebSocket messages relayed, by direction.", ["direction"]
    )
    REFUSED: Any = _m.counter(
        "relay_refused", "Relay requests refused before forwarding, by status.", ["status"]
    )
    CLOSED: Any = _m.counter("relay_closed", "Relayed WebSockets closed by the relay, by cause.", ["cause"])
else:
    CONNECTIONS = BYTES = REFUSED = CLOSED = _Null()


def exposition() -> tuple[bytes, str] | None:
    return _m.exposition() if _m is not None else None
