"""Identity: tenants, users, login sessions, tokens, throttling and the auth middleware.

Entry points other areas use:

- `coditect.identity.middleware.authenticate(call) -> TenantContext` and
  `coditect.identity.authz.forbidden` (the audited 403 of `auth="admin"` routes) — resolved by the runtime.
- `coditect.identity.clock` — the one clock identity reads (tests replace it).

Everything else serves the register, login, refresh, logout, jwks, users, tenant and audit
functions. Design and settings: docs/identity.md.
"""
