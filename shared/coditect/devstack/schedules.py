"""The cron jobs of the local scheduler: job name → UTC cron expression.

Read from the ops job registry (`coditect.ops.jobs.JOBS`), the one place schedules are defined.
Production runs the same jobs as Knative PingSources (infra/base/eventing/ping-sources.yaml; a unit test
keeps the two in step). Each firing sends a CloudEvent of type `com.coditect.ops.cron` with data
`{"job": <name>}` to the broker, which delivers it to the cron function.
"""

from __future__ import annotations

from coditect.ops.jobs import CRON_EVENT_TYPE, SCHEDULES  # the ops job registry is the one source

__all__ = ["CRON_EVENT_TYPE", "SCHEDULES"]
