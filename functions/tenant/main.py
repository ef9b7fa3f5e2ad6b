"""/api/v5/tenant: the caller's tenant, its users, invites and roles (owner/admin for changes)."""

from typing import Any

from coditect.http import Call, FunctionApp
from coditect.identity import tenants
from coditect.identity.models import InviteOut, TenantOut, UserOut

app = FunctionApp("tenant")


@app.route("tenant.get")
def get_tenant(call: Call) -> TenantOut:
    return tenants.get_tenant(call)


@app.route("tenant.users.list")
def list_users(call: Call) -> dict[str, Any]:
    return tenants.list_users(call)


@app.route("tenant.invites.create")
def create_invite(call: Call) -> InviteOut:
    return tenants.create_invite(call)


@app.route("tenant.users.patch")
def change_role(call: Call) -> UserOut:
    return tenants.change_role(call)


@app.route("tenant.users.delete")
def disable_user(call: Call) -> None:
    tenants.disable_user(call)


handle = app.entrypoint()
