"""infra/ is a complete, checked deployment: every YAML parses, every object is well-formed, field
names are checked against the kubernetes client's models, and the security and delivery rules
(pinned images, resources, least-privilege RBAC, dead letters, one PingSource per job) hold.
The kustomize overlays are rendered with `kubectl kustomize` when kubectl is available."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient

from tests.helpers import kustomize, role_grants

ROOT = Path(__file__).resolve().parents[3]
INFRA = ROOT / "infra"
JOBS = {"health", "backup", "verify", "reconcile", "gc"}
FDB_KINDS = {"FoundationDBCluster", "FoundationDBBackup"}
KINDS = {
    *"Namespace ServiceAccount Role RoleBinding NetworkPolicy ConfigMap Secret Deployment Service".split(),
    *"CronJob Broker Trigger PingSource PersistentVolumeClaim HorizontalPodAutoscaler".split(),
    "PodDisruptionBudget",
    *FDB_KINDS,
    # what the route generator renders into infra/routes/
    *"HTTPRoute Gateway ReferenceGrant VirtualService EnvoyFilter".split(),
}
# Core kinds are round-tripped through the client's models: a misspelt field disappears.
CORE_MODELS = {
    (api, kind): f"V2{kind}" if api == "autoscaling/v2" else f"V1{kind}"
    for api, kinds in {
        "v1": "Namespace ServiceAccount ConfigMap Secret Service PersistentVolumeClaim",
        "autoscaling/v2": "HorizontalPodAutoscaler",
        "policy/v1": "PodDisruptionBudget",
        "rbac.authorization.k8s.io/v1": "Role RoleBinding",
        "networking.k8s.io/v1": "NetworkPolicy Ingress",
        "apps/v1": "Deployment",
        "batch/v1": "CronJob",
    }.items()
    for kind in kinds.split()
}
PROVISIONER_RULES = {
    ("", "pods"): {"create", "get", "list", "delete"},
    ("", "services"): {"create", "get", "delete"},
    ("", "secrets"): {"create", "get", "delete"},  # the sync sidecar's credential (issue 11)
    ("networking.k8s.io", "networkpolicies"): {"create", "get", "delete"},
}
GONE = object()
PINNED = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$|^(?:[^/\s]+/)*[^/:\s]+:(?!latest$)[\w][\w.-]{0,127}$")


def yaml_files() -> list[Path]:
    return sorted(p for p in INFRA.rglob("*") if p.suffix in (".yaml", ".yml"))


def load_all(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def objects_in(paths: list[Path]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (str(p.relative_to(ROOT)), d)
        for p in paths
        for d in load_all(p.read_text())
        if d.get("kind") != "Kustomization"
    ]


OBJECTS = objects_in(yaml_files())


def of_kind(kind: str, objects: list[tuple[str, dict[str, Any]]] = OBJECTS) -> list[dict[str, Any]]:
    return [d for _, d in objects if d["kind"] == kind]


def pod_specs(node: Any) -> Iterator[dict[str, Any]]:
    """Every mapping with a `containers` list, wherever it is nested (templates, CRs, jobs)."""
    if isinstance(node, dict):
        if isinstance(node.get("containers"), list):
            yield node
        for value in node.values():
            yield from pod_specs(value)
    elif isinstance(node, list):
        for value in node:
            yield from pod_specs(value)


def lost_fields(original: Any, roundtrip: Any, where: str = "") -> list[str]:
    """Paths present in `original` that the model round trip dropped: unknown field names."""
    if roundtrip is GONE:
        return [where]
    if isinstance(original, dict) and isinstance(roundtrip, dict):
        return [
            f for k, v in original.items() for f in lost_fields(v, roundtrip.get(k, GONE), f"{where}/{k}")
        ]
    if isinstance(original, list) and isinstance(roundtrip, list):
        pairs = enumerate(zip(original, roundtrip, strict=False))
        return [f for i, (a, b) in pairs for f in lost_fields(a, b, f"{where}/{i}")]
    return []


def check_model(doc: dict[str, Any], model: str) -> None:
    api = ApiClient()
    # raises on a missing required field or a bad type
    obj = api.deserialize(json.dumps(doc), model, "application/json")
    assert lost_fields(doc, api.sanitize_for_serialization(obj)) == [], f"unknown fields for {model}"


def check_containers(where: str, doc: dict[str, Any]) -> None:
    for spec in pod_specs(doc.get("spec", {})):
        for c in [*spec.get("containers", []), *spec.get("initContainers", [])]:
            res = c.get("resources", {})
            assert res.get("requests") and res.get("limits"), f"{where}: {c['name']} lacks requests+limits"
            if doc["kind"] in FDB_KINDS:
                # The operator sets these images from spec.version (+ imageConfigs); an explicit one
                # would be overwritten, so none is allowed and the version must be exact.
                assert "image" not in c, f"{where}: {c['name']} sets an image the operator owns"
            else:
                assert PINNED.match(c.get("image", "")), f"{where}: {c['name']} image {c.get('image')!r}"
        if doc["kind"] not in FDB_KINDS:
            check_model({"spec": spec}, "V1PodTemplateSpec")


def check_object(where: str, doc: dict[str, Any]) -> None:
    assert doc.get("apiVersion") and doc.get("kind"), where
    assert doc.get("metadata", {}).get("name"), f"{where}: {doc['kind']} without metadata.name"
    assert doc["kind"] in KINDS, f"{where}: unexpected kind {doc['kind']}"
    if model := CORE_MODELS.get((doc["apiVersion"], doc["kind"])):
        check_model(doc, model)
    if doc["kind"] in FDB_KINDS:
        assert re.fullmatch(r"\d+\.\d+\.\d+", doc["spec"]["version"]), where
        for key in ("mainContainer", "sidecarContainer"):
            for conf in doc["spec"].get(key, {}).get("imageConfigs", []):
                assert conf.get("tag") != "latest", where
        template = doc["spec"].get("podTemplateSpec") or doc["spec"]["processes"]["general"]["podTemplate"]
        check_model(template, "V1PodTemplateSpec")
    check_containers(where, doc)


def test_every_yaml_file_parses_and_there_is_something_to_deploy() -> None:
    assert len(OBJECTS) > 20 and all(
        isinstance(d, dict) for p in yaml_files() for d in load_all(p.read_text())
    )


@pytest.mark.parametrize(
    ("where", "doc"),
    OBJECTS,
    ids=[f"{w}:{d.get('kind')}/{d.get('metadata', {}).get('name')}" for w, d in OBJECTS],
)
def test_object_is_well_formed(where: str, doc: dict[str, Any]) -> None:
    check_object(where, doc)


def test_provisioner_role_is_exactly_what_it_uses() -> None:
    [role] = [r for r in of_kind("Role") if r["metadata"]["name"] == "coditect-provisioner"]
    assert role["metadata"]["namespace"] == "coditect-workspaces"
    assert role_grants(role) == PROVISIONER_RULES
    [binding] = [b for b in of_kind("RoleBinding") if b["roleRef"]["name"] == "coditect-provisioner"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "coditect-provisioner", "namespace": "coditect"}
    ]


def test_only_the_provisioner_and_the_cluster_file_sync_mount_tokens() -> None:
    accounts = {
        (a["metadata"]["namespace"], a["metadata"]["name"]): a.get("automountServiceAccountToken")
        for a in of_kind("ServiceAccount")
    }
    assert {k for k, v in accounts.items() if v is not False} == {
        ("coditect", "coditect-provisioner"),
        ("fdb", "fdb-cluster-file-sync"),
    }
    bound = {s["name"] for b in of_kind("RoleBinding") for s in b["subjects"]}
    assert "coditect-relay" not in bound and accounts[("coditect", "coditect-relay")] is False


def test_workspaces_are_reachable_only_from_the_relay() -> None:
    policies = {p["metadata"]["name"]: p for p in of_kind("NetworkPolicy")}
    deny = policies["default-deny-ingress"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    [rule] = policies["workspace-from-relay"]["spec"]["ingress"]
    assert rule["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "coditect"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "coditect-relay"}},
        }
    ]
    egress = policies["workspace-egress"]["spec"]["egress"]
    assert any(p.get("port") == 53 for e in egress for p in e.get("ports", []))
    assert policies["fdb-from-coditect-only"]["metadata"]["namespace"] == "fdb"


def test_triggers_filter_by_type_and_have_a_dead_letter_sink() -> None:
    triggers = of_kind("Trigger")
    types = set()
    for t in triggers:
        spec = t["spec"]
        assert spec["broker"] == "default" and spec["filter"]["attributes"]["type"]
        types.add(spec["filter"]["attributes"]["type"])
        delivery = spec["delivery"]
        assert delivery["deadLetterSink"]["ref"]["name"] == "coditect-dead-letter"
        assert (delivery["retry"], delivery["backoffPolicy"]) == (5, "exponential")
    assert {
        "com.coditect.workspace.requested",
        "com.coditect.workspace.stop_requested",
        "com.coditect.ops.cron",
    } <= types
    [broker] = of_kind("Broker")
    assert broker["spec"]["delivery"]["deadLetterSink"]["ref"]["name"] == "coditect-dead-letter"
    assert [s for s in of_kind("Service") if s["metadata"]["name"] == "coditect-dead-letter"]


def test_one_ping_source_per_cron_job_reaching_the_cron_trigger() -> None:
    sources = of_kind("PingSource")
    assert sorted(json.loads(s["spec"]["data"])["job"] for s in sources) == sorted(JOBS)
    [ping_trigger] = [
        t
        for t in of_kind("Trigger")
        if t["spec"]["filter"]["attributes"]["type"] == "dev.knative.sources.ping"
    ]
    for s in sources:
        assert s["spec"]["sink"]["ref"]["kind"] == "Broker"
        for key, value in ping_trigger["spec"]["filter"]["attributes"].items():
            assert key == "type" or s["spec"]["ceOverrides"]["extensions"][key] == value


def test_fdb_cluster_matches_the_client_bindings() -> None:
    pin = re.search(r'"foundationdb==([\d.]+)"', (ROOT / "shared" / "pyproject.toml").read_text())
    assert pin
    [cluster] = of_kind("FoundationDBCluster")
    config = cluster["spec"]["databaseConfiguration"]
    assert cluster["spec"]["version"] == pin.group(1)
    assert (config["redundancy_mode"], config["storage_engine"]) in {
        ("double", "ssd-redwood-1"),
        ("double", "ssd-2"),
    }
    [backup] = of_kind("FoundationDBBackup")
    assert backup["spec"]["version"] == pin.group(1)
    [settings] = [c for c in of_kind("ConfigMap") if c["metadata"]["name"] == "coditect-settings"]
    assert settings["data"]["CODITECT_STORE"] == "fdb://" + settings["data"]["FDB_CLUSTER_FILE"]


@pytest.mark.parametrize(
    "path", sorted(INFRA.rglob("kustomization.yaml")), ids=lambda p: str(p.relative_to(INFRA))
)
def test_kustomization_lists_only_existing_files(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    entries = [*doc.get("resources", []), *(p["path"] for p in doc.get("patches", []) if "path" in p)]
    for entry in entries:
        assert (path.parent / entry).exists(), f"{path}: {entry} does not exist"
    if path.parent == INFRA / "base":
        unlisted = {p.name for p in path.parent.glob("*.yaml")} - {*entries, "kustomization.yaml"}
        assert all(name.endswith(".example.yaml") for name in unlisted), unlisted


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) not installed")
@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_overlay_renders_and_every_rendered_object_is_valid(overlay: str, tmp_path: Path) -> None:
    copy = tmp_path / "infra"
    shutil.copytree(INFRA, copy)
    rendered = [(f"overlays/{overlay}", d) for d in load_all(kustomize(copy / "overlays" / overlay))]
    ingress = "gateway-api" if overlay == "dev" else "istio"
    assert len(rendered) == len(
        [
            o
            for o in OBJECTS
            if "/overlays/" not in o[0]
            and not o[0].endswith(".example.yaml")
            and ("/routes/" not in o[0] or f"/routes/{ingress}/" in o[0])
        ]
    )
    for where, doc in rendered:
        check_object(where, doc)
    deployments = {d["metadata"]["name"]: d for d in of_kind("Deployment", rendered)}
    assert deployments["coditect-dead-letter"]["spec"]["replicas"] == (1 if overlay == "dev" else 2)
    # the public host is ONE setting per overlay: the routes carry the host of CODITECT_PUBLIC_BASE_URL
    [settings] = [c for c in of_kind("ConfigMap", rendered) if c["metadata"]["name"] == "coditect-settings"]
    public = settings["data"]["CODITECT_PUBLIC_BASE_URL"]
    host = public.split("/")[2]
    assert host != "api.coditect.example" or overlay == "prod"
    hosts = [h for r in of_kind("HTTPRoute", rendered) for h in r["spec"]["hostnames"]]
    hosts += [h for v in of_kind("VirtualService", rendered) for h in v["spec"]["hosts"]]
    assert hosts and set(hosts) == {host}
    assert json.loads(settings["data"]["CODITECT_CORS_ORIGINS"]) and public.startswith("https://")
