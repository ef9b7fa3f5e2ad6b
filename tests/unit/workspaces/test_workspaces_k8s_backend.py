"""KubernetesProvisioner against the in-process FAKE Kubernetes API (tests/fakes/k8s_api.py).

Fast failure is checked by the reason, never by timing: with a 30 s start_timeout a broken
fast-fail path would surface as "start_timeout" instead of the expected reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import kubernetes.client
import pytest

from coditect.workspaces.k8s import objects
from coditect.workspaces.k8s.backend import KubernetesProvisioner
from coditect.workspaces.k8s.objects import WorkspaceTemplate
from coditect.workspaces.provisioner import Endpoint, ProvisionFailed, TransientProvisionError
from tests.fakes.k8s_api import (
    FakeKubernetesAPI,
    crash_loop_status,
    ready_status,
    unschedulable_status,
    waiting_status,
)

NS = "workspaces"
TEMPLATE = WorkspaceTemplate(image="ghcr.io/coditect/theia:1.52.0", port=3000)
QUOTA_MESSAGE = (
    'pods "x" is forbidden: exceeded quota: compute, requested: limits.cpu=2, used: limits.cpu=8, limited: '
    "limits.cpu=8"
)


@pytest.fixture
def fake() -> Iterator[FakeKubernetesAPI]:
    with FakeKubernetesAPI() as api:
        yield api


@pytest.fixture
def prov(fake: FakeKubernetesAPI) -> KubernetesProvisioner:
    return KubernetesProvisioner(
        NS, TEMPLATE, fake.api_client(), relay_namespace="coditect", start_timeout=30, poll_interval=0.02
    )


def names(fake: FakeKubernetesAPI) -> set[tuple[str, str]]:
    return {(resource, name) for resource, _, name in fake.objects}


def test_ready_path_returns_the_service_endpoint(fake, prov, make_spec) -> None:
    spec = make_spec()
    name = objects.workload_name(spec.workspace_id)
    fake.script_pod(name, (1, waiting_status("ContainerCreating")), (3, ready_status()))
    endpoint = prov.start(spec)
    assert endpoint == Endpoint(f"{name}.{NS}.svc.cluster.local", 3000)
    assert names(fake) == {("pods", name), ("services", name), ("networkpolicies", name)}
    pod_uid = fake.get("pods", name, NS)["metadata"]["uid"]
    for resource in ("services", "networkpolicies"):
        refs = fake.get(resource, name, NS)["metadata"]["ownerReferences"]
        assert refs == [{"apiVersion": "v1", "kind": "Pod", "name": name, "uid": pod_uid}]
    sent = fake.get("pods", name, NS)
    assert sent["spec"] == objects.build_pod(spec, TEMPLATE, NS)["spec"]
    state = prov.status(spec.workspace_id)
    assert (state.running, state.ready, state.endpoint) == (True, True, endpoint)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (waiting_status("InvalidImageName", "couldn't parse image"), "image_pull_failed"),
        (crash_loop_status(exit_code=137), "crashed"),
    ],
)
def test_detectable_failures_fail_fast_and_leave_nothing(fake, prov, make_spec, status, reason) -> None:
    spec = make_spec()
    fake.script_pod(objects.workload_name(spec.workspace_id), (2, status))
    with pytest.raises(ProvisionFailed) as info:
        prov.start(spec)
    assert info.value.reason == reason
    assert fake.objects == {}  # the failed pod and its service/policy were deleted


def test_a_pod_deleted_while_starting_fails_as_crashed(fake, prov, make_spec) -> None:
    spec = make_spec()
    name = objects.workload_name(spec.workspace_id)
    fake.fail_next("GET", "pods", 404, "NotFound", f'pods "{name}" not found')  # the first probe's read
    with pytest.raises(ProvisionFailed, match="deleted while starting") as info:
        prov.start(spec)
    assert info.value.reason == "crashed"
    assert fake.objects == {}


def test_unschedulable_waits_for_a_node_then_starts(fake, prov, make_spec) -> None:
    """The cluster autoscaler adds a node: the start must still be waiting when it does."""
    spec = make_spec()
    fake.script_pod(
        objects.workload_name(spec.workspace_id), (0, unschedulable_status()), (8, ready_status())
    )
    assert prov.start(spec).port == 3000


def test_unschedulable_until_the_timeout_fails_with_the_schedulers_message(fake, make_spec) -> None:
    prov = KubernetesProvisioner(NS, TEMPLATE, fake.api_client(), start_timeout=0.3, poll_interval=0.02)
    spec = make_spec()
    fake.script_pod(
        objects.workload_name(spec.workspace_id), (0, unschedulable_status("0/3 nodes: Insufficient cpu"))
    )
    with pytest.raises(ProvisionFailed, match="Insufficient cpu") as info:
        prov.start(spec)
    assert info.value.reason == "unschedulable" and fake.objects == {}


def test_a_transient_pull_failure_recovers_and_repeated_back_offs_fail(fake, prov, make_spec) -> None:
    flaky, broken = make_spec(), make_spec()
    pull, backoff = waiting_status("ErrImagePull", "i/o timeout"), waiting_status("ImagePullBackOff")
    fake.script_pod(objects.workload_name(flaky.workspace_id), (0, pull), (2, backoff), (4, ready_status()))
    assert prov.start(flaky).port == 3000
    steps = [(i, pull if i % 2 == 0 else backoff) for i in range(0, 12)]
    fake.script_pod(objects.workload_name(broken.workspace_id), *steps)
    with pytest.raises(ProvisionFailed) as info:
        prov.start(broken)  # fails on back-off #3, long before the 30 s start_timeout
    assert info.value.reason == "image_pull_failed" and "back-offs" in info.value.message


@pytest.mark.parametrize(
    "message",
    [
        'pods "ws-1" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true',
        'pods is forbidden: User "system:serviceaccount:coditect:coditect-provisioner" cannot create resource',
    ],
)
def test_a_403_from_admission_or_rbac_is_permanent_with_its_reason(fake, prov, make_spec, message) -> None:
    fake.fail_next("POST", "pods", 403, "Forbidden", message)
    with pytest.raises(ProvisionFailed) as info:
        prov.start(make_spec())
    assert info.value.reason == "forbidden" and message in info.value.message


def test_stop_returns_only_once_the_pod_is_gone(fake, prov, make_spec) -> None:
    spec = make_spec()
    name = objects.workload_name(spec.workspace_id)
    fake.script_pod(name, (0, ready_status()))
    prov.start(spec)
    fake.linger(name, 5)  # terminating for five more reads (its grace period)
    prov.stop(spec.workspace_id)
    assert fake.get("pods", name, NS) is None
    prov.start(spec)  # the next start creates a fresh pod, no 409 with a terminating one
    assert fake.get("pods", name, NS) is not None


def test_a_pod_that_never_goes_makes_the_stop_transient(fake, make_spec) -> None:
    prov = KubernetesProvisioner(NS, TEMPLATE, fake.api_client(), poll_interval=0.02, stop_timeout=0.2)
    spec = make_spec()
    fake.script_pod(objects.workload_name(spec.workspace_id), (0, ready_status()))
    prov.start(spec)
    fake.linger(objects.workload_name(spec.workspace_id), 10**6)
    with pytest.raises(TransientProvisionError, match="still terminating"):
        prov.stop(spec.workspace_id)


def test_never_ready_times_out(fake, make_spec) -> None:
    prov = KubernetesProvisioner(NS, TEMPLATE, fake.api_client(), start_timeout=0.3, poll_interval=0.02)
    with pytest.raises(ProvisionFailed) as info:
        prov.start(make_spec())
    assert info.value.reason == "start_timeout"
    assert fake.objects == {}


def test_quota_exceeded_on_create(fake, prov, make_spec) -> None:
    fake.fail_next("POST", "pods", 403, "Forbidden", QUOTA_MESSAGE)
    with pytest.raises(ProvisionFailed) as info:
        prov.start(make_spec())
    assert info.value.reason == "quota_exceeded"
    assert fake.objects == {}


@pytest.mark.parametrize("code", [500, 503, 429])
def test_server_errors_are_transient(fake, prov, make_spec, code) -> None:
    fake.fail_next("POST", "pods", code, "InternalError", "etcdserver: request timed out")
    with pytest.raises(TransientProvisionError):
        prov.start(make_spec())


def test_unreachable_api_is_transient(make_spec) -> None:
    with FakeKubernetesAPI() as gone:
        url = gone.url
    config = kubernetes.client.Configuration(host=url)
    config.retries = 0
    prov = KubernetesProvisioner(NS, TEMPLATE, kubernetes.client.ApiClient(config), start_timeout=5)
    with pytest.raises(TransientProvisionError):
        prov.start(make_spec())
    with pytest.raises(TransientProvisionError):
        prov.list_workloads()


def test_existing_pod_is_adopted_on_409(fake, prov, make_spec) -> None:
    spec = make_spec()
    name = objects.workload_name(spec.workspace_id)
    fake.put("pods", objects.build_pod(spec, TEMPLATE, NS))  # a previous delivery created it
    fake.script_pod(name, (1, ready_status()))
    first = prov.start(spec)
    assert ("POST", f"/api/v1/namespaces/{NS}/pods") in fake.requests
    assert prov.start(spec) == first  # and again: idempotent
    assert [key for key in fake.objects if key[0] == "pods"] == [("pods", NS, name)]
    assert ("services", NS, name) in fake.objects


def test_dependent_owned_by_an_older_pod_is_transient(fake, prov, make_spec) -> None:
    spec = make_spec()
    fake.put("services", objects.build_service(spec, TEMPLATE, NS, "uid-of-an-older-pod"))
    with pytest.raises(TransientProvisionError, match="older pod"):
        prov.start(spec)


def test_terminating_pod_is_transient(fake, prov, make_spec) -> None:
    spec = make_spec()
    pod = objects.build_pod(spec, TEMPLATE, NS)
    pod["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    fake.put("pods", pod)
    with pytest.raises(TransientProvisionError, match="terminating"):
        prov.start(spec)
    assert prov.status(spec.workspace_id).reason == "terminating"


def test_invalid_image_override_is_invalid_spec(prov, make_spec) -> None:
    with pytest.raises(ProvisionFailed) as info:
        prov.start(make_spec(image="ghcr.io/coditect/theia:latest"))
    assert info.value.reason == "invalid_spec"


def test_stop_deletes_everything_and_404_is_fine(fake, prov, make_spec) -> None:
    spec = make_spec()
    fake.script_pod(objects.workload_name(spec.workspace_id), (0, ready_status()))
    prov.start(spec)
    prov.stop(spec.workspace_id)
    assert fake.objects == {}
    prov.stop(spec.workspace_id)  # everything answers 404 now
    prov.stop(make_spec().workspace_id)  # never existed
    assert prov.status(spec.workspace_id).reason == "not_found"


def test_stop_removes_dependents_even_without_the_pod(fake, prov, make_spec) -> None:
    spec = make_spec()
    fake.put("services", objects.build_service(spec, TEMPLATE, NS, "gone"))
    prov.stop(spec.workspace_id)
    assert fake.objects == {}


def test_list_workloads_by_label(fake, prov, make_spec) -> None:
    ready, failing = make_spec(), make_spec()
    fake.script_pod(objects.workload_name(ready.workspace_id), (0, ready_status()))
    prov.start(ready)
    fake.put("pods", objects.build_pod(failing, TEMPLATE, NS))
    fake.script_pod(objects.workload_name(failing.workspace_id), (0, waiting_status("ErrImagePull")))
    fake.put(
        "pods",
        {
            "metadata": {"name": "unmanaged", "namespace": NS, "labels": {"app": "x"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        },
    )
    fake.put("pods", objects.build_pod(make_spec(), TEMPLATE, "other-namespace"))
    listed = prov.list_workloads()
    assert set(listed) == {ready.workspace_id, failing.workspace_id}
    assert listed[ready.workspace_id].ready and listed[ready.workspace_id].endpoint is not None
    assert listed[failing.workspace_id].ready is False
    assert any(path.endswith("/pods") for method, path in fake.requests if method == "GET")
