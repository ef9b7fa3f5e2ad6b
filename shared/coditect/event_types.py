"""Every CloudEvent type the platform publishes or subscribes to, in one place.

Imports nothing (the registry and the light ops job table import it). The registry declares
with these which function publishes and receives what (`FunctionSpec.publishes`/`events`);
the local broker and the Knative Triggers deliver by them.
"""

# ops: the schedule's tick (local scheduler, manual runs) and the alerts of failing jobs/checks
CRON = "com.coditect.ops.cron"
PING = "dev.knative.sources.ping"  # what a PingSource always sends; it carries `coditecttype: CRON`
ALERT = "com.coditect.ops.alert"

# workspaces: requests to the provisioner, and the transitions it reports
WORKSPACE_REQUESTED = "com.coditect.workspace.requested"
WORKSPACE_STOP_REQUESTED = "com.coditect.workspace.stop_requested"
WORKSPACE_READY = "com.coditect.workspace.ready"
WORKSPACE_FAILED = "com.coditect.workspace.failed"
WORKSPACE_STOPPED = "com.coditect.workspace.stopped"
