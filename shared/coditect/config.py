"""Typed configuration, read once at cold start from `CODITECT_*` environment variables.

Invalid values fail the process at start (pydantic-settings raises), never at the first request.
Secrets are never values here: they are files (a mounted Kubernetes Secret) named by a path.
"""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CODITECT_", extra="ignore", frozen=True)

    # Where the embedded defaults keep their files (store, keys, backups, workspace state).
    data_dir: Path = Path(".coditect")
    # Store URL; empty means `sqlite://<data_dir>/store.db` (see coditect.store.open_store).
    store: str = ""
    # Directory of Ed25519 PEM files (coditect.auth.keys); private keys only where signing happens.
    keys_dir: Path | None = None
    issuer: str = "https://coditect.local"
    audience: str = "coditect-api"
    access_token_ttl: int = Field(default=900, ge=60, le=900)
    # Browser origins allowed by CORS and by the relay's Origin check (exact match).
    cors_origins: tuple[str, ...] = ("http://localhost:8080", "http://127.0.0.1:8080")
    # Number of trusted reverse-proxy hops in X-Forwarded-For; 0 = use the socket peer only.
    trusted_proxy_hops: int = Field(default=0, ge=0, le=5)
    max_json_body: int = 1024 * 1024
    max_file_size: int = 100 * 1024 * 1024
    log_level: str = "INFO"

    @property
    def store_url(self) -> str:
        return self.store or f"sqlite://{(self.data_dir / 'store.db').resolve()}"

    @property
    def resolved_keys_dir(self) -> Path:
        return self.keys_dir or (self.data_dir / "keys")


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings (cached: read once). Tests call `get_settings.cache_clear()`."""
    return Settings()
