"""The gateway as a proxy: streaming both ways, headers, envelopes, and WebSocket relaying.

The upstream is a real Starlette app served by uvicorn on loopback; the gateway is served the
same way, and the client talks to it over a socket.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route as StarletteRoute
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from coditect.devstack.gateway import Gateway
from coditect.devstack.routing import RouteTable
from coditect.devstack.servers import Served, bind
from coditect.registry.spec import FunctionSpec, Route
from tests.helpers import check_envelope

MiB = 1024 * 1024


async def upload(request: Request) -> Response:
    digest, size = hashlib.sha256(), 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
    return JSONResponse({"size": size, "sha256": digest.hexdigest()}, status_code=201, headers={"X-Up": "1"})


async def echo(request: Request) -> Response:
    headers = dict(request.headers)
    rid = headers.get("x-request-id", "")
    return JSONResponse(
        {"headers": headers, "query": str(request.query_params)}, headers={"X-Request-Id": rid}
    )


async def big(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * MiB

    return StreamingResponse(chunks(), media_type="application/octet-stream")


async def relay(websocket: WebSocket) -> None:
    if websocket.query_params.get("ticket") != "good":
        await websocket.send_denial_response(JSONResponse({"error": "token_missing"}, status_code=401))
        return
    protocols = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol=protocols[0] if protocols else None)
    await websocket.send_text(f"origin={websocket.headers.get('origin')}")
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "bye":
            await websocket.close(code=4001, reason="bye")
            return
        if message.get("text") is not None:
            await websocket.send_text(message["text"].upper())
        else:
            await websocket.send_bytes(message["bytes"][::-1])


UPSTREAM = Starlette(routes=[
    StarletteRoute("/api/v5/things/upload", upload, methods=["POST"]),
    StarletteRoute("/api/v5/things/echo", echo, methods=["GET"]),
    StarletteRoute("/api/v5/things/big", big, methods=["GET"]),
    WebSocketRoute("/workspaces/{wid}/ws", relay),
])  # fmt: skip
SPECS = (
    FunctionSpec("things", routes=(
        Route("things.upload", "POST", "/api/v5/things/upload", raw_body=True),
        Route("things.echo", "GET", "/api/v5/things/echo"),
        Route("things.big", "GET", "/api/v5/things/big"),
    )),
    FunctionSpec("ghost", routes=(Route("ghost.get", "GET", "/api/v5/ghost"),)),
    FunctionSpec("relay", kind="asgi"),
)  # fmt: skip


def with_gateway(test: Callable[[str], Awaitable[Any]]) -> Any:
    """Serve UPSTREAM and a Gateway in front of it; run `test(gateway_url)`."""

    async def go() -> Any:
        upstream = Served(UPSTREAM, bind("127.0.0.1", 0), access_log=False)
        await upstream.start()
        base = f"http://127.0.0.1:{upstream.port}"
        gateway = Served(
            Gateway(RouteTable(SPECS), {"things": base, "relay": base, "ghost": None}), bind("127.0.0.1", 0)
        )
        await gateway.start()
        try:
            return await test(f"http://127.0.0.1:{gateway.port}")
        finally:
            await gateway.stop()
            await upstream.stop()

    return asyncio.run(go())


def test_a_100_mib_upload_streams_through_without_being_buffered() -> None:
    total, chunk = 100 * MiB, b"\x5a" * (256 * 1024)
    expected = hashlib.sha256(chunk * (total // len(chunk))).hexdigest()

    async def body() -> AsyncIterator[bytes]:
        for _ in range(total // len(chunk)):
            yield chunk

    async def test(url: str) -> tuple[httpx.Response, int]:
        tracemalloc.start()
        try:
            async with httpx.AsyncClient(timeout=120) as client:
                response = await client.post(
                    url + "/api/v5/things/upload", content=body(), headers={"Content-Length": str(total)}
                )
            return response, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    response, peak = with_gateway(test)
    assert response.status_code == 201 and response.headers["X-Up"] == "1"
    assert response.json() == {"size": total, "sha256": expected}
    # Client, gateway and upstream share this process: together they never held the upload.
    assert peak < 25 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"


def test_a_chunked_upload_without_length_passes_too() -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"a" * 100_000

    async def test(url: str) -> httpx.Response:
        async with httpx.AsyncClient() as client:
            return await client.post(url + "/api/v5/things/upload", content=body())

    assert with_gateway(test).json()["size"] == 800_000


def test_a_download_streams_back_whole() -> None:
    async def test(url: str) -> tuple[int, int]:
        async with (
            httpx.AsyncClient() as client,
            client.stream("GET", url + "/api/v5/things/big") as response,
        ):
            return response.status_code, sum([len(c) async for c in response.aiter_raw()])

    assert with_gateway(test) == (200, 5 * MiB)


def test_headers_request_id_and_forwarding() -> None:
    async def test(url: str) -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient() as client:
            given = await client.get(
                url + "/api/v5/things/echo?a=1&b=%2F",
                headers={"X-Request-Id": "client-chosen-id-1", "X-Forwarded-For": "10.1.2.3",
                         "Authorization": "Bearer t", "Connection": "keep-alive, X-Secret-Hop",
                         "X-Secret-Hop": "drop me"},
            )  # fmt: skip
            bad_id = await client.get(url + "/api/v5/things/echo", headers={"X-Request-Id": "bad id!"})
            return given, bad_id

    given, bad_id = with_gateway(test)
    seen = given.json()["headers"]
    assert given.json()["query"] == "a=1&b=%2F"
    assert given.headers["X-Request-Id"] == seen["x-request-id"] == "client-chosen-id-1"
    assert seen["x-forwarded-for"] == "10.1.2.3, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "http" and seen["x-forwarded-host"].startswith("127.0.0.1:")
    assert seen["authorization"] == "Bearer t" and "x-secret-hop" not in seen
    replaced = bad_id.json()["headers"]["x-request-id"]
    assert replaced != "bad id!" and len(replaced) == 32 and bad_id.headers["X-Request-Id"] == replaced


def test_gateway_errors_are_contract_envelopes() -> None:
    async def test(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient() as client:
            return [
                await client.get(url + "/api/v5/nothing-here"),
                await client.put(url + "/api/v5/things/echo", content=b"x" * 10_000),
                await client.get(url + "/api/v5/ghost"),
            ]

    missing, wrong_method, not_running = with_gateway(test)
    check_envelope(missing, 404, "not_found")
    assert (
        check_envelope(wrong_method, 405, "method_not_allowed")
        and wrong_method.headers["Allow"] == "GET, HEAD"
    )
    check_envelope(not_running, 503, "unavailable")


def test_a_function_that_is_down_answers_503_retry_after() -> None:
    async def go() -> httpx.Response:
        gateway = Served(Gateway(RouteTable(SPECS), {"things": "http://127.0.0.1:9"}), bind("127.0.0.1", 0))
        await gateway.start()
        try:
            async with httpx.AsyncClient() as client:
                return await client.get(f"http://127.0.0.1:{gateway.port}/api/v5/things/echo")
        finally:
            await gateway.stop()

    response = asyncio.run(go())
    check_envelope(response, 503, "unavailable")
    assert response.headers["Retry-After"] == "1"


def test_websockets_are_relayed_both_ways_with_subprotocol_origin_and_close_code() -> None:
    async def test(url: str) -> tuple[Any, ...]:
        ws_url = url.replace("http", "ws") + "/workspaces/w1/ws?ticket=good"
        async with connect(
            ws_url, subprotocols=["coditect.ticket.abc"], origin="http://localhost:8080"
        ) as ws:  # type: ignore[list-item,arg-type]
            hello = await ws.recv()
            await ws.send("hi")
            text = await ws.recv()
            await ws.send(b"\x01\x02\x03")
            data = await ws.recv()
            await ws.send("bye")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return hello, text, data, ws.subprotocol, ws.close_code

    hello, text, data, subprotocol, code = with_gateway(test)
    assert hello == "origin=http://localhost:8080"
    assert (text, data, subprotocol, code) == ("HI", b"\x03\x02\x01", "coditect.ticket.abc", 4001)


def test_a_refused_websocket_handshake_keeps_the_relay_s_status() -> None:
    async def test(url: str) -> tuple[int, Any]:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(url.replace("http", "ws") + "/workspaces/w1/ws?ticket=bad"):
                pass
        return caught.value.response.status_code, json.loads(caught.value.response.body or b"null")

    assert with_gateway(test) == (401, {"error": "token_missing"})


def test_websockets_outside_workspaces_are_refused_with_404() -> None:
    async def test(url: str) -> int:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(url.replace("http", "ws") + "/api/v5/things/echo"):
                pass
        return caught.value.response.status_code

    assert with_gateway(test) == 404
