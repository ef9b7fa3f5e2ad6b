"""The persistent sync state (`--state-file`, outside the tree): what was last synced, per path,
and the change-feed cursor. Restart reconciliation needs exactly this: a path whose local
size/mtime and store etag both match its record is unchanged on both sides (no hash, no upload).

Written atomically (temporary file, fsync, rename) so a kill -9 leaves the old or the new state.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FORMAT = 1


@dataclass
class Synced:
    """A path as last synced. Directories have `kind="dir"` and no etag."""

    kind: str  # "file" | "dir"
    etag: str | None = None
    version: int = 0
    sha256: str | None = None
    size: int = 0
    mtime_ns: int = 0
    executable: bool = False
    content_type: str | None = None


class State:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.files: dict[str, Synced] = {}
        self.cursor: str | None = None
        self.dirty = False

    @classmethod
    def load(cls, path: Path) -> State:
        state = cls(path)
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return state
        if data.get("format") != FORMAT:
            return state
        state.cursor = data.get("cursor")
        state.files = {p: Synced(**fields) for p, fields in data.get("files", {}).items()}
        return state

    def put(self, rel: str, synced: Synced) -> None:
        self.files[rel] = synced
        self.dirty = True

    def drop(self, rel: str) -> None:
        """Forget `rel` and everything below it."""
        prefix = rel + "/"
        for key in [k for k in self.files if k == rel or k.startswith(prefix)]:
            del self.files[key]
        self.dirty = True

    def below(self, rel: str) -> list[str]:
        prefix = rel + "/"
        return [k for k in self.files if k.startswith(prefix)]

    def set_cursor(self, cursor: str) -> None:
        if cursor != self.cursor:
            self.cursor = cursor
            self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        data = {"format": FORMAT, "cursor": self.cursor,
                "files": {p: asdict(s) for p, s in self.files.items()}}  # fmt: skip
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w") as f:
            json.dump(data, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self.dirty = False
