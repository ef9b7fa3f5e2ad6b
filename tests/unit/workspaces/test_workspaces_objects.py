"""Kubernetes manifests: exact dicts, validated through the kubernetes client's models."""

from __future__ import annotations

import re

import kubernetes.client as k8s
import pytest

from coditect.workspaces.k8s import objects
from coditect.workspaces.k8s.objects import WorkspaceTemplate
from coditect.workspaces.provisioner import WorkspaceSpec
from tests.fakes.k8s_api import crash_loop_status, ready_status, unschedulable_status, waiting_status

SPEC = WorkspaceSpec(
    workspace_id="0b1e9d3c-6f4a-4c1e-9a51-2f0d7e8c9a10",
    tenant_id="11111111-2222-4333-8444-555555555555",
    user_id="66666666-7777-4888-9999-aaaaaaaaaaaa",
    session_id="bbbbbbbb-cccc-4ddd-8eee-ffffffffffff",
)
TEMPLATE = WorkspaceTemplate(image="ghcr.io/coditect/theia:1.52.0", env={"THEIA_MODE": "web"})
NAME = "ws-0b1e9d3c-6f4a-4c1e-9a51-2f0d7e8c9a10"
UID = "3f9c2a52-0000-4000-8000-000000000001"
LABELS = {
    "app.kubernetes.io/name": "coditect-workspace",
    "app.kubernetes.io/managed-by": "coditect",
    "coditect.io/tenant": SPEC.tenant_id,
    "coditect.io/user": SPEC.user_id,
    "coditect.io/workspace": SPEC.workspace_id,
}
SELECTOR = {"coditect.io/workspace": SPEC.workspace_id, "app.kubernetes.io/managed-by": "coditect"}
RESTRICTED = {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}


def meta(owned: bool) -> dict:
    m = {
        "name": NAME,
        "namespace": "workspaces",
        "labels": LABELS,
        "annotations": {"coditect.io/session": SPEC.session_id},
    }
    if owned:
        m["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": NAME, "uid": UID}]
    return m


def test_pod_manifest() -> None:
    assert objects.build_pod(SPEC, TEMPLATE, "workspaces") == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(owned=False),
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 10,
            "securityContext": {**RESTRICTED, "runAsGroup": 1000, "fsGroup": 1000},
            "containers": [
                {
                    "name": "workspace",
                    "image": "ghcr.io/coditect/theia:1.52.0",
                    "imagePullPolicy": "IfNotPresent",
                    "ports": [{"name": "http", "containerPort": 3000, "protocol": "TCP"}],
                    "env": [
                        {"name": "THEIA_MODE", "value": "web"},
                        {"name": "CODITECT_WORKSPACE_ID", "value": SPEC.workspace_id},
                        {"name": "CODITECT_PORT", "value": "3000"},
                    ],
                    "resources": {
                        "requests": {"cpu": "250m", "memory": "512Mi"},
                        "limits": {"cpu": "2", "memory": "2Gi"},
                    },
                    "securityContext": {
                        **RESTRICTED,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "readOnlyRootFilesystem": True,
                    },
                    "readinessProbe": {
                        "httpGet": {"path": "/healthz", "port": "http"},
                        "periodSeconds": 2,
                        "timeoutSeconds": 2,
                        "failureThreshold": 3,
                    },
                    "volumeMounts": [
                        {"name": "scratch-0", "mountPath": "/tmp"},
                        {"name": "scratch-1", "mountPath": "/home/coditect"},
                    ],
                }
            ],
            "volumes": [
                {"name": "scratch-0", "emptyDir": {"sizeLimit": "1Gi"}},
                {"name": "scratch-1", "emptyDir": {"sizeLimit": "1Gi"}},
            ],
        },
    }


def test_service_manifest() -> None:
    assert objects.build_service(SPEC, TEMPLATE, "workspaces", UID) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(owned=True),
        "spec": {
            "type": "ClusterIP",
            "selector": SELECTOR,
            "ports": [{"name": "http", "port": 3000, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def test_network_policy_admits_only_the_relay() -> None:
    assert objects.build_network_policy(SPEC, TEMPLATE, "workspaces", UID, "coditect-system") == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(owned=True),
        "spec": {
            "podSelector": {"matchLabels": SELECTOR},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "coditect-system"}
                            },
                            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "coditect-relay"}},
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": 3000}],
                }
            ],
        },
    }


