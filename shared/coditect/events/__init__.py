"""CloudEvents: publishing to `K_SINK` (`publisher`), handling with dedupe (`handler`), and
publishing after a transaction commits (`outbox`).

    from coditect.events import publish, event_handler, record_outbox, drain_outbox
"""

from coditect.events.handler import event_handler, prune_dedupe
from coditect.events.outbox import OutboxEvent, drain_outbox, flush_outbox, record_outbox
from coditect.events.publisher import (
    Publisher,
    PublishError,
    SinkNotConfigured,
    default_publisher,
    publish,
)

__all__ = [
    "OutboxEvent",
    "PublishError",
    "Publisher",
    "SinkNotConfigured",
    "default_publisher",
    "drain_outbox",
    "event_handler",
    "flush_outbox",
    "prune_dedupe",
    "publish",
    "record_outbox",
]
