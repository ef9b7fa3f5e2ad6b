"""Smaller production checks of issue 13 item 9: memory limits fit the Argon2 work a function can
run at once, the kubernetes client pin has the API the backend calls, RBAC grants exactly the verbs
the Kubernetes backend calls, every Secret the manifests mount is documented, and the settings
ConfigMap takes the client address from the header the ingress sets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from coditect import registry
from coditect.config import Settings
from coditect.deploy import files, image, knative
from tests.helpers import role_grants

ROOT = Path(__file__).resolve().parents[3]
# A functions-framework process with coditect imported, idle: a generous bound on its RSS.
PROCESS_MIB = 192
VERBS = {"create": "create", "read": "get", "list": "list", "delete": "delete", "patch": "patch",
         "replace": "update", "watch": "watch"}  # fmt: skip


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    return float(quantity[:-2]) * units[quantity[-2:]]


@pytest.mark.parametrize("name", sorted(knative.PASSWORD_HASHING_FUNCTIONS))
def test_concurrent_argon2_hashes_fit_the_memory_limit(name: str) -> None:
    spec = registry.function(name)
    argon2_mib = Settings.model_fields["argon2_memory_kib"].default / 1024
    assert spec.concurrency * argon2_mib + PROCESS_MIB <= mebibytes(spec.memory), spec


def test_the_kubernetes_pin_starts_at_the_first_client_with_pydantic_models() -> None:
    """The backend calls `V1Pod.model_validate`: kubernetes 34-36 have no pydantic models, 37 has."""
    text = (ROOT / "shared" / "pyproject.toml").read_text()
    pins = re.findall(r'"kubernetes>=([\d.]+),<(\d+)"', text)
    assert pins and all(int(low.split(".")[0]) >= 37 for low, _ in pins), pins
    from kubernetes import client

    assert hasattr(client.V1Pod, "model_validate")


def test_rbac_grants_exactly_the_verbs_the_backend_calls() -> None:
    source = (ROOT / "shared/coditect/workspaces/k8s/backend.py").read_text()
    used: dict[tuple[str, str], set[str]] = {}
    for verb, resource in re.findall(
        r"\._(?:core|net)\.(create|read|list|delete|patch|replace)_namespaced_(\w+)", source
    ):
        group = "networking.k8s.io" if resource == "network_policy" else ""
        plural = {
            "pod": "pods",
            "service": "services",
            "secret": "secrets",
            "network_policy": "networkpolicies",
        }[resource]
        used.setdefault((group, plural), set()).add(VERBS[verb])
    [role] = [
        d
        for d in yaml.safe_load_all((ROOT / "infra/base/provisioner-rbac.yaml").read_text())
        if d and d["kind"] == "Role"
    ]
    assert role_grants(role) == used


def test_every_mounted_secret_is_documented_in_the_infra_readme() -> None:
    readme = (ROOT / "infra" / "README.md").read_text()
    texts = list(files().values()) + [p.read_text() for p in (ROOT / "infra").rglob("*.yaml")]
    secrets = {name for text in texts for name in re.findall(r"secretName: ([\w.-]+)", text)}
    secrets |= {name for text in texts for name in re.findall(r"kind: Secret\n\s+name: ([\w.-]+)", text)}
    assert secrets >= {"coditect-signing-key", "coditect-public-keys", "coditect-fdb-backup-credentials"}
    assert {s for s in secrets if f"`{s}`" not in readme} == set()


def test_production_takes_the_client_address_from_the_ingress_header() -> None:
    [settings] = [d for d in yaml.safe_load_all((ROOT / "infra/base/settings.yaml").read_text()) if d]
    assert settings["data"]["CODITECT_CLIENT_IP_HEADER"] == "X-Envoy-External-Address"
    assert "client_ip_header" in Settings.model_fields


def test_the_workspace_images_are_the_ones_the_build_script_builds() -> None:
    """Item 10: workspace_image names the Theia image images/theia builds (tag = its VERSION), and
    the sync sidecar the Dockerfile's `sync` target; the build script builds both."""
    [settings] = [d for d in yaml.safe_load_all((ROOT / "infra/base/settings.yaml").read_text()) if d]
    version = (ROOT / "images/theia/VERSION").read_text().strip()
    theia = f"{knative.IMAGE_REPOSITORY}/theia:{version}"
    assert (
        settings["data"]["CODITECT_WORKSPACE_IMAGE"]
        == theia
        == Settings.model_fields["workspace_image"].default
    )
    sync = f"{knative.IMAGE_REPOSITORY}/{image.SYNC_IMAGE}:{knative.IMAGE_TAG}"
    assert settings["data"]["CODITECT_WORKSPACE_SYNC_IMAGE"] == sync
    script = files()["functions/build-images.sh"]
    assert "images/theia/Dockerfile" in script and f"/{image.SYNC_IMAGE}:$TAG" in script
    package = json.loads((ROOT / "images/theia/package.json").read_text())
    pinned = {**package["dependencies"], **package["devDependencies"]}
    assert {v for k, v in pinned.items() if k.startswith("@theia/")} == {version} and "@theia/cli" in pinned
    dockerfile = (ROOT / "images/theia/Dockerfile").read_text()
    assert "USER 1000:1000" in dockerfile and "theia build --mode production" in dockerfile
    module = (ROOT / "images/theia/healthz/lib/node/healthz-backend-module.js").read_text()
    assert "app.get('/healthz'" in module  # the readiness path the pod builder probes


def test_backups_outlive_the_cron_pod_and_its_image_has_the_tools_its_jobs_call() -> None:
    """Item 6: the backup directory is a PersistentVolumeClaim mount (not the pod's emptyDir /tmp),
    the claim exists in infra/base, and the cron image carries the fdbbackup its jobs run."""
    svc = knative.service(registry.function("cron"))
    pod = svc["spec"]["template"]["spec"]
    [c] = pod["containers"]
    backup_dir = {e["name"]: e["value"] for e in c["env"]}["CODITECT_BACKUP_DIR"]
    [mount] = [m for m in c["volumeMounts"] if backup_dir.startswith(m["mountPath"])]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    claim = volume["persistentVolumeClaim"]["claimName"]
    pvcs = [
        d
        for d in yaml.safe_load_all((ROOT / "infra/base/backups.yaml").read_text())
        if d and d["kind"] == "PersistentVolumeClaim"
    ]
    assert [p["metadata"]["name"] for p in pvcs] == [claim] and not mount.get("readOnly")
    assert "cron" in image.FDB_TOOLS and "build cron k8s cloudevent 1" in files()["functions/build-images.sh"]
    tool = Settings.model_fields["fdbbackup_command"].default
    assert f"/fdb/usr/bin/{tool}" in image.DOCKERFILE
