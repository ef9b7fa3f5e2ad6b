"""The committed knative/, infra/ (relay, eventing, routes), functions/Dockerfile, build script and
.dockerignore are what the registry renders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from coditect.deploy import REGENERATE, check, files, write

ROOT = Path(__file__).resolve().parents[3]


def test_committed_manifests_match_the_registry() -> None:
    problems = check(ROOT)
    assert not problems, (
        "the generated deployment files differ from what coditect.registry renders.\n"
        f"Regenerate them from the repository root with:\n\n    .venv/bin/{REGENERATE}\n\n"
        "and commit knative/, infra/base/{relay,eventing}/, infra/routes/, functions/Dockerfile,\n"
        "functions/build-images.sh and .dockerignore.\n\n" + "\n".join(problems)
    )


def test_check_reports_missing_changed_and_stale_files_and_write_repairs_them(tmp_path: Path) -> None:
    write(tmp_path)
    assert check(tmp_path) == []
    (tmp_path / "knative" / "health.yaml").write_text("tampered\n")
    (tmp_path / "knative" / "gone.yaml").write_text("kind: Service\n")
    (tmp_path / "infra/routes/istio/virtual-service.yaml").unlink()
    problems = check(tmp_path)
    assert any(p.startswith("differs: knative/health.yaml") for p in problems)
    assert "stale (no longer rendered): knative/gone.yaml" in problems
    assert "missing: infra/routes/istio/virtual-service.yaml" in problems
    changed = write(tmp_path)
    assert set(changed) == {
        "knative/gone.yaml",
        "knative/health.yaml",
        "infra/routes/istio/virtual-service.yaml",
    }
    assert check(tmp_path) == [] and not (tmp_path / "knative" / "gone.yaml").exists()
    assert set(files()) == {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}


def test_the_cli_check_exits_1_and_names_the_command(tmp_path: Path) -> None:
    (tmp_path / "knative").mkdir()
    (tmp_path / "functions").mkdir()
    run = subprocess.run(
        [sys.executable, "-m", "coditect.deploy", "render", "--check", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1 and "missing: knative/health.yaml" in run.stdout and REGENERATE in run.stdout
    run = subprocess.run(
        [sys.executable, "-m", "coditect.deploy", "render", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0 and "wrote knative/health.yaml" in run.stdout
    run = subprocess.run(
        [sys.executable, "-m", "coditect.deploy", "render", "--check", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout
