"""The areas that attach data to workspace sessions: `load()` registers their hooks.

One list, one place: add your area's hooks module here.

`load()` runs once per process (later calls return the first answer) and only where hooks run —
`hooks.purge_hooks()` and `hooks.fork_hooks()` call it, so the sessions function and the cron
gc job alike see every area's hooks — because the hook modules
import their whole areas (the files store, the workspaces lifecycle and its event publisher),
which a read of a session never needs: importing them at start doubled the sessions cold start.
"""

from __future__ import annotations

import importlib

AREA_HOOK_MODULES: tuple[str, ...] = (
    "coditect.files.hooks",
    "coditect.workspaces.hooks",
)


_loaded: list[str] | None = None


def load() -> list[str]:
    """Import every area hooks module present (once); return the names imported."""
    global _loaded
    if _loaded is None:
        for name in AREA_HOOK_MODULES:
            importlib.import_module(name)
        _loaded = list(AREA_HOOK_MODULES)
    return list(_loaded)
