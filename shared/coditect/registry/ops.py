"""Operations: the cron function (health, backup, verify, reconcile, gc; coditect.ops.jobs).

It runs the workspace reconcile, so it carries the `k8s` extra like the provisioner; its jobs
are bounded by `ops_job_budget` except the SQLite snapshot/verify, hence the larger memory.
"""

from coditect import event_types
from coditect.registry.spec import FunctionSpec

FUNCTIONS = (
    FunctionSpec(
        name="cron",
        kind="cloudevent",
        description="Scheduled operations: health, backup, verify, reconcile, gc (one job per event).",
        events=(event_types.CRON, event_types.PING),
        # alerts; and what reconcile re-drains from the outbox (workspace events)
        publishes=(
            event_types.ALERT,
            event_types.WORKSPACE_REQUESTED,
            event_types.WORKSPACE_STOP_REQUESTED,
        ),
        extras=("k8s",),
        concurrency=4,
        max_scale=1,
        memory="512Mi",
    ),
)
