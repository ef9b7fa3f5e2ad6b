"""File paths: THE one place where the contract's path rules are enforced.

A path is relative, UTF-8, `/`-separated, at most 1024 bytes (after NFC normalisation), and every
segment is non-empty, not `.` or `..`, and free of NUL and control characters. On top of the
contract's list, three decisions (each closes a way to smuggle a traversal past a later decoder):

- Backslashes are refused outright: `..\\x` is a traversal to any Windows-minded consumer (the
  IDE's filesystem provider on a Windows desktop), and no legitimate project file needs one.
- Percent-encoded traversal: werkzeug has already percent-decoded `request.path` once, so
  `%2e%2e` arrives as `..` and fails the segment rule. A segment that still contains escapes
  (`%252e%252e` arrives as `%2e%2e`) is decoded up to three more times, and refused when any
  decoding is a `.`/`..` segment or yields `/`, `\\`, NUL or a control character. A literal `%`
  that does not decode to one of those (`100%.txt`, `a%20b`) is an ordinary character.
- Unicode: the path is stored NFC-normalised (so `é` typed two ways is one file). A segment whose
  NFKC form is `.`/`..` or contains `/` or `\\` (U+2024 ONE DOT LEADER, U+FF0E FULLWIDTH FULL
  STOP, U+FF0F FULLWIDTH SOLIDUS, U+2215 DIVISION SLASH, …) is refused: a consumer that folds
  compatibility characters would otherwise see a traversal. Bidirectional overrides (they make
  `txt.exe` display as `exe.txt`), U+FFFD (what undecodable UTF-8 in the URL became) and
  unassigned/private-use/surrogate code points are refused too.

Keys are built from the validated segments as tuple elements under the session's subspace,
so no path, valid or not, can name a key outside it (a hypothesis test checks this).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

from coditect.errors import BadRequest

MAX_PATH_BYTES = 1024
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn"})  # control, surrogate, private, unassigned
_MAX_DECODES = 3


class InvalidPath(BadRequest):
    """400 `invalid_path`; the message names the rule, never echoes the path."""

    def __init__(self, rule: str) -> None:
        super().__init__(f"The path is not valid: {rule}.", code="invalid_path")
        self.rule = rule


@dataclass(frozen=True)
class FilePath:
    """A validated path: `segments` (NFC, non-empty) and `text` ("a/b/c")."""

    segments: tuple[str, ...]

    @property
    def text(self) -> str:
        return "/".join(self.segments)

    @property
    def name(self) -> str:
        return self.segments[-1]

    @property
    def parent(self) -> FilePath:
        return FilePath(self.segments[:-1])

    @property
    def is_root(self) -> bool:
        return not self.segments

    def is_within(self, other: FilePath) -> bool:
        """True when self is `other` or lies below it."""
        return self.segments[: len(other.segments)] == other.segments

    def child(self, name: str) -> FilePath:
        return FilePath((*self.segments, name))


ROOT = FilePath(())


def _check_chars(segment: str) -> None:
    for ch in segment:
        if ch in "\\":
            raise InvalidPath("backslash")
        if ch in _BIDI_CONTROLS or ch == "\ufffd":
            raise InvalidPath("control or replacement character")
        if unicodedata.category(ch) in _FORBIDDEN_CATEGORIES:
            raise InvalidPath("control or unassigned character")


def _check_traversal_form(text: str) -> None:
    """Refuse `text` when it is, or contains, a traversal once decoded/folded."""
    if text in (".", "..") or "/" in text or "\\" in text or "\x00" in text:
        raise InvalidPath("encoded traversal or separator")
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise InvalidPath("encoded control character")


def _check_segment(segment: str) -> None:
    if segment == "":
        raise InvalidPath("empty segment")
    if segment in (".", ".."):
        raise InvalidPath("dot segment")
    _check_chars(segment)
    folded = unicodedata.normalize("NFKC", segment)
    if folded != segment:
        _check_traversal_form(folded)
    decoded = segment
    for _ in range(_MAX_DECODES):
        if "%" not in decoded:
            break
        again = unquote(decoded)
        if again == decoded:
            break
        decoded = again
        _check_traversal_form(decoded)
        _check_traversal_form(unicodedata.normalize("NFKC", decoded))


def parse(raw: str, *, allow_root: bool = False) -> FilePath:
    """Validate `raw` (already percent-decoded once, as werkzeug hands it over) → `FilePath`.

    `allow_root`: the empty string names the session's root directory (listing `prefix=`).
    Raises `InvalidPath` (400 invalid_path) for every rule above.
    """
    if not isinstance(raw, str):
        raise InvalidPath("not text")
    if raw == "":
        if allow_root:
            return ROOT
        raise InvalidPath("empty path")
    if raw.startswith("/"):
        raise InvalidPath("absolute path")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPath("not UTF-8") from None
    text = unicodedata.normalize("NFC", raw)
    if len(text.encode("utf-8")) > MAX_PATH_BYTES:
        raise InvalidPath(f"longer than {MAX_PATH_BYTES} bytes")
    segments = tuple(text.split("/"))
    for segment in segments:
        _check_segment(segment)
    return FilePath(segments)
