"""Kubernetes manifests for one workspace, as pure functions returning plain dicts.

As in KubeSpawner's ``objects.py``: no I/O and no ``kubernetes`` import here, so the manifests are
tested by dict equality (and validated through the client's models in tests); `backend` sends
them. Per workspace: a Pod, a ClusterIP Service in front of it, and a NetworkPolicy admitting only
the relay. The Service and NetworkPolicy are owned by the Pod, so deleting the Pod deletes all.

The pod-status readers at the end (`pod_failure`, `pod_ready`) are pure too: they turn a Pod as
the API returns it (camelCase dict) into the provisioner's vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from coditect.workspaces.provisioner import FailureReason, WorkspaceSpec

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "coditect"
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
TENANT_LABEL = "coditect.io/tenant"
USER_LABEL = "coditect.io/user"
WORKSPACE_LABEL = "coditect.io/workspace"
SESSION_ANNOTATION = "coditect.io/session"
RELAY_LABELS = {"app.kubernetes.io/name": "coditect-relay"}
CONTAINER_NAME = "workspace"
PORT_NAME = "http"
RUN_AS = 1000
_RESTRICTED = {"runAsNonRoot": True, "runAsUser": RUN_AS, "seccompProfile": {"type": "RuntimeDefault"}}


def image_is_pinned(image: str) -> bool:
    """True for ``repo@sha256:…`` or ``repo:tag`` with a tag other than ``latest``."""
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]  # a registry "host:port/" prefix is not a tag
    return ":" in last and last.rsplit(":", 1)[1] not in ("", "latest")


@dataclass(frozen=True)
class WorkspaceTemplate:
    """What every workspace pod gets, unless a `WorkspaceSpec` overrides image or command.

    `writable_paths` become emptyDir mounts (capped at `scratch_size_limit`) so the root
    filesystem can stay read-only while the IDE still has a home and /tmp.
    """

    image: str
    port: int = 3000
    cpu_request: str = "250m"
    cpu_limit: str = "2"
    memory_request: str = "512Mi"
    memory_limit: str = "2Gi"
    env: Mapping[str, str] = field(default_factory=dict)
    command: tuple[str, ...] | None = None
    read_only_root_filesystem: bool = True
    writable_paths: tuple[str, ...] = ("/tmp", "/home/coditect")  # noqa: S108 - mount paths in the pod
    scratch_size_limit: str = "1Gi"
    image_pull_policy: str = "IfNotPresent"
    termination_grace_seconds: int = 10

    def __post_init__(self) -> None:
        if not image_is_pinned(self.image):
            raise ValueError(f"template image {self.image!r} must be pinned by tag or digest")
        if not 0 < self.port < 65536:
            raise ValueError("port out of range")


def workload_name(workspace_id: str) -> str:
    """Pod, Service and NetworkPolicy name: ``ws-<uuid>`` (39 chars, a DNS-1035 label).

    The prefix makes it start with a letter, as Service names must; the id is a canonical UUID
    (checked by `WorkspaceSpec`), so the name is lowercase alphanumerics and hyphens.
    """
    return f"ws-{workspace_id}"


def selector_labels(workspace_id: str) -> dict[str, str]:
    return {WORKSPACE_LABEL: workspace_id, MANAGED_BY_LABEL: MANAGED_BY}


def workload_labels(spec: WorkspaceSpec) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "coditect-workspace",
        MANAGED_BY_LABEL: MANAGED_BY,
        TENANT_LABEL: spec.tenant_id,
        USER_LABEL: spec.user_id,
        WORKSPACE_LABEL: spec.workspace_id,
    }


def _metadata(spec: WorkspaceSpec, namespace: str, owner_uid: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": workload_name(spec.workspace_id),
        "namespace": namespace,
        "labels": workload_labels(spec),
        "annotations": {SESSION_ANNOTATION: spec.session_id},
    }
    if owner_uid is not None:
        meta["ownerReferences"] = [owner_reference(spec.workspace_id, owner_uid)]
    return meta


def owner_reference(workspace_id: str, pod_uid: str) -> dict[str, Any]:
    """Makes the Pod the owner: the garbage collector deletes dependents with it."""
    return {"apiVersion": "v1", "kind": "Pod", "name": workload_name(workspace_id), "uid": pod_uid}


def build_pod(spec: WorkspaceSpec, template: WorkspaceTemplate, namespace: str) -> dict[str, Any]:
    command = spec.command or template.command
    env = [{"name": k, "value": v} for k, v in template.env.items()]
    env += [
        {"name": "CODITECT_WORKSPACE_ID", "value": spec.workspace_id},
        {"name": "CODITECT_PORT", "value": str(template.port)},
    ]
    volumes = [
        {"name": f"scratch-{i}", "emptyDir": {"sizeLimit": template.scratch_size_limit}}
        for i in range(len(template.writable_paths))
    ]
    mounts = [{"name": f"scratch-{i}", "mountPath": p} for i, p in enumerate(template.writable_paths)]
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image or template.image,
        "imagePullPolicy": template.image_pull_policy,
        "ports": [{"name": PORT_NAME, "containerPort": template.port, "protocol": "TCP"}],
        "env": env,
        "resources": {
            "requests": {"cpu": template.cpu_request, "memory": template.memory_request},
            "limits": {"cpu": template.cpu_limit, "memory": template.memory_limit},
        },
        "securityContext": {
            **_RESTRICTED,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": template.read_only_root_filesystem,
        },
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": PORT_NAME},
            "periodSeconds": 2,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "volumeMounts": mounts,
    }
    if command:
        container["command"] = [arg.replace("{port}", str(template.port)) for arg in command]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(spec, namespace),
        "spec": {
            # The workspace runs user code: it gets no API credentials and no service env vars.
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": template.termination_grace_seconds,
            "securityContext": {**_RESTRICTED, "runAsGroup": RUN_AS, "fsGroup": RUN_AS},
            "containers": [container],
            "volumes": volumes,
        },
    }


def build_service(
    spec: WorkspaceSpec, template: WorkspaceTemplate, namespace: str, pod_uid: str
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, namespace, pod_uid),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(spec.workspace_id),
            "ports": [{"name": PORT_NAME, "port": template.port, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def build_network_policy(
    spec: WorkspaceSpec, template: WorkspaceTemplate, namespace: str, pod_uid: str, relay_namespace: str
) -> dict[str, Any]:
    """Ingress to the workspace port only from relay pods in the platform namespace."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(spec, namespace, pod_uid),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(spec.workspace_id)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            # Both selectors in one peer: relay pods AND in that namespace.
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": relay_namespace}
                            },
                            "podSelector": {"matchLabels": dict(RELAY_LABELS)},
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": template.port}],
                }
            ],
        },
    }


