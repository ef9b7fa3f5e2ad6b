"""The relay end to end on the local stack: register → session → allocate → ready → ticket →
WebSocket echo through the front door and the relay → a terminal runs `echo hello` → logout closes
the relayed socket (4401)."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.stack import RunningStack, ticket, user_with_workspace
from tests.helpers import check_envelope

pytestmark = pytest.mark.e2e


def test_relay_end_to_end(stack: RunningStack) -> None:
    ws_base = "ws" + stack.url.removeprefix("http")
    origin = stack.url.rstrip("/")  # the stack allows exactly the front door's own origin
    with stack.client() as http:
        headers, _, wid = user_with_workspace(stack, http)

        async def main() -> int | None:
            url = f"{ws_base}/workspaces/{wid}"
            # No credentials: refused by the relay before the upgrade, passed on by the front door.
            with pytest.raises(InvalidStatus) as info:
                async with connect(f"{url}/echo", origin=origin, proxy=None):  # type: ignore[arg-type]
                    pass
            assert info.value.response.status_code == 401
            protos = [f"coditect.ticket.{ticket(http, headers, wid)}", "coditect.relay"]
            async with connect(f"{url}/echo", origin=origin, subprotocols=protos, proxy=None) as echo:  # type: ignore[arg-type]
                assert echo.subprotocol == "coditect.relay"
                await echo.send("through the front door and the relay")
                assert await echo.recv() == "through the front door and the relay"
            protos = [f"coditect.ticket.{ticket(http, headers, wid)}"]
            async with connect(f"{url}/terminal", origin=origin, subprotocols=protos, proxy=None) as term:  # type: ignore[arg-type]
                await term.send("echo hel''lo\n")  # the quotes keep the typed command from matching
                seen = b""
                async with asyncio.timeout(15):
                    while b"hello" not in seen:
                        chunk = await term.recv()
                        seen += chunk if isinstance(chunk, bytes) else chunk.encode()
                await asyncio.to_thread(
                    lambda: check_envelope(http.post("/api/v5/auth/logout", headers=headers), 204)
                )
                try:
                    async with asyncio.timeout(5):  # issue 7: closed within 5 s of the logout
                        async for _ in term:
                            pass
                except ConnectionClosed:
                    pass
                return term.close_code

        assert asyncio.run(main()) in (4401, 1008)
