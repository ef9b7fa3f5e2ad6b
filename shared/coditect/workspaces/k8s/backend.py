"""KubernetesProvisioner: workspaces as Pods, sent with the official ``kubernetes`` client.

The manifests come from `objects` (pure); this module only sends them, handles 409/404, polls
readiness and translates errors at the boundary (as httpx's ``map_exceptions`` does)::

    ApiException 403 "exceeded quota"      -> ProvisionFailed("quota_exceeded")
    any other ApiException 403             -> ProvisionFailed("forbidden", <admission/RBAC message>)
    ApiException 400 / 422, model errors   -> ProvisionFailed("invalid_spec")
    any other ApiException (5xx, 429, …)   -> TransientProvisionError
    urllib3 / socket errors                -> TransientProvisionError

Readiness is polled with GET rather than a watch: one small GET per `poll_interval` per starting
workspace is cheap, and a poll loop needs no reconnect/resourceVersion handling when the API
server drops a watch mid-start. The start follows the pod as KubeSpawner does
(`objects.StartWatch`): `Unschedulable` waits for the start timeout (the cluster autoscaler may add
a node) and is then reported with the scheduler's message; a failed image pull fails only after
repeated back-offs. A stop returns only once the pod is gone (bounded by `stop_timeout`, else a
transient error and the stop event is redelivered), so the session's next start never meets a
terminating pod of the same name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import pydantic
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from coditect.workspaces.k8s import objects
from coditect.workspaces.k8s.objects import WorkspaceTemplate
from coditect.workspaces.provisioner import (
    NOT_FOUND,
    Endpoint,
    Provisioner,
    ProvisionFailed,
    TransientProvisionError,
    WorkloadState,
    WorkspaceSpec,
)

log = logging.getLogger(__name__)


def _status_message(exc: ApiException) -> str:
    """The message of the Kubernetes Status body, else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return str(exc.reason or "no message")


