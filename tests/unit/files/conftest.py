"""Fixtures for the file store, driven directly (no HTTP): a store, a tenant, sessions."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from coditect.files import paths, service, upload
from coditect.files.quota import Policy
from coditect.files.tree import FileSpace
from coditect.files.versions import NO_CONDITIONS, Preconditions
from coditect.store import Database, open_store


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_store(f"sqlite://{tmp_path / 'service.db'}")
    yield database
    database.close()


@dataclass
class Tenant:
    """One tenant's sessions and helpers to write and read their files."""

    db: Database
    tenant_id: str
    policy: Policy

    def session(self) -> FileSpace:
        return FileSpace(self.tenant_id, str(uuid.uuid4()))

    def write(
        self, fs: FileSpace, path: str, data: bytes, conditions: Preconditions = NO_CONDITIONS
    ) -> upload.Written:
        return upload.write_stream(
            self.db,
            fs,
            paths.parse(path),
            io.BytesIO(data),
            content_length=len(data),
            content_type="application/octet-stream",
            conditions=conditions,
            policy=self.policy,
        )

    def read(
        self, fs: FileSpace, path: str, version: int | None = None, start: int = 0, stop: int | None = None
    ) -> bytes:
        readable = service.open_file(self.db, fs, paths.parse(path), version)
        end = readable.manifest.size if stop is None else stop
        return b"".join(service.iter_content(self.db, self.tenant_id, readable.manifest, start, end))


@pytest.fixture
def tenant(db: Database) -> Tenant:
    return Tenant(db, str(uuid.uuid4()), Policy())


def random_bytes(n: int) -> bytes:
    return os.urandom(n)
