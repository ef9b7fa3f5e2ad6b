"""Test-only functions the e2e stack runs beside the registry's (CODITECT_DEVSTACK_EXTRA).

`e2e_sink` is a CloudEvent function subscribed to `com.coditect.test.ping`; it records every
delivery in <data dir>/e2e-sink.jsonl and, to exercise the broker's retries and dead-letter log,
fails the first `fail_first` deliveries of an event (or all of them with `always_fail`).
"""

from coditect.registry.spec import FunctionSpec

PING = "com.coditect.test.ping"

FUNCTIONS = (FunctionSpec(name="e2e_sink", kind="cloudevent", events=(PING,), concurrency=4),)
