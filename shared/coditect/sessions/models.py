"""Stored records, API shapes and request bodies of sessions, conversations, messages, settings.

Limits (the contract's and ours) are constants here so services, tests and the OpenAPI summaries
quote the same numbers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

NAME_MAX = 200
DESCRIPTION_MAX = 10_000
TITLE_MAX = 200
AGENT_MAX = 200
METADATA_MAX_BYTES = 16 * 1024  # session and message metadata, compact JSON UTF-8
CONTENT_MAX_BYTES = 1024 * 1024  # message content, UTF-8 bytes (413 content_too_large above)
SETTING_VALUE_MAX_BYTES = 64 * 1024  # compact JSON UTF-8 (413 content_too_large above)
SETTINGS_MAX_KEYS = 100  # per user; GET /settings returns them all (≤ 6.4 MiB)
CONVERSATIONS_MAX = 1_000  # per session: a fork snapshots them in one transaction
SETTING_KEY_PATTERN = r"[a-z0-9._-]{1,128}"

SessionState = Literal["live", "pending", "deleting"]
Role = Literal["user", "assistant", "system", "tool"]


def now() -> datetime:
    return datetime.now(UTC)


def micros(at: datetime) -> int:
    """An index-sortable integer for a time (microseconds since the epoch)."""
    return int(at.timestamp() * 1_000_000)


def json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    if json_size(value) > METADATA_MAX_BYTES:
        raise ValueError(f"metadata is larger than {METADATA_MAX_BYTES} bytes")
    return value


# -- stored records ----------------------------------------------------------------------------
class SessionRecord(BaseModel):
    id: str
    owner_id: str
    name: str
    description: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    parent_id: str | None = None
    archived: bool = False
    created_at: datetime
    updated_at: datetime
    version: int = 1  # bumped by every change: the ETag
    state: SessionState = "live"
    purge_due_us: int | None = None  # the purge-queue entry's due time while pending or deleting

    @property
    def etag(self) -> str:
        return f'"{self.id[:8]}.{self.version}"'


class ConversationRecord(BaseModel):
    id: str
    session_id: str
    title: str
    agent: str | None = None
    created_at: datetime
    updated_at: datetime


class MessageRecord(BaseModel):
    """Stored under the message's versionstamped key; `seq` and `conversation_id` come from the key."""

    id: str
    role: Role
    content: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class SettingRecord(BaseModel):
    key: str
    value: JsonValue
    updated_at: datetime


# -- API shapes --------------------------------------------------------------------------------
class Session(BaseModel):
    id: str
    name: str
    description: str
    metadata: dict[str, Any]
    parent_id: str | None
    archived: bool
    owner_id: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: SessionRecord) -> Session:
        return cls.model_validate(record.model_dump(exclude={"version", "state"}))


class Related(BaseModel):
    parent: Session | None
    children: list[Session]
    siblings: list[Session]
    children_next_cursor: str | None
    siblings_next_cursor: str | None


class Conversation(BaseModel):
    id: str
    session_id: str
    title: str
    agent: str | None
    created_at: datetime
    updated_at: datetime
    message_count: int


class Message(BaseModel):
    id: str
    conversation_id: str
    seq: int
    role: Role
    content: str
    metadata: dict[str, Any]
    created_at: datetime


class Setting(BaseModel):
    key: str
    value: JsonValue
    updated_at: datetime


# -- request bodies and queries ---------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionCreate(_Body):
    name: str = Field(min_length=1, max_length=NAME_MAX)
    description: str = Field(default="", max_length=DESCRIPTION_MAX)
    metadata: dict[str, Any] = Field(default_factory=dict)

    _metadata = field_validator("metadata")(_check_metadata)


class SessionPatch(_Body):
    """Only the fields present change; `null` is refused for every field (422)."""

    name: str = Field(default=None, min_length=1, max_length=NAME_MAX)  # type: ignore[assignment]
    description: str = Field(default=None, max_length=DESCRIPTION_MAX)  # type: ignore[assignment]
    metadata: dict[str, Any] = Field(default=None)  # type: ignore[arg-type]
    archived: bool = Field(default=None)  # type: ignore[assignment]

    _metadata = field_validator("metadata")(_check_metadata)


class ForkBody(_Body):
    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX)


class ConversationCreate(_Body):
    title: str = Field(min_length=1, max_length=TITLE_MAX)
    agent: str | None = Field(default=None, min_length=1, max_length=AGENT_MAX)


class ConversationPatch(_Body):
    title: str = Field(default=None, min_length=1, max_length=TITLE_MAX)  # type: ignore[assignment]
    agent: str | None = Field(default=None, min_length=1, max_length=AGENT_MAX)


class MessageCreate(_Body):
    role: Role
    content: str  # ≤ CONTENT_MAX_BYTES UTF-8: checked by the service (413, not 422)
    metadata: dict[str, Any] = Field(default_factory=dict)

    _metadata = field_validator("metadata")(_check_metadata)


class SettingPut(_Body):
    value: JsonValue  # required (null is a value); ≤ SETTING_VALUE_MAX_BYTES checked by the service


class PageQuery(_Body):
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=4096)


class SessionListQuery(PageQuery):
    archived: Literal["false", "true", "all"] = "false"


class RelatedQuery(_Body):
    limit: int = Field(default=50, ge=1, le=200)
    children_cursor: str | None = Field(default=None, max_length=4096)
    siblings_cursor: str | None = Field(default=None, max_length=4096)
