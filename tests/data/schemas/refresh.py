"""Copy the schema files from local git mirrors of their repositories (see README.md).

    python tests/data/schemas/refresh.py /path/to/mirrors   # each mirror: <owner>+<name>/repo

Only the CRDs and the Kubernetes definitions the rendered manifests use are kept; the Kubernetes
swagger is cut down to the definitions reachable from the kinds in `CORE_ROOTS`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SOURCES: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    # directory: (mirror, commit, [(path in repo, file name here)])
    "knative-serving": ("knative+serving", "7ed4aa2ab601e3a33c6552285f6e0d910747351d", [
        ("config/core/300-resources/service.yaml", "service.yaml"),
        ("config/core/configmaps/features.yaml", "config-features.yaml"),
        ("config/core/configmaps/defaults.yaml", "config-defaults.yaml"),
        ("LICENSE", "LICENSE"),
    ]),
    "knative-eventing": ("knative+eventing", "532b01f0cb2ce7bed271204697081e4264385531", [
        ("config/core/resources/broker.yaml", "broker.yaml"),
        ("config/core/resources/trigger.yaml", "trigger.yaml"),
        ("config/core/resources/pingsource.yaml", "pingsource.yaml"),
        ("LICENSE", "LICENSE"),
    ]),
    "fdb-operator": ("FoundationDB+fdb-kubernetes-operator", "c02323519ea3466aca46500e894e6531da64acc5", [
        ("config/crd/bases/apps.foundationdb.org_foundationdbclusters.yaml", "foundationdbclusters.yaml"),
        ("config/crd/bases/apps.foundationdb.org_foundationdbbackups.yaml", "foundationdbbackups.yaml"),
        ("LICENSE", "LICENSE"),
    ]),
    "gateway-api": ("kubernetes-sigs+gateway-api", "8bb74df00e56ec8f944d48c25e6c1c9c2f6848e3", [
        ("config/crd/standard/gateway.networking.k8s.io_httproutes.yaml", "httproutes.yaml"),
        ("config/crd/standard/gateway.networking.k8s.io_gateways.yaml", "gateways.yaml"),
        ("config/crd/standard/gateway.networking.k8s.io_referencegrants.yaml", "referencegrants.yaml"),
        ("LICENSE", "LICENSE"),
    ]),
    "istio": ("istio+api", "b8f8791d9653b2edc77a071d48887e582cfe84bf", [("LICENSE", "LICENSE")]),
    "kubernetes": ("kubernetes-client+python", "024658493d124f046fc0a9827a2a3165cf2aee28", [("LICENSE", "LICENSE")]),
}  # fmt: skip
ISTIO_CRDS = "kubernetes/customresourcedefinitions.gen.yaml"
ISTIO_KEEP = {"virtualservices.networking.istio.io", "envoyfilters.networking.istio.io"}
K8S_SWAGGER = "kubernetes/swagger.json.unprocessed"
CORE_ROOTS = [
    f"io.k8s.api.{name}"
    for name in (
        "core.v1.Namespace core.v1.ServiceAccount core.v1.ConfigMap core.v1.Secret core.v1.Service "
        "core.v1.PersistentVolumeClaim core.v1.PodTemplateSpec core.v1.PodSpec apps.v1.Deployment "
        "batch.v1.CronJob rbac.v1.Role rbac.v1.RoleBinding networking.v1.NetworkPolicy "
        "autoscaling.v2.HorizontalPodAutoscaler policy.v1.PodDisruptionBudget"
    ).split()
]


def show(mirror: Path, commit: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(mirror), "show", f"{commit}:{path}"], capture_output=True, text=True, check=True
    ).stdout


def reachable(defs: dict[str, Any], roots: list[str]) -> dict[str, Any]:
    keep: dict[str, Any] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep[name] = defs[name]
        text = json.dumps(defs[name])
        for ref in text.split('"$ref": "#/definitions/')[1:]:
            todo.append(ref.split('"', 1)[0])
    return dict(sorted(keep.items()))


def main(mirrors: Path) -> None:
    for directory, (mirror, commit, files) in SOURCES.items():
        repo = mirrors / mirror / "repo"
        out = HERE / directory
        out.mkdir(exist_ok=True)
        for path, name in files:
            (out / name).write_text(show(repo, commit, path))
        if directory == "istio":
            docs = [d for d in yaml.safe_load_all(show(repo, commit, ISTIO_CRDS)) if d]
            for doc in (d for d in docs if d["metadata"]["name"] in ISTIO_KEEP):
                plural = doc["spec"]["names"]["plural"]
                (out / f"{plural}.yaml").write_text(yaml.safe_dump_all([doc], sort_keys=False))
        if directory == "kubernetes":
            swagger = json.loads(show(repo, commit, K8S_SWAGGER))
            subset = {"definitions": reachable(swagger["definitions"], CORE_ROOTS)}
            (out / "definitions.json").write_text(json.dumps(subset, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
