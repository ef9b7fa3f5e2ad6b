"""The areas that attach data to workspace sessions: importing this module registers their hooks.

One list, one place: add your area's hooks module here. A module that does not exist yet (its area
has not landed) is skipped, so the sessions code works before and after it does.
"""

from __future__ import annotations

import importlib
import importlib.util

AREA_HOOK_MODULES: tuple[str, ...] = (
    "coditect.files.hooks",
    "coditect.workspaces.hooks",
)


def _present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent package itself is missing
        return False


def load() -> list[str]:
    """Import every area hooks module present; return the names imported."""
    loaded = []
    for name in AREA_HOOK_MODULES:
        if _present(name):
            importlib.import_module(name)
            loaded.append(name)
    return loaded


LOADED = load()