def service_host(workspace_id: str, namespace: str, cluster_domain: str = "cluster.local") -> str:
    return f"{workload_name(workspace_id)}.{namespace}.svc.{cluster_domain}"


# -- reading pod status ---------------------------------------------------------------------------

# Never retried by the kubelet: final at once. The others are retried with back-off (StartWatch).
IMAGE_PULL_REASONS = frozenset({"InvalidImageName", "ErrImageNeverPull"})
RETRIED_PULL_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff"})


def _container_failure(cs: Mapping[str, Any]) -> tuple[FailureReason, str] | None:
    state = cs.get("state") or {}
    waiting = state.get("waiting") or {}
    name, why, detail = cs.get("name", "?"), waiting.get("reason", ""), waiting.get("message", "")
    if why in IMAGE_PULL_REASONS:
        return "image_pull_failed", f"container {name}: {why}: {detail}".rstrip(": ")
    if why == "CrashLoopBackOff":
        return "crashed", f"container {name}: {why}: {detail}".rstrip(": ")
    terminated = state.get("terminated") or (cs.get("lastState") or {}).get("terminated")
    if terminated and cs.get("restartCount", 0) > 0:
        code = terminated.get("exitCode")
        return "crashed", f"container {name} exited with code {code} ({terminated.get('reason', '')})"
    return None


def pod_failure(pod: Mapping[str, Any]) -> tuple[FailureReason, str] | None:
    """The permanent failure of a starting pod, or None if it may still become ready.

    Neither `Unschedulable` nor a first failed image pull is final (see `StartWatch`): a cluster
    autoscaler adds a node for an unschedulable pod, and registries fail transiently.
    """
    status = pod.get("status") or {}
    phase = status.get("phase")
    if phase in ("Failed", "Succeeded"):
        return (
            "crashed",
            f"pod {phase.lower()}: {status.get('reason') or status.get('message') or ''}".rstrip(),
        )
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        failure = _container_failure(cs)
        if failure is not None:
            return failure
    return None


def pending_reason(pod: Mapping[str, Any]) -> tuple[FailureReason, str] | None:
    """Why a pod is not running yet, when that is worth reporting should the start time out."""
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            if cond.get("reason") == "Unschedulable":
                return "unschedulable", cond.get("message") or "no node can run the workspace"
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in RETRIED_PULL_REASONS:
            return "image_pull_failed", f"container {cs.get('name', '?')}: {waiting['reason']}: " + str(
                waiting.get("message", "")
            )
    return None


class StartWatch:
    """Follows one pod through its start, as KubeSpawner does (stateful, one per start).

    - `Unschedulable` waits until the start timeout (the cluster autoscaler may add a node); the
      timeout is then reported as `unschedulable` with the scheduler's message.
    - A failed image pull is retried by the kubelet with back-off (ErrImagePull, then
      ImagePullBackOff, then a new pull...); the start fails as `image_pull_failed` once the pod
      has entered back-off `PULL_BACKOFFS` times, not at the first ErrImagePull.
    """

    PULL_BACKOFFS = 3

    def __init__(self) -> None:
        self.pending: tuple[FailureReason, str] | None = None
        self.backoffs = 0
        self._in_backoff = False

    def observe(self, pod: Mapping[str, Any]) -> tuple[FailureReason, str] | None:
        """The start's permanent failure, or None while it may still succeed."""
        failure = pod_failure(pod)
        if failure is not None:
            return failure
        self.pending = pending_reason(pod)
        statuses = (pod.get("status") or {}).get("initContainerStatuses") or []
        statuses += (pod.get("status") or {}).get("containerStatuses") or []
        waiting = {((cs.get("state") or {}).get("waiting") or {}).get("reason") for cs in statuses}
        in_backoff = "ImagePullBackOff" in waiting
        if in_backoff and not self._in_backoff:
            self.backoffs += 1
        self._in_backoff = in_backoff
        if self.backoffs >= self.PULL_BACKOFFS and self.pending is not None:
            reason, message = self.pending
            return reason, f"{message} (after {self.backoffs} pull back-offs)"
        return None


def pod_ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    if (pod.get("metadata") or {}).get("deletionTimestamp") or status.get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
