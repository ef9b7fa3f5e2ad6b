"""A relay rollout drains (issue 13 item 4): on SIGTERM the relay, started as the container starts
it (`python -m coditect.relay --app main:app --app-dir functions/relay`), fails its readiness
probe at once, keeps relaying through the drain, then closes every relayed socket with 1012
"service restart" (the client's cue to reconnect) and exits cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx

from tests.functional.relay.conftest import ORIGIN, Stack, free_port, start, stop_process
from tests.functional.relay.test_relay_websocket import TICKET, closed_with, ws

ROOT = Path(__file__).resolve().parents[3]
DRAIN = 1.5


def test_sigterm_drains_then_closes_sockets_with_1012(stack: Stack, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODITECT_")}
    env.update(
        CODITECT_DATA_DIR=str(tmp_path),
        CODITECT_STORE=f"sqlite://{stack.relay_log.parent / 'store.db'}",
        CODITECT_CORS_ORIGINS=f'["{ORIGIN}"]',
        CODITECT_PUBLIC_BASE_URL=ORIGIN,
        CODITECT_RELAY_DRAIN_SECONDS=str(DRAIN),
    )
    argv = [sys.executable, "-m", "coditect.relay", "--app", "main:app", "--app-dir",
            str(ROOT / "functions" / "relay"), "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    log = tmp_path / "relay.log"
    proc = start(argv, env, log, port)
    draining = Stack(stack.db, f"http://127.0.0.1:{port}", proc, log, stack.workspace_port)
    login = stack.login()
    record = stack.workspace(login)
    try:

        async def main() -> None:
            conn = await ws(draining, record.id, subprotocols=[TICKET + draining.ticket(login, record)])
            await conn.send("before")
            assert await conn.recv() == "before"
            proc.send_signal(signal.SIGTERM)
            async with httpx.AsyncClient(trust_env=False) as http:
                for _ in range(100):  # readiness flips at once (well inside the drain)
                    if (await http.get(f"{draining.relay_url}/healthz")).status_code == 503:
                        break
                    await asyncio.sleep(0.02)
                answer = await http.get(f"{draining.relay_url}/healthz")
                assert answer.status_code == 503 and answer.json()["status"] == "draining"
            await conn.send("during the drain")  # still relayed until the drain ends
            assert await conn.recv() == "during the drain"
            assert await closed_with(conn, timeout=DRAIN + 10) == 1012
            assert conn.close_reason == "service restart"

        asyncio.run(main())
        assert proc.wait(timeout=20) == 0, log.read_text()[-3000:]
        assert "draining" in log.read_text()
    finally:
        if proc.poll() is None:
            stop_process(proc)
