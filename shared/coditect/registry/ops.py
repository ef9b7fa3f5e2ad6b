"""Operations: the cron function (health, backup, verify, reconcile, gc; coditect.ops.jobs).

It runs the workspace reconcile, so it carries the `k8s` extra like the provisioner; its jobs
are bounded by `ops_job_budget` except the SQLite snapshot/verify, hence the larger memory.
"""

from coditect.ops.jobs import ALERT_EVENT_TYPE, CRON_EVENT_TYPE, PING_EVENT_TYPE
from coditect.registry.spec import FunctionSpec

FUNCTIONS = (
    FunctionSpec(
        name="cron",
        kind="cloudevent",
        description="Scheduled operations: health, backup, verify, reconcile, gc (one job per event).",
        events=(CRON_EVENT_TYPE, PING_EVENT_TYPE),
        # alerts; and what reconcile re-drains from the outbox (workspace events)
        publishes=(
            ALERT_EVENT_TYPE,
            "com.coditect.workspace.requested",
            "com.coditect.workspace.stop_requested",
        ),
        extras=("k8s",),
        concurrency=4,
        max_scale=1,
        memory="512Mi",
    ),
)
