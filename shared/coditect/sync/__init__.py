"""The workspace sync agent: keeps a directory and a session's files (the store) in step.

    python -m coditect.sync --api-url URL --session-id SID --workspace-id WID --root DIR \
        --credential-file PATH --health-port PORT --state-file PATH [--flush-timeout 20]

    rules     what is synced: default ignore list + `.coditectignore`, and what is refused
    localfs   the local side: hashing, atomic writes, the executable bit, scanning
    state     the persistent record of what was last synced (restart reconciliation)
    client    the files API (only the session's files routes and the report route)
    report    the sync report (`/status`, `PUT /workspaces/{id}/sync`) and the metrics
    hydrate   the first consistent tree, and reconciliation by hash after a restart
    pull      the change feed applied to the directory, without echo
    push      the watcher (inotify through watchfiles) and the debounced writes
    agent     wiring: tasks, health server, signals, flush

Design and the interface with the workspace side: docs/workspaces-sync.md.
"""
