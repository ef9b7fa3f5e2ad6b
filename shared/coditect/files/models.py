"""Records the files area stores, and the API shapes of api-v5.md "Files"."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from coditect.files.paths import MAX_PATH_BYTES
from coditect.repo import RecordCodec

FileType = Literal["file", "directory"]
ChangeOp = Literal["created", "modified", "deleted", "moved_from", "moved_to"]


class Entry(BaseModel):
    """A directory entry: what `(parent directory id, name)` holds.

    `id` names the node: a directory's children are keyed by it (so moving a directory moves one
    entry, whatever it contains), a file's versions are keyed by it.
    """

    id: str
    type: FileType
    size: int = 0
    sha256: str | None = None
    etag: str | None = None
    version: int = 0
    content_type: str | None = None
    created_at: datetime
    updated_at: datetime


class VersionRecord(BaseModel):
    """One stored version of a file; holds one reference to its content's manifest."""

    version: int
    size: int
    sha256: str
    etag: str
    content_type: str
    created_at: datetime
    upload: str = ""  # the upload (or write) that made it: a retried publish recognises itself


ENTRY = RecordCodec(Entry, 1)
VERSION = RecordCodec(VersionRecord, 1)


class FileInfo(BaseModel):
    """The contract's `file`."""

    path: str
    type: FileType
    size: int
    sha256: str | None
    etag: str | None
    version: int
    content_type: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, path: str, entry: Entry) -> FileInfo:
        return cls(path=path, **entry.model_dump(exclude={"id"}))


class VersionInfo(BaseModel):
    version: int
    size: int
    sha256: str
    etag: str
    created_at: datetime

    @classmethod
    def of(cls, record: VersionRecord) -> VersionInfo:
        return cls(**record.model_dump(include={"version", "size", "sha256", "etag", "created_at"}))


class Change(BaseModel):
    seq: str
    path: str
    op: ChangeOp
    etag: str | None


class ChangesPage(BaseModel):
    changes: list[Change]
    cursor: str


class Usage(BaseModel):
    """Per-tenant usage (reported by `quota.usage`; not an HTTP route, see docs)."""

    logical_bytes: int
    physical_bytes: int
    quota_bytes: int


# -- request bodies and queries ------------------------------------------------------------
# A file path as the document shows it: the contract's rule (coditect.files.paths, at most
# MAX_PATH_BYTES bytes, else 400 invalid_path). The model's own bound is looser on purpose, so that
# an over-long path gets the contract's 400 from the path rules rather than a 422.
PathText = Annotated[
    str, Field(max_length=4096, json_schema_extra={"minLength": 1, "maxLength": MAX_PATH_BYTES})
]


class MoveBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: PathText = Field(alias="from")
    to: PathText
    overwrite: bool = False


class MkdirBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: PathText


class RestoreBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: PathText
    version: int = Field(ge=1)


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: str = Field(default="", max_length=4096)
    recursive: bool = False
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=4096)


class VersionsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: PathText
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=4096)


class ReadQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int | None = Field(default=None, ge=1)


class DeleteQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recursive: bool = False


class ChangesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: str | None = Field(default=None, max_length=4096)
    wait: float = Field(default=0, ge=0, le=30)
    limit: int = Field(default=200, ge=1, le=1000)
