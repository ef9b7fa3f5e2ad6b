"""Each image's Python environment, built the way functions/Dockerfile builds it (issue 13 item 1).

No Docker here, so the test runs the recipe's own two pip commands (`image.WHEEL_COMMAND` into a
wheelhouse from a copy of shared/ laid out as the Dockerfile's COPY lays it out, then
`image.INSTALL_COMMAND` with the function's EXTRAS into a FRESH venv, from the wheelhouse only),
then starts functions from that venv with the container's own start script (`image.START_SCRIPT`,
run by /bin/sh with the image's environment) and from a directory where the repository's source is
not importable: an http function and the relay must answer /healthz, a CloudEvent function must
accept connections and take an event, and every module the function imports lazily must import.

One venv per distinct extras set of the registry (not one per function); one function started per
set, plus every asgi/cloudevent function (relay, provisioner, cron). pip's cache is used (the
recipe's --no-cache-dir is dropped), so a second run takes well under a minute.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from coditect import registry
from coditect.deploy import image
from coditect.devstack.plan import free_port
from coditect.registry.spec import FunctionSpec
from tests.e2e.stack import wait_listening

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[3]
# Modules a function imports only on its first event/request, by extra: a missing extra fails here.
LAZY_IMPORTS = {
    "k8s": ["kubernetes", "coditect.workspaces.k8s.backend"],
    "relay": ["uvicorn", "websockets", "coditect.relay.app", "coditect.relay.server", "uvloop", "httptools"],
}


def groups() -> dict[tuple[str, ...], list[FunctionSpec]]:
    by_extras: dict[tuple[str, ...], list[FunctionSpec]] = defaultdict(list)
    for spec in registry.FUNCTIONS:
        by_extras[tuple(sorted(spec.extras))].append(spec)
    return dict(by_extras)


def started(specs: list[FunctionSpec]) -> list[FunctionSpec]:
    http = [s for s in specs if s.kind == "http"][:1]
    return http + [s for s in specs if s.kind != "http"]


GROUPS = groups()


def shell(command: str, env: dict[str, str], timeout: float = 600) -> None:
    done = subprocess.run(
        ["/bin/sh", "-c", command], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def base_env() -> dict[str, str]:
    keep = (
        "PATH",
        "HOME",
        "LANG",
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "PIP_FIND_LINKS",
        "PIP_CONFIG_FILE",
    )
    return {k: os.environ[k] for k in keep if k in os.environ}


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """WHEEL_COMMAND for every extra at once, from shared/ copied as the Dockerfile copies it."""
    root = tmp_path_factory.mktemp("image")
    src = root / "src" / "shared"
    src.mkdir(parents=True)
    shutil.copy(ROOT / "shared" / "pyproject.toml", src / "pyproject.toml")
    shutil.copytree(
        ROOT / "shared" / "coditect", src / "coditect", ignore=shutil.ignore_patterns("__pycache__")
    )
    wheels = root / "wheels"
    command = image.WHEEL_COMMAND.replace(" --no-cache-dir", "").replace("/src/shared", str(src))
    command = command.replace("/wheels", str(wheels)).replace("pip ", f"{sys.executable} -m pip -q ", 1)
    extras = sorted({e for key in GROUPS for e in key})
    shell(command, {**base_env(), "EXTRAS": ",".join(extras)})
    return wheels


@pytest.mark.parametrize("extras", list(GROUPS), ids=lambda e: ",".join(e) or "no-extras")
def test_the_image_environment_imports_and_starts_its_functions(
    extras: tuple[str, ...], wheelhouse: Path, tmp_path: Path
) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    install = image.INSTALL_COMMAND.replace(" --no-cache-dir", "").replace("/wheels", str(wheelhouse))
    env = {**base_env(), "PATH": f"{bin_dir}:{os.environ['PATH']}", "EXTRAS": ",".join(extras)}
    shell(install.replace("pip ", "pip -q ", 1), env)
    work = tmp_path / "work"  # not the repository: only the venv's coditect is importable
    work.mkdir()
    for extra in extras:
        for module in LAZY_IMPORTS.get(extra, []):
            shell(f"cd {work} && python -c 'import {module}'", env)
    keys = tmp_path / "keys"
    shell(f"cd {work} && python -c 'from coditect.identity.signing_keys import ensure_keys; import pathlib; "
          f"ensure_keys(pathlib.Path(\"{keys}\"))'", env)  # fmt: skip
    for spec in started(GROUPS[extras]):
        port = free_port()
        run_env = {
            **env,
            "PORT": str(port),
            "FUNCTION_KIND": image.kind_arg(spec),
            "FUNCTION_SOURCE": str(ROOT / "functions" / spec.name / "main.py"),
            "FUNCTION_TARGET": "handle",
            "FUNCTION_SIGNATURE_TYPE": image.kind_arg(spec),
            "WORKERS": "1",
            "THREADS": "2",
            "CODITECT_DATA_DIR": str(tmp_path / "data"),
            "CODITECT_KEYS_DIR": str(keys),
            "PYTHONUNBUFFERED": "1",
        }
        log = tmp_path / f"{spec.name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", image.START_SCRIPT.replace("0.0.0.0", "127.0.0.1")],
                env=run_env,
                cwd=work,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_listening(port, proc, log=log)
            url = f"http://127.0.0.1:{port}"
            if spec.kind == "cloudevent":
                # a cron event: the job runs against the store (health job) and the function answers
                headers = {"ce-specversion": "1.0", "ce-type": "com.coditect.ops.cron", "ce-source": "/test",
                           "ce-id": f"t-{spec.name}", "content-type": "application/json"}  # fmt: skip
                body = {"job": "health"} if spec.name == "cron" else {}
                answer = httpx.post(url, headers=headers, content=json.dumps(body), timeout=60)
                assert answer.status_code < 500 or spec.name != "cron", log.read_text()[-4000:]
            else:
                answer = httpx.get(f"{url}/healthz", timeout=30)
                assert answer.status_code == 200, log.read_text()[-4000:]
            assert proc.poll() is None, log.read_text()[-4000:]
            assert "No module named" not in log.read_text(), log.read_text()[-4000:]
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
