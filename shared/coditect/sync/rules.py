"""What the agent syncs and what it refuses.

Ignored paths (the default list plus `.coditectignore`, gitignore syntax through `pathspec`) are
neither pushed nor reported: the user asked for that. Refused paths (a name the files API's path
rules reject, a file over the size limit, a symlink, FIFO, socket or device) are never uploaded
and are always reported in the sync report's `skipped` list.
"""

from __future__ import annotations

from pathlib import Path

import pathspec

from coditect.errors import BadRequest
from coditect.files import paths

IGNORE_FILE = ".coditectignore"
# The agent's own scratch directory inside the tree (temporary files of atomic downloads).
SCRATCH = ".coditect-sync"
# Rebuildable or machine-local trees; `.git/` is synced (the store is the only copy of a
# workspace's files, and a repository's history is work too), docs/workspaces-sync.md says why.
DEFAULT_IGNORES = (
    "node_modules/",
    ".venv/",
    "venv/",
    "__pycache__/",
    "*.pyc",
    ".cache/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".tox/",
    ".nox/",
    f"/{SCRATCH}/",
)


class Rules:
    """Ignore matching for relative `/`-separated paths; reload when `.coditectignore` changes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.user_lines: tuple[str, ...] = ()
        self.reload()

    def reload(self) -> bool:
        """Re-read `.coditectignore`; True when the rules changed."""
        try:
            text = (self.root / IGNORE_FILE).read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        lines = tuple(line for line in text.splitlines() if line.strip())
        changed = lines != self.user_lines or not hasattr(self, "spec")
        self.user_lines = lines
        self.spec = pathspec.GitIgnoreSpec.from_lines((*DEFAULT_IGNORES, *lines))
        return changed

    def ignored(self, rel: str, is_dir: bool = False) -> bool:
        if rel == SCRATCH or rel.startswith(SCRATCH + "/"):
            return True
        return bool(self.spec.match_file(rel + "/" if is_dir else rel))

    def ignored_any(self, rel: str, is_dir: bool = False) -> bool:
        """True when `rel` or one of its parent directories is ignored (git's semantics: an
        ignored directory's contents are ignored whatever the patterns say about them)."""
        parts = rel.split("/")
        for i in range(1, len(parts)):
            if self.ignored("/".join(parts[:i]), True):
                return True
        return self.ignored(rel, is_dir)


def refused_name(rel: str) -> str | None:
    """The files API's reason to refuse this path (`coditect.files.paths`), else None."""
    try:
        parsed = paths.parse(rel)
    except BadRequest as exc:
        return f"invalid_name: {getattr(exc, 'rule', 'refused')}"
    if parsed.text != rel:
        return "invalid_name: not in NFC form"  # the store would keep it under another name
    return None
