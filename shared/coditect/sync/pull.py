"""Pull: the session's change feed (`files:changes?wait=`) applied to the directory, without echo.

No echo, both ways: a change whose etag is the one the state already holds for that path is our
own push coming back (skipped); a file the pull writes is recorded in the state before the
watcher reports it, and the push side skips a path whose content equals its record.

A local copy that differs from its record is never overwritten or deleted by a pull: the path is
marked for the push side, whose `If-Match` fails and resolves the conflict (workspace content
becomes the head, the store's becomes the previous version; docs/workspaces-sync.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from coditect.sync import localfs
from coditect.sync.client import ApiFailure, Unreachable
from coditect.sync.context import Context
from coditect.sync.hydrate import reconcile
from coditect.sync.report import DELETED_HERE, DELETED_IN_STORE, RETRIES

log = logging.getLogger("coditect.sync")

WAIT_SECONDS = 25.0
MAX_BACKOFF = 30.0


async def _created(ctx: Context, rel: str, etag: str | None) -> None:
    synced = ctx.state.files.get(rel)
    if etag is None:  # a directory
        if synced is None or synced.kind != "dir":
            local = localfs.probe(ctx.path(rel))
            if local is None or local.kind == "dir":
                ctx.path(rel).mkdir(parents=True, exist_ok=True)
                ctx.record_dir(rel)
                ctx.report.pulled("mkdir")
        return
    if synced is not None and synced.etag == etag:
        return  # our own write, or already applied
    local = localfs.probe(ctx.path(rel))
    if local is not None and not ctx.unchanged(rel, synced, local):
        ctx.mark_dirty(rel)  # changed here too: the push side resolves the conflict
        return
    deleted_here = local is None and synced is not None and synced.kind == "file"
    if await ctx.fetch(rel):
        ctx.report.pulled("write")
        if deleted_here:  # deleted here, changed in the store: the store's content comes back
            ctx.report.conflict(rel, DELETED_HERE)


def _deleted(ctx: Context, rel: str, etag: str | None = None) -> None:
    """Remove what the store deleted, keeping every local file that differs from its record.
    `etag`: the deleted file's; another one recorded means the path was written since (by the
    push side, after a conflict) and this delete is history."""
    synced = ctx.state.files.get(rel)
    if synced is None or (etag is not None and synced.kind == "file" and synced.etag != etag):
        return
    target = ctx.path(rel)
    local = localfs.probe(target)
    if synced.kind == "file" or local is None or local.kind != "dir":
        if local is not None and ctx.unchanged(rel, synced, local):
            localfs.remove(target)
        elif local is not None:
            ctx.report.conflict(rel, DELETED_IN_STORE)
            ctx.mark_dirty(rel)
        ctx.state.drop(rel)
        ctx.report.pulled("delete")
        return
    entries = list(localfs.walk(ctx.root, ctx.rules, rel))
    for sub, sub_local in reversed(entries):  # children before their directory
        if sub_local.kind == "dir":
            try:
                os.rmdir(ctx.path(sub))
            except OSError:
                pass  # something kept inside
        elif ctx.unchanged(sub, ctx.state.files.get(sub), sub_local):
            localfs.remove(ctx.path(sub))
        else:
            ctx.mark_dirty(sub)
    try:
        os.rmdir(target)
    except OSError:
        ctx.mark_dirty(rel)
    ctx.state.drop(rel)
    ctx.report.pulled("delete")


async def _moved(ctx: Context, src: str, dst: str, etag: str | None) -> None:
    synced = ctx.state.files.get(src)
    if synced is None and dst in ctx.state.files:
        return  # our own move coming back
    source, target = ctx.path(src), ctx.path(dst)
    local = localfs.probe(source)
    movable = (
        synced is not None
        and localfs.probe(target) is None
        and local is not None
        and ((synced.kind == "dir" and local.kind == "dir") or ctx.unchanged(src, synced, local))
    )
    if movable:
        target.parent.mkdir(parents=True, exist_ok=True)
        for key in [src, *ctx.state.below(src)]:  # rekey before the rename: the watcher sees no news
            ctx.state.files[dst + key[len(src) :]] = ctx.state.files.pop(key)
        ctx.state.dirty = True
        os.rename(source, target)
        if etag is not None and ctx.state.files[dst].etag != etag:
            await _created(ctx, dst, etag)
        ctx.report.pulled("move")
        return
    _deleted(ctx, src, etag)
    if etag is None:
        await reconcile(ctx, dst)
        ctx.record_dir(dst)
    else:
        await _created(ctx, dst, etag)


async def apply_changes(ctx: Context, changes: list[dict[str, Any]]) -> None:
    """Apply one page of the feed, in order (a move's two entries are adjacent in one commit;
    a half at a page edge is applied as a delete or a create)."""
    i = 0
    while i < len(changes):
        change = changes[i]
        rel, op, etag = change["path"], change["op"], change["etag"]
        if op == "moved_from" and i + 1 < len(changes) and changes[i + 1]["op"] == "moved_to":
            await _moved(ctx, rel, changes[i + 1]["path"], changes[i + 1]["etag"])
            i += 2
            continue
        if op in ("deleted", "moved_from"):
            _deleted(ctx, rel, etag)
        elif op == "moved_to" and etag is None:
            await reconcile(ctx, rel)
            ctx.record_dir(rel)
        else:
            await _created(ctx, rel, etag)
        i += 1


async def follow(ctx: Context, stopping: asyncio.Event) -> None:
    """Long-poll the feed and apply it until `stopping`; unreachable API → backoff, retry."""
    backoff = 0.5
    while not stopping.is_set():
        try:
            page = await ctx.api.changes(ctx.state.cursor, wait=WAIT_SECONDS)
            async with ctx.apply:
                await apply_changes(ctx, page["changes"])
                ctx.state.set_cursor(str(page["cursor"]))
                ctx.save_state()
            backoff = 0.5
        except (Unreachable, ApiFailure) as exc:
            RETRIES.inc()
            log.warning("change feed: %s; retrying in %.1f s", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
