"""How the sync agent (`coditect.sync`, its own package) is launched: its argv is built here only.

The interface is fixed between the agent and the provisioners::

    python -m coditect.sync --api-url URL --session-id SID --workspace-id WID --root DIR \\
        --credential-file PATH --health-port PORT --state-file PATH [--flush-timeout 20]

- the credential is read from `--credential-file` and sent as ``Authorization: Bearer``; only the
  files routes of SID and ``PUT /api/v5/workspaces/{WID}/sync`` accept it;
- ``127.0.0.1:PORT`` serves ``GET /healthz`` (503 until hydrated, 200 after) and ``GET /status``;
- SIGTERM: flush, final report, exit 0; a flush not done within `--flush-timeout` exits
  `FLUSH_TIMEOUT_EXIT` (75) with the pending paths on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

DEFAULT_COMMAND: tuple[str, ...] = (sys.executable, "-m", "coditect.sync")
FLUSH_TIMEOUT_EXIT = 75  # EX_TEMPFAIL
FLUSH_MARGIN = 5.0  # seconds a provisioner waits beyond --flush-timeout before it kills the agent


def argv(
    command: Sequence[str],
    *,
    api_url: str,
    session_id: str,
    workspace_id: str,
    root: str,
    credential_file: str,
    health_port: int,
    state_file: str,
    flush_timeout: float,
) -> list[str]:
    """The agent's full argv: `command` (the program) followed by the interface's flags."""
    return [
        *command,
        "--api-url", api_url,
        "--session-id", session_id,
        "--workspace-id", workspace_id,
        "--root", root,
        "--credential-file", credential_file,
        "--health-port", str(health_port),
        "--state-file", state_file,
        "--flush-timeout", f"{flush_timeout:g}",
    ]  # fmt: skip
