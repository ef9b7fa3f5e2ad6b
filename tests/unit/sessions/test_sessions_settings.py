from __future__ import annotations

import pytest

from coditect.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from coditect.identity.context import TenantContext
from coditect.sessions import settings
from coditect.sessions.models import SETTING_VALUE_MAX_BYTES, SETTINGS_MAX_KEYS
from coditect.store import Database


def test_put_get_all_delete(db: Database, alice: TenantContext, bob_same_tenant: TenantContext) -> None:
    settings.put(db, alice, "editor.theme", {"dark": True})
    settings.put(db, alice, "font-size_2", 14)
    settings.put(db, alice, "nothing", None)
    assert settings.get(db, alice, "editor.theme").value == {"dark": True}
    assert settings.all_settings(db, alice) == {
        "editor.theme": {"dark": True},
        "font-size_2": 14,
        "nothing": None,
    }
    assert settings.all_settings(db, bob_same_tenant) == {}
    with pytest.raises(NotFound):
        settings.get(db, bob_same_tenant, "editor.theme")
    settings.delete(db, alice, "font-size_2")
    with pytest.raises(NotFound):
        settings.delete(db, alice, "font-size_2")
    assert set(settings.all_settings(db, alice)) == {"editor.theme", "nothing"}


@pytest.mark.parametrize("key", ["", "Upper", "a/b", "sp ace", "é", "x" * 129, "a\x00"])
def test_bad_keys_are_422(db: Database, alice: TenantContext, key: str) -> None:
    for call in (
        lambda: settings.get(db, alice, key),
        lambda: settings.put(db, alice, key, 1),
        lambda: settings.delete(db, alice, key),
    ):
        with pytest.raises(ValidationFailed):
            call()


def test_value_size_limit(db: Database, alice: TenantContext) -> None:
    settings.put(db, alice, "big", "x" * (SETTING_VALUE_MAX_BYTES - 2))  # with its quotes: exactly 64 KiB
    with pytest.raises(PayloadTooLarge):
        settings.put(db, alice, "bigger", "x" * (SETTING_VALUE_MAX_BYTES - 1))
    assert set(settings.all_settings(db, alice)) == {"big"}


def test_key_count_limit(db: Database, alice: TenantContext) -> None:
    for i in range(SETTINGS_MAX_KEYS):
        settings.put(db, alice, f"k{i}", i)
    settings.put(db, alice, "k0", "overwrite is fine")
    with pytest.raises(Conflict):
        settings.put(db, alice, "one.more", 1)
    settings.delete(db, alice, "k1")
    settings.put(db, alice, "one.more", 1)
    assert len(settings.all_settings(db, alice)) == SETTINGS_MAX_KEYS
