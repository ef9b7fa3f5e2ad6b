"""Refresh-token families, digests and the pepper file."""

from __future__ import annotations

import stat
from pathlib import Path

from coditect.identity import tokens
from tests.helpers import run_threads

PEPPER = b"p" * 32


def test_first_tokens_are_random_and_successors_deterministic_and_distinct() -> None:
    t0 = tokens.new_refresh_token()
    assert t0 != tokens.new_refresh_token()
    assert t0.startswith("crt_") and len(t0) == 4 + 43  # 32 bytes, base64url
    t1 = tokens.successor(PEPPER, session_id="s", presented=t0)
    assert t1 == tokens.successor(PEPPER, session_id="s", presented=t0)  # grace / retried commit
    others = {
        t0,
        tokens.successor(PEPPER, session_id="s", presented=t1),
        tokens.successor(PEPPER, session_id="s2", presented=t0),
        tokens.successor(b"q" * 32, session_id="s", presented=t0),
    }
    assert t1 not in others and len(others) == 4
    assert tokens.refresh_digest(PEPPER, t1) is not None  # our own shape


def test_digest_is_keyed_and_refuses_foreign_shapes() -> None:
    token = tokens.new_refresh_token()
    digest = tokens.refresh_digest(PEPPER, token)
    assert digest is not None and len(digest) == 32
    assert tokens.refresh_digest(b"q" * 32, token) != digest
    for junk in ("", "crt_short", token + "x", "eyJ.a.b", "cit_" + token[4:]):
        assert tokens.refresh_digest(PEPPER, junk) is None
    invite = tokens.new_invite_token()
    assert tokens.invite_digest(invite) is not None and tokens.invite_digest(token) is None


def test_pepper_file_is_created_once_0600_even_when_racing(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "token-pepper.secret"
    run_threads([lambda: tokens.ensure_pepper(path)] * 8)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    assert [p.name for p in path.parent.iterdir()] == ["token-pepper.secret"]  # no temp files left
    first = path.read_bytes()
    tokens.ensure_pepper(path)
    assert path.read_bytes() == first
