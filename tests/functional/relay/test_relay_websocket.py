"""WebSockets through a real relay: echo, refusals before 101, limits, backpressure, revocation."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.functional.relay.conftest import ORIGIN, PER_USER_CAP, Stack

TICKET = "coditect.ticket."


def ws(stack: Stack, workspace_id: str, rest: str = "echo", **kwargs: object) -> connect:
    kwargs.setdefault("origin", ORIGIN)
    kwargs.setdefault("proxy", None)
    kwargs.setdefault("open_timeout", 10)
    kwargs.setdefault("max_size", None)
    return connect(f"{stack.ws_url}/workspaces/{workspace_id}/{rest}", **kwargs)  # type: ignore[arg-type]


async def refused(stack: Stack, workspace_id: str, **kwargs: object) -> int:
    with pytest.raises(InvalidStatus) as info:
        async with ws(stack, workspace_id, **kwargs):
            pass
    return info.value.response.status_code


# Issue 7: revocation closes the user's relayed sockets within 5 s. A requirement bound, not a
# speed measurement (the relay re-checks grants about once a second).
REVOCATION_BOUND = 5.0


async def closed_with(conn: ClientConnection, timeout: float) -> int | None:
    """Wait (reading) until the connection closes; its close code."""
    try:
        async with asyncio.timeout(timeout):
            async for _ in conn:
                pass
    except ConnectionClosed:
        pass
    return conn.close_code


def test_echo_through_subprotocol_ticket_never_echoed(stack: Stack) -> None:
    login = stack.login()
    record = stack.workspace(login)

    async def main() -> None:
        ticket = stack.ticket(login, record)
        async with ws(stack, record.id, subprotocols=[TICKET + ticket, "coditect.relay"]) as conn:
            assert conn.subprotocol == "coditect.relay"
            assert conn.response.headers.get("Sec-WebSocket-Protocol") == "coditect.relay"
            await conn.send("hello")
            assert await conn.recv() == "hello"
            await conn.send(b"\x00\x01binary")
            assert await conn.recv() == b"\x00\x01binary"
        # Only the ticket offered: no subprotocol answered at all (never the ticket).
        async with ws(stack, record.id, subprotocols=[TICKET + stack.ticket(login, record)]) as conn:
            assert conn.subprotocol is None
            assert "Sec-WebSocket-Protocol" not in conn.response.headers
            await conn.send("x")
            assert await conn.recv() == "x"
        # ?ticket= works too.
        async with ws(stack, record.id, f"echo?ticket={stack.ticket(login, record)}") as conn:
            await conn.send("q")
            assert await conn.recv() == "q"

    asyncio.run(main())


def test_negatives_are_refused_before_any_upgrade(stack: Stack) -> None:
    login = stack.login()
    record = stack.workspace(login)
    other = stack.workspace(login)
    stranger = stack.login()  # another tenant
    foreign = stack.workspace(stranger)

    async def main() -> None:
        assert await refused(stack, record.id) == 401  # missing
        assert await refused(stack, record.id, subprotocols=[TICKET + "garbage"]) == 401
        expired = stack.ticket(login, record, now=time.time() - 300)
        assert await refused(stack, record.id, subprotocols=[TICKET + expired]) == 401
        used = stack.ticket(login, record)
        async with ws(stack, record.id, subprotocols=[TICKET + used]):
            pass
        assert await refused(stack, record.id, subprotocols=[TICKET + used]) == 401  # reused
        assert await refused(stack, record.id, subprotocols=[TICKET + stack.ticket(login, other)]) == 403
        assert await refused(stack, record.id, subprotocols=[TICKET + stack.ticket(stranger, foreign)]) == 403
        for origin in ("https://evil.example", "https://app.example.evil.com", "https://evil.com/https://app.example",
                       "https://app.example.", "https://xapp.example", "http://app.example", "null"):  # fmt: skip
            fresh = stack.ticket(login, record)
            status = await refused(stack, record.id, subprotocols=[TICKET + fresh], origin=origin)
            assert status == 403, origin
            # A ticket refused for its Origin is spent (issue 15 item 6): it is no good elsewhere.
            assert await refused(stack, record.id, subprotocols=[TICKET + fresh]) == 401
        async with ws(stack, record.id, subprotocols=[TICKET + stack.ticket(login, record)]) as conn:
            await conn.send("ok")
            assert await conn.recv() == "ok"

    asyncio.run(main())


def raw_handshake(stack: Stack, path: str, extra: str = "") -> bytes:
    host, port = stack.relay_url.removeprefix("http://").split(":")
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def test_refusal_is_a_plain_http_answer_not_101(stack: Stack) -> None:
    login = stack.login()
    record = stack.workspace(login)
    head = raw_handshake(stack, f"/workspaces/{record.id}/echo")
    assert head.startswith(b"HTTP/1.1 401 ") and b"101" not in head.split(b"\r\n")[0]
    head = raw_handshake(stack, f"/workspaces/{record.id}/echo?ticket={stack.ticket(login, record)}",
                         "Origin: https://app.example.evil.com\r\n")  # fmt: skip
    assert head.startswith(b"HTTP/1.1 403 ")


def test_client_host_headers_do_not_pick_the_target(stack: Stack) -> None:
    login = stack.login()
    record = stack.workspace(login)

    async def main() -> None:
        # A decoy server the forged headers point at: it must never be contacted.
        hits: list[bytes] = []

        async def decoy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            hits.append(await reader.read(100))
            writer.close()

        server = await asyncio.start_server(decoy, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        forged = {"Host": f"127.0.0.1:{port}", "X-Forwarded-Host": f"127.0.0.1:{port}", "X-Forwarded-Port": str(port),
                  "Forwarded": f"host=127.0.0.1:{port}"}  # fmt: skip
        ticket = stack.ticket(login, record)
        url = f"{stack.ws_url}/workspaces/{record.id}/echo?port={port}&host=127.0.0.1"
        async with connect(url, origin=ORIGIN, proxy=None, additional_headers=forged,  # type: ignore[arg-type]
                           subprotocols=[TICKET + ticket]) as conn:  # type: ignore[list-item]  # fmt: skip
            await conn.send("where am i")
            assert await conn.recv() == "where am i"  # answered by the workspace's /echo
        server.close()
        assert hits == []

    asyncio.run(main())


def test_message_above_limit_closes_with_1009(stack: Stack) -> None:
    login = stack.login()
    record = stack.workspace(login)

    async def main() -> None:
        async with ws(stack, record.id, subprotocols=[TICKET + stack.ticket(login, record)]) as conn:
            await conn.send("small")
            assert await conn.recv() == "small"
            with pytest.raises(ConnectionClosed):  # the relay may close while we are still sending
                await conn.send(b"x" * (10 * 1024 * 1024))
                await conn.recv()
            assert conn.close_code == 1009

    asyncio.run(main())


def test_per_user_connection_cap(stack: Stack) -> None:
    login = stack.login()
    record = stack.workspace(login)
    other_user = stack.login(tenant_id=login.ctx.tenant_id)
    other_record = stack.workspace(other_user)

    async def main() -> None:
        conns = [
            await ws(stack, record.id, subprotocols=[TICKET + stack.ticket(login, record)])
            for _ in range(PER_USER_CAP)
        ]
        try:
            status = await refused(stack, record.id, subprotocols=[TICKET + stack.ticket(login, record)])
            assert status == 429
            # Another user of the same tenant is not affected.
            async with ws(
                stack, other_record.id, subprotocols=[TICKET + stack.ticket(other_user, other_record)]
            ) as c:
                await c.send("ok")
                assert await c.recv() == "ok"
            # Closing one frees a slot.
            await conns.pop().close()
            await asyncio.sleep(0.2)
            conns.append(await ws(stack, record.id, subprotocols=[TICKET + stack.ticket(login, record)]))
        finally:
            for c in conns:
                await c.close()

    asyncio.run(main())


def test_logout_closes_the_open_socket(stack: Stack) -> None:
    login = stack.login()
    record = stack.workspace(login)
    bystander = stack.login(tenant_id=login.ctx.tenant_id)
    bystander_ws = stack.workspace(bystander)

    async def main() -> None:
        conn = await ws(stack, record.id, subprotocols=[TICKET + stack.ticket(login, record)])
        other = await ws(
            stack, bystander_ws.id, subprotocols=[TICKET + stack.ticket(bystander, bystander_ws)]
        )
        await conn.send("before")
        assert await conn.recv() == "before"
        await asyncio.to_thread(stack.logout, login)
        assert await closed_with(conn, timeout=REVOCATION_BOUND) in (4401, 1008)
        await other.send("still here")  # the other user's socket is untouched
        assert await other.recv() == "still here"
        await other.close()

    asyncio.run(main())


def test_stopping_the_workspace_closes_the_open_socket(stack: Stack) -> None:
    login = stack.login()
    record = stack.workspace(login)

    async def main() -> None:
        conn = await ws(stack, record.id, subprotocols=[TICKET + stack.ticket(login, record)])
        await conn.send("before")
        assert await conn.recv() == "before"
        await asyncio.to_thread(stack.stop, record)
        assert await closed_with(conn, timeout=REVOCATION_BOUND) in (4401, 1008)

    asyncio.run(main())


@pytest.mark.slow
def test_slow_reader_does_not_grow_relay_memory(stack: Stack) -> None:
    """A client that sends without reading: the echo's answers back up, the relay stops reading
    from the client, and the client's sends block, instead of the relay buffering the flood."""
    login = stack.login()
    record = stack.workspace(login)
    chunk = b"y" * (1024 * 1024)
    attempt = 400  # MiB the client tries to push; far more than any bounded buffering allows

    async def main() -> tuple[int, int]:
        before = stack.relay_rss()
        peak = before
        sent = 0
        async with ws(
            stack,
            record.id,
            subprotocols=[TICKET + stack.ticket(login, record)],
            max_queue=1,
            close_timeout=1,
        ) as conn:
            for _ in range(attempt):
                try:
                    await asyncio.wait_for(conn.send(chunk), 2)
                except TimeoutError:
                    break  # blocked: backpressure reached the client
                sent += 1
                peak = max(peak, stack.relay_rss())
            peak = max(peak, stack.relay_rss())
        return sent, peak - before

    sent, growth = asyncio.run(main())
    print(f"slow reader: {sent} MiB accepted, relay RSS +{growth / 2**20:.1f} MiB")
    assert sent < attempt, "the client's sends never blocked: something buffers without bound"
    assert growth < 64 * 1024 * 1024, f"relay RSS grew by {growth / 2**20:.1f} MiB"


