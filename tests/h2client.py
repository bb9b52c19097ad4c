"""A small HTTP/2 client on the h2 library, for frame-level tests."""

from __future__ import annotations

import socket
import time
from collections import deque
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
from h2.settings import SettingCodes

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@dataclass
class Goaway:
    last_stream_id: int
    error_code: int


@dataclass
class StreamResult:
    headers: dict[str, str] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset: int | None = None

    @property
    def status(self) -> int:
        return int(self.headers.get(":status", "0"))


class H2Client:
    def __init__(self, port: int, settings: dict[SettingCodes, int] | None = None,
                 auto_ack: bool = True, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.conn.initiate_connection()
        self.auto_ack = auto_ack
        self.streams: dict[int, StreamResult] = {}
        self.events: deque[h2.events.Event] = deque(maxlen=1000)
        self.event_count = 0
        self.goaway: Goaway | None = None
        self.closed = False
        self._inbuf = bytearray()
        self.remote_settings: dict[int, int] = {}
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, path: str, method: str = "GET", body: bytes | None = None,
                headers: list[tuple[str, str]] | None = None) -> int:
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":path", path), (":scheme", "http"),
                (":authority", "localhost"), *(headers or [])]
        self.conn.send_headers(sid, hdrs, end_stream=body is None)
        self.streams[sid] = StreamResult()
        self.flush()
        if body is not None:
            self.send_body(sid, body)
        return sid

    def send_body(self, sid: int, body: bytes) -> None:
        """Send within the flow-control windows, waiting for WINDOW_UPDATEs."""
        view = memoryview(body)
        while True:
            window = self.conn.local_flow_control_window(sid)
            n = min(window, self.conn.max_outbound_frame_size, len(view))
            if n <= 0 and view:
                self._wait_event(sid)
                if self.streams[sid].ended or self.streams[sid].reset is not None:
                    return
                continue
            self.conn.send_data(sid, view[:n], end_stream=n == len(view))
            self.flush()
            view = view[n:]
            if not view:
                return

    def pump(self, until=None, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
        """Read and handle events until ``until()`` holds, the peer closes, or timeout."""
        end = time.monotonic() + timeout
        while not self.closed and (until is None or not until()):
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                if until is None:
                    return
                raise
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
                break
            for ev in self.conn.receive_data(self._strip_goaway(data)):
                self.handle(ev)
            self.flush()

    def _strip_goaway(self, data: bytes) -> bytes:
        """Take GOAWAY frames out before h2 sees them.

        h2 moves its state machine to CLOSED on a GOAWAY and then refuses the
        frames of streams the server still finishes, which a graceful GOAWAY
        allows (RFC 9113 6.8); the test client records the GOAWAY itself.
        """
        buf = self._inbuf
        buf += data
        out = bytearray()
        while len(buf) >= 9:
            length = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + length:
                break
            frame = bytes(buf[: 9 + length])
            del buf[: 9 + length]
            if frame[3] == 0x07:
                self.goaway = Goaway(int.from_bytes(frame[9:13], "big") & 0x7FFFFFFF,
                                     int.from_bytes(frame[13:17], "big"))
            else:
                out += frame
        return bytes(out)

    def handle(self, ev: h2.events.Event) -> None:
        self.events.append(ev)
        self.event_count += 1
        sid = getattr(ev, "stream_id", None)
        st = self.streams.setdefault(sid, StreamResult()) if sid else None
        if isinstance(ev, h2.events.ResponseReceived):
            assert st is not None
            st.headers = dict(ev.headers)
        elif isinstance(ev, h2.events.DataReceived):
            assert st is not None
            st.data += ev.data
            if self.auto_ack:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, sid)
        elif isinstance(ev, h2.events.StreamEnded):
            assert st is not None
            st.ended = True
        elif isinstance(ev, h2.events.StreamReset):
            assert st is not None
            st.reset = ev.error_code
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            self.remote_settings.update({k: v.new_value for k, v in ev.changed_settings.items()})

    def _wait_event(self, sid: int) -> None:
        before = self.event_count
        self.pump(lambda: self.event_count > before or self.streams[sid].ended
                  or self.streams[sid].reset is not None)

    def wait_ended(self, sid: int) -> None:
        self.pump(lambda: self.streams[sid].ended or self.streams[sid].reset is not None)

    def get(self, path: str, **kw) -> StreamResult:  # type: ignore[no-untyped-def]
        sid = self.request(path, **kw)
        self.pump(lambda: self.streams[sid].ended or self.streams[sid].reset is not None)
        return self.streams[sid]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> H2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
