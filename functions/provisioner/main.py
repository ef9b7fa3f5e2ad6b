"""CloudEvents com.coditect.workspace.requested / .stop_requested → start / stop the workload.

Acks by returning; raising (a transient backend error) makes Knative redeliver. Dedupe on the
event's (source, id) is done by `event_handler`; the work itself is idempotent and resumable
(see coditect.workspaces.provisioning).
"""

from cloudevents.http import CloudEvent

from coditect.config import get_settings
from coditect.events import event_handler
from coditect.store import open_store
from coditect.workspaces import backends, provisioning

db = open_store(get_settings().store_url)  # at cold start: a bad store URL fails the import


# No @functions_framework.cloud_event: it records the signature type globally under the name
# "handle", which every function shares, so in-process tests would turn HTTP targets into CloudEvent
# ones. The type comes from --signature-type (the image's CMD, the devstack, create_app).
@event_handler(db, function="provisioner")
def handle(event: CloudEvent) -> None:
    provisioning.dispatch(db, backends.provisioner(get_settings()), event)
