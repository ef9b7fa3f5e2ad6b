"""Render every generated deployment file from the registry; write them or check for drift."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import yaml

from coditect import registry
from coditect.deploy import envoy, eventing, image, knative, relay, routes
from coditect.devstack import frontdoor
from coditect.registry.spec import FunctionSpec

REGENERATE = "python -m coditect.deploy render"  # from the repository root, in the project venv
# Owned entirely by the renderer (stale files removed).
GENERATED_DIRS = (
    "knative",
    "infra/base/relay",
    "infra/base/eventing",
    "infra/routes/istio",
    "infra/routes/gateway-api",
)


def _yaml(doc: object, header: str = "") -> str:
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=110)
    return f"# {knative.GENERATED}\n{header}{text}"


def _yaml_all(docs: list[dict[str, object]], header: str = "") -> str:
    text = yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, width=110)
    return f"# {knative.GENERATED}\n{header}{text}"


def _why(doc: str | None) -> str:
    return "".join(f"# {line}\n".replace("# \n", "#\n") for line in (doc or "").strip().splitlines())


def _kustomization(resources: list[str]) -> str:
    return _yaml(routes.kustomization(resources))


def gateway() -> dict[str, object]:
    """The Gateway the HTTPRoutes attach to (HTTPS; the certificate Secret is made by hand)."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {
            "name": routes.PARENT_GATEWAY["name"],
            "namespace": knative.NAMESPACE,
            "labels": routes.LABELS,
        },
        "spec": {
            "gatewayClassName": "istio",
            "listeners": [
                {
                    "name": "https",
                    "protocol": "HTTPS",
                    "port": 443,
                    "hostname": routes.HOST,
                    "tls": {
                        "mode": "Terminate",
                        "certificateRefs": [{"group": "", "kind": "Secret", "name": "coditect-public-tls"}],
                    },
                    "allowedRoutes": {"namespaces": {"from": "Same"}},
                }
            ],
        },
    }


def files(functions: tuple[FunctionSpec, ...] | None = None) -> dict[str, str]:
    """Repository path → text of every generated file."""
    specs = list(registry.FUNCTIONS if functions is None else functions)
    out: dict[str, str] = {}
    for spec in specs:
        if spec.kind == "asgi":
            out[f"infra/base/relay/{spec.name}.yaml"] = _yaml_all(relay.manifests(spec), _why(relay.__doc__))
        else:
            out[f"knative/{spec.name}.yaml"] = _yaml(knative.service(spec))
    out["infra/base/relay/kustomization.yaml"] = _kustomization(
        [f"{spec.name}.yaml" for spec in routes.relays(specs)]
    )
    why_events = _why(eventing.__doc__)
    out["infra/base/eventing/broker.yaml"] = _yaml(eventing.broker(), why_events)
    out["infra/base/eventing/triggers.yaml"] = _yaml_all(eventing.triggers(specs))
    out["infra/base/eventing/ping-sources.yaml"] = _yaml_all(eventing.ping_sources(specs))
    out["infra/base/eventing/kustomization.yaml"] = _yaml(eventing.kustomization())
    why_routes = _why(routes.__doc__)
    out["infra/routes/istio/virtual-service.yaml"] = _yaml(routes.virtual_service(specs), why_routes)
    out["infra/routes/istio/envoy-filter.yaml"] = _yaml(envoy.envoy_filter(specs), _why(envoy.__doc__))
    out["infra/routes/istio/kustomization.yaml"] = _kustomization(
        ["virtual-service.yaml", "envoy-filter.yaml"]
    )
    out["infra/routes/gateway-api/gateway.yaml"] = _yaml(gateway())
    out["infra/routes/gateway-api/http-routes.yaml"] = _yaml_all(routes.http_routes(specs), why_routes)
    out["infra/routes/gateway-api/reference-grant.yaml"] = _yaml(routes.reference_grant())
    out["infra/routes/gateway-api/kustomization.yaml"] = _kustomization(
        ["gateway.yaml", "http-routes.yaml", "reference-grant.yaml"]
    )
    out["functions/Dockerfile"] = image.DOCKERFILE
    out["functions/build-images.sh"] = image.build_script(specs)
    # The local front door's Caddy config on example ports (the real one is rendered at start).
    out["docs/frontdoor.example.json"] = json.dumps(frontdoor.example(specs), indent=1) + "\n"
    out[".dockerignore"] = image.DOCKERIGNORE
    return out


def _existing(root: Path) -> dict[str, str]:
    found = {}
    for d in GENERATED_DIRS:
        for p in sorted((root / d).glob("*.yaml")):
            found[str(p.relative_to(root))] = p.read_text()
    return found


def check(root: Path) -> list[str]:
    """Human-readable drift between the committed files under `root` and a fresh render."""
    wanted, problems = files(), []
    existing = _existing(root)
    for path, text in wanted.items():
        target = root / path
        current = target.read_text() if target.exists() else None
        if current is None:
            problems.append(f"missing: {path}")
        elif current != text:
            diff = difflib.unified_diff(
                current.splitlines(), text.splitlines(), path, f"{path} (rendered)", lineterm="", n=1
            )
            problems.append(f"differs: {path}\n" + "\n".join(list(diff)[:40]))
    problems += [f"stale (no longer rendered): {p}" for p in sorted(existing) if p not in wanted]
    return problems


def write(root: Path) -> list[str]:
    """Write every generated file under `root`, remove stale ones; return the paths changed."""
    wanted, changed = files(), []
    for path in _existing(root):
        if path not in wanted:
            (root / path).unlink()
            changed.append(path)
    for path, text in wanted.items():
        target = root / path
        if not target.exists() or target.read_text() != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            changed.append(path)
        if path.endswith(".sh"):
            target.chmod(0o755)
    return changed
