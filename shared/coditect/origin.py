"""`Origin`: where a request came from, as services record it (audit events, login sessions).

Functions build it from the HTTP call (`Call.origin`); services take it as a typed argument and
never see the request itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Origin:
    request_id: str
    ip: str  # the client IP after the trusted proxy hops (coditect.http.client_ip)
    user_agent: str | None = None
