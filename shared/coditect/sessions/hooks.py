"""Extension points other areas use to take part in deleting and forking a workspace session.

Register at import time of your area's hooks module, and list that module in
`coditect.sessions.extensions.AREA_HOOK_MODULES` so the sessions function imports it:

    from coditect.sessions import hooks

    def purge_files_index(tr: Transaction, tenant_id: str, session_id: str) -> bool:
        ...  # clear at most ~1,000 keys / ~1 MB of data kept OUTSIDE keyspace.session(tid, sid)
        return nothing_left

    hooks.register_purge_hook(purge_files_index)
    hooks.register_fork_hook(copy_file_tree)

Purge hook `fn(tr, tenant_id, session_id) -> bool`: clear ONE bounded step of what the area keeps
outside `keyspace.session(tid, sid)` (global indexes, e.g. workspaces by id) and return True when
nothing is left. It runs in its own transaction, may run any number of times (also after a
crash, in another process), must be idempotent, and is called AFTER the session is marked
deleted: nothing can add data for that session any more. Data inside `keyspace.session(tid, sid)`
needs no hook: the purge clears that prefix itself, after every hook reported True.

Fork hook `fn(db, tenant_id, source_sid, target_sid, at) -> None`: copy the area's data of the
source into `keyspace.session(tid, target_sid)` in as many bounded transactions as it needs. `at` is
the 10-byte commit versionstamp of the transaction that opened the fork: copy the state as of
that point (data committed with a versionstamp < `at`). The target session is `pending` (invisible
to every read) until the fork publishes it; if the hook raises, the fork fails and the target is
purged. Each copy transaction should call `coditect.sessions.fork.check_forking(tr, tid, source,
target)` so that it aborts (ForkAborted) when the source or the target got deleted meanwhile.
While a fork runs, the source carries a fork lease (`fork.forks_in_progress(tr, tid, sid)`), which
an area can consult before a destructive change that would break the copy. Share immutable
content by reference (the files area copies metadata, not content chunks).
"""

from __future__ import annotations

from collections.abc import Callable

from coditect.store import Database, Transaction

PurgeHook = Callable[[Transaction, str, str], bool]
ForkHook = Callable[[Database, str, str, str, bytes], None]

_purge_hooks: list[PurgeHook] = []
_fork_hooks: list[ForkHook] = []


def register_purge_hook(fn: PurgeHook) -> PurgeHook:
    """Add `fn` to the purge of every deleted session (idempotent; usable as a decorator)."""
    if fn not in _purge_hooks:
        _purge_hooks.append(fn)
    return fn


def register_fork_hook(fn: ForkHook) -> ForkHook:
    """Add `fn` to every fork (idempotent; usable as a decorator)."""
    if fn not in _fork_hooks:
        _fork_hooks.append(fn)
    return fn


def unregister(fn: object) -> None:
    """Remove a hook (tests register temporary hooks)."""
    if fn in _purge_hooks:
        _purge_hooks.remove(fn)
    if fn in _fork_hooks:
        _fork_hooks.remove(fn)


def _load_areas() -> None:
    # Every caller of the hooks — the sessions function, the cron gc's purge_pending, a test —
    # must see every area's hooks, or a purge would leave that area's data behind. Imported
    # here, not at module level: the area hook modules import this module to register.
    from coditect.sessions import extensions

    extensions.load()


def purge_hooks() -> tuple[PurgeHook, ...]:
    _load_areas()
    return tuple(_purge_hooks)


def fork_hooks() -> tuple[ForkHook, ...]:
    _load_areas()
    return tuple(_fork_hooks)
