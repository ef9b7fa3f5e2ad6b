"""End-to-end fixtures: a real local stack (every function as its own process, the front door, the
broker, the scheduler) on free ports, exactly as `nox -s serve` starts it.

Add your own e2e tests as tests/e2e/test_<area>.py and take the `stack` fixture:

    pytestmark = pytest.mark.e2e

    def test_register(stack):
        with stack.client() as http:
            r = http.post("/api/v5/auth/register", json={...})
        check_envelope(r, 201)

`stack` is shared by the whole test session (one start): do not stop it or kill its processes;
use `start_stack(tmp_path)` from tests/e2e/stack.py for that. Its data directory is shared too,
so create your own tenant/user per test. On a failure, `stack.log("<function>")` has that
function's output.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import RunningStack, start_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    # Every test registers its own users, all from 127.0.0.1: the per-IP sign-up limit (20 per
    # 10 minutes) would refuse the suite's later ones. Its behaviour is the functional tests'.
    running = start_stack(Path(tmp_path_factory.mktemp("stack")), {"CODITECT_REGISTER_IP_LIMIT": "10000"})
    yield running
    running.stop()
