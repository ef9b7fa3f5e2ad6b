"""Identity records as stored, and the request/response shapes of api-v5.md "Auth and identity".

Stored records (`*Record`) may hold secrets' derivatives (a password hash); they never leave
this package: handlers answer with the `*Out` models, which are built field by field and have
no field that could carry a hash or digest.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from coditect.identity.access_tokens import Role

MAX_EMAIL_LENGTH = 254
_EMAIL_SHAPE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def normalise_email(raw: str) -> str:
    """NFKC, stripped; the form we store and answer (case kept as typed)."""
    return unicodedata.normalize("NFKC", raw).strip()


def email_key(email: str) -> str:
    """The platform-wide uniqueness key of an email: NFKC, stripped, case-folded."""
    return normalise_email(email).casefold()


def _valid_email(value: str) -> str:
    value = normalise_email(value)
    if len(value) > MAX_EMAIL_LENGTH or not _EMAIL_SHAPE.fullmatch(value):
        raise ValueError("not an email address")
    return value


Email = Annotated[
    str,
    AfterValidator(_valid_email),
    Field(json_schema_extra={"format": "email", "maxLength": MAX_EMAIL_LENGTH}),
]
Name = Annotated[str, Field(min_length=1, max_length=200)]


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# -- stored records ----------------------------------------------------------------------------
class TenantRecord(BaseModel):
    id: str
    name: str
    created_at: float


class UserRecord(BaseModel):
    id: str
    tenant_id: str
    email: str
    email_key: str
    name: str
    role: Role
    password_hash: str
    disabled: bool = False
    created_at: float
    updated_at: float


class AuthSessionRecord(BaseModel):
    """A login session: one refresh-token family (see `coditect.identity.tokens`)."""

    id: str
    tenant_id: str
    user_id: str
    created_at: float
    last_used_at: float
    generation: int = 0  # the live refresh token is number `generation` of this family
    rotated_at: float | None = None  # when generation - 1 was spent (start of its grace window)
    # Legacy (records written before tokens were a hash chain): no longer read. Nothing stored
    # derives a live refresh token now (coditect.identity.tokens).
    family_nonce: str | None = None
    user_agent: str | None = None
    revoked_at: float | None = None
    revoked_reason: str | None = None


class InviteRecord(BaseModel):
    id: str
    tenant_id: str
    role: Role
    email_key: str | None = None  # when set, only this email can use the invite
    created_by: str
    created_at: float
    expires_at: float
    used_at: float | None = None
    used_by: str | None = None


# -- responses -----------------------------------------------------------------------------------
class UserOut(BaseModel):
    id: str
    email: str
    name: str
    tenant_id: str
    role: Role
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, user: UserRecord) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            tenant_id=user.tenant_id,
            role=user.role,
            created_at=utc(user.created_at),
            updated_at=utc(user.updated_at),
        )


class TenantOut(BaseModel):
    id: str
    name: str
    created_at: datetime

    @classmethod
    def of(cls, tenant: TenantRecord) -> TenantOut:
        return cls(id=tenant.id, name=tenant.name, created_at=utc(tenant.created_at))


class TokensOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 — the OAuth token type, not a secret
    expires_in: int


class AuthOut(BaseModel):
    user: UserOut
    tenant: TenantOut
    tokens: TokensOut


class RefreshOut(BaseModel):
    tokens: TokensOut


class AuthSessionOut(BaseModel):
    id: str
    created_at: datetime
    last_used_at: datetime
    user_agent: str | None
    current: bool


class InviteOut(BaseModel):
    invite_token: str
    role: Role
    expires_at: datetime


# -- requests (unknown fields are refused: mass assignment is a 422) ------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterBody(_Body):
    email: Email
    password: str
    name: Name
    tenant_name: Name | None = None
    invite_token: Annotated[str, Field(max_length=256)] | None = None


class LoginBody(_Body):
    email: Annotated[str, Field(max_length=1024)]
    password: str


class RefreshBody(_Body):
    # Generous on purpose: any string that is not one of our tokens — an access token (a JWT of
    # ~600 bytes) sent by mistake included — is 401 `refresh_token_not_found`, not a 422.
    refresh_token: Annotated[str, Field(max_length=8192)]


class PatchMeBody(_Body):
    name: Name | None = None


class PasswordBody(_Body):
    current_password: str
    new_password: str


class InviteBody(_Body):
    role: Role
    email: Email | None = None


class RoleBody(_Body):
    role: Role


class PageQuery(_Body):
    limit: int = Field(default=50, ge=1, le=200)
    cursor: Annotated[str, Field(max_length=1024)] | None = None
