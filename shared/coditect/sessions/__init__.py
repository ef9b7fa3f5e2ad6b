"""Workspace sessions, their conversations and messages, and per-user settings.

Rules every area attaching data to a session follows (see also `coditect.keyspace`):

1. ONE subspace per session. Everything scoped to a workspace session lives under
   `keyspace.session(tid, sid)` = `("t", tid, "s", sid, ...)`: the record (`"rec"`), conversations
   (`"conv"`, `"count"`), messages (`"msg"`, `"msgid"`), fork state (`"fork"`, `"forking"`), and,
   from other areas, files (`.sub("files", ...)`) and workspace records (`.sub("ws", ...)`).
2. Liveness gate. A session record has a `state`: `live`, `pending` (a fork being copied) or
   `deleting`. Every read and write path goes through `access.require_session(tr, ctx, sid)`
   (owner + live, else 404), in the same transaction as the work, so marking a session deleted
   makes it disappear from every read at once and stops every writer.
3. Delete = mark, then purge (`purge`). The DELETE transaction sets `state = deleting`, removes
   the session's own index entries (by owner, by parent) and enqueues it in the durable purge
   queue `keyspace.PURGE_QUEUE`. The purge then runs in bounded transactions (≤ 1,000 keys each):
   area purge hooks (data outside the subspace), conversation index entries, the `by_parent`
   entries of its forks, the subspace itself, and finally the record and the queue entry. Every
   step is idempotent, so a purge killed at any point resumes from the queue: the DELETE request
   purges until done or for `PURGE_BUDGET_SECONDS` (2 s, functions/sessions/main.py), the ops cron's `gc` job calls
   `purge.purge_pending(db, budget_seconds=...)` for the rest.
4. Hooks (`hooks`): `register_purge_hook(fn(tr, tid, sid) -> bool)` for data outside the subspace;
   `register_fork_hook(fn(db, tid, source, target, at))` to copy an area's data into a fork. The
   areas are imported by `extensions` (one list; missing areas are skipped).
5. Messages are keyed by commit versionstamp, so appends never conflict with each other and the
   key order is the commit order; `seq` is that versionstamp as an integer (see `messages`).
6. Forks are staged (see `fork`): the first transaction snapshots the conversations and records
   the fork point (its own versionstamp); messages below it are copied in bounded transactions;
   the fork stays `pending` (invisible) until one final transaction publishes it.

Importing this package imports nothing else, so areas can `from coditect.sessions import hooks`
without cycles.
"""
