"""The record scanner: TLS record headers followed across reads, bad input refused."""

from __future__ import annotations

import pytest

from emberd.tls.records import MAX_RECORD, RecordError, RecordScanner


def record(rtype: int, body: bytes, version: bytes = b"\x03\x03") -> bytes:
    return bytes([rtype]) + version + len(body).to_bytes(2, "big") + body


STREAM = record(22, b"h" * 300) + record(20, b"\x01") + record(22, b"f" * 40) + \
    record(23, b"a" * 16400) + record(21, b"\x01\x00")


@pytest.mark.parametrize("size", [0, 1, 3, 5, 7, 1000])
def test_records_are_followed_whole_byte_by_byte_and_in_odd_pieces(size):
    s = RecordScanner()
    step = size or len(STREAM)
    for i in range(0, len(STREAM), step):
        s.scan(STREAM[i:i + step])
    assert s.records == 5


def test_trailing_partial_header_waits_for_the_rest():
    s = RecordScanner()
    s.scan(STREAM + b"\x17\x03")
    assert s.records == 5
    s.scan(b"\x03\x00\x02ok")
    assert s.records == 6


@pytest.mark.parametrize("data, words", [
    (b"GET / HTTP/1.1\r\n", "garbage"),
    (b"\x18\x03\x03\x00\x01x", "garbage"),  # heartbeat
    (b"\x17\x04\x03\x00\x01x", "garbage"),
    (record(23, b"") [:3] + (MAX_RECORD + 1).to_bytes(2, "big"), "oversized"),
])
def test_bad_headers_are_refused(data, words):
    with pytest.raises(RecordError, match=words):
        RecordScanner().scan(data)


def test_the_largest_legal_record_passes():
    s = RecordScanner()
    s.scan(b"\x17\x03\x03" + MAX_RECORD.to_bytes(2, "big"))
    assert s.records == 1


def test_handshake_record_after_the_handshake_is_renegotiation():
    s = RecordScanner()
    s.scan(record(22, b"client hello"))
    s.handshake_over = True
    s.scan(record(23, b"data") + record(21, b"\x01\x00"))
    with pytest.raises(RecordError, match="renegotiation"):
        s.scan(record(22, b"hello again"))
