"""Facts written once: CloudEvent types (coditect.event_types) and the version (package metadata)."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from coditect import event_types
from coditect.platform.openapi import build
from coditect.registry import FUNCTIONS
from coditect.version import VERSION

ROOT = Path(__file__).resolve().parents[3]
EVENT_TYPE = re.compile(r"(com\.coditect|dev\.knative)\.[a-z_.]+")


def test_event_type_strings_are_written_only_in_event_types() -> None:
    found = []
    for path in sorted((ROOT / "shared/coditect").rglob("*.py")):
        if path.name == "event_types.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if EVENT_TYPE.fullmatch(node.value):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value}")
    assert found == []


def test_every_declared_event_type_is_one_of_event_types() -> None:
    known = {v for k, v in vars(event_types).items() if k.isupper()}
    declared = {t for spec in FUNCTIONS for t in (*spec.events, *spec.publishes)}
    assert declared and declared <= known


def test_the_version_is_the_package_metadata() -> None:
    project = tomllib.loads((ROOT / "shared/pyproject.toml").read_text())["project"]
    assert VERSION == project["version"]
    assert build(FUNCTIONS)["info"]["version"] == VERSION
