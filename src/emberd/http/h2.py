"""HTTP/2, sans-IO: the h2 library plus the limits that keep a connection bounded.

Theory of operation: h2 (``H2Connection``) does the protocol; this layer
decides what h2 is allowed to keep and watches for abuse h2 does not stop.

* Settings come from the ``h2.*`` directives (lighttpd's values by
  default): 8 concurrent streams, 64 KiB stream windows, a 256 KiB
  connection window (opened with a WINDOW_UPDATE at the start), a 64 KiB
  header list, 16 KiB frames, a 4 KiB HPACK table, no server push.  A
  stream window below the protocol's default is sent as a settings change
  that h2 applies only once the client acknowledges it.
* Closed streams: h2 remembers up to 65,536 of them per connection (about
  140 bytes each: the lighttpd bug #3084 curve again).  h2 honours
  ``MAX_CLOSED_STREAMS`` only as a class attribute, so each configured cap
  gets its own subclass.
* Header blocks: h2 accepts up to 64 CONTINUATION frames (about 1 MiB of
  header block) before decoding; ``FrameScanner`` reads the frame headers of
  the raw input first and ends the connection when one block exceeds
  ``h2.max-header-block-size`` (lighttpd: 64 KiB) or has 32 CONTINUATION
  frames (lighttpd's CONTINUATION-flood rule).
* Rapid reset (CVE-2023-44487): streams the client resets within 2 s of
  opening them are counted over the last 32 streams; 17 or more end the
  connection, as lighttpd 1.4.73+ does.
* Stream ids racing ahead before the client acknowledges our SETTINGS
  (above 200) end the connection (lighttpd #3093).
* A graceful GOAWAY is written as a raw frame: h2's ``close_connection()``
  would move its state machine to CLOSED, after which the streams still in
  flight could not send.  New streams after it are refused by the driver.
* PING and SETTINGS floods are bounded by the driver: input is fed in
  pieces no larger than a pooled chunk, and reading stops while the output
  waiting for the socket is over a bound.

The abuse checks raise ``Abuse`` (with the GOAWAY error code); h2's own
protocol errors surface as ``h2.exceptions.ProtocolError`` after h2 has
queued its GOAWAY.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

FRAME_HEADERS = 0x1
FRAME_CONTINUATION = 0x9
FLAG_END_HEADERS = 0x4
MAX_CONTINUATIONS = 32  # lighttpd: >= 32 CONTINUATION frames in one block is a flood
RAPID_RESET_WINDOW = 2.0  # seconds: a reset this soon after opening counts
RAPID_RESET_BATCH = 32  # streams considered
RAPID_RESET_LIMIT = 17  # quick resets among them that end the connection
EARLY_STREAM_ID_LIMIT = 200  # highest stream id before our SETTINGS are acknowledged


class Abuse(Exception):
    """The client misbehaves: send GOAWAY with ``code`` and close."""

    def __init__(self, code: ErrorCodes, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Limits:
    max_concurrent_streams: int = 8
    initial_window_size: int = 65536
    connection_window_size: int = 262144
    max_header_list_size: int = 65535
    max_frame_size: int = 16384
    max_header_block_size: int = 65536
    max_closed_streams: int = 100

    @classmethod
    def from_config(cls, values: dict[str, Any]) -> Limits:
        return cls(values["h2.max-concurrent-streams"], values["h2.initial-window-size"],
                   values["h2.connection-window-size"], values["h2.max-header-list-size"],
                   values["h2.max-frame-size"], values["h2.max-header-block-size"],
                   values["h2.max-closed-streams"])


# hpack logs every header it encodes or decodes at DEBUG level; even unused,
# those calls cost a third of its encoding time
for _name in ("hpack", "hpack.hpack", "hpack.table"):
    logging.getLogger(_name).disabled = True


@functools.lru_cache(maxsize=8)
def connection_class(max_closed: int) -> type[h2.connection.H2Connection]:
    """An H2Connection subclass remembering at most ``max_closed`` closed streams."""
    return type(f"H2Connection{max_closed}", (h2.connection.H2Connection,),
                {"MAX_CLOSED_STREAMS": max_closed})


# Streams a client may open beyond our advertised limit before the connection ends:
# h2 checks the limit before decoding the header block, so a stream it rejected would
# leave HPACK out of step (a connection error); one it accepts is decoded and refused.
REFUSE_SLACK = 32


class _LocalSettings(h2.settings.Settings):
    """Our SETTINGS as sent, but with REFUSE_SLACK more concurrent streams for h2's own
    check: a browser opens its streams before it has our SETTINGS, and RFC 9113 5.1.2
    makes one too many a stream error (REFUSED_STREAM, which the driver sends), not a
    reason to end the connection."""

    @property
    def max_concurrent_streams(self) -> int:
        return int(self.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS, 2**32 + 1)) \
            + REFUSE_SLACK

    @max_concurrent_streams.setter
    def max_concurrent_streams(self, value: int) -> None:
        self[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = value


class FrameScanner:
    """Reads frame headers from the raw byte stream to bound header blocks."""

    __slots__ = ("_block", "_continuations", "_head", "_skip", "max_block")

    def __init__(self, max_block: int) -> None:
        self.max_block = max_block
        self._head = bytearray()  # a frame header split across reads
        self._skip = 24  # payload bytes still to pass: first the client's preface
        self._block = -1  # bytes of the open header block; -1: none open
        self._continuations = 0

    def feed(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            if self._skip:
                n = min(self._skip, len(view))
                self._skip -= n
                view = view[n:]
                continue
            need = 9 - len(self._head)
            self._head += view[:need]
            view = view[need:]
            if len(self._head) < 9:
                return
            head = self._head
            length = int.from_bytes(head[0:3], "big")
            kind, flags = head[3], head[4]
            self._head = bytearray()
            self._skip = length
            if kind == FRAME_HEADERS:
                self._block = length
                self._continuations = 0
            elif kind == FRAME_CONTINUATION and self._block >= 0:
                self._block += length
                self._continuations += 1
                if self._continuations >= MAX_CONTINUATIONS:
                    raise Abuse(ErrorCodes.ENHANCE_YOUR_CALM,
                                f"CONTINUATION flood: {self._continuations} frames in one "
                                "header block")
            else:
                continue
            if self._block > self.max_block:
                raise Abuse(ErrorCodes.FRAME_SIZE_ERROR,
                            f"header block larger than h2.max-header-block-size "
                            f"({self.max_block} bytes)")
            if flags & FLAG_END_HEADERS:
                self._block = -1


class H2Session:
    """One server-side HTTP/2 connection: h2 plus emberd's limits."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        # emberd builds its response headers itself (lower-case, no line breaks, no
        # connection-specific fields), so h2 need not check them again
        config = h2.config.H2Configuration(client_side=False, header_encoding=None,
                                           validate_outbound_headers=False,
                                           normalize_outbound_headers=False)
        self.conn = connection_class(limits.max_closed_streams)(config=config)
        self.scanner = FrameScanner(limits.max_header_block_size)
        self.settings_acked = False
        self.goaway_sent: int | None = None  # last stream id announced in our GOAWAY
        self._opened: dict[int, float] = {}  # stream id -> when it started
        self._recent: deque[bool] = deque(maxlen=RAPID_RESET_BATCH)  # True: reset quickly
        self._small_window = False

    def _local_settings(self) -> dict[h2.settings.SettingCodes, int]:
        lim = self.limits
        S = h2.settings.SettingCodes
        return {
            S.HEADER_TABLE_SIZE: 4096,
            S.ENABLE_PUSH: 0,
            S.MAX_CONCURRENT_STREAMS: lim.max_concurrent_streams,
            S.MAX_FRAME_SIZE: lim.max_frame_size,
            S.MAX_HEADER_LIST_SIZE: lim.max_header_list_size,
        }

    def _setup(self) -> None:
        conn = self.conn
        lim = self.limits
        settings = self._local_settings()
        S = h2.settings.SettingCodes
        small_window = lim.initial_window_size < 65535
        if not small_window:
            settings[S.INITIAL_WINDOW_SIZE] = lim.initial_window_size
        conn.local_settings = _LocalSettings(client=False, initial_values=settings)
        conn.max_inbound_frame_size = lim.max_frame_size
        conn.decoder.max_header_list_size = lim.max_header_list_size
        self._small_window = small_window

    def _open_windows(self) -> None:
        conn = self.conn
        lim = self.limits
        if self._small_window:
            # only safe once acknowledged: h2 applies it on the client's ACK
            conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE:
                                  lim.initial_window_size})
        extra = lim.connection_window_size - 65535
        if extra > 0:
            conn.increment_flow_control_window(extra)

    def start(self) -> None:
        """Server preface (SETTINGS) for a connection that started with the client preface."""
        self._setup()
        self.conn.initiate_connection()
        self._open_windows()

    def start_upgrade(self, settings_header: bytes) -> None:
        """After ``101 Switching Protocols``: stream 1 is the upgraded request."""
        self._setup()
        self.conn.initiate_upgrade_connection(settings_header=settings_header)
        self._open_windows()
        self._opened[1] = time.monotonic()

    def receive(self, data: bytes | memoryview) -> list[h2.events.Event]:
        """Feed bytes; Abuse or h2's ProtocolError end the connection."""
        self.scanner.feed(data)
        events = self.conn.receive_data(data)
        now = time.monotonic()
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                sid = ev.stream_id
                if sid is not None:
                    if not self.settings_acked and sid > EARLY_STREAM_ID_LIMIT:
                        raise Abuse(ErrorCodes.ENHANCE_YOUR_CALM,
                                    f"stream {sid} opened before our SETTINGS were "
                                    "acknowledged")
                    self._opened[sid] = now
            elif isinstance(ev, h2.events.SettingsAcknowledged):
                self.settings_acked = True
            elif isinstance(ev, h2.events.StreamReset) and ev.stream_id is not None:
                opened = self._opened.pop(ev.stream_id, None)
                if opened is not None and ev.remote_reset:
                    self._recent.append(now - opened < RAPID_RESET_WINDOW)
                    if sum(self._recent) >= RAPID_RESET_LIMIT:
                        raise Abuse(ErrorCodes.NO_ERROR,
                                    "rapid reset: streams reset as soon as opened")
        return events

    def stream_done(self, stream_id: int) -> None:
        """A stream ended normally (it counts as not reset in the rapid-reset batch)."""
        if self._opened.pop(stream_id, None) is not None:
            self._recent.append(False)

    def goaway(self, last_stream_id: int, code: ErrorCodes = ErrorCodes.NO_ERROR,
               debug: bytes = b"") -> bytes:
        """A GOAWAY frame, written without closing h2's state machine."""
        self.goaway_sent = last_stream_id
        frame = GoAwayFrame(0)
        frame.last_stream_id = last_stream_id
        frame.error_code = code
        frame.additional_data = debug
        return bytes(frame.serialize())

    def data_to_send(self) -> bytes:
        return self.conn.data_to_send()

    @property
    def closed_by_peer(self) -> bool:
        """The client ended the connection (its GOAWAY moved h2 to CLOSED)."""
        return bool(self.conn.state_machine.state == h2.connection.ConnectionState.CLOSED)

    @property
    def open_streams(self) -> int:
        return len(self._opened)

    @property
    def closed_records(self) -> int:
        """Closed streams h2 remembers (its private record; read for statistics only)."""
        return len(getattr(self.conn, "_closed_streams", ()))
