"""The load-and-fault soak (bench/soak.py, `nox -s soak`), short: a handful of users for about
25 s with faults on (function kills, one whole-stack kill -9 and restart, slow-body clients).

The acknowledged-write ledger must check out, and the checker must catch what it is there to
catch: an acknowledged message that is not in the store, a file older than its acknowledged
write, a message stored twice. No timed assertions (the figures go to bench/results/soak.json).
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
from soak import Config, Soak  # noqa: E402
from soak_client import API, message_content  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_soak_with_faults_keeps_every_acknowledged_write_and_its_check_catches_planted_faults(
    tmp_path: Path,
) -> None:
    config = Config(users=4, minutes=0.4, faults=True, rate=12, kill_every=6, stack_kills=1,
                    slow_clients=2, baseline=4)  # fmt: skip
    with Soak(config, tmp_path) as soak:
        report = soak.execute()
        assert report["check"]["ok"], report["check"]
        assert report["passed"], report
        assert report["server_errors"] == 0, report["statuses"]
        assert report["faults"]["stack_kills"] == 1
        assert sum(report["faults"]["function_kills"].values()) >= 1
        acked = report["check"]["acknowledged"]
        assert acked["file"] > 0 and acked["message"] > 0 and acked["session"] >= config.users

        # Plant faults in the ledger and the store; the checker must report each of them.
        lines = soak.ledger_path.read_text().splitlines()
        rows = [json.loads(line) for line in lines]
        message = next(i for i, r in enumerate(rows) if r["kind"] == "message")
        file = next(i for i, r in enumerate(rows) if r["kind"] == "file")
        rows[message]["id"] = str(uuid.uuid4())  # acknowledged, but not in the store
        rows[file]["seq"] += 1000  # acknowledged a later write than the store holds
        soak.ledger_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        twice = next(r for r in rows[message + 1 :] if r["kind"] == "message")
        user = soak.users[twice["user"]]
        soak.loop.run_until_complete(  # the same content again, without a key: a duplicate
            user.call("POST", f"{API}/conversations/{twice['conversation']}/messages",
                      json={"role": "user", "content": message_content(twice["key"])})
        )  # fmt: skip

        checked = soak.check()
        assert not checked.ok
        assert len(checked.lost) == 2, checked.lost
        assert any(rows[message]["id"] in x for x in checked.lost)
        assert any(
            f"{rows[file]['session']}/{rows[file]['path']}" in x and "holds #" in x for x in checked.lost
        )
        assert len(checked.duplicated) == 1 and twice["key"] in checked.duplicated[0]
        assert checked.corrupt == [] and checked.unreadable == []
