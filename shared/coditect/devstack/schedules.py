"""The cron jobs of the local scheduler: job name → UTC cron expression.

THE one place the local stack reads schedules from. Production runs the same jobs as Knative
PingSources (infra/base/ping-sources.yaml; a unit test keeps the two in step). Each firing sends a
CloudEvent of type `com.coditect.ops.cron` with data `{"job": <name>}` to the broker, which
delivers it to the function subscribed to that type (the cron function).
"""

from __future__ import annotations

CRON_EVENT_TYPE = "com.coditect.ops.cron"

SCHEDULES: dict[str, str] = {
    "health": "* * * * *",  # store and backup health: an outage pages within a minute or two
    "backup": "17 * * * *",  # hourly, off the top-of-hour rush
    "verify": "47 * * * *",  # restores the backup taken 30 minutes earlier
    "reconcile": "* * * * *",  # orphan workspaces, idle stop, max lifetime
    "gc": "*/15 * * * *",  # garbage is not urgent; each run is bounded
}
