"""Argon2id hashing and the NIST 800-63B policy (coditect.identity.passwords)."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Literal

import argon2
import pytest

from coditect.errors import ValidationFailed
from coditect.identity.passwords import (
    OWASP_MIN_MEMORY_KIB,
    Argon2Params,
    Passwords,
    check_password_policy,
    common_passwords,
    normalise,
)

# Argon2's smallest legal cost: fast tests. Only the OWASP test below uses the real defaults.
FAST = Argon2Params(memory_cost=8, time_cost=1)
STRONG = "vivid-otter-lamp-42"  # 19 code points, in no list, no context
EMAIL = "alice.smith@example.com"
FULLWIDTH = {code: code + 0xFEE0 for code in range(0x21, 0x7F)}  # ASCII -> U+FF01..U+FF5E


class CountingBackend:
    """A real argon2 PasswordHasher that records every call, to count Argon2 operations."""

    def __init__(self, params: Argon2Params) -> None:
        self._real = argon2.PasswordHasher(
            time_cost=params.time_cost, memory_cost=params.memory_cost, parallelism=params.parallelism
        )
        self.calls: list[tuple[str, str | bytes]] = []

    def hash(self, password: str | bytes) -> str:
        self.calls.append(("hash", password))
        return self._real.hash(password)

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.calls.append(("verify", hash))
        return self._real.verify(hash, password)

    def check_needs_rehash(self, hash: str | bytes) -> bool:
        return self._real.check_needs_rehash(hash)


@pytest.fixture
def backend() -> CountingBackend:
    return CountingBackend(FAST)


@pytest.fixture
def passwords(backend: CountingBackend) -> Passwords:
    return Passwords(FAST, backend=backend, allow_weak_params=True)


def violation(password: str, *, email: str = EMAIL, tenant_name: str | None = "Acme Rockets") -> str:
    with pytest.raises(ValidationFailed) as caught:
        check_password_policy(password, email=email, tenant_name=tenant_name)
    error = caught.value
    assert (error.status, error.code) == (422, "weak_password")
    assert error.details is not None and len(error.details) == 1
    assert error.details[0]["loc"] == ["body", "password"]
    assert password not in error.message
    return str(error.details[0]["type"])


# --- Argon2 parameters and hashes -------------------------------------------------------------


def test_default_params_meet_owasp_minimum_and_show_in_the_hash() -> None:
    params = Argon2Params()
    assert params.memory_cost >= 19456 and params.time_cost >= 2 and params.parallelism == 1
    assert params.meets_owasp_minimum
    stored = Passwords().hash(STRONG)
    match = re.fullmatch(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+", stored)
    assert match is not None, stored
    assert int(match[1]) >= OWASP_MIN_MEMORY_KIB and int(match[2]) >= 2


def test_weak_params_are_refused_unless_explicitly_allowed() -> None:
    assert not FAST.meets_owasp_minimum
    with pytest.raises(ValueError):
        Passwords(FAST)
    with pytest.raises(ValueError):
        Argon2Params(memory_cost=0)


def test_hash_verifies_and_wrong_password_does_not(passwords: Passwords) -> None:
    stored = passwords.hash(STRONG)
    assert stored.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert passwords.verify(stored, STRONG)
    assert not passwords.verify(stored, STRONG + "x")
    assert passwords.hash(STRONG) != stored  # salted


@pytest.mark.parametrize("stored", ["", "junk", "$argon2id$v=19$m=8,t=1,p=1$garbage", "$2b$12$" + "a" * 53])
def test_verify_returns_false_for_unreadable_hashes(passwords: Passwords, stored: str) -> None:
    assert passwords.verify(stored, STRONG) is False


def test_needs_rehash_after_params_change(passwords: Passwords) -> None:
    stored = passwords.hash(STRONG)
    assert not passwords.needs_rehash(stored)
    stronger = Passwords(Argon2Params(memory_cost=16, time_cost=2), allow_weak_params=True)
    assert stronger.needs_rehash(stored)
    assert not stronger.needs_rehash(stronger.hash(STRONG))
    assert passwords.needs_rehash("not a hash")


# --- Length, normalisation, truncation ---------------------------------------------------------


def test_14_code_points_rejected_15_accepted() -> None:
    assert violation("tangerine-moss") == "too_short"  # 14
    check_password_policy("tangerine-moss9", email=EMAIL, tenant_name=None)  # 15


def test_length_counts_code_points_not_bytes() -> None:
    fourteen = "ŧăñğęřīņę-mőş"  # 13 code points, 24 bytes
    assert violation(fourteen + "ß") == "too_short"
    check_password_policy(fourteen + "ßx", email=EMAIL, tenant_name=None)


def test_length_is_measured_after_nfkc() -> None:
    # U+FB03 "ﬃ" is one code point typed, three ("ffi") once normalised: 14 typed, 16 measured.
    password = "tangerine-mos\ufb03"
    assert len(password) == 14 and len(normalise(password)) == 16
    check_password_policy(password, email=EMAIL, tenant_name=None)


def test_over_1024_bytes_rejected_by_policy() -> None:
    assert violation("x7" * 512 + "q") == "too_long"  # 1025 ASCII bytes
    assert violation("é" * 513) == "too_long"  # 513 code points, 1026 bytes


def test_over_1024_bytes_is_never_hashed(passwords: Passwords, backend: CountingBackend) -> None:
    stored = passwords.hash(STRONG)
    backend.calls.clear()
    too_long = "a1b2c3d4" * 128 + "z"  # 1025 bytes
    with pytest.raises(ValueError):
        passwords.hash(too_long)
    assert passwords.verify(stored, too_long) is False
    passwords.dummy_verify(too_long)
    assert backend.calls == []
    passwords.hash(too_long[:1024])  # exactly 1024 bytes is hashed
    assert [name for name, _ in backend.calls] == ["hash"]


def test_fullwidth_form_verifies_against_ascii_form(passwords: Passwords) -> None:
    ascii_form = "correct horse battery"
    fullwidth = ascii_form.translate(FULLWIDTH)  # U+FF43 U+FF4F ...: full-width letters
    assert fullwidth != ascii_form and normalise(fullwidth) == ascii_form
    assert passwords.verify(passwords.hash(ascii_form), fullwidth)
    assert passwords.verify(passwords.hash(fullwidth), ascii_form)


def test_composed_and_decomposed_forms_are_the_same_password(passwords: Passwords) -> None:
    composed, decomposed = "crème brûlée tonight", "cre\u0300me bru\u0302le\u0301e tonight"
    assert composed != decomposed
    assert passwords.verify(passwords.hash(composed), decomposed)


def test_no_truncation(passwords: Passwords) -> None:
    base = "long-passphrase-" * 60  # 960 bytes, far beyond bcrypt's 72
    first, second = base + "A", base + "B"
    assert not passwords.verify(passwords.hash(first), second)
    assert not passwords.verify(passwords.hash(second), first)
    assert passwords.verify(passwords.hash(first), first)


def test_lone_surrogates_are_rejected_not_crashed(passwords: Passwords) -> None:
    broken = "vivid-otter-lamp\ud800"
    assert violation(broken) == "invalid_characters"
    with pytest.raises(ValueError):
        passwords.hash(broken)
    assert passwords.verify(passwords.hash(STRONG), broken) is False


# --- Common passwords and context --------------------------------------------------------------


def test_common_list_is_zxcvbns_and_large() -> None:
    words = common_passwords()
    assert len(words) >= 10_000
    assert {"password", "123456", "qwerty"} <= words
    assert common_passwords() is words  # cached


def test_common_list_is_loaded_lazily() -> None:
    # A fresh interpreter: importing the module must not pay for the 30,000-word list.
    code = "import sys, coditect.identity.passwords; print('zxcvbn.frequency_lists' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("password", ["1qaz2wsx3edc4rfv", "qwertyuiop12345", "passwordstandard"])
def test_listed_passwords_rejected(password: str) -> None:
    assert password in common_passwords()  # chosen from the real list, not assumed
    assert violation(password) == "common"
    assert violation(password.upper()) == "common"  # case-insensitive
    assert violation(password.upper().translate(FULLWIDTH)) == "common"


def test_every_listed_password_long_enough_is_rejected() -> None:
    listed = sorted(word for word in common_passwords() if len(word) >= 15)
    assert listed  # the list does hold some
    for word in listed:
        assert violation(word) == "common", word


@pytest.mark.parametrize(
    "password", ["passwordpassword", "dragondragondragon", "aaaaaaaaaaaaaaaa", "abcabcabcabcabc"]
)
def test_repeated_common_or_trivial_units_rejected(password: str) -> None:
    assert password not in common_passwords()
    assert violation(password) == "common"


@pytest.mark.parametrize(
    "password",
    [
        "my alice.smith@example.com pw",  # whole email
        "ALICE.SMITH-is-my-name",  # local part, any case
        "rocket science at acme rockets",  # tenant name
        "ACME ROCKETS forever and ever",
    ],
)
def test_context_rejected(password: str) -> None:
    assert violation(password) == "contains_context"


def test_short_context_is_not_forbidden() -> None:
    # "al" and "io" are too generic to ban: they would reject half of all passphrases.
    check_password_policy("always-vivid-otter", email="al@example.com", tenant_name="io")
    check_password_policy("always-vivid-otter", email="al@example.com", tenant_name=None)


def test_no_composition_rules() -> None:
    check_password_policy("just some lowercase words here", email=EMAIL, tenant_name="Acme Rockets")


# --- One Argon2 operation on both login paths --------------------------------------------------


def test_known_and_unknown_user_each_cost_one_argon2_verify(
    passwords: Passwords, backend: CountingBackend
) -> None:
    stored = passwords.hash(STRONG)
    backend.calls.clear()
    passwords.verify(stored, "wrong-but-long-enough")  # known user, wrong password
    known = list(backend.calls)
    backend.calls.clear()
    passwords.dummy_verify("wrong-but-long-enough")  # unknown user
    unknown = list(backend.calls)
    assert [name for name, _ in known] == [name for name, _ in unknown] == ["verify"]
    # The dummy hash has this instance's parameters, so it costs what a real verify costs.
    dummy_hash = str(unknown[0][1])
    assert argon2.extract_parameters(dummy_hash) == argon2.extract_parameters(stored)
