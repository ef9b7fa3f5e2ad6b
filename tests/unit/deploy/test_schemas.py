"""Every manifest the repository deploys validates against the real schemas (issue 13 item 11):
Knative Serving/Eventing CRDs, the FoundationDB operator CRDs, Gateway API, Istio, and the
Kubernetes API's own definitions, strictly (a field that does not exist fails)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from coditect import registry
from coditect.deploy import files, knative
from tests.helpers import kustomize
from tests.k8s_schemas import known, problems

ROOT = Path(__file__).resolve().parents[3]
INFRA = ROOT / "infra"


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d and d.get("kind") != "Kustomization"]


def rendered() -> list[tuple[str, dict[str, Any]]]:
    return [(path, d) for path, text in files().items() if path.endswith(".yaml") for d in docs(text)]


def hand_written() -> list[tuple[str, dict[str, Any]]]:
    generated = set(files())
    out = []
    for path in sorted(INFRA.rglob("*.yaml")):
        rel = str(path.relative_to(ROOT))
        if rel in generated or "/overlays/" in rel:
            continue
        out += [(rel, d) for d in docs(path.read_text())]
    return out


ALL = rendered() + hand_written()


@pytest.mark.parametrize(
    ("where", "doc"), ALL, ids=[f"{w}:{d['kind']}/{d['metadata']['name']}" for w, d in ALL]
)
def test_manifest_matches_the_real_schema(where: str, doc: dict[str, Any]) -> None:
    assert known(doc["apiVersion"], doc["kind"]), f"{where}: no schema for {doc['apiVersion']} {doc['kind']}"
    assert problems(doc) == [], where


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) not installed")
@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_object_of_each_overlay_matches_the_real_schema(overlay: str) -> None:
    objects = docs(kustomize(INFRA / "overlays" / overlay))
    assert len(objects) > 40
    bad = {f"{d['kind']}/{d['metadata']['name']}": problems(d) for d in objects}
    assert {k: v for k, v in bad.items() if v} == {}


def test_a_field_that_does_not_exist_fails_everywhere() -> None:
    """Strictness is real: a typo at the top of a CRD, deep in a podspec the CRD leaves open,
    in a core kind and in an operator's pod template is each reported."""
    svc = knative.service(registry.function("sessions"))
    typo = copy.deepcopy(svc)
    typo["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    assert any("readinessProbes" in p for p in problems(typo))
    open_part = copy.deepcopy(svc)  # pod-level securityContext is preserve-unknown in the CRD
    open_part["spec"]["template"]["spec"]["securityContext"] = {"runAsUsr": 1}
    assert any("runAsUsr" in p for p in problems(open_part))
    top = copy.deepcopy(svc)
    top["spec"]["templat"] = {}
    assert any("templat" in p for p in problems(top))
    by_name = {f"{d['kind']}/{d['metadata']['name']}": d for _, d in ALL}
    deployment = copy.deepcopy(by_name["Deployment/relay"])
    deployment["spec"]["replica"] = 2
    assert any("replica" in p for p in problems(deployment))
    cluster = copy.deepcopy(by_name["FoundationDBCluster/coditect-fdb"])
    cluster["spec"]["processes"]["general"]["podTemplate"]["spec"]["containers"][0]["resource"] = {}
    assert any("resource" in p for p in problems(cluster))
    trigger = copy.deepcopy(by_name["Trigger/cron-ops-cron"])
    trigger["spec"]["filters"] = trigger["spec"].pop("filter")
    assert problems(trigger)
