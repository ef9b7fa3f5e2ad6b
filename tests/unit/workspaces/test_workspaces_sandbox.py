"""The local workspace sandbox (bubblewrap) on its own: what a sandboxed shell can and cannot see,
and the refusal to start without a sandbox (issue 11, item 4)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from coditect.workspaces import sandbox
from coditect.workspaces.local import LocalProvisioner
from coditect.workspaces.provisioner import ProvisionFailed

ROOT = Path(__file__).resolve().parents[3]
needs_bwrap = pytest.mark.skipif(sandbox.check() is not None, reason=f"no working sandbox: {sandbox.check()}")


def run(tree: Path, script: str) -> str:
    done = subprocess.run(
        sandbox.wrap(["/bin/sh", "-c", script], tree), capture_output=True, timeout=30, check=False
    )
    return done.stdout.decode() + done.stderr.decode()


@needs_bwrap
def test_a_sandboxed_shell_sees_its_tree_and_nothing_of_the_platform(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "keys").mkdir(parents=True)
    (data / "keys" / "signing.pem").write_text("PRIVATE KEY")
    (data / "pepper").write_text("PEPPER")
    (data / "store.db").write_text("STORE")
    other = data / "workspaces" / "other" / "tree"
    other.mkdir(parents=True)
    (other / "theirs.txt").write_text("THEIRS")
    tree = data / "workspaces" / "mine" / "tree"
    tree.mkdir(parents=True)
    (tree / "mine.txt").write_text("MINE\n")
    targets = [data / "keys" / "signing.pem", data / "pepper", data / "store.db", other / "theirs.txt",
               ROOT / "README.md", ROOT / "shared" / "coditect" / "config.py", Path("/root")]  # fmt: skip
    script = "; ".join(f"cat {t} 2>/dev/null && echo LEAK:{t}" for t in targets)
    out = run(tree, f"{script}; id -u; pwd; cat mine.txt; echo new > made.txt; env | sort")
    assert "LEAK" not in out and "PRIVATE KEY" not in out and "THEIRS" not in out
    lines = out.split()
    assert "1000" in lines and "/workspace" in lines and "MINE" in lines
    assert (tree / "made.txt").read_text() == "new\n"  # the tree is the one writable place
    assert "CODITECT_" not in out  # an empty environment: no setting, no credential


@needs_bwrap
def test_private_tmp_and_read_only_system(tmp_path: Path) -> None:
    name = f"coditect-sandbox-{tmp_path.name}"
    out = run(tmp_path, f"echo x > /tmp/{name} && echo TMP_OK; touch /usr/{name} 2>/dev/null || echo USR_RO")
    assert "TMP_OK" in out and "USR_RO" in out
    assert not (Path("/tmp") / name).exists() and not (Path("/usr") / name).exists()


@needs_bwrap
def test_a_python_environment_under_tmp_still_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A checkout (and its nox venv) under the host's /tmp, as on a CI machine: the sandbox's private
    # /tmp must not hide the interpreter the program runs with.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    monkeypatch.setattr(sys, "prefix", str(venv))
    monkeypatch.setattr(sys, "exec_prefix", str(venv))
    done = subprocess.run(
        sandbox.wrap([str(venv / "bin" / "python"), "-c", "import json; print('PY_OK')"], tmp_path / "venv"),
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert b"PY_OK" in done.stdout, done.stderr.decode(errors="replace")


def test_no_sandbox_refuses_to_start_unless_unsafe_is_set(
    tmp_path: Path, make_spec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "check", lambda: "bubblewrap (bwrap) is not installed")
    monkeypatch.delenv(sandbox.UNSAFE_ENV, raising=False)
    prov = LocalProvisioner(tmp_path / "ws", start_timeout=5)
    with pytest.raises(ProvisionFailed) as info:
        prov.start(make_spec())
    assert info.value.reason == "sandbox_unavailable"
    assert "bwrap" in info.value.message and sandbox.UNSAFE_ENV in info.value.message
    assert prov.list_workloads() == {}
    monkeypatch.setenv(sandbox.UNSAFE_ENV, "1")
    assert prov._use_sandbox() is False  # the documented unsafe escape hatch
