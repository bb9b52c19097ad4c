"""The FastCGI record codec, with raw bytes: whole, byte by byte, with trailing data."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emberd.fcgi import records as r


def feed_bytewise(data: bytes) -> list[r.Record]:
    reader = r.RecordReader()
    out: list[r.Record] = []
    for i in range(len(data)):
        out += reader.feed(data[i : i + 1])
    assert reader.buffered == 0
    return out


def test_header_layout_and_padding():
    rec = r.encode(r.STDOUT, 1, b"hello")
    assert rec[:8] == bytes([1, r.STDOUT, 0, 1, 0, 5, 3, 0])
    assert rec[8:13] == b"hello" and rec[13:] == b"\0\0\0"
    assert len(rec) % 8 == 0


@pytest.mark.parametrize("rtype", range(1, r.MAX_TYPE + 1))
def test_every_record_type_whole_and_bytewise(rtype):
    data = r.encode(rtype, 7, b"x" * 13)
    whole = r.RecordReader().feed(data)
    assert whole == [r.Record(rtype, 7, b"x" * 13)]
    assert feed_bytewise(data) == whole


def test_trailing_data_stays_buffered():
    reader = r.RecordReader()
    data = r.encode(r.STDOUT, 1, b"abc") + r.encode(r.STDERR, 1, b"e")[:5]
    assert reader.feed(data) == [r.Record(r.STDOUT, 1, b"abc")]
    assert reader.buffered == 5
    assert reader.feed(r.encode(r.STDERR, 1, b"e")[5:]) == [r.Record(r.STDERR, 1, b"e")]


def test_content_limit():
    assert len(r.encode(r.STDIN, 1, b"a" * 65535)) == 8 + 65535 + 1
    with pytest.raises(ValueError):
        r.encode(r.STDIN, 1, b"a" * 65536)
    parts = r.encode_stream(r.STDIN, 1, b"a" * 140000)
    got = r.RecordReader().feed(b"".join(parts))
    assert [len(x.content) for x in got] == [65535, 65535, 8930]


def test_begin_end_unknown():
    begin = r.RecordReader().feed(r.begin_request(1, r.RESPONDER, keep_conn=True))[0]
    assert begin.type == r.BEGIN_REQUEST
    assert r.parse_begin(begin.content) == r.BeginRequest(r.RESPONDER, True)
    assert not r.parse_begin(r.RecordReader().feed(r.begin_request(1))[0].content).keep_conn
    end = r.RecordReader().feed(r.end_request(1, 300, r.OVERLOADED))[0]
    assert r.parse_end(end.content) == r.EndRequest(300, r.OVERLOADED)
    unknown = r.RecordReader().feed(r.unknown_type(99))[0]
    assert unknown.request_id == 0 and unknown.content[0] == 99
    with pytest.raises(r.FcgiError):
        r.parse_end(b"short")
    with pytest.raises(r.FcgiError):
        r.parse_begin(b"\0" * 9)


def test_pairs_one_and_four_byte_lengths():
    long_value = b"v" * 300
    data = r.encode_pairs([(b"A", b"1"), (b"B" * 127, long_value), (b"C" * 128, b"")])
    assert data[:2] == bytes([1, 1])
    assert data[4] == 127 and data[5] == 0x80  # 300 as four bytes, high bit set
    assert r.decode_pairs(data) == [(b"A", b"1"), (b"B" * 127, long_value), (b"C" * 128, b"")]


@pytest.mark.parametrize("bad", [
    bytes([5]),  # value length missing
    bytes([0x80, 0, 0]),  # four-byte length cut short
    bytes([3, 1]) + b"ab",  # runs past the end
])
def test_malformed_pairs(bad):
    with pytest.raises(r.FcgiError):
        r.decode_pairs(bad)


@pytest.mark.parametrize("bad", [
    bytes([2, r.STDOUT, 0, 1, 0, 0, 0, 0]),  # version 2
    bytes([1, 0, 0, 1, 0, 0, 0, 0]),  # type 0
])
def test_malformed_headers(bad):
    with pytest.raises(r.FcgiError):
        r.RecordReader().feed(bad)


@given(st.lists(st.tuples(st.integers(1, 255), st.integers(0, 65535), st.binary(max_size=300)),
                max_size=8),
       st.integers(1, 64))
def test_roundtrip_in_any_pieces(recs, piece):
    data = b"".join(r.encode(t, i, c) for t, i, c in recs)
    reader = r.RecordReader()
    got: list[r.Record] = []
    for i in range(0, len(data), piece):
        got += reader.feed(data[i : i + piece])
    assert got == [r.Record(t, i, c) for t, i, c in recs]


@given(st.binary(max_size=200))
def test_garbage_never_raises_anything_but_fcgi_error(data):
    with contextlib.suppress(r.FcgiError):
        r.RecordReader().feed(data)
    with contextlib.suppress(r.FcgiError):
        r.decode_pairs(data)


@given(st.lists(st.tuples(st.binary(max_size=200), st.binary(max_size=200)), max_size=10))
def test_pairs_roundtrip(pairs):
    assert r.decode_pairs(r.encode_pairs(pairs)) == pairs
