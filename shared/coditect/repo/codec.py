"""Record codec: pydantic models as compact JSON inside a schema-version envelope.

Stored form: `{"v":<version>,"d":<model as JSON>}`. A record written by a newer release (a
higher `v`) is refused with `UnknownVersion` instead of being half-read and re-saved without
the fields this release does not know; older versions go through the `migrate` hook.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

# migrate(stored_version, data) -> data in the current version's shape
Migrate = Callable[[int, dict[str, Any]], dict[str, Any]]


class CodecError(ValueError):
    """A stored record cannot be decoded by this codec."""


class UnknownVersion(CodecError):
    """The record was written by a newer schema version than this release knows."""

    def __init__(self, model: str, stored: int, known: int) -> None:
        self.stored, self.known = stored, known
        super().__init__(
            f"{model} record has schema version {stored}, newer than this release's {known}; "
            "upgrade the reader before touching it"
        )


class RecordCodec(Generic[M]):
    """Encode/decode one model at one schema version (`version` ≥ 1)."""

    def __init__(self, model: type[M], version: int, *, migrate: Migrate | None = None) -> None:
        if version < 1:
            raise ValueError("schema versions start at 1")
        self.model = model
        self.version = version
        self.migrate = migrate

    def encode(self, record: M) -> bytes:
        if not isinstance(record, self.model):
            raise TypeError(f"expected {self.model.__name__}, got {type(record).__name__}")
        # model_dump_json keeps pydantic's own JSON encoding (datetimes, UUIDs, enums).
        body = record.model_dump_json()
        return b'{"v":%d,"d":%s}' % (self.version, body.encode())

    def decode(self, data: bytes) -> M:
        try:
            # Ours are UTF-8: decoding first skips json's encoding detection on bytes.
            envelope = json.loads(data.decode())
            stored = envelope["v"]
            payload = envelope["d"]
        except (ValueError, TypeError, KeyError) as exc:
            raise CodecError(f"not a {self.model.__name__} record envelope") from exc
        if not isinstance(stored, int) or not isinstance(payload, dict) or stored < 1:
            raise CodecError(f"malformed {self.model.__name__} record envelope")
        if stored > self.version:
            raise UnknownVersion(self.model.__name__, stored, self.version)
        if stored < self.version:
            if self.migrate is None:
                raise CodecError(
                    f"{self.model.__name__} record has old schema version {stored} and no migrate hook"
                )
            payload = self.migrate(stored, payload)
        try:
            return self.model.model_validate(payload)
        except ValidationError as exc:
            raise CodecError(f"stored {self.model.__name__} record does not validate: {exc}") from exc
