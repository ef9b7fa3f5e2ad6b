"""The path rules (coditect.files.paths) and the property that no path escapes its session."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coditect import keyspace
from coditect.files import paths
from coditect.files.tree import FileSpace

VALID = [
    "a",
    "a/b/c.txt",
    "...",
    "a..b/.hidden",
    "100%.txt",
    "a%20b",
    "日本語/ファイル.md",
    "x" * 1024,
    "emoji 🚀.txt",
]
INVALID = [
    ("", "empty path"),
    ("/etc/passwd", "absolute path"),
    ("a//b", "empty segment"),
    ("a/", "empty segment"),
    (".", "dot segment"),
    ("..", "dot segment"),
    ("a/../b", "dot segment"),
    ("a/./b", "dot segment"),
    ("a\x00b", "control"),
    ("a\nb", "control"),
    ("a\x7fb", "control"),
    ("a\x85b", "control"),
    ("x" * 1025, "longer than 1024 bytes"),
    ("é" * 513, "longer than 1024 bytes"),  # 1026 bytes of UTF-8
    ("..\\..\\windows", "backslash"),
    ("a\\b", "backslash"),
    ("%2e%2e/secret", "encoded traversal"),  # double-encoded %252e%252e, decoded once by werkzeug
    ("a/%2E%2E", "encoded traversal"),
    ("a%2fb", "encoded traversal"),
    ("a%5cb", "encoded traversal"),
    ("a%00b", "encoded"),
    ("%252e%252e", "encoded traversal"),  # triple-encoded
    ("\u2024\u2024/x", "encoded traversal"),  # two ONE DOT LEADERs → ".." under NFKC
    ("\uff0e\uff0e", "encoded traversal"),  # two FULLWIDTH FULL STOPs
    ("a\uff0fb", "encoded traversal"),  # FULLWIDTH SOLIDUS
    ("a\uff3cb", "encoded traversal"),  # FULLWIDTH REVERSE SOLIDUS
    ("txt\u202eexe", "control or replacement"),  # RIGHT-TO-LEFT OVERRIDE
    ("bad\ufffd", "control or replacement"),  # what undecodable URL bytes become
    ("a\ud800b", "not UTF-8"),
    ("a\ue000", "control or unassigned"),  # private use
]


@pytest.mark.parametrize("raw", VALID)
def test_valid_paths_parse_to_their_segments(raw: str) -> None:
    parsed = paths.parse(raw)
    assert parsed.text == raw
    assert parsed.segments == tuple(raw.split("/"))


@pytest.mark.parametrize(("raw", "rule"), INVALID)
def test_invalid_paths_are_400_invalid_path(raw: str, rule: str) -> None:
    with pytest.raises(paths.InvalidPath) as caught:
        paths.parse(raw)
    assert caught.value.status == 400 and caught.value.code == "invalid_path"
    assert rule.split()[0] in caught.value.rule
    assert len(raw) < 3 or raw not in caught.value.message  # the message never echoes the path


def test_paths_are_nfc_normalised() -> None:
    decomposed = "cafe\u0301.txt"  # e + COMBINING ACUTE
    assert paths.parse(decomposed).text == "caf\u00e9.txt"


def test_root_only_where_allowed() -> None:
    assert paths.parse("", allow_root=True).is_root
    with pytest.raises(paths.InvalidPath):
        paths.parse("")


def test_is_within() -> None:
    a, ab, abc, ax = (paths.parse(p) for p in ("a", "a/b", "a/b/c", "ax"))
    assert abc.is_within(ab) and ab.is_within(a) and a.is_within(a)
    assert not ax.is_within(a) and not a.is_within(ab)


TENANT, SESSION, OTHER = (str(uuid.uuid4()) for _ in range(3))
FS = FileSpace(TENANT, SESSION)


@pytest.mark.slow
@settings(max_examples=600, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        st.lists(
            st.sampled_from(["..", ".", "", "a", "%2e", "%252e", "\u2024", "\uff0f", "\\", "\x00", "é", "/"]),
            max_size=12,
        ).map("".join),
        st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=6).map("/".join),
    )
)
def test_no_path_names_a_key_outside_its_session(raw: str) -> None:
    try:
        parsed = paths.parse(raw)
    except paths.InvalidPath:
        return
    session_prefix = keyspace.session(TENANT, SESSION).raw_prefix
    other_prefix = keyspace.session(TENANT, OTHER).raw_prefix
    for segment in parsed.segments:
        assert segment not in ("", ".", "..") and "/" not in segment and "\\" not in segment
        assert "\x00" not in segment
    key = FS.entry_key("root", parsed.name)
    assert key.startswith(session_prefix) and not key.startswith(other_prefix)
    assert FS.space.unpack(key) == ("e", "root", parsed.name)  # decodes back to exactly the name
    assert len(parsed.text.encode()) <= paths.MAX_PATH_BYTES
