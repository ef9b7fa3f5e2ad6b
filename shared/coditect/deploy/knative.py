"""One `serving.knative.dev/v1` Service per function (a pure builder: spec → dict).

What each Service gets, and why:

- KPA autoscaling on concurrency. HTTP/CloudEvent functions run functions-framework under
  gunicorn with `THREADS` = spec.concurrency threads (functions-framework reads `THREADS`; one
  worker, `WORKERS=1`), and `containerConcurrency` is the same number, so Knative never sends a
  pod more requests than it has threads; the autoscaler targets that. The relay (kind "asgi",
  uvicorn, async) holds WebSockets open: no hard limit (`containerConcurrency: 0`) and a target
  of at least `ASGI_MIN_TARGET` concurrent connections per pod.
- Readiness: HTTP functions answer `GET /healthz` in FunctionApp before routing (no store, no
  auth: "the process is up and imported"; store health is the health function's job).
  functions-framework routes CloudEvent targets for POST only (GET / answers 405), and the relay
  is not a FunctionApp, so those get a TCP probe on the serving port.
- The FoundationDB cluster file (ConfigMap coditect-fdb-config, kept current by
  infra/base/fdb-cluster-file-sync.yaml) at /var/dynamic-conf, FDB_CLUSTER_FILE and CODITECT_STORE
  pointing at it; libfdb_c comes with the image (functions/Dockerfile).
- Keys at CODITECT_KEYS_DIR: the private signing-key Secret only where `spec.signs_tokens`;
  every other function mounts `PUBLIC_KEYS_SECRET`, a Secret holding only the `.pub` files and
  `active` (created beside coditect-signing-key, see infra/base/signing-key-secret.example.yaml).
- `K_SINK` (the Broker's ingress) only where `spec.publishes` names event types.
- Non-root (uid/gid 65532), no privilege escalation, all capabilities dropped, RuntimeDefault
  seccomp, read-only root filesystem with an emptyDir /tmp (gunicorn's heartbeat files and
  CODITECT_DATA_DIR), all set on the CONTAINER: Knative refuses a pod-level `securityContext`
  unless `kubernetes.podspec-securitycontext` is enabled, and container-level settings suffice.
  Without fsGroup the key files are mode 0444 (the function's container is the only one that
  mounts them; queue-proxy does not).
- The functions in `BACKUP_FUNCTIONS` (cron) mount the PersistentVolumeClaim `BACKUP_CLAIM` at
  `BACKUP_DIR` (CODITECT_BACKUP_DIR): backups outlive the pod, which scales to zero. Needs the
  Knative features `kubernetes.podspec-persistent-volume-claim` and `...-persistent-volume-write`
  (infra/base/knative-features.yaml; every flag the manifests need is listed in `FEATURES`).

The relay (kind "asgi") is not a Knative Service: see coditect.deploy.relay.
"""

from __future__ import annotations

from typing import Any

from coditect.registry.spec import FunctionSpec

NAMESPACE = "coditect"
# Where the CD pipeline pushes the images (functions/build-images.sh).
IMAGE_REPOSITORY = "registry.coditect.internal/coditect"
IMAGE_TAG = "5.0.0"  # the `coditect` package version; Knative resolves tags to digests per revision
PORT = 8080
UID = 65532
ASGI_MIN_TARGET = 100
SETTINGS_CONFIGMAP = "coditect-settings"
FDB_CONFIGMAP = "coditect-fdb-config"
FDB_DIR = "/var/dynamic-conf"
KEYS_DIR = "/var/run/secrets/coditect/keys"
SIGNING_KEY_SECRET = "coditect-signing-key"  # noqa: S105 — a Secret object name
PUBLIC_KEYS_SECRET = "coditect-public-keys"  # noqa: S105 — a Secret object name
BROKER_INGRESS = f"http://broker-ingress.knative-eventing.svc.cluster.local/{NAMESPACE}/default"
# Knative's default revision timeout (config-defaults revision-timeout-seconds); the ingress routes
# use the same limit for a whole request (coditect.deploy.routes).
REQUEST_TIMEOUT = 300
READINESS_PATH = "/healthz"  # coditect.http.app.READINESS_PATH (not imported: no Flask at render time)
# Functions that run under their own ServiceAccount (infra/base/service-accounts.yaml); all others
# run as the namespace's `default` account, which mounts no API token.
# The cron function runs the workspace reconcile (list/stop workspace pods), so it shares the
# provisioner's account and its Role in the workspace namespace; every other function has no
# Kubernetes API access at all.
SERVICE_ACCOUNTS = {
    "provisioner": "coditect-provisioner",
    "cron": "coditect-provisioner",
    "relay": "coditect-relay",
}
# Functions that hash passwords (Argon2id, `argon2_memory_kib` each): THREADS hashes can run at once,
# so concurrency x argon2 memory + the process must fit the memory limit (a test checks it).
PASSWORD_HASHING_FUNCTIONS = frozenset({"register", "login", "users"})
BACKUP_FUNCTIONS = frozenset({"cron"})
BACKUP_CLAIM = "coditect-backups"
BACKUP_DIR = "/var/backups/coditect"
# Knative Serving feature flags (config-features) the rendered Services need, and their value.
# emptyDir is enabled by Knative's defaults; the PVC flags are not (see knative-features.yaml).
FEATURES = {
    "kubernetes.podspec-volumes-emptydir": "enabled",
    "kubernetes.podspec-persistent-volume-claim": "enabled",
    "kubernetes.podspec-persistent-volume-write": "enabled",
}
GENERATED = "GENERATED by `python -m coditect.deploy render` from coditect.registry: do not edit."


