"""Entry points of the child processes the sessions tests start (multiprocessing "spawn")."""

from __future__ import annotations

import time

from coditect.sessions import purge, service
from coditect.store import open_store
from tests.unit.sessions.helpers import append, context_bypassing_auth


def append_many(
    url: str, tenant_id: str, user_id: str, conversation_id: str, writer: int, count: int
) -> list[int]:
    """Append `count` messages "w<writer>-<i>" through the service layer; return their seqs."""
    db = open_store(url)
    ctx = context_bypassing_auth(tenant_id, user_id)
    return [append(db, ctx, conversation_id, f"w{writer}-{i}") for i in range(count)]


def slow_delete(url: str, tenant_id: str, user_id: str, session_id: str) -> None:
    """Delete a session with a purge slowed down (small steps, a pause after each), so the test
    can SIGKILL this process in the middle of it."""
    purge.STEP_KEYS = 100
    real = purge._subspace_step

    def slow_step(tr, tid, sid):  # type: ignore[no-untyped-def]
        done = real(tr, tid, sid)
        time.sleep(0.05)
        return done

    purge._subspace_step = slow_step  # type: ignore[assignment]
    db = open_store(url)
    service.delete(db, context_bypassing_auth(tenant_id, user_id), session_id, budget_seconds=600)
