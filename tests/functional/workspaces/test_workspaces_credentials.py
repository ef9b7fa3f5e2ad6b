"""The workspace credential's lifetime rules (issue 11, item 3), on the real store: accepted while
`stopping` (the agent flushes then), dead once stopped, once expired, once its session is deleted
or its owner disabled; confined to its session's files routes and its own sync report."""

from __future__ import annotations

import time

import pytest

from coditect.config import get_settings
from coditect.errors import Forbidden, Unauthorized
from coditect.identity import middleware
from coditect.identity import repository as identity
from coditect.sessions import repository as tables
from coditect.workspaces import credentials, repository
from tests.helpers import check_envelope


def minted(ws):  # type: ignore[no-untyped-def]
    alice = ws.accounts.register()
    sid = ws.session_for(alice)
    wid = check_envelope(ws.allocate(alice, sid), 202)["id"]
    record = ws.record(alice, wid)
    return alice, sid, wid, credentials.mint(ws.db, record, get_settings())


def files(ws, token, sid):  # type: ignore[no-untyped-def]
    return credentials.authenticate(ws.db, token, "files.list", {"sid": sid})


def test_the_middleware_dispatches_on_the_same_prefix() -> None:
    assert middleware.WORKSPACE_CREDENTIAL_PREFIX == credentials.PREFIX


def test_bound_to_its_session_and_workspace(ws) -> None:
    alice, sid, wid, token = minted(ws)
    ctx = files(ws, token, sid)
    assert (ctx.tenant_id, ctx.user_id, credentials.workspace_of(ctx)) == (
        alice.tenant_id,
        alice.user_id,
        wid,
    )
    assert credentials.authenticate(ws.db, token, "workspaces.sync", {"id": wid}).user_id == alice.user_id
    for route, params in [
        ("files.list", {"sid": ws.session_for(alice)}),
        ("workspaces.sync", {"id": "00000000-0000-4000-8000-000000000000"}),
        ("workspaces.get", {"id": wid}),
        ("sessions.list", {}),
    ]:
        with pytest.raises(Forbidden):
            credentials.authenticate(ws.db, token, route, params)


def test_alive_while_stopping_dead_once_stopped(ws) -> None:
    alice, sid, wid, token = minted(ws)

    def set_status(status: str) -> None:
        def go(tr):  # type: ignore[no-untyped-def]
            record = repository.get(tr, alice.tenant_id, wid)
            repository.save(tr, record.model_copy(update={"status": status}), record)

        ws.db.transact(go)

    set_status("stopping")
    files(ws, token, sid)  # the agent's flush still goes through
    set_status("stopped")
    with pytest.raises(Unauthorized) as info:
        files(ws, token, sid)
    assert info.value.code == "session_revoked"


def test_dead_after_expiry_session_deletion_or_disabling(ws) -> None:
    alice, sid, _wid, token = minted(ws)
    later = time.time() + credentials.lifetime(get_settings()) + 1
    with pytest.raises(Unauthorized) as info:
        credentials.authenticate(ws.db, token, "files.list", {"sid": sid}, now=later)
    assert info.value.code == "token_expired"

    def disable(tr):  # type: ignore[no-untyped-def]
        user = identity.get_user(tr, alice.tenant_id, alice.user_id)
        identity.put_user(tr, user.model_copy(update={"disabled": True}))

    ws.db.transact(disable)
    with pytest.raises(Unauthorized) as info:
        files(ws, token, sid)
    assert info.value.code == "session_revoked"

    bob, bob_sid, _, bob_token = minted(ws)

    def delete_session(tr):  # type: ignore[no-untyped-def]
        table = tables.sessions(bob.tenant_id)
        record = table.get(tr, bob_sid, tables.REC)
        table.put(tr, (bob_sid, tables.REC), record.model_copy(update={"state": "deleting"}))

    files(ws, bob_token, bob_sid)
    ws.db.transact(delete_session)
    with pytest.raises(Unauthorized):
        files(ws, bob_token, bob_sid)
    with pytest.raises(Unauthorized) as info:
        files(ws, "cwc_" + "x" * 43, bob_sid)
    assert info.value.code == "token_invalid"
