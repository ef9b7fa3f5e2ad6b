"""Cron CloudEvents (Knative PingSources; the local scheduler) → one ops job run each.

`event_handler` dedupes on the event's (source, id): a redelivered firing runs nothing. The job
itself (coditect.ops.jobs) is idempotent, bounded in time, recorded in the store's `ops`
subspace and logged in one summary line; failures are published as com.coditect.ops.alert.
"""

from cloudevents.http import CloudEvent

from coditect.config import get_settings
from coditect.events import event_handler
from coditect.ops import cron
from coditect.store import open_store

db = open_store(get_settings().store_url)  # at cold start: a bad store URL fails the import


# No @functions_framework.cloud_event (see functions/provisioner/main.py): the signature type
# comes from --signature-type.
@event_handler(db, function="cron")
def handle(event: CloudEvent) -> None:
    cron.handle(db, event)