def image(spec: FunctionSpec) -> str:
    return f"{IMAGE_REPOSITORY}/{spec.name}:{IMAGE_TAG}"


def labels(spec: FunctionSpec) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": f"coditect-{spec.name}",
        "app.kubernetes.io/component": "function",
        "app.kubernetes.io/part-of": "coditect",
    }


def millicores(cpu: str) -> int:
    return int(cpu[:-1]) if cpu.endswith("m") else int(float(cpu) * 1000)


def autoscaling(spec: FunctionSpec) -> dict[str, str]:
    target = max(spec.concurrency, ASGI_MIN_TARGET) if spec.kind == "asgi" else spec.concurrency
    return {
        "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
        "autoscaling.knative.dev/metric": "concurrency",
        "autoscaling.knative.dev/target": str(target),
        "autoscaling.knative.dev/min-scale": str(spec.min_scale),
        "autoscaling.knative.dev/max-scale": str(spec.max_scale),
    }


def probe(spec: FunctionSpec) -> dict[str, Any]:
    timing = {"periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3}
    if spec.kind == "http":
        return {"httpGet": {"path": READINESS_PATH, "port": PORT}, **timing}
    return {"tcpSocket": {"port": PORT}, **timing}


def env(spec: FunctionSpec) -> list[dict[str, str]]:
    values = {
        "WORKERS": "1",
        "THREADS": str(spec.concurrency),
        "CODITECT_STORE": f"fdb://{FDB_DIR}/fdb.cluster",
        "FDB_CLUSTER_FILE": f"{FDB_DIR}/fdb.cluster",
        "CODITECT_KEYS_DIR": KEYS_DIR,
        "CODITECT_DATA_DIR": "/tmp/coditect",  # noqa: S108 — a private emptyDir in the pod
    }
    if spec.publishes:
        values["K_SINK"] = BROKER_INGRESS
    if spec.name in BACKUP_FUNCTIONS:
        values["CODITECT_BACKUP_DIR"] = BACKUP_DIR
    values.update(dict(spec.env))
    return [{"name": k, "value": v} for k, v in values.items()]


def volumes(spec: FunctionSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    keys_secret = SIGNING_KEY_SECRET if spec.signs_tokens else PUBLIC_KEYS_SECRET
    vols: list[dict[str, Any]] = [
        {
            "name": "fdb-cluster-file",
            "configMap": {"name": FDB_CONFIGMAP, "items": [{"key": "cluster-file", "path": "fdb.cluster"}]},
        },
        {"name": "keys", "secret": {"secretName": keys_secret, "defaultMode": 0o444}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "fdb-cluster-file", "mountPath": FDB_DIR, "readOnly": True},
        {"name": "keys", "mountPath": KEYS_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 — a private emptyDir
    ]
    if spec.name in BACKUP_FUNCTIONS:
        vols.append({"name": "backups", "persistentVolumeClaim": {"claimName": BACKUP_CLAIM}})
        mounts.append({"name": "backups", "mountPath": BACKUP_DIR})
    return vols, mounts


def container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container(spec: FunctionSpec) -> dict[str, Any]:
    """The function's container (shared by the Knative Service and the relay's Deployment)."""
    _, mounts = volumes(spec)
    cpu_limit = max(1000, millicores(spec.cpu))
    return {
        "name": "function",
        "image": image(spec),
        "ports": [{"name": "http1", "containerPort": PORT}],
        "env": env(spec),
        "envFrom": [{"configMapRef": {"name": SETTINGS_CONFIGMAP}}],
        "readinessProbe": probe(spec),
        "resources": {
            "requests": {"cpu": spec.cpu, "memory": spec.memory},
            "limits": {"cpu": f"{cpu_limit}m", "memory": spec.memory},
        },
        "securityContext": container_security(),
        "volumeMounts": mounts,
    }


def service(spec: FunctionSpec) -> dict[str, Any]:
    """The Knative Service of one function."""
    vols, _ = volumes(spec)
    template_annotations = autoscaling(spec)
    if spec.kind == "http":
        template_annotations.update(
            {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(PORT),
                "prometheus.io/path": "/metrics",
            }
        )
    pod: dict[str, Any] = {
        "containerConcurrency": 0 if spec.kind == "asgi" else spec.concurrency,
        "timeoutSeconds": REQUEST_TIMEOUT,
    }
    if spec.name in SERVICE_ACCOUNTS:
        pod["serviceAccountName"] = SERVICE_ACCOUNTS[spec.name]
    pod.update(containers=[container(spec)], volumes=vols)
    # cluster-local: no function gets a public Knative domain; the outside reaches HTTP routes only
    # through the ingress routes (infra/routes/), which rewrite Host to <name>.<ns>.svc.cluster.local.
    service_labels = {**labels(spec), "networking.knative.dev/visibility": "cluster-local"}
    metadata: dict[str, Any] = {"name": spec.name, "namespace": NAMESPACE, "labels": service_labels}
    if spec.description:
        metadata["annotations"] = {"coditect.dev/description": spec.description}
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "template": {
                "metadata": {"labels": labels(spec), "annotations": template_annotations},
                "spec": pod,
            }
        },
    }
