"""Clients of the four sessions functions, built once per test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class Clients:
    sessions: Any
    conversations: Any
    messages: Any
    settings: Any


@pytest.fixture
def api(function_client: Any, identity_env: Any) -> Clients:
    return Clients(*(function_client(n) for n in ("sessions", "conversations", "messages", "settings")))
