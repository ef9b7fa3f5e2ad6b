"""What hydration, pull and push share: the tree, the API, the state, the report, and the two
operations every direction needs — "is the local copy what we last synced?" and "install the
store's current version here".

One asyncio lock (`apply`) serialises every change to local files and to the state once the
agent is live, so a pull and a push never interleave on the same path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

from coditect.sync import localfs
from coditect.sync.client import Api, ApiFailure, split_type
from coditect.sync.localfs import Local, Scratch
from coditect.sync.report import Report
from coditect.sync.rules import Rules
from coditect.sync.state import State, Synced

log = logging.getLogger("coditect.sync")


class Context:
    def __init__(self, root: Path, api: Api, state: State, max_file_size: int) -> None:
        self.root = root
        self.api = api
        self.state = state
        self.rules = Rules(root)
        self.report = Report()
        self.scratch = Scratch(root)
        self.max_file_size = max_file_size
        self.apply = asyncio.Lock()
        self.dirty: dict[str, float] = {}  # rel → monotonic time of the last local event
        self.wake = asyncio.Event()
        self._saved_at = 0.0

    def path(self, rel: str) -> Path:
        return self.root / rel

    def mark_dirty(self, rel: str) -> None:
        self.dirty[rel] = time.monotonic()
        self.wake.set()

    def save_state(self, force: bool = False) -> None:
        """Persist at most twice a second (a crash costs hashing, never data: restart
        reconciliation compares contents by hash)."""
        now = time.monotonic()
        if force or now - self._saved_at >= 0.5:
            self.state.save()
            self._saved_at = now

    def unchanged(self, rel: str, synced: Synced | None, local: Local | None = None) -> bool:
        """True when the local copy is exactly what was last synced (size+mtime, else hash)."""
        local = local or localfs.probe(self.path(rel))
        if synced is None or local is None:
            return synced is None and local is None
        if synced.kind == "dir" or local.kind == "dir":
            return synced.kind == local.kind == "dir"
        if local.kind != "file" or local.executable != synced.executable:
            return False
        if local.size == synced.size and local.mtime_ns == synced.mtime_ns:
            return True
        return local.size == synced.size and localfs.sha256_file(self.path(rel)) == synced.sha256

    def record_file(self, rel: str, info: dict[str, Any], local: Local | None = None) -> None:
        """Remember `info` (a `file` or a download's headers) as what `rel` holds now."""
        local = local or localfs.probe(self.path(rel))
        base, executable = split_type(info.get("content_type"))
        self.state.put(rel, Synced("file", info.get("etag"), int(info.get("version") or 0), info.get("sha256"),
                                   local.size if local else 0, local.mtime_ns if local else 0,
                                   executable, base))  # fmt: skip
        self.report.unskip(rel)

    def record_dir(self, rel: str) -> None:
        self.state.put(rel, Synced("dir"))

    async def fetch(self, rel: str, known: dict[str, Any] | None = None) -> bool:
        """Download the store's current version of `rel` into place (False: not a file there);
        `known`: its listing entry, if any (saves hashing when it is still current)."""
        tmp = self.scratch.new()
        try:
            try:
                info = await self.api.download(rel, tmp, known)
            except ApiFailure as exc:
                if exc.status in (404, 409):  # gone meanwhile, or a directory: a later change says
                    return False
                raise
            _, executable = split_type(info["content_type"])
            target = self.path(rel)
            try:
                localfs.install(tmp, target, executable)
            except OSError as exc:  # a non-empty directory or a file where a parent should be
                self.report.skip(rel, f"clash: cannot write here ({exc.strerror})")
                return False
            self.record_file(rel, info)
            return True
        finally:
            if tmp.exists():
                os.unlink(tmp)
