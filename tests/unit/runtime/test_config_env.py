"""coditect.config reads CODITECT_* itself (no pydantic-settings): names in any case, JSON for
collection fields, arguments over the environment, invalid values refused at construction."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from coditect.config import Settings


def test_values_come_from_the_environment_and_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODITECT_ACCESS_TOKEN_TTL", "600")
    monkeypatch.setenv("coditect_data_dir", "/tmp/somewhere")
    monkeypatch.setenv("CODITECT_CORS_ORIGINS", '["https://ide.example"]')
    monkeypatch.setenv(
        "CODITECT_FUNCTION_URLS", '{"health": "http://127.0.0.1:1", "files": ["http://a", "http://b"]}'
    )
    monkeypatch.setenv("CODITECT_WORKSPACE_BACKEND", "kubernetes")
    monkeypatch.setenv("CODITECT_NOT_A_SETTING", "ignored")
    settings = Settings()
    assert settings.access_token_ttl == 600
    assert settings.data_dir == Path("/tmp/somewhere")
    assert settings.cors_origins == ("https://ide.example",)
    assert settings.function_urls == {"health": "http://127.0.0.1:1", "files": ["http://a", "http://b"]}
    assert settings.workspace_backend == "kubernetes"
    assert Settings(access_token_ttl=300).access_token_ttl == 300


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ACCESS_TOKEN_TTL", "5"),
        ("ACCESS_TOKEN_TTL", "soon"),
        ("WORKSPACE_BACKEND", "docker"),
        ("FUNCTION_URLS", '{"health": []}'),
        ("FUNCTION_URLS", '{"health": 3}'),
    ],
)
def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"CODITECT_{name}", value)
    with pytest.raises(ValidationError):
        Settings()


def test_a_collection_that_is_not_json_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODITECT_CORS_ORIGINS", "https://a,https://b")
    with pytest.raises(ValueError, match="CODITECT_CORS_ORIGINS must be JSON"):
        Settings()


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError):
        Settings().access_token_ttl = 60  # type: ignore[misc]
