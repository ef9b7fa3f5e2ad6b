"""Who is calling: the one rule for the client address, shared by the functions and the relay."""

from __future__ import annotations

from collections.abc import Iterable


def client_ip(peer: str, forwarded_for: Iterable[str], trusted_hops: int) -> str:
    """The socket peer, or the address `trusted_hops` proxies back in X-Forwarded-For.

    `forwarded_for` are the X-Forwarded-For header values in order. With 0 trusted hops (the
    default) a client-sent X-Forwarded-For is ignored entirely; with fewer entries than trusted
    hops the header cannot have come through our proxies, so the peer is used, never a value the
    client chose.
    """
    if trusted_hops <= 0:
        return peer
    hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
    return hops[-trusted_hops] if len(hops) >= trusted_hops else peer
