"""GET /api/v5/audit: the tenant's events, newest first (owner/admin)."""

from __future__ import annotations

from typing import Any

from coditect import audit
from coditect.http.call import Call
from coditect.http.envelope import page
from coditect.identity import authz
from coditect.identity.models import PageQuery


def list_events(call: Call) -> dict[str, Any]:
    ctx = authz.require_admin(call)
    query: PageQuery = call.query
    events, cursor = call.db.transact(
        lambda tr: audit.list_events(tr, ctx.tenant_id, limit=query.limit, cursor=query.cursor)
    )
    return page(events, cursor)