@pytest.mark.parametrize(
    ("model", "manifest"),
    [
        (k8s.V1Pod, objects.build_pod(SPEC, TEMPLATE, "workspaces")),
        (k8s.V1Service, objects.build_service(SPEC, TEMPLATE, "workspaces", UID)),
        (k8s.V1NetworkPolicy, objects.build_network_policy(SPEC, TEMPLATE, "workspaces", UID, "coditect")),
    ],
)
def test_manifests_validate_against_client_models(model: type, manifest: dict) -> None:
    # model_validate forbids unknown fields (a misspelt key fails) and checks types; the round
    # trip proves nothing was dropped or renamed on the way to the wire.
    parsed = model.model_validate(manifest)
    assert k8s.ApiClient().sanitize_for_serialization(parsed) == manifest


def test_a_misspelt_field_is_rejected_by_the_models() -> None:
    pod = objects.build_pod(SPEC, TEMPLATE, "workspaces")
    pod["spec"]["containers"][0]["securityContext"]["runAsNonroot"] = True
    with pytest.raises(ValueError):
        k8s.V1Pod.model_validate(pod)


def test_security_context_is_restricted() -> None:
    pod = objects.build_pod(SPEC, TEMPLATE, "workspaces")
    ctx = pod["spec"]["containers"][0]["securityContext"]
    assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == 1000
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert ctx["readOnlyRootFilesystem"] is True
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_overrides_and_port_placeholder(make_spec) -> None:
    spec = make_spec(image="registry.local:5000/ide@sha256:" + "a" * 64, command=("serve", "--port={port}"))
    container = objects.build_pod(spec, TEMPLATE, "ns")["spec"]["containers"][0]
    assert container["image"] == spec.image
    assert container["command"] == ["serve", "--port=3000"]


def test_names_are_dns_labels(make_spec) -> None:
    name = objects.workload_name(make_spec().workspace_id)
    assert len(name) <= 63 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name)
    assert objects.service_host(SPEC.workspace_id, "workspaces") == f"{NAME}.workspaces.svc.cluster.local"


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("ghcr.io/x/theia:1.2", True),
        ("theia@sha256:" + "0" * 64, True),
        ("theia", False),
        ("theia:latest", False),
        ("registry:5000/theia", False),
    ],
)
def test_images_must_be_pinned(image: str, pinned: bool) -> None:
    assert objects.image_is_pinned(image) is pinned
    if not pinned:
        with pytest.raises(ValueError):
            WorkspaceTemplate(image=image)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ({"phase": "Pending"}, None),
        (ready_status(), None),
        (waiting_status("ContainerCreating"), None),
        # retried by the kubelet / the autoscaler: not final on their own (StartWatch decides)
        (waiting_status("ErrImagePull", "manifest unknown"), None),
        (waiting_status("ImagePullBackOff"), None),
        (waiting_status("InvalidImageName"), "image_pull_failed"),
        (unschedulable_status(), None),
        (crash_loop_status(), "crashed"),
        ({"phase": "Failed", "reason": "Evicted"}, "crashed"),
        (
            {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": "w",
                        "restartCount": 1,
                        "state": {"terminated": {"exitCode": 2}},
                        "lastState": {},
                    }
                ],
            },
            "crashed",
        ),
    ],
)
def test_pod_failure_classification(status: dict, reason: str | None) -> None:
    failure = objects.pod_failure({"status": status})
    assert (failure[0] if failure else None) == reason
    assert objects.pod_ready({"status": status}) is (status == ready_status())


def test_a_start_fails_on_repeated_pull_back_offs_not_on_the_first_failed_pull() -> None:
    watch = objects.StartWatch()
    pull, backoff = waiting_status("ErrImagePull", "i/o timeout"), waiting_status("ImagePullBackOff")
    for _ in range(objects.StartWatch.PULL_BACKOFFS - 1):
        for status in (pull, pull, backoff, backoff):
            assert watch.observe({"status": status}) is None
    assert watch.observe({"status": pull}) is None
    failure = watch.observe({"status": backoff})
    assert failure is not None and failure[0] == "image_pull_failed" and "ImagePullBackOff" in failure[1]


def test_unschedulable_is_pending_never_final() -> None:
    watch = objects.StartWatch()
    for _ in range(50):
        assert watch.observe({"status": unschedulable_status("0/3 nodes: Insufficient cpu")}) is None
    assert watch.pending == ("unschedulable", "0/3 nodes: Insufficient cpu")
    assert watch.observe({"status": ready_status()}) is None and watch.pending is None


def test_terminating_pod_is_not_ready() -> None:
    assert objects.pod_ready({"status": ready_status()})
    assert not objects.pod_ready(
        {"metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}, "status": ready_status()}
    )
