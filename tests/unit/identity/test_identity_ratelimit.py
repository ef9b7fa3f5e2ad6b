"""coditect.ratelimit: fixed window, exponential backoff with a cap, probe, reset, forgive."""

from __future__ import annotations

import pytest

from coditect import keyspace, ratelimit
from coditect.ratelimit import Policy
from coditect.store import Database

LOCK = Policy("test-lock", limit=3, window=3600, backoff=10, backoff_cap=60, probe_after_block=True)
RATE = Policy("test-rate", limit=2, window=60, backoff=60, backoff_cap=480)


def hit(db: Database, policy: Policy, now: float, subject: str = "alice@example.test") -> ratelimit.Decision:
    return db.transact(ratelimit.hit, policy, subject, now)


def test_limit_then_block_then_doubling_up_to_the_cap(db: Database) -> None:
    assert [hit(db, LOCK, 0).allowed for _ in range(3)] == [True] * 3
    blocked = hit(db, LOCK, 1)
    assert not blocked.allowed and blocked.retry_after == 10
    assert hit(db, LOCK, 5).retry_after == pytest.approx(6)  # still blocked; not extended
    durations = []
    t = 11.0
    for _ in range(5):
        assert hit(db, LOCK, t).allowed  # the one probe after a block
        denied = hit(db, LOCK, t)
        durations.append(denied.retry_after)
        t += denied.retry_after
    assert durations == [20, 40, 60, 60, 60]


def test_reset_and_forgive(db: Database) -> None:
    for _ in range(3):
        hit(db, LOCK, 0)
    db.transact(ratelimit.forgive, LOCK, "alice@example.test")
    assert hit(db, LOCK, 0).allowed and not hit(db, LOCK, 0).allowed
    db.transact(ratelimit.reset, LOCK, "alice@example.test")
    assert all(hit(db, LOCK, 1).allowed for _ in range(3))


def test_window_expiry_and_request_limits_reset_after_a_block(db: Database) -> None:
    assert hit(db, RATE, 0).allowed and hit(db, RATE, 1).allowed
    denied = hit(db, RATE, 2)
    assert not denied.allowed and denied.retry_after == 60
    assert hit(db, RATE, 62).allowed and hit(db, RATE, 63).allowed  # a full allowance again


def test_strikes_double_the_block_until_a_quiet_window_forgets_them(db: Database) -> None:
    assert hit(db, RATE, 0).allowed and hit(db, RATE, 1).allowed
    assert hit(db, RATE, 2).retry_after == 60
    assert hit(db, RATE, 62).allowed and hit(db, RATE, 63).allowed
    again = hit(db, RATE, 64)  # blocked again within a window of the last block: doubled
    assert not again.allowed and again.retry_after == 120
    t = 64 + 120 + RATE.window  # a whole quiet window after that block ended
    assert hit(db, RATE, t).allowed and hit(db, RATE, t + 1).allowed
    assert hit(db, RATE, t + 2).retry_after == 60  # strikes forgotten: back to the base backoff


def test_subjects_are_independent_and_stored_only_as_digests(db: Database) -> None:
    for _ in range(3):
        hit(db, LOCK, 0, "a@example.test")
    assert not hit(db, LOCK, 0, "a@example.test").allowed
    assert hit(db, LOCK, 0, "b@example.test").allowed
    rows = db.transact(lambda tr: tr.get_range_startswith(keyspace.THROTTLE.raw_prefix))
    assert len(rows) == 2
    assert all(b"example.test" not in key + value for key, value in rows)


def test_check_reads_without_counting(db: Database) -> None:
    for _ in range(10):
        assert db.transact(ratelimit.check, LOCK, "x", 0).allowed
    assert hit(db, LOCK, 0, "x").allowed


@pytest.mark.parametrize("bad", [dict(limit=0), dict(window=0), dict(backoff=0), dict(backoff_cap=1)])
def test_invalid_policies(bad: dict[str, float]) -> None:
    args = dict(name="p", limit=1, window=1.0, backoff=2.0, backoff_cap=4.0) | bad
    with pytest.raises(ValueError):
        Policy(**args)  # type: ignore[arg-type]
