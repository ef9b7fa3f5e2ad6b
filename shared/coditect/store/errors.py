"""Store errors carry FoundationDB's numeric error codes, on every backend.

Code written against the embedded SQLite store must fail the same way it would on a cluster,
so the SQLite backend raises these codes itself and the FoundationDB adapter translates
`fdb.FDBError` into them at the boundary.
"""

from __future__ import annotations

TRANSACTION_TOO_OLD = 1007
NOT_COMMITTED = 1020
COMMIT_UNKNOWN_RESULT = 1021
TRANSACTION_TIMED_OUT = 1031
TRANSACTION_TOO_LARGE = 2101
KEY_TOO_LARGE = 2102
VALUE_TOO_LARGE = 2103

_NAMES = {
    TRANSACTION_TOO_OLD: "transaction_too_old",
    NOT_COMMITTED: "not_committed",
    COMMIT_UNKNOWN_RESULT: "commit_unknown_result",
    TRANSACTION_TIMED_OUT: "transaction_timed_out",
    TRANSACTION_TOO_LARGE: "transaction_too_large",
    KEY_TOO_LARGE: "key_too_large",
    VALUE_TOO_LARGE: "value_too_large",
}

# What FoundationDB's `on_error` retries. 1021 is retried too: that is why transaction bodies
# must be idempotent (the commit may have happened).
RETRYABLE = frozenset({TRANSACTION_TOO_OLD, NOT_COMMITTED, COMMIT_UNKNOWN_RESULT})

# FoundationDB's documented limits.
MAX_KEY_SIZE = 10_000
MAX_VALUE_SIZE = 100_000
MAX_TRANSACTION_SIZE = 10_000_000
MAX_TRANSACTION_SECONDS = 5.0


class StoreError(Exception):
    """A store failure with FoundationDB's numeric `code` and its name."""

    def __init__(self, code: int, message: str | None = None) -> None:
        self.code = code
        self.name = _NAMES.get(code, "unknown_error")
        super().__init__(f"{self.name} ({code})" + (f": {message}" if message else ""))

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE
