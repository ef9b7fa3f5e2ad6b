"""Workspaces: per-user IDE workloads started on demand.

`provisioner` defines the one interface (modelled on JupyterHub's ``Spawner``); `local` is the
embedded default (real processes on loopback); `k8s` is the production backend (Pods via the
``kubernetes`` client, imported only there); `program` is the default workspace program the local
backend runs. Import the submodule you need: importing this package imports nothing heavy.

The workspace service on top of the backends: `models` (record and API shapes), `lifecycle` (the
state machine and CloudEvent types), `repository` (keys and indexes), `service` (allocate, list,
get, stop), `provisioning` (the provisioner function's work), `reconcile` (orphans, idle stop, max
lifetime, stuck starts), `hooks` (session purge), `backends` (setting → Provisioner).

For the relay, `tickets` is the whole API (see its docstring for 401/403 reasons)::

    consume_ticket(db, ticket, workspace_id, *, now=None) -> RelayGrant       raises RelayDenied
    open_cookie_session(db, grant, *, now=None) -> RelayCookie                 .header() = Set-Cookie
    check_cookie(db, token, workspace_id, *, now=None) -> RelayGrant           raises RelayDenied
    close_cookie_session(db, token) -> None
    grant_still_valid(db, grant, *, now=None) -> bool                          one transaction
    record_activity(db, tenant_id, workspace_id, *, now=None) -> bool          throttled per workspace
    RelayGrant(tenant_id, user_id, session_id, workspace_id, endpoint: Endpoint(host, port), expires)
    RelayDenied(reason).status in (401, 403); COOKIE_NAME; TICKET_SUBPROTOCOL_PREFIX
"""
