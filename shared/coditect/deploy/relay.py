"""ASGI functions (the relay) as a Deployment + HorizontalPodAutoscaler, not a Knative Service.

Why (issue 13 item 4): a relayed WebSocket must live as long as its workspace (12 h). Under
Knative every request, a hijacked WebSocket included, passes queue-proxy, which ends it at the
revision's `timeoutSeconds` (or `responseStartTimeoutSeconds`), and `max-revision-timeout-seconds`
in config-defaults caps both for the whole cluster (600 s by default; raising it raises it for
every Service, and scale-down then waits that long for every pod). The KPA also scales on
in-flight requests, which for sockets idle most of the time says little about load, and Knative
decides itself when a pod goes (scale-down, scale-to-zero), so a drain cannot be coordinated.

A Deployment behind the ingress has none of these limits: the ingress talks to the relay's
Service directly, the HPA scales on CPU (each socket costs CPU in proportion to its traffic;
memory per socket is small and bounded, see bench/results/relay.json), and a rollout is an
ordinary RollingUpdate (`maxUnavailable: 0`) whose old pods drain: on SIGTERM the relay fails
its readiness probe at once (the endpoint leaves the Service), keeps serving for
`relay_drain_seconds`, then closes every relayed socket with 1012 "service restart" so clients
reconnect to a new pod (coditect.relay.server). `terminationGracePeriodSeconds` leaves room for
that and for the closes to go out. A PodDisruptionBudget keeps node drains from taking more than
one pod at a time.
"""

from __future__ import annotations

from typing import Any

from coditect.config import Settings
from coditect.deploy import knative
from coditect.registry.spec import FunctionSpec

CPU_TARGET = 70  # percent of the request; the HPA adds pods above it
MIN_REPLICAS = 2  # a rollout or a lost node never leaves the relay with no pod
SERVICE_PORT = 80


def drain_seconds() -> float:
    return float(Settings.model_fields["relay_drain_seconds"].default)


def selector(spec: FunctionSpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": f"coditect-{spec.name}"}


def _meta(spec: FunctionSpec, name: str | None = None) -> dict[str, Any]:
    return {"name": name or spec.name, "namespace": knative.NAMESPACE, "labels": knative.labels(spec)}


def deployment(spec: FunctionSpec) -> dict[str, Any]:
    vols, _ = knative.volumes(spec)
    container = knative.container(spec)
    container["ports"] = [{"name": "http", "containerPort": knative.PORT}]
    container["readinessProbe"] = {
        "httpGet": {"path": knative.READINESS_PATH, "port": knative.PORT},
        "periodSeconds": 2,
        "timeoutSeconds": 2,
        "failureThreshold": 1,  # draining: out of the Service within one period
    }
    container["livenessProbe"] = {
        "tcpSocket": {"port": knative.PORT},
        "periodSeconds": 10,
        "timeoutSeconds": 2,
        "failureThreshold": 6,
    }
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": int(drain_seconds()) + 20,
        "containers": [container],
        "volumes": vols,
    }
    if spec.name in knative.SERVICE_ACCOUNTS:
        pod["serviceAccountName"] = knative.SERVICE_ACCOUNTS[spec.name]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(spec),
        "spec": {
            "replicas": max(MIN_REPLICAS, spec.min_scale),
            "selector": {"matchLabels": selector(spec)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "template": {
                "metadata": {
                    "labels": knative.labels(spec),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(knative.PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": pod,
            },
        },
    }


def service(spec: FunctionSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(spec),
        "spec": {
            "selector": selector(spec),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http"}],
        },
    }


def autoscaler(spec: FunctionSpec) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(spec),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "minReplicas": max(MIN_REPLICAS, spec.min_scale),
            "maxReplicas": max(MIN_REPLICAS, spec.max_scale),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": CPU_TARGET},
                    },
                }
            ],
            # Scaling down cuts sockets (each pod drains with 1012): slowly, one pod at a time.
            "behavior": {
                "scaleDown": {
                    "stabilizationWindowSeconds": 600,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}],
                }
            },
        },
    }


def disruption_budget(spec: FunctionSpec) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(spec),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(spec)}},
    }


def manifests(spec: FunctionSpec) -> list[dict[str, Any]]:
    return [deployment(spec), service(spec), autoscaler(spec), disruption_budget(spec)]


def host(spec: FunctionSpec) -> str:
    """The relay's in-cluster Service host (the ingress routes /workspaces/ here, no Knative)."""
    return f"{spec.name}.{knative.NAMESPACE}.svc.cluster.local"
