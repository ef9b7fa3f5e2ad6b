"""Unit fixtures for the sessions area: a fresh store and tenant contexts minted WITHOUT auth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from coditect.identity.context import TenantContext
from coditect.store import Database, open_store
from tests.unit.sessions.helpers import context_bypassing_auth


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_store(f"sqlite://{tmp_path / 'store.db'}?synchronous=NORMAL")
    yield database
    database.close()


@pytest.fixture
def alice() -> TenantContext:
    return context_bypassing_auth()


@pytest.fixture
def bob_same_tenant(alice: TenantContext) -> TenantContext:
    return context_bypassing_auth(tenant_id=alice.tenant_id)
