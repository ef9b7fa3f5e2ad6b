"""Identity functions: register, login, refresh, logout, jwks, users, tenant, audit.

Owner/admin routes are declared `auth="admin"`: the runtime refuses other roles with a 403 written
to the audit log (`coditect.identity.authz.forbidden`); finer owner rules stay in the services.
"""

from coditect.registry.spec import FunctionSpec, Route

M = "coditect.identity.models"
C = "coditect.identity.cookies"  # the shapes of both token modes (JSON and cookie)
PAGE = f"{M}:PageQuery"
TOKEN_401 = ((401, "token_missing"), (401, "token_invalid"), (401, "token_expired"), (401, "session_revoked"))
FORBIDDEN = ((403, "forbidden"),)

FUNCTIONS = (
    FunctionSpec(
        name="register",
        memory="512Mi",  # THREADS (8) Argon2id hashes at 19 MiB each run at once: 152 MiB + the process
        description="Create an account (and a tenant, unless joining one with an invite).",
        signs_tokens=True,
        routes=(
            Route(
                "auth.register",
                "POST",
                "/api/v5/auth/register",
                auth="none",
                status=201,
                summary="Register",
                body=f"{M}:RegisterBody",
                response=f"{C}:AuthAnswer",
                errors=(
                    (403, "origin_not_allowed"),
                    (409, "email_taken"),
                    (422, "weak_password"),
                    (422, "invite_invalid"),
                    (429, "rate_limited"),
                ),
            ),
        ),
    ),
    FunctionSpec(
        name="login",
        memory="512Mi",  # THREADS (8) Argon2id hashes at 19 MiB each run at once: 152 MiB + the process
        description="Exchange email and password for tokens (throttled).",
        signs_tokens=True,
        routes=(
            Route(
                "auth.login",
                "POST",
                "/api/v5/auth/login",
                auth="none",
                summary="Log in",
                body=f"{M}:LoginBody",
                response=f"{C}:AuthAnswer",
                errors=((401, "invalid_credentials"), (403, "origin_not_allowed")),
            ),
        ),
    ),
    FunctionSpec(
        name="refresh",
        description="Rotate a refresh token (single use, reuse detection).",
        signs_tokens=True,
        routes=(
            Route(
                "auth.refresh",
                "POST",
                "/api/v5/auth/refresh",
                auth="none",
                summary="Refresh tokens",
                body=f"{C}:RefreshRequest",
                response=f"{C}:RefreshAnswer",
                errors=(
                    (400, "invalid_token_mode"),
                    (400, "token_mode_conflict"),
                    (401, "refresh_token_missing"),
                    (403, "origin_not_allowed"),
                    (401, "refresh_token_reused"),
                    (401, "refresh_token_not_found"),
                    (401, "session_expired"),
                    (401, "session_revoked"),
                    (429, "rate_limited"),
                ),
            ),
        ),
    ),
    FunctionSpec(
        name="logout",
        description="Revoke the caller's login session.",
        routes=(
            Route(
                "auth.logout",
                "POST",
                "/api/v5/auth/logout",
                status=204,
                summary="Log out (cookie mode also expires the refresh cookie)",
                errors=((400, "invalid_token_mode"), (403, "origin_not_allowed"), *TOKEN_401),
            ),
        ),
    ),
    FunctionSpec(
        name="jwks",
        description="The public keys that verify access tokens (JWK Set).",
        min_scale=1,
        routes=(
            Route(
                "auth.jwks",
                "GET",
                "/api/v5/auth/jwks",
                auth="none",
                enveloped=False,
                summary="JSON Web Key Set",
            ),
        ),
    ),
    FunctionSpec(
        name="users",
        memory="512Mi",  # THREADS (8) Argon2id hashes at 19 MiB each run at once: 152 MiB + the process
        description="The caller's own user, password and login sessions.",
        routes=(
            Route(
                "users.me.get",
                "GET",
                "/api/v5/users/me",
                summary="Current user",
                response=f"{M}:UserOut",
                errors=TOKEN_401,
            ),
            Route(
                "users.me.patch",
                "PATCH",
                "/api/v5/users/me",
                summary="Update the current user",
                body=f"{M}:PatchMeBody",
                response=f"{M}:UserOut",
                errors=TOKEN_401,
            ),
            Route(
                "users.password.put",
                "PUT",
                "/api/v5/users/me/password",
                status=204,
                summary="Change password (revokes the other login sessions)",
                body=f"{M}:PasswordBody",
                errors=((401, "invalid_credentials"), (422, "weak_password"), *TOKEN_401),
            ),
            Route(
                "users.auth_sessions.list",
                "GET",
                "/api/v5/users/me/auth-sessions",
                summary="The caller's login sessions",
                query=PAGE,
                paged=True,
                response=f"{M}:AuthSessionOut",
                errors=TOKEN_401,
            ),
            Route(
                "users.auth_sessions.delete",
                "DELETE",
                "/api/v5/users/me/auth-sessions/<uuid:id>",
                status=204,
                summary="Revoke one of the caller's login sessions",
                errors=TOKEN_401,
            ),
        ),
    ),
    FunctionSpec(
        name="tenant",
        description="The caller's tenant, its users, invites and roles.",
        routes=(
            Route(
                "tenant.get",
                "GET",
                "/api/v5/tenant",
                summary="Current tenant",
                response=f"{M}:TenantOut",
                errors=TOKEN_401,
            ),
            Route(
                "tenant.users.list",
                "GET",
                "/api/v5/tenant/users",
                summary="Users of the tenant",
                query=PAGE,
                paged=True,
                response=f"{M}:UserOut",
                auth="admin",
                errors=(*FORBIDDEN, *TOKEN_401),
            ),
            Route(
                "tenant.invites.create",
                "POST",
                "/api/v5/tenant/invites",
                status=201,
                summary="Invite a user",
                body=f"{M}:InviteBody",
                response=f"{M}:InviteOut",
                auth="admin",
                errors=(*FORBIDDEN, *TOKEN_401),
            ),
            Route(
                "tenant.users.patch",
                "PATCH",
                "/api/v5/tenant/users/<uuid:id>",
                summary="Change a user's role",
                body=f"{M}:RoleBody",
                response=f"{M}:UserOut",
                auth="admin",
                errors=((409, "last_owner"), *FORBIDDEN, *TOKEN_401),
            ),
            Route(
                "tenant.users.delete",
                "DELETE",
                "/api/v5/tenant/users/<uuid:id>",
                status=204,
                summary="Disable a user and revoke their login sessions",
                auth="admin",
                errors=((409, "last_owner"), *FORBIDDEN, *TOKEN_401),
            ),
        ),
    ),
    FunctionSpec(
        name="audit",
        description="The tenant's audit log, newest first.",
        routes=(
            Route(
                "audit.list",
                "GET",
                "/api/v5/audit",
                summary="Audit events",
                query=PAGE,
                paged=True,
                response="coditect.audit:AuditEvent",
                auth="admin",
                errors=(*FORBIDDEN, *TOKEN_401),
            ),
        ),
    ),
)
