"""The frame forwarder (coditect.relay.wsraw.Pair) over in-memory transports.

The transports are fakes (named so) standing in for the two TCP sockets: they record what the
relay writes, whether reading is paused and whether they were closed. Frames are built and
decoded here with websockets' own serializer and a small independent decoder.
"""

from __future__ import annotations

import asyncio
import os
import struct

import pytest
from websockets.frames import Close, Frame, Opcode

from coditect.relay.limits import Live
from coditect.relay.wsraw import Pair
from coditect.workspaces.provisioner import Endpoint
from coditect.workspaces.tickets import RelayGrant

LIMIT = 64 * 1024


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False
        self.paused = False
        self.protocol: object = None

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    abort = close

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def set_protocol(self, protocol: object) -> None:
        self.protocol = protocol


def frame(opcode: Opcode, data: bytes, *, masked: bool, fin: bool = True, rsv1: bool = False) -> bytes:
    raw = Frame(opcode, data, fin=fin).serialize(mask=masked)
    return bytes([raw[0] | (0x40 if rsv1 else 0)]) + raw[1:]  # websockets refuses to set RSV1 itself


def decode(stream: bytes) -> list[tuple[int, bool, bytes]]:
    """(opcode, fin, unmasked payload) of every frame in `stream`; fails on a truncated one."""
    out, pos = [], 0
    while pos < len(stream):
        b0, b1 = stream[pos], stream[pos + 1]
        length, pos = b1 & 0x7F, pos + 2
        if length == 126:
            (length,), pos = struct.unpack("!H", stream[pos : pos + 2]), pos + 2
        elif length == 127:
            (length,), pos = struct.unpack("!Q", stream[pos : pos + 8]), pos + 8
        mask = b""
        if b1 & 0x80:
            mask, pos = stream[pos : pos + 4], pos + 4
        payload = stream[pos : pos + length]
        assert len(payload) == length, "truncated frame"
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        out.append((b0 & 0x0F, bool(b0 & 0x80), payload))
        pos += length
    return out


def close_code(payload: bytes) -> int:
    return Close.parse(payload).code


class Rig:
    def __init__(self, ping_interval: float | None = None) -> None:
        grant = RelayGrant("t", "u", "s", "w", Endpoint("127.0.0.1", 1), expires=0)
        self.live = Live(grant)
        self.pair = Pair(self.live, LIMIT, ping_interval, ping_interval)
        self.client_t, self.upstream_t = FakeTransport(), FakeTransport()
        self.pair.upstream.connection_made(self.upstream_t)
        self.lost: list[object] = []
        self.pair.start(self.client_t, self.lost.append)

    def from_client(self, data: bytes, chunk: int | None = None) -> None:
        for i in range(0, len(data), chunk or len(data) or 1):
            self.pair.client.data_received(data[i : i + (chunk or len(data))])

    def from_upstream(self, data: bytes, chunk: int | None = None) -> None:
        for i in range(0, len(data), chunk or len(data) or 1):
            self.pair.upstream.data_received(data[i : i + (chunk or len(data))])


def run(body) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        body()

    asyncio.run(main())


STREAM = [  # a realistic client stream: text, binary 126/127 lengths, a fragmented message, a ping
    (Opcode.TEXT, b"hello", True),
    (Opcode.BINARY, os.urandom(300), True),
    (Opcode.TEXT, b"frag-", False),
    (Opcode.PING, b"are you there", True),  # control frames may sit inside a fragmented message
    (Opcode.CONT, b"ment", False),
    (Opcode.CONT, b"ed", True),
    (Opcode.BINARY, os.urandom(LIMIT - 10), True),
]


@pytest.mark.parametrize("chunk", [None, 1, 2, 3, 7, 125, 1000])
def test_frames_pass_through_byte_for_byte_in_any_chunking(chunk: int | None) -> None:
    def body() -> None:
        rig = Rig()
        up = b"".join(frame(op, d, masked=True, fin=f) for op, d, f in STREAM)
        down = b"".join(frame(op, d, masked=False, fin=f) for op, d, f in STREAM)
        rig.from_client(up, chunk)
        rig.from_upstream(down, chunk)
        assert bytes(rig.upstream_t.written) == up  # still masked: the workspace is a server
        assert bytes(rig.client_t.written) == down
        assert rig.live.bytes_in == len(up) and rig.live.bytes_out == len(down)
        assert not rig.pair.done.done()

    run(body)


