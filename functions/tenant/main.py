"""/api/v5/tenant: the caller's tenant, its users, invites and roles (owner/admin for changes)."""

from typing import Any

from coditect.http import Call, FunctionApp, page
from coditect.identity import tenants
from coditect.identity.models import InviteOut, TenantOut, UserOut

app = FunctionApp("tenant")


@app.route("tenant.get")
def get_tenant(call: Call) -> TenantOut:
    return tenants.get_tenant(call.db, call.ctx)


@app.route("tenant.users.list")
def list_users(call: Call) -> dict[str, Any]:
    return page(*tenants.list_users(call.db, call.ctx, call.query))


@app.route("tenant.invites.create")
def create_invite(call: Call) -> InviteOut:
    return tenants.create_invite(call.db, call.settings, call.ctx, call.origin, call.body)


@app.route("tenant.users.patch")
def change_role(call: Call) -> UserOut:
    return tenants.change_role(call.db, call.ctx, call.origin, call.uuid_param("id"), call.body)


@app.route("tenant.users.delete")
def disable_user(call: Call) -> None:
    tenants.disable_user(call.db, call.ctx, call.origin, call.uuid_param("id"))


handle = app.entrypoint()
