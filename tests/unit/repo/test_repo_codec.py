from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from coditect.repo import CodecError, RecordCodec, UnknownVersion


class User(BaseModel):
    name: str
    email: str = ""


def test_round_trip_and_envelope() -> None:
    codec = RecordCodec(User, 2)
    data = codec.encode(User(name="ann", email="a@x"))
    assert json.loads(data) == {"v": 2, "d": {"name": "ann", "email": "a@x"}}
    assert b" " not in data  # compact
    assert codec.decode(data) == User(name="ann", email="a@x")


def test_newer_version_is_refused() -> None:
    data = RecordCodec(User, 3).encode(User(name="ann"))
    with pytest.raises(UnknownVersion, match="newer") as info:
        RecordCodec(User, 2).decode(data)
    assert (info.value.stored, info.value.known) == (3, 2)


def test_older_version_goes_through_migrate() -> None:
    old = b'{"v":1,"d":{"fullname":"ann"}}'
    seen: list[int] = []

    def migrate(version: int, d: dict[str, Any]) -> dict[str, Any]:
        seen.append(version)
        return {"name": d["fullname"]}

    assert RecordCodec(User, 2, migrate=migrate).decode(old) == User(name="ann")
    assert seen == [1]
    with pytest.raises(CodecError, match="no migrate hook"):
        RecordCodec(User, 2).decode(old)


@pytest.mark.parametrize("raw", [b"", b"garbage", b"[1]", b'{"v":"1","d":{}}', b'{"v":1}', b'{"v":1,"d":{}}'])
def test_garbage_is_codec_error(raw: bytes) -> None:
    with pytest.raises(CodecError):
        RecordCodec(User, 1).decode(raw)


def test_wrong_model_type() -> None:
    class Other(BaseModel):
        x: int = 0

    with pytest.raises(TypeError):
        RecordCodec(User, 1).encode(Other())  # type: ignore[arg-type]
