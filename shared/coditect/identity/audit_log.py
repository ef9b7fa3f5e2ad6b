"""GET /api/v5/audit: the tenant's events, newest first (the route is `auth="admin"`)."""

from __future__ import annotations

from coditect import audit
from coditect.identity.context import TenantContext
from coditect.identity.models import PageQuery
from coditect.store import Database


def list_events(
    db: Database, ctx: TenantContext, query: PageQuery
) -> tuple[list[audit.AuditEvent], str | None]:
    """One page of the caller's tenant's events and the cursor of the next."""
    return db.transact(
        lambda tr: audit.list_events(tr, ctx.tenant_id, limit=query.limit, cursor=query.cursor)
    )
