"""Frame forwarding: the relay's WebSocket fast path (CHP's model, with the relay's rules).

Once both handshakes are done, neither side negotiated an extension, so a frame read from one
socket is a valid frame for the other: client frames arrive masked, which is what the workspace
(a server) expects, and workspace frames arrive unmasked, which is what the client expects. So
the relay passes bytes through and parses only frame *headers*, never re-encoding a message:

- limits: a message whose running size passes `limit` is refused when its header is read
  (1009 to the side that sent it; the rest of its bytes are dropped, never buffered);
- protocol: reserved bits, unknown opcodes, wrong masking, bad fragmentation or oversized control
  frames end the connection with 1002 (nothing malformed is forwarded);
- control frames: peers' pings/pongs pass through; the relay's own keepalive pongs are taken
  out; close frames pass through once and end the pair when both sides have sent one;
- injection (keepalive pings, the relay's own close frames: revocation 4401, idle 1001, 1009)
  happens only between two frames of the stream it joins;
- backpressure: a side whose write buffer passes the high-water mark pauses reading on the
  other side, so buffering is bounded by the transports' limits plus one read.

`Pair` owns the two `Side`s. The workspace connection is opened here (`open_upstream`, the
handshake via websockets' sans-I/O `ClientProtocol`); the client connection is taken over from
the ASGI server after the 101 (see wsproxy.py).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import OPEN
from websockets.uri import parse_uri

from coditect.relay import metrics
from coditect.relay.limits import Live

try:  # websockets' C masking (only used for control frames: data is forwarded still masked)
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

PROTOCOL_ERROR, GOING_AWAY, TOO_BIG, INTERNAL = 1002, 1001, 1009, 1011
_CLOSE, _PING, _PONG = 8, 9, 10
_MAX_HEAD = 64 * 1024  # bytes of the workspace's handshake response we are willing to read
_LINGER = 5.0  # seconds a closing pair waits for the peers' close replies


class UpstreamRefused(Exception):
    def __init__(self, status: int | None) -> None:
        super().__init__(status)
        self.status = status  # the workspace's HTTP status, None when it was not an HTTP answer


def close_frame(code: int, reason: str, *, mask: bool) -> bytes:
    return Frame(Opcode.CLOSE, Close(code, reason).serialize()).serialize(mask=mask)


class Side(asyncio.Protocol):
    """One TCP connection of a relayed pair: reads frames from it and forwards them to `peer`."""

    __slots__ = (
        "dropping", "got_close", "head", "in_message", "masked", "need", "pair", "peer", "ping",
        "ping_at", "queued", "sent_close", "size", "transport",
    )  # fmt: skip

    def __init__(self, pair: Pair, masked: bool) -> None:
        self.pair = pair
        self.masked = masked  # frames read from this side are masked (the client side)
        self.peer: Side = self
        self.transport: asyncio.Transport | None = None
        self.head = b""  # an incomplete frame header (or control frame) not yet forwarded
        self.need = 0  # payload bytes of the current frame still to come
        self.dropping = False  # those bytes are discarded, not forwarded
        self.in_message = False  # inside a fragmented message
        self.size = 0  # bytes of the current message so far
        self.got_close = False  # this side sent us a close frame
        self.sent_close = False  # a close frame was written to this side
        self.queued: list[bytes] = []  # frames for this side, waiting for a frame boundary
        self.ping: bytes | None = None  # payload of our unanswered keepalive ping to this side
        self.ping_at = 0.0

    # -- writing to this side ------------------------------------------------------------------
    def at_boundary(self) -> bool:
        """Whether the stream written to this side is between two frames."""
        reader = self.peer
        return reader.need == 0 or reader.dropping

    def inject(self, frame: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self.at_boundary():
            self.transport.write(frame)
        else:
            self.queued.append(frame)

    def send_close(self, code: int, reason: str = "") -> None:
        if not self.sent_close:
            self.sent_close = True
            self.inject(close_frame(code, reason, mask=not self.masked))

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.pair.lost(self)

    def pause_writing(self) -> None:  # our writes to this side back up: stop reading the other
        peer = self.peer.transport
        if peer is not None and not peer.is_closing():
            peer.pause_reading()

    def resume_writing(self) -> None:
        peer = self.peer.transport
        if peer is not None and not peer.is_closing():
            peer.resume_reading()

    def data_received(self, data: bytes) -> None:
        """Forward `data`: the rest of a frame begun earlier, then frame by frame (header, then
        the control- or data-frame rules); an incomplete header waits for the next read."""
        if self.got_close:  # nothing after a close frame matters
            return
        pair = self.pair
        if self is pair.client:
            pair.live.bytes_in += len(data)
        else:
            pair.live.bytes_out += len(data)
        out = self.peer
        if self._whole_data_frame(data, out):
            return
        if self.head:
            data = self.head + data
            self.head = b""
        write = out.transport.write  # type: ignore[union-attr]
        resumed = self._finish_frame(data, out, write)
        if resumed is None:
            return
        if (stopped := self._frames(data, *resumed, out, write)) is None:  # the pair failed or closed
            return
        pos, start, activity = stopped
        n = len(data)
        if pos > start:
            write(data[start:pos] if start or pos < n else data)
        if pos < n:
            self.head = data[pos:]
        if activity:
            pair.live.last_activity = pair.loop.time()

    def _whole_data_frame(self, data: bytes, out: Side) -> bool:
        """The fast path, the common read: exactly one whole unfragmented text/binary frame,
        forwarded as it is. False when `data` is anything else."""
        n = len(data)
        if n <= 6 or self.head or self.need or self.in_message or out.sent_close or out.queued:
            return False
        b0, b1 = data[0], data[1]
        length = b1 & 0x7F
        size = 6 if self.masked else 2
        if length == 126:
            length = (data[2] << 8) | data[3]
            size += 2
        pair = self.pair
        if (
            (b0 == 0x81 or b0 == 0x82)
            and (b1 >= 0x80) == self.masked
            and length < 65536
            and size + length == n
            and length <= pair.limit
        ):
            out.transport.write(data)  # type: ignore[union-attr]
            pair.live.last_activity = pair.loop.time()
            return True
        return False

    def _finish_frame(self, data: bytes, out: Side, write: Callable[[bytes], Any]) -> tuple[int, int] | None:
        """The rest of a frame begun in an earlier read: `(pos, start)` just after it (start: the
        first byte not yet written or skipped), None when `data` ends inside it."""
        if not self.need:
            return 0, 0
        n = len(data)
        if self.need >= n:
            self.need -= n
            if not self.dropping:
                write(data)
            return None
        pos = start = self.need
        self.need = 0
        if not self.dropping:
            if out.queued:
                write(data[:pos])
            else:
                start = 0
        if out.queued:
            self._flush_queued(out)
        return pos, start

    def _frames(
        self, data: bytes, pos: int, start: int, out: Side, write: Callable[[bytes], Any]
    ) -> tuple[int, int, bool] | None:
        """Forward the frames from `pos` on: `(pos, start, activity)` where reading stopped (an
        incomplete header or control frame, or the end), None when the pair was failed or closed."""
        pair, n = self.pair, len(data)
        activity = False
        while pos < n:
            header = _header(data, pos, n)
            if header is None:
                break
            b0, b1, size, length = header
            end = pos + size + length
            verdict = self._verdict(data, pos, end, n, b0, b1, length)
            if verdict is None:  # keep the (small) incomplete control frame until it is whole
                break
            error, own, closed, too_big = verdict
            drop = out.sent_close or own or too_big  # the other side is closing: it gets no more frames
            if error or too_big or closed:  # the pair is told below: write what precedes first
                start = _written(data, start, pos, write)
            if error:
                self.got_close = True  # the stream is garbage from here on
                pair.fail(self, PROTOCOL_ERROR, "protocol error")
                return None
            if too_big:
                metrics.CLOSED.labels(cause="too_big").inc()
                pair.fail(self, TOO_BIG, "message too big")
            activity = activity or b0 & 0x0F < _CLOSE
            pos, start, incomplete = self._skip_or_pass(data, pos, start, end, drop, write)
            if incomplete:
                break
            if closed:
                _written(data, start, pos, write)
                out.sent_close = out.sent_close or not drop
                self.got_close = True
                pair.closing()
                return None
            if out.queued:  # a frame just ended: room for the relay's own frames
                start = _written(data, start, pos, write)
                self._flush_queued(out)
        return pos, start, activity

    def _verdict(
        self, data: bytes, pos: int, end: int, n: int, b0: int, b1: int, length: int
    ) -> tuple[bool, bool, bool, bool] | None:
        """`(error, own, closed, too_big)` of the frame at `pos` (own: our keepalive's pong, taken
        out); None when it is a control frame not whole in `data` yet."""
        opcode = b0 & 0x0F
        if b0 & 0x70 or bool(b1 & 0x80) != self.masked or 2 < opcode < 8 or opcode > 10:
            return True, False, False, False
        if opcode >= _CLOSE:
            return self._control_frame(data, pos, end, n, b0, opcode, length)
        return self._data_frame(b0, opcode, length)

    def _control_frame(
        self, data: bytes, pos: int, end: int, n: int, b0: int, opcode: int, length: int
    ) -> tuple[bool, bool, bool, bool] | None:
        """Close, ping or pong: at most 125 bytes and never fragmented."""
        if length > 125 or not b0 & 0x80:
            return True, False, False, False
        if end > n:
            return None
        if opcode == _PONG and self.ping is not None:
            payload = data[end - length : end]
            if self.masked:
                payload = apply_mask(payload, data[end - length - 4 : end - length])
            if payload == self.ping:  # our keepalive's answer: the relay's alone
                self.ping = None
                return False, True, False, False
        return False, False, opcode == _CLOSE, False

    def _data_frame(self, b0: int, opcode: int, length: int) -> tuple[bool, bool, bool, bool]:
        """Text, binary or continuation: fragmentation rules and the running message size."""
        if opcode == 0:
            error = not self.in_message
            self.size += length
        else:
            error = self.in_message
            self.size = length
        self.in_message = not b0 & 0x80
        return error, False, False, self.size > self.pair.limit

    def _skip_or_pass(
        self, data: bytes, pos: int, start: int, end: int, drop: bool, write: Callable[[bytes], Any]
    ) -> tuple[int, int, bool]:
        """Move past the frame `[pos, end)`: a dropped one is cut out of what is written; one that
        goes on in a later read sets `need` (and `dropping`). Returns `(pos, start, incomplete)`."""
        n = len(data)
        if drop:
            _written(data, start, pos, write)
            if end > n:
                self.need, self.dropping = end - n, True
                return n, n, True
            return end, end, False
        if end > n:
            self.need, self.dropping = end - n, False
            return n, start, True
        return end, start, False

    @staticmethod
    def _flush_queued(out: Side) -> None:
        frames, out.queued = out.queued, []
        for frame in frames:
            out.transport.write(frame)  # type: ignore[union-attr]


def _header(data: bytes, pos: int, n: int) -> tuple[int, int, int, int] | None:
    """`(b0, b1, header size, payload length)` of the frame at `pos`; None when incomplete."""
    if n - pos < 2:
        return None
    b0, b1 = data[pos], data[pos + 1]
    length = b1 & 0x7F
    size = 2
    if length == 126:
        if n - pos < 4:
            return None
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        size = 4
    elif length == 127:
        if n - pos < 10:
            return None
        length = int.from_bytes(data[pos + 2 : pos + 10], "big")
        size = 10
    if b1 & 0x80:
        size += 4
    return b0, b1, size, length


def _written(data: bytes, start: int, pos: int, write: Callable[[bytes], Any]) -> int:
    """Write the bytes `[start, pos)` not written yet; the new start."""
    if pos > start:
        write(data[start:pos])
    return pos


class Pair:
    """A relayed WebSocket: the client's and the workspace's sockets, their keepalive, the end."""

    def __init__(
        self, live: Live, limit: int, ping_interval: float | None, ping_timeout: float | None
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.live = live
        self.limit = limit
        self.client = Side(self, masked=True)
        self.upstream = Side(self, masked=False)
        self.client.peer, self.upstream.peer = self.upstream, self.client
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.ping_interval = ping_interval
        self.ping_timeout: float = ping_timeout or ping_interval or 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._lingering = False
        self._lost_hook: Callable[[Exception | None], None] | None = None

    def start(self, client_transport: Any, lost_hook: Callable[[Exception | None], None]) -> None:
        """Take over the client's transport (the upstream one is already ours)."""
        self._lost_hook = lost_hook
        self.client.transport = client_transport
        client_transport.set_protocol(self.client)
        upstream = self.upstream
        if upstream.head:
            upstream.data_received(b"")
        if upstream.transport is not None:
            upstream.transport.resume_reading()
        if self.ping_interval:
            self._timer = self.loop.call_later(self.ping_interval, self._keepalive)
        self.live.on_close(lambda: self.shut(self.live.close_code or GOING_AWAY, self.live.close_reason))
        if self.live.close_code is not None:  # revoked while the handshake was in flight
            self.shut(self.live.close_code, self.live.close_reason)

    # -- endings -------------------------------------------------------------------------------
    def shut(self, client_code: int, reason: str, upstream_code: int = GOING_AWAY) -> None:
        """End the pair from the relay: close frames to both sides, then wait for their replies."""
        self.client.send_close(client_code, reason)
        self.upstream.send_close(upstream_code)
        self.closing()

    def fail(self, side: Side, code: int, reason: str) -> None:
        """`side` broke a rule: it gets `code`; the other side is told the relay is going away."""
        other = GOING_AWAY if code == PROTOCOL_ERROR else (1000 if side is self.client else code)
        side.send_close(code, reason)
        side.peer.send_close(other, "")
        self.closing()

    def closing(self) -> None:
        if self.client.got_close and self.upstream.got_close:
            return self._finish()
        if not self._lingering:
            self._lingering = True
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_later(_LINGER, self._finish)

    def lost(self, side: Side) -> None:
        """One socket is gone: tell the other (1011 for a vanished workspace) and close it."""
        other = side.peer
        if side is self.client and self._lost_hook is not None:
            hook, self._lost_hook = self._lost_hook, None
            hook(None)  # let the ASGI server forget the connection
        other.send_close(INTERNAL if side is self.upstream else 1000)
        self._finish()

    def _finish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for side in (self.client, self.upstream):
            if side.transport is not None and not side.transport.is_closing():
                side.transport.close()
        if not self.done.done():
            self.done.set_result(None)

    def abort(self) -> None:
        self._finish()

    # -- keepalive -----------------------------------------------------------------------------
    def _keepalive(self) -> None:
        now = self.loop.time()
        for side in (self.client, self.upstream):
            if side.ping is not None:
                if now - side.ping_at >= self.ping_timeout - 0.01:
                    metrics.CLOSED.labels(cause="keepalive").inc()
                    return self.fail(side, INTERNAL, "keepalive ping timeout")
                continue
            if side.at_boundary():
                side.ping = os.urandom(4)
                side.ping_at = now
                side.inject(Frame(Opcode.PING, side.ping).serialize(mask=not side.masked))
        wait = self.ping_interval or 0.0
        if any(s.ping is not None for s in (self.client, self.upstream)):
            wait = min(wait, self.ping_timeout)
        self._timer = self.loop.call_later(wait, self._keepalive)


