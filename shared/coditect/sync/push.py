"""Push: local changes, seen through inotify (`watchfiles`, never polling), written to the store.

Events mark paths dirty; a path is pushed once it has been quiet for `DEBOUNCE` seconds (an
editor's save is often several writes). A batch is taken whole so a rename — inotify's delete of
the old name and create of the new one — can be recognised and sent as one `files:move`: a new
file whose hash is that of a vanished, synced file, or a new directory whose name or parent is
that of a vanished, synced directory.

Writes carry `If-Match` on the etag last synced (`If-None-Match: *` for a new file). A 412 means
the store changed too: the workspace's content is written on top of the store's current version
(which stays in the version history) and the conflict is reported. Deletes are conditional as
well; a file changed in the store since it was synced comes back instead of being deleted.

Faults: an unreachable API keeps every path pending, retried with exponential backoff; 507 stops
writing new bytes (paths stay pending, local copies untouched) until a retry succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
import time
from pathlib import Path
from typing import Any

from watchfiles import Change, awatch

from coditect.sync import localfs
from coditect.sync.client import ApiFailure, Unreachable, join_type
from coditect.sync.context import Context
from coditect.sync.report import DELETED_HERE, DELETED_IN_STORE, RETRIES
from coditect.sync.rules import IGNORE_FILE, SCRATCH, refused_name

log = logging.getLogger("coditect.sync")

DEBOUNCE = 0.1
MAX_BACKOFF = 30.0
QUOTA_RETRY = 15.0


class Pusher:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.retry_at = 0.0
        self.backoff = 0.5
        self.quota_retry_at = 0.0

    # -- watching ----------------------------------------------------------------------------
    async def watch(self, stop: asyncio.Event, ready: asyncio.Event) -> None:
        ctx = self.ctx
        root = str(ctx.root)

        def wanted(change: Change, path: str) -> bool:
            rel = os.path.relpath(path, root)
            return not (rel == SCRATCH or rel.startswith(SCRATCH + "/"))

        watcher = awatch(root, watch_filter=wanted, debounce=400, step=20, stop_event=stop,
                         force_polling=False, recursive=True)  # fmt: skip
        ready.set()
        async for batch in watcher:
            rescan = False
            for _, path in batch:
                rel = os.path.relpath(path, root)
                if rel == IGNORE_FILE:
                    rescan = ctx.rules.reload() or rescan
                if not ctx.rules.ignored_any(rel) and not self._as_recorded(rel):
                    ctx.mark_dirty(rel)
            if rescan:
                self.scan()

    def _as_recorded(self, rel: str) -> bool:
        """True when `rel` is exactly as last synced by size, mtime and mode (a pull's own write)."""
        synced = self.ctx.state.files.get(rel)
        local = localfs.probe(self.ctx.path(rel))
        if synced is None or local is None or synced.kind != "file" or local.kind != "file":
            return False
        return (local.size, local.mtime_ns, local.executable) == (
            synced.size,
            synced.mtime_ns,
            synced.executable,
        )

    def scan(self) -> None:
        """Mark every path whose local state differs from its record (cheap: size and mtime)."""
        ctx = self.ctx
        for rel, local in localfs.walk(ctx.root, ctx.rules):
            synced = ctx.state.files.get(rel)
            if synced is None or local.kind != synced.kind:
                ctx.mark_dirty(rel)
            elif local.kind == "file" and (local.size, local.mtime_ns, local.executable) != (
                synced.size, synced.mtime_ns, synced.executable):  # fmt: skip
                ctx.mark_dirty(rel)
        for rel in list(ctx.state.files):
            if localfs.probe(ctx.path(rel)) is None:
                ctx.mark_dirty(rel)

    # -- the worker --------------------------------------------------------------------------
    def ready_paths(self, everything: bool) -> list[str]:
        now = time.monotonic()
        if now < self.retry_at and not everything:
            return []
        return sorted(p for p, t in self.ctx.dirty.items() if everything or now - t >= DEBOUNCE)

    async def run(self, stop: asyncio.Event) -> None:
        ctx = self.ctx
        while not stop.is_set():
            batch = self.ready_paths(False)
            if batch:
                await self.push(batch)
                continue
            ctx.wake.clear()
            delay = DEBOUNCE if ctx.dirty else 5.0
            if ctx.dirty and time.monotonic() < self.retry_at:
                delay = self.retry_at - time.monotonic()
            try:
                await asyncio.wait_for(ctx.wake.wait(), delay)
            except TimeoutError:
                pass

    async def push(self, batch: list[str]) -> None:
        """Push `batch` (taken out of `dirty`; what fails or is cut short goes back, with backoff)."""
        ctx = self.ctx
        for rel in batch:
            ctx.dirty.pop(rel, None)
        left: set[str] = set()  # planned and not done yet (what needs no work is done)
        failed = False
        try:
            async with ctx.apply:
                work = self.plan(batch)
                for _, args in work:
                    left.update(args)
                for op, args in work:
                    try:
                        await op(*args)
                    except Unreachable as exc:
                        failed = True
                        self._unreachable(exc)
                        continue
                    except ApiFailure as exc:
                        failed = True
                        if exc.status == 507:
                            now = time.monotonic()
                            if now >= self.quota_retry_at:  # a real 507, not the wait below
                                self.quota_retry_at = now + QUOTA_RETRY
                                log.warning("quota full: %s stays local and pending", args[0])
                            self.retry_at = max(self.retry_at, self.quota_retry_at)
                        else:
                            log.warning("push of %s failed: %s; retrying later", args[0], exc)
                            self._unreachable(exc)
                        continue
                    left.difference_update(args)
                ctx.save_state()
        finally:
            for rel in left:
                ctx.dirty.setdefault(rel, time.monotonic())
        if not failed:
            self.backoff = 0.5

    def _unreachable(self, exc: Exception) -> None:
        RETRIES.inc()
        self.retry_at = time.monotonic() + self.backoff
        log.warning("store unreachable (%s); retrying in %.1f s", exc, self.backoff)
        self.backoff = min(self.backoff * 2, MAX_BACKOFF)

    def plan(self, batch: list[str]) -> list[tuple[Any, tuple[str, ...]]]:
        """Sort a batch into moves, creates/updates (parents first) and deletes (covered ones dropped)."""
        ctx = self.ctx
        gone, present = [], []
        for rel in batch:
            local = localfs.probe(ctx.path(rel))
            if local is None:
                if rel in ctx.state.files:
                    gone.append(rel)
            else:
                present.append((rel, local))
        moves: list[tuple[Any, tuple[str, ...]]] = []
        for rel, local in present:
            if rel in ctx.state.files:
                continue
            source = self._move_source(rel, local, gone)
            if source is not None:
                gone.remove(source)
                moves.append((self.move, (source, rel)))
        writes = [(self.write, (rel,)) for rel, _ in present]
        deletes = [(self.delete, (rel,)) for rel in gone
                   if not any(rel.startswith(other + "/") for other in gone)]  # fmt: skip
        return moves + writes + deletes

    def _move_source(self, rel: str, local: localfs.Local, gone: list[str]) -> str | None:
        ctx = self.ctx
        if local.kind == "dir":
            parent, name = os.path.split(rel)
            for old in gone:
                synced = ctx.state.files[old]
                old_parent, old_name = os.path.split(old)
                if synced.kind == "dir" and (old_parent == parent or old_name == name):
                    return old
            return None
        if local.kind != "file":
            return None
        candidates = [
            o for o in gone if ctx.state.files[o].kind == "file" and ctx.state.files[o].size == local.size
        ]
        if not candidates:
            return None
        sha = localfs.sha256_file(ctx.path(rel))
        return next((o for o in candidates if ctx.state.files[o].sha256 == sha), None)

    # -- operations --------------------------------------------------------------------------
    async def move(self, src: str, dst: str) -> None:
        ctx = self.ctx
        try:
            info = await ctx.api.move(src, dst)
        except ApiFailure as exc:
            if exc.status not in (404, 409):
                raise
            # The store moved on (source gone, destination taken): push both sides plainly.
            ctx.mark_dirty(src)
            ctx.mark_dirty(dst)
            return
        moved = [src, *ctx.state.below(src)]
        for key in moved:
            ctx.state.files[dst + key[len(src) :]] = ctx.state.files.pop(key)
        ctx.state.dirty = True
        if info.get("type") == "file":
            ctx.record_file(dst, info)
        # Whatever changed inside meanwhile, and whatever the store moved that is not here (a
        # wrongly paired rename is then undone path by path).
        for rel in {*(r for r, _ in localfs.walk(ctx.root, ctx.rules, dst)), *ctx.state.below(dst), dst}:
            ctx.mark_dirty(rel)
        ctx.report.pushed("move")

    async def write(self, rel: str) -> None:
        ctx = self.ctx
        target = ctx.path(rel)
        local = localfs.probe(target)
        if local is None or ctx.rules.ignored_any(rel, local.kind == "dir"):
            return
        reason = refused_kind_of(local.kind) or refused_name(rel)
        if reason is None and local.kind == "file" and local.size > ctx.max_file_size:
            reason = f"too_large: over {ctx.max_file_size} bytes"
        if reason is not None:
            ctx.report.skip(rel, reason)
            return
        synced = ctx.state.files.get(rel)
        if synced is not None and synced.kind != ("dir" if local.kind == "dir" else "file"):
            await self.delete(rel)  # a file became a directory or the other way round
            synced = ctx.state.files.get(rel)
        if local.kind == "dir":
            if synced is None or synced.kind != "dir":
                await ctx.api.mkdir(rel)
                ctx.record_dir(rel)
                ctx.report.pushed("mkdir")
                for child, _ in localfs.walk(ctx.root, ctx.rules, rel):
                    ctx.mark_dirty(child)
            return
        if synced is not None and synced.kind == "file" and ctx.unchanged(rel, synced, local):
            ctx.report.unskip(rel)
            return  # an echo of a pull, or a touch
        if time.monotonic() < self.quota_retry_at:
            raise ApiFailure(507, "quota_exceeded")  # no new bytes while the quota is full
        await self._put(rel, target, local, synced.etag if synced and synced.kind == "file" else None)

    async def _put(self, rel: str, target: Path, local: localfs.Local, if_match: str | None) -> None:
        ctx = self.ctx
        synced = ctx.state.files.get(rel)
        base = synced.content_type if synced and synced.content_type else _guess(rel)
        content_type = join_type(base, local.executable)
        try:
            info = await ctx.api.put(rel, target, local.size, content_type, if_match)
        except ApiFailure as exc:
            if exc.status == 412:
                await self._conflict(rel, target, local, content_type)
                return
            if exc.status in (400, 409, 413):
                ctx.report.skip(rel, f"{exc.code}: refused by the store")
                return
            raise
        ctx.record_file(rel, info, local)
        ctx.report.pushed("write")
        if localfs.probe(target) != local:
            ctx.mark_dirty(rel)  # it changed while uploading: push again

    async def _conflict(self, rel: str, target: Path, local: localfs.Local, content_type: str) -> None:
        """The store changed `rel` since our last sync: keep both (workspace content on top)."""
        ctx = self.ctx
        current = await ctx.api.current(rel)
        sha = localfs.sha256_file(target)
        if current is not None and current["sha256"] == sha:
            ctx.record_file(rel, current, local)  # both sides wrote the same bytes
            return
        if current is None:
            kept = DELETED_IN_STORE
            info = await ctx.api.put(rel, target, local.size, content_type, None)
        else:
            kept = f"version {current['version']} of {rel} in the store's history"
            info = await ctx.api.put(rel, target, local.size, content_type, current["etag"])
        ctx.record_file(rel, info, local)
        ctx.report.pushed("write")
        ctx.report.conflict(rel, kept)

    async def delete(self, rel: str) -> None:
        ctx = self.ctx
        synced = ctx.state.files.get(rel)
        if synced is None:
            return
        if synced.kind == "file":
            await self._delete_file(rel, synced.etag)
            return
        # A directory: delete only what we synced; files the store gained meanwhile stay (and
        # come back here through the pull), so a recursive delete never takes unseen work.
        remote = await self._remote_files(rel)
        unseen = [i for i in remote if i["type"] == "file" and (ctx.state.files.get(i["path"]) is None
                  or ctx.state.files[i["path"]].etag != i["etag"])]  # fmt: skip
        if not unseen:
            try:
                await ctx.api.delete(rel, recursive=True, if_match=None)
            except ApiFailure as exc:
                if exc.status != 404:
                    raise
        else:
            for item in remote:
                if item["type"] == "file" and item not in unseen:
                    await self._delete_file(item["path"], item["etag"])
            for item in unseen:
                await ctx.fetch(item["path"])
        ctx.state.drop(rel)
        ctx.report.pushed("delete")

    async def _remote_files(self, rel: str) -> list[dict[str, Any]]:
        try:
            return [item async for item in self.ctx.api.listing(rel)]
        except ApiFailure as exc:
            if exc.status == 404:
                return []
            raise

    async def _delete_file(self, rel: str, etag: str | None) -> None:
        ctx = self.ctx
        try:
            await ctx.api.delete(rel, recursive=False, if_match=etag)
        except ApiFailure as exc:
            if exc.status == 412:  # changed in the store since we synced it: it comes back
                ctx.state.drop(rel)
                await ctx.fetch(rel)
                ctx.report.conflict(rel, DELETED_HERE)
                return
            if exc.status != 404:
                raise
        ctx.state.drop(rel)
        ctx.report.pushed("delete")


def refused_kind_of(kind: str) -> str | None:
    return None if kind in ("file", "dir") else kind


def _guess(rel: str) -> str | None:
    guessed, _ = mimetypes.guess_type(rel, strict=False)
    return guessed
