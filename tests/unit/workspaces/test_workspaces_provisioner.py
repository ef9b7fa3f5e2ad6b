"""The provisioner interface: spec validation, failure reasons, the shared readiness loop."""

from __future__ import annotations

import uuid

import pytest

from coditect.workspaces.provisioner import (
    FAILURE_REASONS,
    NOT_FOUND,
    Endpoint,
    Provisioner,
    ProvisionFailed,
    WorkloadState,
    WorkspaceSpec,
)


class Probing(Provisioner):
    """The smallest concrete provisioner: only wait_until_ready is exercised."""

    def start(self, spec: WorkspaceSpec) -> Endpoint:
        raise NotImplementedError

    def stop(self, workspace_id: str) -> None:
        raise NotImplementedError

    def status(self, workspace_id: str) -> WorkloadState:
        return NOT_FOUND

    def list_workloads(self) -> dict[str, WorkloadState]:
        return {}


def ids() -> dict[str, str]:
    return {k: str(uuid.uuid4()) for k in ("workspace_id", "tenant_id", "user_id", "session_id")}


@pytest.mark.parametrize(
    "overrides",
    [
        {"workspace_id": "not-a-uuid"},
        {"tenant_id": str(uuid.uuid4()).upper()},
        {"user_id": "{" + str(uuid.uuid4()) + "}"},
        {"command": ()},
        {"command": ("ok", "")},
        {"command": ["list", "not", "tuple"]},
        {"image": "has space:1"},
    ],
)
def test_invalid_specs_are_invalid_spec(overrides: dict) -> None:
    with pytest.raises(ProvisionFailed) as info:
        WorkspaceSpec(**(ids() | overrides))
    assert info.value.reason == "invalid_spec"


def test_failure_reasons_are_a_closed_set() -> None:
    assert FAILURE_REASONS == {
        "image_pull_failed", "unschedulable", "quota_exceeded", "start_timeout", "crashed", "invalid_spec",
        "sandbox_unavailable", "forbidden",
    }  # fmt: skip
    with pytest.raises(ValueError):
        ProvisionFailed("oops", "no such reason")  # type: ignore[arg-type]
    failure = ProvisionFailed("crashed", "exit 1")
    assert (failure.reason, failure.message, str(failure)) == ("crashed", "exit 1", "crashed: exit 1")


def test_wait_returns_when_the_probe_is_ready() -> None:
    answers = iter([None, None, Endpoint("h", 1)])
    assert Probing(start_timeout=5, poll_interval=0.01).wait_until_ready(lambda: next(answers)) == Endpoint(
        "h", 1
    )


def test_wait_fails_fast_with_the_probes_reason() -> None:
    def probe() -> Endpoint | None:
        raise ProvisionFailed("image_pull_failed", "nope")

    with pytest.raises(ProvisionFailed) as info:
        Probing(start_timeout=30).wait_until_ready(probe)
    assert info.value.reason == "image_pull_failed"


def test_wait_times_out() -> None:
    with pytest.raises(ProvisionFailed) as info:
        Probing(start_timeout=0.1, poll_interval=0.01).wait_until_ready(lambda: None, what="ws")
    assert info.value.reason == "start_timeout" and "ws" in info.value.message
