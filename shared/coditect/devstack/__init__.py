"""The local stack: the whole platform on one machine (`python -m coditect.devstack serve`).

One supervisor process runs, on one asyncio loop:

    plan.py        what to start: every function of the registry (plus test extras) → argv + env
    children.py    each function as its own process group: start, readiness, restart, stop
    frontdoor.py   the front door: Caddy's config rendered from the registry's route table
                   (coditect.deploy.routes, as the production ingress), run as a child process
    broker.py      local CloudEvents broker: K_SINK of every function, retries, dead-letter log
    scheduler.py   fires the cron function's events on the schedules of coditect.ops.jobs
    supervisor.py  puts it together: keys, ports, readiness, the table, signals, clean shutdown

Everything is derived from `coditect.registry.FUNCTIONS`; nothing here lists functions by name.
It is the embedded default of the routing, eventing and scheduling engines (Knative in
production) and is not for production.
"""
