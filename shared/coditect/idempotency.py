"""`Idempotency-Key` for creates and appends (draft-ietf-httpapi-idempotency-key-header).

A client that cannot know whether a create happened (a 502, a timeout, a connection cut before
the answer) repeats it with the same `Idempotency-Key`; the server answers with the object the
first request made instead of making a second one. Accepted on `POST /sessions`,
`POST /sessions/{id}/conversations` and `POST /conversations/{id}/messages` (file writes use
If-Match / If-None-Match instead).

The record is written in the SAME transaction as the object it names, so there is no window in
which the object exists and the key does not (or the reverse), whatever crashes:

    <space> + (user_id, operation, scope, key) → {"id": created id, "fp": body fingerprint}

- `space`: for conversations and messages the session's own subspace (`session(tid, sid)` +
  "idem"), so records go when the session is purged; for session creates the tenant's
  `keys.IDEMPOTENCY`, kept as long as the tenant (one small record per session created with a
  key). A key is therefore remembered as long as what it created can exist.
- scoped per user and operation and `scope` (the parent id): the same key used by another user,
  or for another conversation, is another key.
- the same key with a different body is 422 `idempotency_key_reused` (nothing is written);
- concurrent requests with one key serialise on the record (one commits, the other retries,
  finds it and answers the same object);
- a key is 1 to 200 visible ASCII characters (a UUID is the usual choice), else 422
  `validation_failed` with `loc` ["header", "Idempotency-Key"] — the same rule and answer as the
  workspace allocation's key (`coditect.workspaces.service`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from pydantic import BaseModel

from coditect.errors import ValidationFailed
from coditect.keyspace import Subspace
from coditect.store import Transaction

HEADER = "Idempotency-Key"
SESSION_PART = "idem"  # session(tid, sid).sub(SESSION_PART): records of creates inside a session
_KEY = re.compile(r"[\x21-\x7e]{1,200}")


def parse(value: str | None) -> str | None:
    """The header's key, None when absent; 422 `validation_failed` when malformed."""
    if value is None:
        return None
    if not _KEY.fullmatch(value):
        raise ValidationFailed(
            "Idempotency-Key must be 1 to 200 visible ASCII characters.",
            details=[{"loc": ["header", HEADER], "type": "string_pattern_mismatch"}],
        )
    return value


@dataclass(frozen=True)
class Claim:
    """One create's key, scoped to its user, operation and parent, with its body's fingerprint."""

    user_id: str
    operation: str
    scope: str
    key: str
    fingerprint: str

    def record_key(self, space: Subspace) -> bytes:
        return space.key(self.user_id, self.operation, self.scope, self.key)


def claim(key: str | None, *, user_id: str, operation: str, scope: str, body: BaseModel) -> Claim | None:
    """The claim of a create (None without a key); computed once, outside the transaction."""
    if key is None:
        return None
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    fingerprint = hashlib.sha256(f"{operation}\0{scope}\0{canonical}".encode()).hexdigest()
    return Claim(user_id, operation, scope, key, fingerprint)


def created(tr: Transaction, space: Subspace, claim: Claim | None) -> str | None:
    """The id an earlier request with this key created, or None; 422 if its body differed."""
    if claim is None:
        return None
    raw = tr.get(claim.record_key(space))
    if raw is None:
        return None
    record = json.loads(raw)
    if record["fp"] != claim.fingerprint:
        raise ValidationFailed(
            "This Idempotency-Key was already used with another request body.",
            code="idempotency_key_reused",
            details=[{"loc": ["header", HEADER], "type": "idempotency_key_reused"}],
        )
    return str(record["id"])


def remember(tr: Transaction, space: Subspace, claim: Claim | None, created_id: str) -> None:
    """Record, in the creating transaction, that `claim` made `created_id`."""
    if claim is not None:
        value = {"id": created_id, "fp": claim.fingerprint}
        tr.set(claim.record_key(space), json.dumps(value, separators=(",", ":")).encode())
