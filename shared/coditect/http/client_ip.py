"""Who is calling: the one rule for the client address, shared by the functions and the relay."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence


def client_ip(
    peer: str, forwarded_for: Iterable[str], trusted_hops: int, named: Sequence[str] | None = None
) -> str:
    """The client address.

    `named`: the values of the `client_ip_header` setting's header, or None when that setting is
    empty. When it is set, the address comes from that header ONLY: exactly one value that is
    one IP literal (the front door / Envoy ingress sets it from the socket peer and overwrites a
    client's copy); absent, repeated or not an IP → the socket peer. X-Forwarded-For is then
    ignored.

    Otherwise: the socket peer, or the address `trusted_hops` proxies back in X-Forwarded-For
    (`forwarded_for` are its values in order). With 0 trusted hops (the default) a client-sent
    X-Forwarded-For is ignored entirely; with fewer entries than trusted hops the header cannot
    have come through our proxies, so the peer is used, never a value the client chose.
    """
    if named is not None:
        if len(named) != 1:
            return peer
        try:
            return str(ipaddress.ip_address(named[0].strip()))
        except ValueError:
            return peer
    if trusted_hops <= 0:
        return peer
    hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
    return hops[-trusted_hops] if len(hops) >= trusted_hops else peer
