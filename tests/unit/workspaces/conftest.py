"""Shared fixtures for the workspace provisioner tests."""

from __future__ import annotations

import uuid

import pytest

from coditect.workspaces.provisioner import WorkspaceSpec


@pytest.fixture
def make_spec():  # type: ignore[no-untyped-def]
    """A factory of valid specs with fresh ids; keyword arguments override fields."""

    def make(**overrides):  # type: ignore[no-untyped-def]
        ids = {k: str(uuid.uuid4()) for k in ("workspace_id", "tenant_id", "user_id", "session_id")}
        return WorkspaceSpec(**(ids | overrides))

    return make
