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

from coditect.workspaces import syncagent
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
# The sync sidecar (issue 11): a native sidecar sharing the tree with the IDE container.
SYNC_CONTAINER = "sync"
TREE_VOLUME, TREE_PATH = "tree", "/workspace"
CREDENTIAL_VOLUME, CREDENTIAL_DIR = "credential", "/var/run/coditect"
SYNC_STATE_VOLUME, SYNC_STATE_DIR = "sync-state", "/var/lib/coditect-sync"
SYNC_HEALTH_PORT = 8081
SYNC_COMMAND = ("python", "-m", "coditect.sync")
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
    # The sync sidecar's image (setting `workspace_sync_image`) and the flush bound it gets; the
    # pod's grace period is at least the flush bound + `syncagent.FLUSH_MARGIN`.
    sync_image: str | None = None
    sync_flush_timeout: float = 20.0
    tree_size_limit: str = "10Gi"

    def __post_init__(self) -> None:
        for image in (self.image, self.sync_image):
            if image is not None and not image_is_pinned(image):
                raise ValueError(f"template image {image!r} must be pinned by tag or digest")
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
    pod_spec: dict[str, Any] = {
        # The workspace runs user code: it gets no API credentials and no service env vars.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": template.termination_grace_seconds,
        "securityContext": {**_RESTRICTED, "runAsGroup": RUN_AS, "fsGroup": RUN_AS},
        "containers": [container],
        "volumes": volumes,
    }
    if has_sync(spec, template):
        _add_sync_sidecar(spec, template, pod_spec, container)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": _metadata(spec, namespace), "spec": pod_spec}


def has_sync(spec: WorkspaceSpec, template: WorkspaceTemplate) -> bool:
    """A sync sidecar runs when the template names its image and the spec carries a credential."""
    return template.sync_image is not None and spec.credential is not None and spec.api_url is not None


def _add_sync_sidecar(
    spec: WorkspaceSpec, template: WorkspaceTemplate, pod_spec: dict[str, Any], ide: dict[str, Any]
) -> None:
    """The tree as an emptyDir shared by the IDE and the sync agent; the agent as a native sidecar
    (an init container with restartPolicy Always: it starts first, its startup probe holds the
    IDE back until the tree is hydrated, and it is stopped only after the IDE container, so its
    flush outlives the IDE); the credential Secret mounted into the sidecar ONLY."""
    assert spec.api_url is not None and template.sync_image is not None
    ide["volumeMounts"].append({"name": TREE_VOLUME, "mountPath": TREE_PATH})
    ide["workingDir"] = TREE_PATH
    probe = {
        "httpGet": {"path": "/healthz", "port": SYNC_HEALTH_PORT},
        "periodSeconds": 1,
        "timeoutSeconds": 2,
    }
    sidecar: dict[str, Any] = {
        "name": SYNC_CONTAINER,
        "image": template.sync_image,
        "imagePullPolicy": template.image_pull_policy,
        "restartPolicy": "Always",
        "command": syncagent.argv(
            SYNC_COMMAND,
            api_url=spec.api_url,
            session_id=spec.session_id,
            workspace_id=spec.workspace_id,
            root=TREE_PATH,
            credential_file=f"{CREDENTIAL_DIR}/credential",
            health_port=SYNC_HEALTH_PORT,
            state_file=f"{SYNC_STATE_DIR}/state.json",
            flush_timeout=template.sync_flush_timeout,
        ),
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "1", "memory": "256Mi"},
        },
        "securityContext": {
            **_RESTRICTED,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
        # Hydration may take a while: up to the provisioner's start timeout, not 3 failed probes.
        "startupProbe": {**probe, "failureThreshold": 600},
        "readinessProbe": {**probe, "failureThreshold": 3},
        "volumeMounts": [
            {"name": TREE_VOLUME, "mountPath": TREE_PATH},
            {"name": CREDENTIAL_VOLUME, "mountPath": CREDENTIAL_DIR, "readOnly": True},
            {"name": SYNC_STATE_VOLUME, "mountPath": SYNC_STATE_DIR},
        ],
    }
    pod_spec["initContainers"] = [sidecar]
    pod_spec["volumes"] += [
        {"name": TREE_VOLUME, "emptyDir": {"sizeLimit": template.tree_size_limit}},
        {"name": SYNC_STATE_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}},
        {
            "name": CREDENTIAL_VOLUME,
            "secret": {"secretName": workload_name(spec.workspace_id), "defaultMode": 0o400},
        },
    ]
    flush = int(template.sync_flush_timeout + syncagent.FLUSH_MARGIN) + 5  # + the IDE's own stop
    pod_spec["terminationGracePeriodSeconds"] = max(template.termination_grace_seconds, flush)


def build_secret(spec: WorkspaceSpec, namespace: str, owner_uid: str | None = None) -> dict[str, Any]:
    """The workspace credential as a Secret (owned by the Pod), mounted into the sync sidecar only."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _metadata(spec, namespace, owner_uid),
        "stringData": {"credential": spec.credential or ""},
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