# -- the workspace handshake ---------------------------------------------------------------------
class _Handshake(asyncio.Protocol):
    """Collects the workspace's response head; whatever follows it is kept for the Side."""

    def __init__(self) -> None:
        self.buffer = b""
        self.result: asyncio.Future[tuple[bytes, bytes]] = asyncio.get_running_loop().create_future()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.result.done():
            self.buffer += data  # early frames: kept until the pair starts (reading is paused)
            return
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end >= 0:
            head, self.buffer = self.buffer[: end + 4], self.buffer[end + 4 :]
            self.transport.pause_reading()
            self.result.set_result((head, b""))
        elif len(self.buffer) > _MAX_HEAD:
            self.result.set_exception(UpstreamRefused(None))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.result.done():
            self.result.set_exception(UpstreamRefused(None))


async def open_upstream(
    pair: Pair, host: str, port: int, target: str, headers: list[tuple[str, str]],
    subprotocols: list[str], timeout: float,
) -> str | None:  # fmt: skip
    """Open the workspace's WebSocket for `pair`; its chosen subprotocol. Raises UpstreamRefused,
    OSError or TimeoutError."""
    loop = pair.loop
    hostpart = f"[{host}]" if ":" in host else host
    proto = ClientProtocol(parse_uri(f"ws://{hostpart}:{port}{target}"), subprotocols=subprotocols or None,  # type: ignore[arg-type]
                           extensions=None, max_size=None)  # fmt: skip
    request = proto.connect()
    request.headers.update(headers)
    proto.send_request(request)
    shake = _Handshake()
    transport = None
    try:
        async with asyncio.timeout(timeout):
            transport, _ = await loop.create_connection(lambda: shake, host, port)
            transport.write(b"".join(proto.data_to_send()))
            head, _ = await shake.result
    except BaseException:
        if transport is not None:
            transport.abort()
        raise
    status_line = head.split(b"\r\n", 1)[0].split(b" ", 2)
    status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else None
    if status != 101:
        transport.abort()
        raise UpstreamRefused(status)
    proto.receive_data(head)
    if proto.state is not OPEN or proto.handshake_exc is not None:
        transport.abort()
        raise UpstreamRefused(None)
    side = pair.upstream
    side.transport = transport
    side.head = shake.buffer  # frames sent right after the 101: parsed once the pair starts
    transport.set_protocol(side)
    return proto.subprotocol
