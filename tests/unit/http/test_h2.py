"""The sans-IO HTTP/2 layer: the frame scanner on raw bytes and the session's limits."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import ContinuationFrame, HeadersFrame, RstStreamFrame

from emberd.http.h2 import Abuse, FrameScanner, H2Session, Limits, connection_class

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
GET = bytes.fromhex("828684") + b"\x41\x09localhost"


def feed(scanner: FrameScanner, data: bytes, split: str) -> None:
    if split == "whole":
        scanner.feed(data)
    else:
        for i in range(len(data)):
            scanner.feed(data[i : i + 1])


def block(n_continuations: int, size: int, end: bool = True) -> bytes:
    h = HeadersFrame(1)
    h.data = GET
    out = h.serialize()
    for i in range(n_continuations):
        c = ContinuationFrame(1, flags=["END_HEADERS"] if end and i == n_continuations - 1
                              else [])
        c.data = b"x" * size
        out += c.serialize()
    return out


@pytest.mark.parametrize("split", ["whole", "bytewise"])
def test_normal_header_blocks_pass(split):
    s = FrameScanner(65536)
    feed(s, PREFACE + block(3, 1000) + block(1, 10), split)


@pytest.mark.parametrize("split", ["whole", "bytewise"])
def test_too_many_continuations(split):
    s = FrameScanner(1 << 20)
    with pytest.raises(Abuse) as exc:
        feed(s, PREFACE + block(40, 1, end=False), split)
    assert exc.value.code == ErrorCodes.ENHANCE_YOUR_CALM


@pytest.mark.parametrize("split", ["whole", "bytewise"])
def test_oversized_block(split):
    s = FrameScanner(65536)
    with pytest.raises(Abuse) as exc:
        feed(s, PREFACE + block(5, 16000, end=False), split)
    assert exc.value.code == ErrorCodes.FRAME_SIZE_ERROR


def test_trailing_partial_frame_is_kept_for_later():
    s = FrameScanner(100)
    data = PREFACE + block(1, 50)
    s.feed(data[:-20])
    with pytest.raises(Abuse):
        s.feed(b"x" * 0 + data[-20:] + block(2, 60, end=False))


def test_closed_stream_records_are_capped_by_a_class_attribute():
    cls = connection_class(42)
    assert cls.MAX_CLOSED_STREAMS == 42
    assert connection_class(42) is cls
    assert h2.connection.H2Connection.MAX_CLOSED_STREAMS == 2**16


def client() -> h2.connection.H2Connection:
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    return c


def test_session_settings_and_window():
    s = H2Session(Limits(max_concurrent_streams=5, initial_window_size=131072))
    s.start()
    c = client()
    events = c.receive_data(s.data_to_send())
    settings = next(e for e in events if isinstance(e, h2.events.RemoteSettingsChanged))
    changed = {int(k): v.new_value for k, v in settings.changed_settings.items()}
    assert changed[3] == 5 and changed[4] == 131072 and changed[2] == 0
    window = next(e for e in events if isinstance(e, h2.events.WindowUpdated))
    assert window.delta == 262144 - 65535


def test_small_stream_window_is_applied_on_acknowledgement():
    s = H2Session(Limits(initial_window_size=16384))
    s.start()
    c = client()
    c.receive_data(s.data_to_send())
    assert s.conn.local_settings.initial_window_size == 65535  # not yet acknowledged
    s.receive(c.data_to_send())  # the client's preface, SETTINGS and both ACKs
    assert s.conn.local_settings.initial_window_size == 16384


def test_rapid_reset_ends_the_connection():
    s = H2Session(Limits())
    s.start()
    data = PREFACE + bytes.fromhex("000000040000000000")
    for sid in range(1, 60, 2):
        h = HeadersFrame(sid, flags=["END_HEADERS"])
        h.data = GET
        r = RstStreamFrame(sid)
        r.error_code = ErrorCodes.CANCEL
        data += h.serialize() + r.serialize()
    with pytest.raises(Abuse) as exc:
        s.receive(data)
    assert "rapid reset" in exc.value.reason


def test_streams_that_complete_do_not_count_as_resets():
    s = H2Session(Limits())
    s.start()
    s.receive(PREFACE + bytes.fromhex("000000040000000000"))
    for sid in range(1, 200, 2):
        h = HeadersFrame(sid, flags=["END_HEADERS", "END_STREAM"])
        h.data = GET
        s.receive(h.serialize())
        s.conn.send_headers(sid, [(b":status", b"204")], end_stream=True)
        s.stream_done(sid)
    assert s.open_streams == 0
    assert s.closed_records <= Limits().max_closed_streams


def test_early_stream_ids_before_settings_ack():
    s = H2Session(Limits())
    s.start()
    h = HeadersFrame(301, flags=["END_HEADERS", "END_STREAM"])
    h.data = GET
    with pytest.raises(Abuse) as exc:
        s.receive(PREFACE + bytes.fromhex("000000040000000000") + h.serialize())
    assert exc.value.code == ErrorCodes.ENHANCE_YOUR_CALM


def test_graceful_goaway_leaves_streams_usable():
    s = H2Session(Limits())
    s.start()
    h = HeadersFrame(1, flags=["END_HEADERS", "END_STREAM"])
    h.data = GET
    s.receive(PREFACE + bytes.fromhex("000000040000000000") + h.serialize())
    frame = s.goaway(1)
    assert frame[3] == 0x07 and frame[9:13] == b"\x00\x00\x00\x01"
    s.conn.send_headers(1, [(b":status", b"200")], end_stream=True)  # still allowed
    assert s.goaway_sent == 1
