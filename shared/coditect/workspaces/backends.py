"""The provisioner backend named by the settings (`workspace_backend`), built once per process.

`local` (default): LocalProvisioner with its state (and each workspace's tree) in
`workspace_state_dir` or <data_dir>/workspaces, the sync agent from `workspace_sync_command`. `kubernetes`: KubernetesProvisioner in `workspace_namespace` with the
pinned `workspace_image`; the `kubernetes` client is imported only on this path (the `k8s` extra).
Tests build a provisioner themselves and install it with `override`.
"""

from __future__ import annotations

import threading
from pathlib import Path

from coditect.config import Settings
from coditect.workspaces.provisioner import Provisioner

_lock = threading.Lock()
_instance: Provisioner | None = None
_override: Provisioner | None = None


def state_dir(settings: Settings) -> Path:
    return settings.workspace_state_dir or (settings.data_dir / "workspaces")


def build(settings: Settings) -> Provisioner:
    if settings.workspace_backend == "kubernetes":
        from coditect.workspaces.k8s.backend import KubernetesProvisioner
        from coditect.workspaces.k8s.objects import WorkspaceTemplate

        template = WorkspaceTemplate(
            image=settings.workspace_image,
            sync_image=settings.workspace_sync_image,
            sync_flush_timeout=settings.workspace_sync_flush_timeout,
        )
        return KubernetesProvisioner(
            settings.workspace_namespace,
            template,
            relay_namespace=settings.workspace_relay_namespace,
            start_timeout=settings.workspace_start_timeout,
        )
    from coditect.workspaces.local import DEFAULT_COMMAND, LocalProvisioner

    return LocalProvisioner(
        state_dir(settings).resolve(),
        command=settings.workspace_command or DEFAULT_COMMAND,
        start_timeout=settings.workspace_start_timeout,
        flush_timeout=settings.workspace_sync_flush_timeout,
        watch_pid=settings.stack_pid,
    )


def provisioner(settings: Settings) -> Provisioner:
    """The process's provisioner (the override when a test installed one)."""
    global _instance
    if _override is not None:
        return _override
    with _lock:
        if _instance is None:
            _instance = build(settings)
        return _instance


def override(instance: Provisioner | None) -> None:
    """Install (or with None remove) a specific provisioner. Tests only."""
    global _override, _instance
    _override = instance
    _instance = None