@contextlib.contextmanager
def _translate(action: str) -> Iterator[None]:
    try:
        yield
    except ApiException as exc:
        message = _status_message(exc)
        if exc.status == 403 and "exceeded quota" in message:
            raise ProvisionFailed("quota_exceeded", message) from exc
        if exc.status == 403:  # admission (Pod Security, a webhook) or RBAC: retrying cannot help
            raise ProvisionFailed("forbidden", f"{action}: {message}") from exc
        if exc.status in (400, 422):
            raise ProvisionFailed("invalid_spec", f"{action}: {message}") from exc
        raise TransientProvisionError(f"{action}: HTTP {exc.status}: {message}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise TransientProvisionError(f"{action}: Kubernetes API unreachable: {exc}") from exc
    except pydantic.ValidationError as exc:  # a manifest the client's models reject
        raise ProvisionFailed("invalid_spec", f"{action}: {exc.error_count()} invalid field(s)") from exc


def _default_api_client() -> client.ApiClient:
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


class KubernetesProvisioner(Provisioner):
    """One Pod + Service + NetworkPolicy per workspace in `namespace`.

    `relay_namespace` is the platform namespace whose ``coditect-relay`` pods alone may connect.
    Without `api_client` the in-cluster configuration is used (kubeconfig outside a cluster).
    """

    def __init__(
        self,
        namespace: str,
        template: WorkspaceTemplate,
        api_client: client.ApiClient | None = None,
        *,
        relay_namespace: str = "coditect",
        cluster_domain: str = "cluster.local",
        start_timeout: float = 300.0,
        poll_interval: float = 1.0,
        request_timeout: float = 10.0,
        stop_timeout: float = 60.0,
    ) -> None:
        super().__init__(start_timeout=start_timeout, poll_interval=poll_interval)
        self.namespace = namespace
        self.template = template
        self.relay_namespace = relay_namespace
        self.cluster_domain = cluster_domain
        self.request_timeout = request_timeout
        self.stop_timeout = stop_timeout
        self._client = api_client if api_client is not None else _default_api_client()
        self._core = client.CoreV1Api(self._client)
        self._net = client.NetworkingV1Api(self._client)

    def _dict(self, obj: Any) -> dict[str, Any]:
        """An API object as the camelCase dict the pure readers in `objects` expect."""
        return cast(dict[str, Any], self._client.sanitize_for_serialization(obj))  # type: ignore[no-untyped-call]

    def _endpoint(self, workspace_id: str) -> Endpoint:
        host = objects.service_host(workspace_id, self.namespace, self.cluster_domain)
        return Endpoint(host, self.template.port)

    # -- start ---------------------------------------------------------------------------------

    def start(self, spec: WorkspaceSpec) -> Endpoint:
        if spec.image is not None and not objects.image_is_pinned(spec.image):
            raise ProvisionFailed("invalid_spec", "image must be pinned by tag or digest")
        ns, name, timeout = self.namespace, objects.workload_name(spec.workspace_id), self.request_timeout
        with _translate("create pod"):
            body = client.V1Pod.model_validate(objects.build_pod(spec, self.template, ns))
            try:
                pod = self._dict(self._core.create_namespaced_pod(ns, body, _request_timeout=timeout))
            except ApiException as exc:
                if exc.status != 409:
                    raise
                # A redelivered event or a concurrent start: adopt the existing pod.
                pod = self._dict(self._core.read_namespaced_pod(name, ns, _request_timeout=timeout))
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            raise TransientProvisionError(f"previous workload {name} is still terminating")
        uid = pod["metadata"]["uid"]
        try:
            self._ensure_owned(
                "service",
                client.V1Service,
                objects.build_service(spec, self.template, ns, uid),
                self._core.create_namespaced_service,
                self._core.read_namespaced_service,
                uid,
            )
            if objects.has_sync(spec, self.template):  # the sidecar's credential (mounted in it only)
                self._ensure_owned(
                    "secret",
                    client.V1Secret,
                    objects.build_secret(spec, ns, uid),
                    self._core.create_namespaced_secret,
                    self._core.read_namespaced_secret,
                    uid,
                )
            self._ensure_owned(
                "network policy",
                client.V1NetworkPolicy,
                objects.build_network_policy(spec, self.template, ns, uid, self.relay_namespace),
                self._net.create_namespaced_network_policy,
                self._net.read_namespaced_network_policy,
                uid,
            )
            watch = objects.StartWatch()
            try:
                return self.wait_until_ready(
                    lambda: self._probe(spec.workspace_id, watch), what=f"workspace {name}"
                )
            except ProvisionFailed as failure:
                if failure.reason == "start_timeout" and watch.pending is not None:
                    raise ProvisionFailed(*watch.pending) from failure  # why it never started
                raise
        except ProvisionFailed as failure:
            log.info("workspaces: %s failed (%s); deleting it", name, failure.reason)
            try:
                self.stop(spec.workspace_id)  # a failed start leaves no orphan behind
            except TransientProvisionError as exc:  # the reconciler will find it; report the failure
                log.warning("workspaces: cleanup of %s failed: %s", name, exc)
            raise

    def _ensure_owned(
        self,
        what: str,
        model: Any,
        manifest: dict[str, Any],
        create: Callable[..., Any],
        read: Callable[..., Any],
        pod_uid: str,
    ) -> None:
        """Create a dependent object; on 409 adopt it if it belongs to this pod."""
        ns, timeout = self.namespace, self.request_timeout
        with _translate(f"create {what}"):
            body = model.model_validate(manifest)
            try:
                create(ns, body, _request_timeout=timeout)
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise
            existing = self._dict(read(manifest["metadata"]["name"], ns, _request_timeout=timeout))
        owners = {ref.get("uid") for ref in (existing.get("metadata") or {}).get("ownerReferences") or []}
        if pod_uid not in owners:
            # Left over from an earlier pod of the same name; the garbage collector is removing it.
            raise TransientProvisionError(f"{what} {manifest['metadata']['name']} belongs to an older pod")

    def _probe(self, workspace_id: str, watch: objects.StartWatch) -> Endpoint | None:
        name = objects.workload_name(workspace_id)
        pod = self._read_pod(name)
        if pod is None:
            raise ProvisionFailed("crashed", f"pod {name} was deleted while starting")
        failure = watch.observe(pod)
        if failure is not None:
            raise ProvisionFailed(*failure)
        return self._endpoint(workspace_id) if objects.pod_ready(pod) else None

    # -- stop, status, list --------------------------------------------------------------------

    def stop(self, workspace_id: str) -> None:
        """Delete the pod and, explicitly, its dependents (no wait for the garbage collector), then
        wait until the pod is gone (its grace period), so that a next start can create it anew."""
        name, ns, timeout = objects.workload_name(workspace_id), self.namespace, self.request_timeout
        deletes = (
            ("pod", self._core.delete_namespaced_pod),
            ("service", self._core.delete_namespaced_service),
            ("secret", self._core.delete_namespaced_secret),
            ("network policy", self._net.delete_namespaced_network_policy),
        )
        for what, delete in deletes:
            with _translate(f"delete {what}"):
                try:
                    delete(name, ns, _request_timeout=timeout)
                except ApiException as exc:
                    if exc.status != 404:  # already gone is what we want
                        raise
        self._wait_gone(name)

    def _wait_gone(self, name: str) -> None:
        deadline = time.monotonic() + self.stop_timeout
        interval = min(0.05, self.poll_interval)
        while self._read_pod(name) is not None:
            if time.monotonic() >= deadline:
                raise TransientProvisionError(f"pod {name} still terminating after {self.stop_timeout:g} s")
            time.sleep(interval)
            interval = min(interval * 2, self.poll_interval)

    def status(self, workspace_id: str) -> WorkloadState:
        pod = self._read_pod(objects.workload_name(workspace_id))
        return NOT_FOUND if pod is None else self._observe(workspace_id, pod)

    def _read_pod(self, name: str) -> dict[str, Any] | None:
        """The pod as a dict, or None if it does not exist."""
        with _translate("read pod"):
            try:
                obj = self._core.read_namespaced_pod(
                    name, self.namespace, _request_timeout=self.request_timeout
                )
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
        return self._dict(obj)

    def _observe(self, workspace_id: str, pod: dict[str, Any]) -> WorkloadState:
        running = (pod.get("status") or {}).get("phase") == "Running"
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            return WorkloadState(running=running, ready=False, endpoint=None, reason="terminating")
        failure = objects.pod_failure(pod)
        if failure is not None:
            return WorkloadState(running=running, ready=False, endpoint=None, reason=failure[0])
        if objects.pod_ready(pod):
            return WorkloadState(running=True, ready=True, endpoint=self._endpoint(workspace_id))
        return WorkloadState(running=running, ready=False, endpoint=None, reason="starting")

    def list_workloads(self) -> dict[str, WorkloadState]:
        with _translate("list pods"):
            listing = self._dict(
                self._core.list_namespaced_pod(
                    self.namespace,
                    label_selector=objects.MANAGED_SELECTOR,
                    _request_timeout=self.request_timeout,
                )
            )
        result: dict[str, WorkloadState] = {}
        for pod in listing.get("items") or []:
            workspace_id = ((pod.get("metadata") or {}).get("labels") or {}).get(objects.WORKSPACE_LABEL)
            if workspace_id:
                result[workspace_id] = self._observe(workspace_id, pod)
        return result
