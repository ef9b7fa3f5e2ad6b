"""The workspace state machine (pure) and the repository's index bookkeeping on a real store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from coditect import keyspace
from coditect.repo import UniqueViolation
from coditect.store import open_store
from coditect.workspaces import lifecycle, repository
from coditect.workspaces.lifecycle import IllegalTransition
from coditect.workspaces.models import HISTORY_LIMIT, Transition, Workspace, WorkspaceRecord
from coditect.workspaces.provisioner import Endpoint

T = datetime(2026, 1, 1, tzinfo=UTC)
EP = Endpoint("10.0.0.1", 3000)


def new(**overrides) -> WorkspaceRecord:  # type: ignore[no-untyped-def]
    fields = dict(
        id=str(uuid.uuid4()), tenant_id=str(uuid.uuid4()), user_id=str(uuid.uuid4()),
        session_id=str(uuid.uuid4()), status="requested", created_at=T, updated_at=T,
    )  # fmt: skip
    return WorkspaceRecord(**(fields | overrides))


def test_happy_path_records_every_step_and_keeps_the_endpoint_only_while_ready() -> None:
    r = new()
    r = lifecycle.advance(r, "provisioning", T + timedelta(seconds=1))
    r = lifecycle.advance(r, "ready", T + timedelta(seconds=2), endpoint=EP)
    assert lifecycle.endpoint_of(r) == EP and r.ready_at == T + timedelta(seconds=2)
    r = lifecycle.advance(r, "stopping", T + timedelta(seconds=3), reason="idle_timeout")
    assert lifecycle.endpoint_of(r) is None and r.endpoint_host is None
    r = lifecycle.advance(r, "stopped", T + timedelta(seconds=4))
    assert (r.status, r.status_reason, r.updated_at) == ("stopped", "idle_timeout", T + timedelta(seconds=4))
    assert [(h.status, h.reason) for h in r.history] == [
        ("provisioning", None), ("ready", None), ("stopping", "idle_timeout"), ("stopped", "idle_timeout"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ([], "ready"),
        ([], "stopped"),
        (["provisioning", "failed"], "provisioning"),
        (["stopping", "stopped"], "ready"),
        (["stopping"], "failed"),
    ],
)
def test_illegal_transitions_raise(path, target) -> None:
    r = new()
    for step in path:
        r = lifecycle.advance(r, step, T, reason="x")
    with pytest.raises(IllegalTransition):
        lifecycle.advance(r, target, T, endpoint=EP)


def test_ready_needs_an_endpoint_and_history_is_bounded() -> None:
    with pytest.raises(ValueError):
        lifecycle.advance(lifecycle.advance(new(), "provisioning", T), "ready", T)
    r = new(history=[Transition(status="requested", at=T)] * (HISTORY_LIMIT + 5))
    assert len(lifecycle.advance(r, "provisioning", T).history) == HISTORY_LIMIT


def test_public_shape_has_no_server_state() -> None:
    r = lifecycle.advance(lifecycle.advance(new(), "provisioning", T), "ready", T, endpoint=EP)
    shown = Workspace.of(r).model_dump(mode="json")
    assert set(shown) == {"id", "session_id", "status", "status_reason", "created_at", "updated_at", "sync"}
    assert shown["sync"] is None  # no report yet
    assert "10.0.0.1" not in str(shown)


def test_indexes_follow_the_status_and_delete_leaves_nothing(tmp_path: Path) -> None:
    db = open_store(f"sqlite://{tmp_path / 'store.db'}")
    r = new(idempotency_key="k")
    tid, uid = r.tenant_id, r.user_id
    db.transact(repository.save, r, None)
    count = lambda who: db.transact(repository.count_active, tid, who, stop_at=10)  # noqa: E731
    assert (count(uid), count(None)) == (1, 1)
    assert db.transact(repository.tenant_of, r.id) == tid
    assert db.transact(repository.status_of, tid, r.id) == "requested"
    twin = new(tenant_id=tid, user_id=uid, session_id=r.session_id)
    with pytest.raises(UniqueViolation):  # one active workspace per session, enforced by the index
        db.transact(repository.save, twin, None)
    stopping = lifecycle.advance(r, "stopping", T, reason="stopped_by_user")
    db.transact(repository.save, stopping, r)
    assert (count(uid), count(None)) == (0, 0)
    assert db.transact(repository.active_for_session, tid, r.session_id) is None
    assert db.transact(repository.tenant_of, r.id) == tid  # still live: a workload may exist
    stopped = lifecycle.advance(stopping, "stopped", T)
    db.transact(repository.save, stopped, stopping)
    assert db.transact(repository.tenant_of, r.id) is None
    assert db.transact(repository.by_idempotency_key, tid, uid, "k") == stopped
    db.transact(repository.delete, stopped)
    left = db.transact(
        lambda tr: (
            tr.get_range(*keyspace.tenant(tid).range()) + tr.get_range(*keyspace.WORKSPACE_INDEX.range())
        )
    )
    assert left == []
    db.close()
