"""A store-backed rate limiter: fixed window of attempts, then exponential backoff with a hard cap.

Any function can use it; state lives under `keyspace.THROTTLE` so every replica of every function
shares it. One key per (policy, subject); the subject (an email, an IP, a user id) is stored
only as a truncated SHA-256, so the throttle subspace holds no addresses or emails.

Semantics of `hit` (one attempt, counted *before* the expensive or sensitive work):

- While blocked: denied with the seconds left; nothing changes (a locked-out caller cannot
  lengthen its own lock by retrying).
- Otherwise the attempt is counted in the current window (a new window starts when the old one
  is over). An attempt that finds `limit` attempts already counted is denied and starts a block
  of `backoff * 2**(strikes)` seconds, capped at `backoff_cap`; strikes grow by one per block and
  return to zero after a whole quiet window.
- With ``probe_after_block`` (login throttles) a block leaves the window full but one: after
  it, one attempt is allowed and the next failure blocks again for twice as long. Without it
  (plain request-rate limits) a block resets the window.

`reset` forgets a subject (a successful login); `forgive` takes back one attempt (a
successful login from a shared IP).

Contention (many attempts of one subject at once — every client behind one proxy address, a
burst of refreshes): the attempts of a window are not a counter in the subject's record, which
every attempt would read and rewrite (each concurrent one a conflict and a retry). The record
(`window_start, count, strikes, blocked_until`) changes only when a window starts, a block
starts or an attempt is forgiven; each allowed attempt *claims a slot*: one of the keys
`(policy, digest, i)` for i < limit - record.count that is still free (chosen at random among
the free ones seen in a snapshot read), with a read conflict on that slot alone. Two attempts
conflict only when they pick the same slot, so concurrent attempts mostly commit without
retrying, and the limit stays exact: a slot is claimed at most once per window (a second claim
conflicts), and there are exactly `limit - count` of them. A denial reads the slots with a
conflict (so it is serializable too) and starts the block; a new window or a block clears the
slots. A slot's value has the record's 28-byte shape (claimed-at in the first field), so the
throttle GC (`ops.maintenance.sweep_throttles`) keeps it while it is fresh. All functions take `tr` first and join the caller's
transaction, so a decision and the work it guards can commit together. Bodies may run twice on
`commit_unknown_result`: an attempt may then be counted twice, which only errs on the strict side.
"""

from __future__ import annotations

import hashlib
import random
import struct
from dataclasses import dataclass

from coditect import keyspace
from coditect.store import Transaction

# window_start, count, strikes, blocked_until (floats/ints, big-endian): 28 bytes.
_STATE = struct.Struct(">dIId")


@dataclass(frozen=True)
class Policy:
    """A named limit: `limit` attempts per `window` seconds, then backoff up to `backoff_cap`."""

    name: str
    limit: int
    window: float
    backoff: float
    backoff_cap: float
    probe_after_block: bool = False

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window <= 0 or self.backoff <= 0 or self.backoff_cap < self.backoff:
            raise ValueError(f"invalid rate-limit policy {self.name!r}")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0  # seconds until an attempt can be allowed again (0 when allowed)


@dataclass
class _State:
    window_start: float = 0.0
    count: int = 0
    strikes: int = 0
    blocked_until: float = 0.0


def subject_key(policy: Policy, subject: str) -> bytes:
    """The store key of `subject` under `policy` (the subject only as a digest)."""
    return keyspace.THROTTLE.key(policy.name, _digest(policy, subject))


def _digest(policy: Policy, subject: str) -> str:
    return hashlib.sha256(f"{policy.name}\x00{subject}".encode()).hexdigest()[:32]


def _slots(policy: Policy, subject: str) -> tuple[bytes, bytes]:
    """The range of `subject`'s slot keys `(policy, digest, i)` (under its record's key)."""
    return keyspace.THROTTLE.range(policy.name, _digest(policy, subject))


def _load(tr: Transaction, key: bytes) -> _State:
    raw = tr.get(key)
    if raw is None or len(raw) != _STATE.size:
        return _State()
    return _State(*_STATE.unpack(raw))


def _save(tr: Transaction, key: bytes, state: _State) -> None:
    tr.set(key, _STATE.pack(state.window_start, state.count, state.strikes, state.blocked_until))


def check(tr: Transaction, policy: Policy, subject: str, now: float) -> Decision:
    """Would an attempt be allowed now? Reads only."""
    state = _load(tr, subject_key(policy, subject))
    if now < state.blocked_until:
        return Decision(False, state.blocked_until - now)
    return Decision(True)


def hit(tr: Transaction, policy: Policy, subject: str, now: float) -> Decision:
    """Count one attempt by `subject` now and say whether it may proceed."""
    key = subject_key(policy, subject)
    begin, end = _slots(policy, subject)
    state = _load(tr, key)
    if now < state.blocked_until:
        return Decision(False, state.blocked_until - now)
    if now - state.window_start >= policy.window:
        if now - state.blocked_until >= policy.window:
            state.strikes = 0  # a whole quiet window since the last block: start over
        state.window_start, state.count = now, 0
        tr.clear_range(begin, end)  # the old window's slots (also any left by a swept record)
        _save(tr, key, state)
        taken: set[int] = set()
    else:
        taken = {_slot_index(key) for key, _ in tr.snapshot.get_range(begin, end)}
    free = [i for i in range(policy.limit - state.count) if i not in taken]
    if not free:
        tr.get_range(begin, end)  # a conflicting read: the denial is serializable (every slot taken)
        duration = min(policy.backoff * (2 ** min(state.strikes, 32)), policy.backoff_cap)
        state.strikes += 1
        state.blocked_until = now + duration
        state.count = policy.limit - 1 if policy.probe_after_block else 0
        state.window_start = now
        tr.clear_range(begin, end)
        _save(tr, key, state)
        return Decision(False, duration)
    slot = keyspace.THROTTLE.key(policy.name, _digest(policy, subject), random.choice(free))
    tr.add_read_conflict_key(slot)  # a concurrent claim of the same slot fails one of the two
    tr.set(slot, _STATE.pack(now, 0, 0, 0.0))
    return Decision(True)


def _slot_index(key: bytes) -> int:
    index = keyspace.THROTTLE.unpack(key)[-1]
    return index if isinstance(index, int) else -1


def forgive(tr: Transaction, policy: Policy, subject: str) -> None:
    """Take back one counted attempt (never below zero); blocks and strikes stay."""
    begin, end = _slots(policy, subject)
    claimed = tr.snapshot.get_range(begin, end, limit=1, reverse=True)
    if claimed:
        slot = claimed[0][0]
        tr.add_read_conflict_key(slot)  # two forgivers must not free the same slot
        tr.clear(slot)
        return
    key = subject_key(policy, subject)
    state = _load(tr, key)
    if state.count > 0:
        state.count -= 1
        _save(tr, key, state)


def reset(tr: Transaction, policy: Policy, subject: str) -> None:
    """Forget everything about `subject` under `policy`."""
    tr.clear(subject_key(policy, subject))
    tr.clear_range(*_slots(policy, subject))
