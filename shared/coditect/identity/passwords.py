"""Password hashing (Argon2id) and the NIST 800-63B password policy.

Every password goes through `normalise` (NFKC) before it is measured, hashed or verified, so a
password typed with full-width or composed characters matches the same password typed plainly.
Length limits are checked before any Argon2 work: at least 15 code points, at most 1024 UTF-8
bytes, never truncated. There are no composition rules; instead a password is rejected when it
is common (zxcvbn's list of 30,000 leaked passwords), contains the user's email or tenant name,
equals the current password (on a change), or when the zxcvbn strength estimator scores it below
`MIN_ZXCVBN_SCORE` — which catches what an exact list cannot: sequences (`abcdef...`), repeats,
keyboard walks (`qwertyuiop...`, `1q2w3e4r...`), dictionary words with substitutions and
numbers appended, and the user's own context words (email, its local part, name, tenant name,
"coditect") anywhere in the password. The refusal names the rule and, for the estimator, its
reason and suggestions (never the password).

`Passwords` wraps an Argon2 *backend* (by default `argon2.PasswordHasher`); tests inject a
counting backend to check that the login path runs exactly one Argon2 operation whether or not
the user exists (`verify` for a known user, `dummy_verify` for an unknown one).
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from coditect.errors import ValidationFailed

MIN_PASSWORD_CODE_POINTS = 15
MAX_PASSWORD_BYTES = 1024
# Email local parts and tenant names shorter than this are too generic to forbid ("al", "io").
MIN_CONTEXT_LENGTH = 3
# zxcvbn scores 0-4; 3 = "safely unguessable: moderate protection from an offline slow-hash
# attack" (< 10^10 guesses is a 2). Dropbox's and OWASP ASVS's usual bar.
MIN_ZXCVBN_SCORE = 3
# zxcvbn's cost grows quickly with length (≈ 0.05 s at 100 characters): the estimate covers a
# prefix. A prefix that is already strong makes the whole password at least as strong.
ZXCVBN_MAX_CHARS = 100
# Always a context word: a password naming the product is the first guess against it.
PRODUCT_WORDS = ("coditect",)
# A password made of a short unit repeated ("abcabcabc...") is as guessable as the unit.
_MAX_TRIVIAL_UNIT = 4

# OWASP Password Storage Cheat Sheet, Argon2id with one lane: m = 19 MiB, t = 2, p = 1.
OWASP_MIN_MEMORY_KIB = 19456
OWASP_MIN_TIME_COST = 2

ViolationType = Literal[
    "too_short", "too_long", "common", "contains_context", "invalid_characters", "guessable", "unchanged"
]


@dataclass(frozen=True)
class Argon2Params:
    """Argon2id cost parameters; the defaults are OWASP's minimum (raise them, never lower)."""

    memory_cost: int = OWASP_MIN_MEMORY_KIB  # KiB
    time_cost: int = OWASP_MIN_TIME_COST
    parallelism: int = 1
    hash_len: int = 32
    salt_len: int = 16

    def __post_init__(self) -> None:
        for name in ("memory_cost", "time_cost", "parallelism", "hash_len", "salt_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"Argon2Params.{name} must be positive")

    @property
    def meets_owasp_minimum(self) -> bool:
        """True when these parameters are at or above OWASP's Argon2id minimum."""
        return (
            self.memory_cost >= OWASP_MIN_MEMORY_KIB
            and self.time_cost >= OWASP_MIN_TIME_COST
            and self.parallelism == 1
            and self.hash_len >= 32
            and self.salt_len >= 16
        )


class Argon2Backend(Protocol):
    """The Argon2 primitive `Passwords` calls; `argon2.PasswordHasher` satisfies it."""

    def hash(self, password: str | bytes) -> str: ...

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]: ...

    def check_needs_rehash(self, hash: str | bytes) -> bool: ...


def normalise(password: str) -> str:
    """NFKC-normalise a password; applied before every length check, hash and verify."""
    return unicodedata.normalize("NFKC", password)


def _encode(password: str) -> bytes | None:
    """The normalised password as UTF-8, or None if it cannot be accepted at all.

    None means over-long (raw or normalised) or not encodable (lone surrogates, which a JSON
    body can carry). The raw length is checked first so huge input is never normalised.
    """
    try:
        if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
            return None
        encoded = normalise(password).encode("utf-8")
    except UnicodeEncodeError:
        return None
    return encoded if len(encoded) <= MAX_PASSWORD_BYTES else None


class Passwords:
    """Hash, verify and upgrade password hashes with Argon2id.

    `params` below OWASP's minimum are refused unless `allow_weak_params` (tests only).
    `backend` replaces the Argon2 primitive (default: `argon2.PasswordHasher(params)`).
    """

    def __init__(
        self,
        params: Argon2Params | None = None,
        *,
        backend: Argon2Backend | None = None,
        allow_weak_params: bool = False,
    ) -> None:
        self.params = params or Argon2Params()
        if not (self.params.meets_owasp_minimum or allow_weak_params):
            raise ValueError("Argon2 parameters are below the OWASP minimum")
        self._backend: Argon2Backend = backend or argon2.PasswordHasher(
            time_cost=self.params.time_cost,
            memory_cost=self.params.memory_cost,
            parallelism=self.params.parallelism,
            hash_len=self.params.hash_len,
            salt_len=self.params.salt_len,
            type=argon2.Type.ID,
        )
        # Computed once here, with these exact parameters, so `dummy_verify` costs what a real
        # verify costs. It goes through the low-level API, not the backend, so a counting
        # backend sees only the calls a request makes. The secret is random and thrown away.
        self._dummy_hash = argon2.low_level.hash_secret(
            secret=os.urandom(32),
            salt=os.urandom(self.params.salt_len),
            time_cost=self.params.time_cost,
            memory_cost=self.params.memory_cost,
            parallelism=self.params.parallelism,
            hash_len=self.params.hash_len,
            type=argon2.Type.ID,
        ).decode("ascii")

    def hash(self, password: str) -> str:
        """The `$argon2id$...` hash of the normalised password.

        Raises ValueError, without hashing, if the password is over 1024 bytes or not valid
        Unicode; callers run `check_password_policy` first, so this is a last line of defence.
        """
        encoded = _encode(password)
        if encoded is None:
            raise ValueError("password is too long or not valid Unicode")
        return self._backend.hash(encoded)

    def verify(self, stored_hash: str, password: str) -> bool:
        """True if the password matches; False on mismatch or an unreadable hash, never raises."""
        encoded = _encode(password)
        if encoded is None:
            # No stored password can match; skip the work rather than hash 1 MiB of input.
            return False
        try:
            return self._backend.verify(stored_hash, encoded)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when the hash was made with other parameters (or cannot be read): rehash on login."""
        try:
            return self._backend.check_needs_rehash(stored_hash)
        except (InvalidHashError, ValueError):
            return True

    def dummy_verify(self, password: str) -> None:
        """Spend one real Argon2 verify for an unknown user, so timing matches a known one."""
        self.verify(self._dummy_hash, password)


@functools.cache
def common_passwords() -> frozenset[str]:
    """zxcvbn's 30,000 most common leaked passwords, case-folded; loaded on first use.

    Imported lazily because the list costs ~30 ms to import and most functions never need it.
    """
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(word.casefold() for word in FREQUENCY_LISTS["passwords"])


def _is_common(folded: str) -> bool:
    """In the list, or one listed/trivial unit repeated ("passwordpassword", "abcabcabc...")."""
    common = common_passwords()
    if folded in common:
        return True
    for size in range(1, len(folded) // 2 + 1):
        if len(folded) % size == 0 and folded[:size] * (len(folded) // size) == folded:
            unit = folded[:size]
            if size <= _MAX_TRIVIAL_UNIT or unit in common:
                return True
    return False


def _weak(violation: ViolationType, message: str, **extra: Any) -> ValidationFailed:
    return ValidationFailed(
        message,
        code="weak_password",
        details=[{"loc": ["body", "password"], "type": violation, **extra}],
    )


def context_words(email: str, name: str | None, tenant_name: str | None) -> list[str]:
    """What an attacker who knows the account tries first: its email, the email's local part and
    its pieces, the user's and tenant's names and their words, and the product's name."""
    local_part = email.rpartition("@")[0]
    words = [email, local_part, name or "", tenant_name or "", *PRODUCT_WORDS]
    for raw in (local_part, name or "", tenant_name or ""):
        words.extend(w for w in re.split(r"[\W_]+", raw) if w)
    folded = (normalise(w).strip().casefold() for w in words)
    return sorted({w for w in folded if len(w) >= MIN_CONTEXT_LENGTH})


def strength(password: str, context: list[str]) -> tuple[int, str, list[str]]:
    """zxcvbn's (score 0-4, warning, suggestions) for the password's first `ZXCVBN_MAX_CHARS`."""
    from zxcvbn import zxcvbn  # lazy: the dictionaries cost ~100 ms to import

    result = zxcvbn(password[:ZXCVBN_MAX_CHARS], user_inputs=context, max_length=ZXCVBN_MAX_CHARS)
    feedback = result.get("feedback") or {}
    return int(result["score"]), str(feedback.get("warning") or ""), list(feedback.get("suggestions") or [])


def check_password_policy(
    password: str,
    *,
    email: str,
    tenant_name: str | None,
    name: str | None = None,
    current: str | None = None,
) -> None:
    """Enforce NIST 800-63B on a new password; raise `ValidationFailed("weak_password")`.

    The same rule serves register, invite acceptance and password change (`current` = the
    verified current password: an unchanged password is refused). The details name the rule
    broken (`too_short`, `too_long`, `common`, `contains_context`, `unchanged`, `guessable`, or
    `invalid_characters` for text that is not valid Unicode; the message says it in words); for
    `guessable` also zxcvbn's `reason`, `score`, `min_score` and `suggestions`. Never the password.
    """
    encoded = _encode(password)
    if encoded is None:
        try:
            password.encode("utf-8")
        except UnicodeEncodeError:
            raise _weak("invalid_characters", "The password is not valid Unicode text.") from None
        raise _weak("too_long", f"The password must be at most {MAX_PASSWORD_BYTES} bytes.")
    normalised = encoded.decode("utf-8")
    if len(normalised) < MIN_PASSWORD_CODE_POINTS:
        raise _weak("too_short", f"The password must be at least {MIN_PASSWORD_CODE_POINTS} characters.")
    folded = normalised.casefold()
    if _is_common(folded):
        raise _weak("common", "This password is too common; choose another.")
    local_part = email.rpartition("@")[0]
    for raw in (email, local_part, tenant_name or ""):
        context = normalise(raw).strip().casefold()
        if len(context) >= MIN_CONTEXT_LENGTH and context in folded:
            raise _weak("contains_context", "The password must not contain your email or tenant name.")
    if current is not None and normalise(current) == normalised:
        raise _weak("unchanged", "The new password must differ from the current one.")
    score, warning, suggestions = strength(normalised, context_words(email, name, tenant_name))
    if score < MIN_ZXCVBN_SCORE:
        reason = warning or "This password is too easy to guess."
        raise _weak(
            "guessable",
            f"This password is too easy to guess: {reason}" if warning else reason,
            reason=reason,
            score=score,
            min_score=MIN_ZXCVBN_SCORE,
            suggestions=suggestions or ["Use a longer passphrase of several unrelated words."],
        )
