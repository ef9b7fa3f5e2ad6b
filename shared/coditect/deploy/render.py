"""Render every generated deployment file from the registry; write them or check for drift."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import yaml

from coditect import registry
from coditect.deploy import image, knative, routes
from coditect.devstack import frontdoor
from coditect.registry.spec import FunctionSpec

REGENERATE = "python -m coditect.deploy render"  # from the repository root, in the project venv
GENERATED_DIRS = ("knative", "infra/base/routes")  # owned entirely by the renderer (stale files removed)


def _yaml(doc: object, header: str = "") -> str:
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=110)
    return f"# {knative.GENERATED}\n{header}{text}"


def files(functions: tuple[FunctionSpec, ...] | None = None) -> dict[str, str]:
    """Repository path → text of every generated file."""
    specs = list(registry.FUNCTIONS if functions is None else functions)
    out: dict[str, str] = {}
    for spec in specs:
        out[f"knative/{spec.name}.yaml"] = _yaml(knative.service(spec))
    routes_doc = routes.__doc__ or ""
    why = "".join(f"# {line}\n".replace("# \n", "#\n") for line in routes_doc.strip().splitlines())
    out["infra/base/routes/virtual-service.yaml"] = _yaml(routes.virtual_service(specs), why)
    out["infra/base/routes/kustomization.yaml"] = _yaml(routes.kustomization())
    out["functions/Dockerfile"] = image.DOCKERFILE
    out["functions/build-images.sh"] = image.build_script(specs)
    # The local front door's Caddy config on example ports (the real one is rendered at start).
    out["docs/frontdoor.example.json"] = json.dumps(frontdoor.example(specs), indent=1) + "\n"
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
