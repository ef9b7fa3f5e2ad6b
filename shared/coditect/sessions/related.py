"""GET /sessions/{id}/related: the parent, the forks (children) and the parent's other forks.

Children and siblings come from the `s_by_parent` index (parent, created_us, sid), oldest fork
first, each list paged on its own: `limit` applies to both, `children_cursor` / `siblings_cursor`
continue one list (the other then starts at its first page), and `children_next_cursor` /
`siblings_next_cursor` say whether more remain. A deleted parent answers `parent: null` and no
siblings (its fork index is purged with it).
"""

from __future__ import annotations

from coditect.identity.context import TenantContext
from coditect.repo.cursor import paginate
from coditect.sessions import access, repository
from coditect.sessions.models import Related, RelatedQuery, Session, SessionRecord
from coditect.store import Database, Transaction


def _forks(
    tr: Transaction, ctx: TenantContext, parent_id: str, name: str, limit: int, cursor: str | None
) -> tuple[list[SessionRecord], str | None]:
    table = repository.sessions(ctx.tenant_id)
    space = table.indexes["parent"].subspace
    begin, end = space.range(parent_id)
    kvs, next_cursor = paginate(tr, begin, end, limit=limit, cursor=cursor, query=name, snapshot=True)
    records = []
    for key, _ in kvs:
        record = table.get(tr, space.unpack(key)[-2], repository.REC, snapshot=True)
        if record is not None and record.state == "live" and record.owner_id == ctx.user_id:
            records.append(record)
    return records, next_cursor


def related(db: Database, ctx: TenantContext, session_id: str, query: RelatedQuery) -> Related:
    def read(tr: Transaction) -> Related:
        me = access.require_session(tr, ctx, session_id)
        children, children_next = _forks(
            tr, ctx, me.id, f"related.children:{me.id}", query.limit, query.children_cursor
        )
        parent = None
        siblings: list[SessionRecord] = []
        siblings_next = None
        if me.parent_id is not None:
            found = access.load_session(tr, ctx.tenant_id, me.parent_id)
            if found is not None and found.state == "live" and found.owner_id == ctx.user_id:
                parent = found
                siblings, siblings_next = _forks(
                    tr, ctx, found.id, f"related.siblings:{me.id}", query.limit, query.siblings_cursor
                )
        return Related(
            parent=None if parent is None else Session.of(parent),
            children=[Session.of(r) for r in children],
            siblings=[Session.of(r) for r in siblings if r.id != me.id],
            children_next_cursor=children_next,
            siblings_next_cursor=siblings_next,
        )

    return db.transact(read)
