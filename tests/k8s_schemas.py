"""Validate Kubernetes manifests against the real schemas in tests/data/schemas/ (README there).

`problems(doc)` lists every schema violation of one object: a CRD kind against its
openAPIV3Schema, a core kind against the Kubernetes API's definitions. Validation is STRICT: an
object schema that lists `properties` and allows nothing else (no `additionalProperties`, no
`x-kubernetes-preserve-unknown-fields`) rejects unknown fields, as `kubectl apply
--validate=strict` does; so a misspelt or non-existent field fails. Every pod spec embedded in a
CRD (Knative's revision template, the FoundationDB operator's pod templates) is validated against
the core PodSpec as well, because the CRDs leave parts of it open.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMAS = Path(__file__).resolve().parent / "data" / "schemas"
CORE = "kubernetes/definitions.json"
# Knative's PodSpec additions (serving.knative.dev RevisionSpec), not part of core PodSpec.
KNATIVE_POD_FIELDS = {
    "containerConcurrency",
    "timeoutSeconds",
    "responseStartTimeoutSeconds",
    "idleTimeoutSeconds",
}
_INT_OR_STRING = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
_QUANTITY = {"anyOf": [{"type": "string"}, {"type": "number"}]}


def strict(schema: Any) -> Any:
    """A copy of `schema` in which every closed object schema forbids unknown properties."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) if k not in ("properties", "definitions") else v for k, v in schema.items()}
    for key in ("properties", "definitions"):
        if key in schema:
            out[key] = {name: strict(sub) for name, sub in schema[key].items()}
    if schema.get("format") == "int-or-string":
        return {**_INT_OR_STRING, **{k: v for k, v in out.items() if k not in ("type", "format")}}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def _crds() -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(SCHEMAS.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                schema = version.get("schema", {}).get("openAPIV3Schema")
                if version.get("served", True) and schema:
                    # apiVersion, kind and metadata are allowed at the root of every object
                    root = copy.deepcopy(schema)
                    props = root.setdefault("properties", {})
                    props.setdefault("apiVersion", {"type": "string"})
                    props.setdefault("kind", {"type": "string"})
                    props.setdefault("metadata", {"type": "object"})
                    found[(f"{group}/{version['name']}", kind)] = strict(root)
    return found


@functools.cache
def _core() -> tuple[dict[str, Any], dict[tuple[str, str], str]]:
    defs = json.loads((SCHEMAS / CORE).read_text())["definitions"]
    defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = dict(_INT_OR_STRING)
    defs["io.k8s.apimachinery.pkg.api.resource.Quantity"] = dict(_QUANTITY)
    strict_defs = {name: strict(d) for name, d in defs.items()}
    kinds = {}
    for name, d in defs.items():
        for gvk in d.get("x-kubernetes-group-version-kind", []):
            api = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            kinds[(api, gvk["kind"])] = name
    return strict_defs, kinds


def _core_validator(definition: str) -> jsonschema.Draft7Validator:
    defs, _ = _core()
    schema = {"definitions": defs, "$ref": f"#/definitions/{definition}"}
    return jsonschema.Draft7Validator(schema)


@functools.cache
def _validator_for_core(definition: str) -> jsonschema.Draft7Validator:
    return _core_validator(definition)


def known(api_version: str, kind: str) -> bool:
    return (api_version, kind) in _crds() or (api_version, kind) in _core()[1]


def _errors(validator: jsonschema.Draft7Validator, doc: Any, where: str) -> list[str]:
    return [
        f"{where}/{'/'.join(str(p) for p in e.absolute_path)}: {e.message[:300]}"
        for e in validator.iter_errors(doc)
    ]


def embedded_pod_specs(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, pod spec) of every pod spec inside a custom resource."""

    def walk(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if isinstance(node, dict):
            if isinstance(node.get("containers"), list):
                yield where, node
                return
            for key, value in node.items():
                yield from walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from walk(value, f"{where}/{i}")

    yield from walk(doc.get("spec", {}), "spec")


def problems(doc: dict[str, Any]) -> list[str]:
    """Every schema violation of one manifest object (empty: valid)."""
    api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
    _, kinds = _core()
    if (api, kind) in kinds:
        return _errors(_validator_for_core(kinds[(api, kind)]), doc, f"{kind}")
    crd = _crds().get((api, kind))
    if crd is None:
        return [f"no schema for {api} {kind} in {SCHEMAS}"]
    found = _errors(jsonschema.Draft7Validator(crd), doc, kind)
    meta = _validator_for_core("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
    found += _errors(meta, doc.get("metadata", {}), f"{kind}/metadata")
    pod = _validator_for_core("io.k8s.api.core.v1.PodSpec")
    for where, spec in embedded_pod_specs(doc):
        core = {k: v for k, v in copy.deepcopy(spec).items() if k not in KNATIVE_POD_FIELDS}
        # the FoundationDB operator fills in images from spec.version (none may be set)
        for c in [*core.get("containers", []), *core.get("initContainers", [])]:
            c.setdefault("image", "operator-managed")
        found += _errors(pod, core, f"{kind}/{where}")
    return found