def test_handshakes_refused_by_the_websocket_library_get_the_envelope(stack: Stack) -> None:
    """Issue 15 item 3: a duplicate Origin (refused by `websockets` before the relay's code runs)
    and a broken handshake answer the JSON envelope with X-Request-Id, not plain text."""
    login = stack.login()
    ws = stack.workspace(login)
    ticket = stack.ticket(login, ws)
    host, port = stack.relay_url.removeprefix("http://").split(":")

    def raw(extra: str) -> tuple[str, dict[str, str], str]:
        request = (
            f"GET /workspaces/{ws.id}/echo?ticket={ticket} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"X-Request-Id: probe-ws-request-1\r\n{extra}\r\n"
        )
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(request.encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, _, body = data.decode("latin-1").partition("\r\n\r\n")
        status, *lines = head.split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        return status, headers, body

    key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    for extra, status, code in (
        (key + f"Origin: {ORIGIN}\r\nOrigin: https://evil.example\r\n", "403", "origin_not_allowed"),
        (key + "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n", "400", "bad_request"),
        ("", "400", "bad_request"),  # no key at all
    ):
        line, headers, body = raw(extra)
        assert line.split(" ")[1] == status, (line, body)
        assert (
            headers["content-type"] == "application/json" and headers["x-request-id"] == "probe-ws-request-1"
        )
        doc = json.loads(body)
        assert doc["success"] is False and doc["error"]["code"] == code
        assert doc["request_id"] == "probe-ws-request-1"
        assert headers["x-frame-options"] == "DENY"
