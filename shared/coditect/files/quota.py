"""Per-tenant limits and usage: file size, byte quota, version retention.

Usage is two atomic counters per tenant (`keyspace.COUNTERS`), changed with ADD in the very
transactions that add or drop what they count, so they never drift and never conflict:

- logical bytes: the sizes of every stored file version in every session of the tenant (what
  the tenant can read back; a fork's copies count, as do retained old versions);
- physical bytes: the bytes of stored chunks after dedup (what the store holds).

The quota (`Settings.files_quota_bytes`, default 10 GiB) limits *logical* bytes: it is the
figure a user controls and can predict, and it does not flap with what other sessions happen to
share. It is checked before anything is written: against Content-Length up front, and while
reading a body of unknown length. Quota reads are snapshot reads (no conflicts between
concurrent uploads), so racing uploads may overshoot by at most what is in flight; a fork is
never refused for quota (the copy is metadata) but later writes are.

Usage is not an HTTP route (the contract's Files table is fixed): `usage(db, tenant_id)` serves
an admin/ops view and the benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

from coditect.config import Settings
from coditect.errors import InsufficientStorage, PayloadTooLarge
from coditect.files.chunks import LOGICAL, PHYSICAL, usage_key
from coditect.files.models import Usage
from coditect.repo import counters
from coditect.store import Database, Transaction, transactional


@dataclass(frozen=True)
class Policy:
    max_file_size: int = 100 * 1024 * 1024
    quota_bytes: int = 10 * 1024**3
    keep_versions: int = 20  # newest N versions of a file are kept (the current one always)
    keep_days: float = 30.0  # older versions than this are dropped at the next write (0 = no age limit)

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            max_file_size=settings.max_file_size,
            quota_bytes=settings.files_quota_bytes,
            keep_versions=settings.files_keep_versions,
            keep_days=settings.files_keep_days,
        )


def too_large() -> PayloadTooLarge:
    return PayloadTooLarge("The file is larger than the configured maximum.", code="file_too_large")


def over_quota() -> InsufficientStorage:
    return InsufficientStorage("Writing this file would exceed the tenant's storage quota.")


def logical_used(tr: Transaction, tenant_id: str) -> int:
    return counters.read(tr, usage_key(tenant_id, LOGICAL), snapshot=True)


def check(tr: Transaction, tenant_id: str, adding: int, policy: Policy) -> None:
    """507 quota_exceeded when `adding` more logical bytes would pass the quota."""
    if adding > 0 and logical_used(tr, tenant_id) + adding > policy.quota_bytes:
        raise over_quota()


@transactional
def _usage(tr: Transaction, tenant_id: str, quota_bytes: int) -> Usage:
    return Usage(
        logical_bytes=counters.read(tr, usage_key(tenant_id, LOGICAL), snapshot=True),
        physical_bytes=counters.read(tr, usage_key(tenant_id, PHYSICAL), snapshot=True),
        quota_bytes=quota_bytes,
    )


def usage(db: Database, tenant_id: str, policy: Policy | None = None) -> Usage:
    """The tenant's logical and physical file bytes and its quota."""
    return _usage(db, tenant_id, (policy or Policy()).quota_bytes)