def test_one_frame_per_read_takes_the_fast_path_and_keeps_every_check() -> None:
    def body() -> None:
        rig = Rig()
        rig.pair.limit = 1000
        for opcode, data, fin in STREAM[:6]:
            rig.from_client(frame(opcode, data, masked=True, fin=fin))
        sent = [(op, fin, d) for op, d, fin in STREAM[:6]]
        assert decode(bytes(rig.upstream_t.written)) == sent
        rig.from_client(frame(Opcode.BINARY, b"x" * 1001, masked=True))  # one frame, over the limit
        (kind, _, payload), = decode(bytes(rig.client_t.written))  # fmt: skip
        assert kind == Opcode.CLOSE and close_code(payload) == 1009
        assert decode(bytes(rig.upstream_t.written))[-1][0] == Opcode.CLOSE

    run(body)


def test_message_over_the_limit_across_fragments_closes_1009_and_forwards_none_of_it() -> None:
    def body() -> None:
        rig = Rig()
        ok = frame(Opcode.TEXT, b"fine", masked=True)
        first = frame(Opcode.BINARY, b"a" * (LIMIT // 2), masked=True, fin=False)
        second = frame(Opcode.CONT, b"b" * (LIMIT // 2 + 1), masked=True)  # total LIMIT + 1
        rig.from_client(ok + first + second, 1000)
        frames = decode(bytes(rig.upstream_t.written))
        # "fine" and the first fragment went through; the second never did; then a close (1000).
        assert [f[0] for f in frames] == [Opcode.TEXT, Opcode.BINARY, Opcode.CLOSE]
        assert close_code(frames[-1][2]) == 1000
        (kind, _, payload), = decode(bytes(rig.client_t.written))  # fmt: skip
        assert kind == Opcode.CLOSE and close_code(payload) == 1009
        # The client's further data is dropped; its close reply and the workspace's end the pair.
        rig.from_client(
            frame(Opcode.TEXT, b"ignored", masked=True)
            + frame(Opcode.CLOSE, Close(1009, "").serialize(), masked=True)
        )
        rig.from_upstream(frame(Opcode.CLOSE, Close(1000, "").serialize(), masked=False))
        assert len(decode(bytes(rig.upstream_t.written))) == 3
        assert rig.pair.done.done() and rig.client_t.closed and rig.upstream_t.closed

    run(body)


def test_oversized_single_frame_from_the_workspace_is_refused_too() -> None:
    def body() -> None:
        rig = Rig()
        rig.from_upstream(frame(Opcode.BINARY, b"z" * (LIMIT + 1), masked=False), 4096)
        (kind, _, payload), = decode(bytes(rig.client_t.written))  # fmt: skip
        assert kind == Opcode.CLOSE and close_code(payload) == 1009
        (kind, _, payload), = decode(bytes(rig.upstream_t.written))  # fmt: skip
        assert kind == Opcode.CLOSE and close_code(payload) == 1009

    run(body)


@pytest.mark.parametrize(
    "bad",
    [
        frame(Opcode.TEXT, b"unmasked", masked=False),  # a client must mask
        frame(Opcode.TEXT, b"rsv", masked=True, rsv1=True),  # no extension was negotiated
        frame(Opcode.CONT, b"orphan", masked=True),  # continuation without a message
        frame(Opcode.TEXT, b"a", masked=True, fin=False) + frame(Opcode.TEXT, b"b", masked=True),
        bytes([0x83, 0x80]) + b"\0\0\0\0",  # reserved opcode 3
        bytes([0x09, 0x80]) + b"\0\0\0\0",  # fragmented ping
        bytes([0x89, 0xFE, 0x00, 0x7E]) + b"\0\0\0\0" + b"p" * 126,  # control frame > 125 bytes
    ],
)
def test_protocol_errors_close_1002_and_nothing_malformed_is_forwarded(bad: bytes) -> None:
    def body() -> None:
        rig = Rig()
        rig.from_client(bad)
        forwarded = decode(bytes(rig.upstream_t.written))
        assert forwarded[-1][0] == Opcode.CLOSE and close_code(forwarded[-1][2]) == 1001
        assert all(f[0] in (Opcode.TEXT, Opcode.CLOSE) and f[2] != b"b" for f in forwarded)
        (kind, _, payload), = decode(bytes(rig.client_t.written))  # fmt: skip
        assert kind == Opcode.CLOSE and close_code(payload) == 1002
        rig.from_client(frame(Opcode.TEXT, b"more", masked=True))  # ignored from now on
        assert decode(bytes(rig.upstream_t.written)) == forwarded

    run(body)


def test_close_handshake_passes_through_and_ends_the_pair() -> None:
    def body() -> None:
        rig = Rig()
        client_close = frame(Opcode.CLOSE, Close(4000, "bye").serialize(), masked=True)
        rig.from_client(client_close)
        assert bytes(rig.upstream_t.written) == client_close
        assert not rig.pair.done.done()
        reply = frame(Opcode.TEXT, b"late", masked=False) + frame(
            Opcode.CLOSE, Close(4000, "bye").serialize(), masked=False
        )
        rig.from_upstream(reply)
        assert bytes(rig.client_t.written) == reply
        assert rig.pair.done.done() and rig.client_t.closed and rig.upstream_t.closed

    run(body)


def test_revocation_mid_frame_waits_for_the_frame_end_then_closes_4401() -> None:
    def body() -> None:
        rig = Rig()
        big = frame(Opcode.BINARY, b"q" * 5000, masked=False)
        rig.from_upstream(big[:1000])
        rig.live.close(4401, "revoked")
        assert bytes(rig.client_t.written) == big[:1000]  # no close frame inside the payload
        rig.from_upstream(big[1000:] + frame(Opcode.TEXT, b"after", masked=False))
        frames = decode(bytes(rig.client_t.written))
        assert [f[0] for f in frames] == [Opcode.BINARY, Opcode.CLOSE]  # "after" was dropped
        assert close_code(frames[1][2]) == 4401 and Close.parse(frames[1][2]).reason == "revoked"
        (kind, _, payload), = decode(bytes(rig.upstream_t.written))  # fmt: skip
        assert kind == Opcode.CLOSE and close_code(payload) == 1001

    run(body)


def test_keepalive_pongs_are_taken_out_and_others_pass() -> None:
    async def main() -> None:
        rig = Rig(ping_interval=0.05)
        await asyncio.sleep(0.08)
        (kind, _, ping), = decode(bytes(rig.client_t.written))  # fmt: skip
        assert kind == Opcode.PING
        (kind, _, ping_up), = decode(bytes(rig.upstream_t.written))  # fmt: skip
        assert kind == Opcode.PING
        rig.upstream_t.written.clear()
        rig.client_t.written.clear()
        other = frame(Opcode.PONG, b"unsolicited", masked=True)
        rig.from_client(other + frame(Opcode.PONG, ping, masked=True) + frame(Opcode.TEXT, b"x", masked=True))
        assert [f[2] for f in decode(bytes(rig.upstream_t.written))] == [b"unsolicited", b"x"]
        rig.from_upstream(frame(Opcode.PONG, ping_up, masked=False))
        assert rig.client_t.written == b""
        await asyncio.sleep(0.08)  # both answered: pinged again, not failed
        assert not rig.pair.done.done()

    asyncio.run(main())


def test_a_silent_peer_fails_keepalive_with_1011() -> None:
    async def main() -> None:
        rig = Rig(ping_interval=0.03)
        await asyncio.sleep(0.05)
        ping = decode(bytes(rig.upstream_t.written))[0][2]
        rig.from_upstream(frame(Opcode.PONG, ping, masked=False))  # the workspace answers
        await asyncio.sleep(0.1)  # the client never does
        frames = decode(bytes(rig.client_t.written))
        assert frames[-1][0] == Opcode.CLOSE and close_code(frames[-1][2]) == 1011

    asyncio.run(main())


def test_backpressure_pauses_the_other_side() -> None:
    def body() -> None:
        rig = Rig()
        rig.pair.client.pause_writing()  # the client stopped reading: stop reading the workspace
        assert rig.upstream_t.paused and not rig.client_t.paused
        rig.pair.client.resume_writing()
        assert not rig.upstream_t.paused
        rig.pair.upstream.pause_writing()
        assert rig.client_t.paused

    run(body)


def test_a_vanished_workspace_closes_the_client_with_1011() -> None:
    def body() -> None:
        rig = Rig()
        rig.pair.upstream.connection_lost(None)
        (kind, _, payload), = decode(bytes(rig.client_t.written))  # fmt: skip
        assert kind == Opcode.CLOSE and close_code(payload) == 1011
        assert rig.client_t.closed and rig.pair.done.done()
        assert rig.lost == []  # the client's socket is not lost yet: the ASGI server hears later

    run(body)


def test_a_vanished_client_closes_the_workspace_and_tells_the_server() -> None:
    def body() -> None:
        rig = Rig()
        rig.pair.client.connection_lost(None)
        (kind, _, payload), = decode(bytes(rig.upstream_t.written))  # fmt: skip
        assert kind == Opcode.CLOSE and close_code(payload) == 1000
        assert rig.upstream_t.closed and rig.pair.done.done() and rig.lost == [None]

    run(body)
