"""Hydration: the tree on disk at one consistent point of the store, before the agent says ready.

A listing takes several pages (each its own transaction), so on its own it is no snapshot.
The agent therefore (1) takes the change-feed cursor C first, (2) lists and reconciles, (3)
replays every change after C (`pull.apply_changes`) until a read of the feed comes back empty.
Everything the listing saw is at or after C, every change after C is applied in commit order, so
the tree then equals the store at the feed's last position: one consistent point.

Reconciliation (also after a restart, driven by the state file) compares by hash, per path:

    local \\ store     same content       store changed only   both changed     missing in store
    unchanged          record, no upload  download             —                 delete locally*
    changed            record             —                    push (conflict)   push (recreate)
    missing            download / push delete if only the local side deleted it
    local only         push (never deleted)

    * only when the state says it was synced before and the local copy is still that content.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from coditect.sync import localfs
from coditect.sync.client import DOWNLOAD_THREADS, FEED_PAGE, ApiFailure, Unreachable, split_type
from coditect.sync.context import Context

log = logging.getLogger("coditect.sync")

DOWNLOADS_IN_PARALLEL = DOWNLOAD_THREADS  # one thread per download in flight


async def feed_end(ctx: Context, since: str | None) -> str:
    """The change-feed cursor at its current end (pages forward from `since`)."""
    while True:
        page = await ctx.api.changes(since)
        since = str(page["cursor"])
        if len(page["changes"]) < FEED_PAGE:
            return since


async def reconcile(ctx: Context, prefix: str = "") -> None:
    """Bring the subtree `prefix` (the root when empty) and the store together (table above)."""
    under = prefix + "/" if prefix else ""
    remote: dict[str, dict[str, Any]] = {}
    async for item in ctx.api.listing(prefix):
        remote[item["path"]] = item
    downloads = [rel for rel, item in remote.items() if await _reconcile_entry(ctx, rel, item)]
    await _download_all(ctx, [(rel, remote[rel]) for rel in downloads])
    _reconcile_local_only(ctx, remote, prefix, under)


async def _reconcile_entry(ctx: Context, rel: str, item: dict[str, Any]) -> bool:
    """Settle one entry of the store's listing against the disk; True when it must be downloaded."""
    synced = ctx.state.files.get(rel)
    local = localfs.probe(ctx.path(rel))
    if item["type"] == "directory":
        if local is None and synced is not None and synced.kind == "dir":
            ctx.mark_dirty(rel)  # deleted here while the agent was away
        elif local is None or local.kind == "dir":
            ctx.path(rel).mkdir(parents=True, exist_ok=True)
            ctx.record_dir(rel)
        else:
            ctx.report.skip(rel, "clash: a directory in the store, not a directory here")
        return False
    if local is None:
        if synced is not None and synced.kind == "file" and synced.etag == item["etag"]:
            ctx.mark_dirty(rel)  # deleted here while the agent was away: push the delete
            return False
        return True
    if local.kind != "file":
        ctx.report.skip(rel, f"clash: a {local.kind} here, a file in the store")
        return False
    quick = synced is not None and synced.etag == item["etag"] and ctx.unchanged(rel, synced, local)
    sha = None if quick else await asyncio.to_thread(localfs.sha256_file, ctx.path(rel))
    _, executable = split_type(item.get("content_type"))
    if quick or (sha == item["sha256"] and local.executable == executable):
        ctx.record_file(rel, item, local)
    elif synced is not None and synced.sha256 == sha and synced.etag != item["etag"]:
        return True  # only the store changed
    else:
        ctx.mark_dirty(rel)  # changed here (and maybe there too): push resolves it
    return False


def _reconcile_local_only(ctx: Context, remote: dict[str, dict[str, Any]], prefix: str, under: str) -> None:
    """What is on disk (or in the synced state) but not in the store's listing."""
    state = ctx.state
    for rel, local in list(localfs.walk(ctx.root, ctx.rules, prefix)):
        if rel in remote:
            continue
        synced = state.files.get(rel)
        if synced is None:
            ctx.mark_dirty(rel)  # exists only here: push it, never delete it
        elif synced.kind == "file" and ctx.unchanged(rel, synced, local):
            localfs.remove(ctx.path(rel))  # deleted in the store while the agent was away
            state.drop(rel)
        else:
            state.drop(rel)
            ctx.mark_dirty(rel)
    for rel in [p for p in state.files if p.startswith(under) and p not in remote]:
        if localfs.probe(ctx.path(rel)) is None:
            state.drop(rel)  # gone on both sides


async def _download_round(
    ctx: Context, wanted: list[tuple[str, dict[str, Any]]]
) -> list[tuple[str, dict[str, Any]]]:
    """One pass over `wanted` with DOWNLOADS_IN_PARALLEL workers; returns what failed on the network."""
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    for item in wanted:
        queue.put_nowait(item)
    failed: list[tuple[str, dict[str, Any]]] = []

    async def worker() -> None:
        while not queue.empty():
            rel, known = queue.get_nowait()
            try:
                await ctx.fetch(rel, known)
            except Unreachable:
                failed.append((rel, known))

    await asyncio.gather(*(worker() for _ in range(min(DOWNLOADS_IN_PARALLEL, len(wanted)))))
    return failed


async def _download_all(ctx: Context, wanted: list[tuple[str, dict[str, Any]]]) -> None:
    """Download `wanted` (path, listing entry), each streamed to disk. A download that fails on
    the network is tried again (backoff) before the hydration as a whole gives up: one dropped
    connection must not restart 10,000 downloads."""
    backoff = 0.25
    for attempt in range(6):
        wanted = await _download_round(ctx, wanted)
        if not wanted:
            return
        log.warning("hydration: %d downloads failed (attempt %d); retrying", len(wanted), attempt + 1)
        await asyncio.sleep(backoff)
        backoff *= 2
    raise Unreachable(f"{len(wanted)} downloads kept failing")


async def hydrate(ctx: Context) -> None:
    """The consistent first tree (module docstring); returns when it is on disk."""
    from coditect.sync.pull import apply_changes

    ctx.root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        cursor = await feed_end(ctx, ctx.state.cursor)
    except ApiFailure as exc:
        if exc.status != 400:  # a cursor of another session or format: start from the feed's start
            raise
        cursor = await feed_end(ctx, None)
    await reconcile(ctx)
    while True:  # replay what happened while listing, until the feed is quiet
        page = await ctx.api.changes(cursor)
        await apply_changes(ctx, page["changes"])
        cursor = str(page["cursor"])
        if not page["changes"]:
            break
    ctx.state.set_cursor(cursor)
    ctx.save_state(force=True)
    log.info("hydrated %d paths in %.2f s", len(ctx.state.files), time.monotonic() - started)
