"""Per-user settings: `("t", tid, "settings", user_id, key)` → `{key, value, updated_at}`.

Keys match `[a-z0-9._-]{1,128}` (422 otherwise); a value is any JSON of at most 64 KiB serialized
(413 `content_too_large`); a user has at most `SETTINGS_MAX_KEYS` keys (409 `settings_limit`), so
`GET /settings` answers all of them in one object. Tenant-wide defaults are not implemented in
this iteration: a key a user never set is simply absent.
"""

from __future__ import annotations

import re

from pydantic import JsonValue

from coditect import keyspace
from coditect.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from coditect.identity.context import TenantContext
from coditect.repo import counters
from coditect.sessions import repository
from coditect.sessions.models import (
    SETTING_KEY_PATTERN,
    SETTING_VALUE_MAX_BYTES,
    SETTINGS_MAX_KEYS,
    Setting,
    SettingRecord,
    json_size,
    now,
)
from coditect.store import Database, Transaction

_KEY = re.compile(SETTING_KEY_PATTERN)


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValidationFailed(details=[{"loc": ["path", "key"], "type": "string_pattern_mismatch"}])
    return key


def _count_key(ctx: TenantContext) -> bytes:
    return keyspace.tenant(ctx.tenant_id).sub(keyspace.COUNTERS).key("settings", ctx.user_id)


def all_settings(db: Database, ctx: TenantContext) -> dict[str, JsonValue]:
    def read(tr: Transaction) -> dict[str, JsonValue]:
        rows = repository.settings(ctx.tenant_id).scan(tr, ctx.user_id, snapshot=True)
        return {r.key: r.value for _, r in rows}

    return db.transact(read)


def get(db: Database, ctx: TenantContext, key: str) -> Setting:
    check_key(key)
    record = db.transact(lambda tr: repository.settings(ctx.tenant_id).get(tr, ctx.user_id, key))
    if record is None:
        raise NotFound()
    return Setting(**record.model_dump())


def put(db: Database, ctx: TenantContext, key: str, value: JsonValue) -> Setting:
    check_key(key)
    if json_size(value) > SETTING_VALUE_MAX_BYTES:
        raise PayloadTooLarge(
            f"A setting value is limited to {SETTING_VALUE_MAX_BYTES} bytes of JSON.",
            code="content_too_large",
        )
    record = SettingRecord(key=key, value=value, updated_at=now())

    def write(tr: Transaction) -> None:
        table = repository.settings(ctx.tenant_id)
        if table.get(tr, ctx.user_id, key) is None:
            if counters.read(tr, _count_key(ctx)) >= SETTINGS_MAX_KEYS:
                raise Conflict(f"A user has at most {SETTINGS_MAX_KEYS} settings.", code="settings_limit")
            counters.add(tr, _count_key(ctx), 1)
        table.put(tr, (ctx.user_id, key), record)

    db.transact(write)
    return Setting(**record.model_dump())


def delete(db: Database, ctx: TenantContext, key: str) -> None:
    check_key(key)

    issued = False  # an earlier attempt of this request issued the delete

    def write(tr: Transaction) -> None:
        nonlocal issued
        table = repository.settings(ctx.tenant_id)
        record = table.get(tr, ctx.user_id, key)
        if record is None:
            if issued:  # our own commit, retried after commit_unknown_result: already gone
                return
            raise NotFound()
        table.delete(tr, (ctx.user_id, key), record)
        counters.add(tr, _count_key(ctx), -1)
        issued = True

    db.transact(write)
