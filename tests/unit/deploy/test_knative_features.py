"""Knative accepts every rendered Service (issue 13 item 2): each pod spec field that Knative gates
behind a `config-features` flag is enabled, by Knative's own defaults (the real config-features.yaml
in tests/data/schemas/knative-serving/) or by the flags this repository ships
(infra/base/knative-features.yaml); timeouts stay within config-defaults' maximum."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from coditect import registry
from coditect.deploy import knative

ROOT = Path(__file__).resolve().parents[3]
SERVING = ROOT / "tests" / "data" / "schemas" / "knative-serving"
POD_FLAGS = {
    "securityContext": "kubernetes.podspec-securitycontext",
    "affinity": "kubernetes.podspec-affinity",
    "topologySpreadConstraints": "kubernetes.podspec-topologyspreadconstraints",
    "hostAliases": "kubernetes.podspec-hostaliases",
    "nodeSelector": "kubernetes.podspec-nodeselector",
    "tolerations": "kubernetes.podspec-tolerations",
    "runtimeClassName": "kubernetes.podspec-runtimeclassname",
    "dnsPolicy": "kubernetes.podspec-dnspolicy",
    "dnsConfig": "kubernetes.podspec-dnsconfig",
    "shareProcessNamespace": "kubernetes.podspec-shareprocessnamespace",
    "hostIPC": "kubernetes.podspec-hostipc",
    "hostPID": "kubernetes.podspec-hostpid",
    "hostNetwork": "kubernetes.podspec-hostnetwork",
    "priorityClassName": "kubernetes.podspec-priorityclassname",
    "schedulerName": "kubernetes.podspec-schedulername",
    "initContainers": "kubernetes.podspec-init-containers",
}
VOLUME_FLAGS = {
    "emptyDir": "kubernetes.podspec-volumes-emptydir",
    "persistentVolumeClaim": "kubernetes.podspec-persistent-volume-claim",
    "hostPath": "kubernetes.podspec-volumes-hostpath",
    "csi": "kubernetes.podspec-volumes-csi",
    "ephemeral": "kubernetes.podspec-volumes-ephemeral",
    "image": "kubernetes.podspec-volumes-image",
}


def configmap_data(path: Path) -> dict[str, str]:
    [doc] = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return {k: v for k, v in doc["data"].items() if not k.startswith("_")}


def knative_defaults(name: str) -> dict[str, Any]:
    """Knative's defaults: its ConfigMaps document them in `_example` (what applies when unset)."""
    [doc] = [d for d in yaml.safe_load_all((SERVING / name).read_text()) if d]
    defaults: dict[str, Any] = yaml.safe_load(doc["data"]["_example"])
    return defaults


def effective_flags() -> dict[str, str]:
    shipped = configmap_data(ROOT / "infra/base/knative-features.yaml")
    return {**knative_defaults("config-features.yaml"), **shipped}


def needed_flags(pod: dict[str, Any]) -> set[str]:
    needed = {flag for field, flag in POD_FLAGS.items() if field in pod}
    claims = set()
    for vol in pod.get("volumes", []):
        for field, flag in VOLUME_FLAGS.items():
            if field in vol:
                needed.add(flag)
        if "persistentVolumeClaim" in vol:
            claims.add(vol["name"])
    for c in pod["containers"]:
        if any("fieldRef" in e.get("valueFrom", {}) for e in c.get("env", [])):
            needed.add("kubernetes.podspec-fieldref")
        if c.get("securityContext", {}).get("capabilities", {}).get("add"):
            needed.add("kubernetes.containerspec-addcapabilities")
        if any(m["name"] in claims and not m.get("readOnly") for m in c.get("volumeMounts", [])):
            needed.add("kubernetes.podspec-persistent-volume-write")
    return needed


def refused(pod: dict[str, Any]) -> set[str]:
    flags = effective_flags()
    return {flag for flag in needed_flags(pod) if flags.get(flag) != "enabled"}


KNATIVE = [s for s in registry.FUNCTIONS if s.kind != "asgi"]


@pytest.mark.parametrize("spec", KNATIVE, ids=lambda s: s.name)
def test_every_gated_field_of_the_service_is_enabled(spec: Any) -> None:
    pod = knative.service(spec)["spec"]["template"]["spec"]
    assert refused(pod) == set()
    limit = knative_defaults("config-defaults.yaml")["max-revision-timeout-seconds"]
    assert pod["timeoutSeconds"] <= int(limit) == 600


def test_the_shipped_flags_are_exactly_what_the_renderer_declares() -> None:
    shipped = configmap_data(ROOT / "infra/base/knative-features.yaml")
    assert shipped == knative.FEATURES
    used = set().union(*(needed_flags(knative.service(s)["spec"]["template"]["spec"]) for s in KNATIVE))
    assert used == set(knative.FEATURES)  # nothing shipped that no Service needs


def test_knative_defaults_are_read_from_the_real_configmap() -> None:
    flags = knative_defaults("config-features.yaml")
    assert flags["kubernetes.podspec-securitycontext"] == "disabled"
    assert flags["kubernetes.podspec-volumes-emptydir"] == "enabled"
    assert flags["kubernetes.podspec-persistent-volume-claim"] == "disabled"


def test_a_pod_level_security_context_would_be_refused() -> None:
    """What main rendered (fsGroup on the pod) needs a flag that is off by default and not shipped."""
    pod = knative.service(registry.function("sessions"))["spec"]["template"]["spec"]
    assert refused({**pod, "securityContext": {"fsGroup": 65532}}) == {"kubernetes.podspec-securitycontext"}
