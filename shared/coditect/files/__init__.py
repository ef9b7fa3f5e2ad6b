"""Files of workspace sessions: chunked, versioned, deduplicated, fork-cheap, watchable.

    paths     the contract's path rules, in one place (400 invalid_path)
    chunks    content store: 64 KiB chunks and per-file manifests, SHA-256-addressed per tenant,
              reference-counted with atomic ADDs
    tree      one session's directory tree: entries keyed by their parent directory's id
    versions  writing/dropping versions (references and usage kept in step), preconditions
    upload    streamed writes: staged chunks, one publishing transaction
    service   read, list, mkdir, move, delete (+ trash), versions, restore
    changes   the per-session change feed (versionstamped) with long-poll
    quota     limits, retention policy and usage counters
    gc        collect_garbage(db, budget_seconds=...) for the ops cron
    hooks     fork (metadata copy) and purge (reference release) for coditect.sessions
    http      the HTTP glue the files functions share: FileSpace of a session, Range, ETag, conditions

Design notes: docs/files.md.
"""
