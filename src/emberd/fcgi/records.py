"""FastCGI 1.0 records, sans-IO: bytes in, records out; records to bytes.

A record is an 8-byte header (version 1, type, request id, content length,
padding length) followed by up to 65535 bytes of content and up to 255 of
padding.  Name-value pairs (PARAMS, GET_VALUES) encode each length in one
byte when it is below 128, otherwise in four bytes with the high bit set.

``RecordReader`` parses a byte stream fed in arbitrary pieces.  Malformed
input raises ``FcgiError`` -- never another exception -- so a broken peer
ends only its own connection.  Record contents are copied out of the
reader's buffer (they are consumed at once, and a view kept by mistake would
pin the buffer).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

VERSION = 1
BEGIN_REQUEST = 1
ABORT_REQUEST = 2
END_REQUEST = 3
PARAMS = 4
STDIN = 5
STDOUT = 6
STDERR = 7
DATA = 8
GET_VALUES = 9
GET_VALUES_RESULT = 10
UNKNOWN_TYPE = 11
MAX_TYPE = UNKNOWN_TYPE

# roles (BEGIN_REQUEST)
RESPONDER = 1
AUTHORIZER = 2
FILTER = 3
FLAG_KEEP_CONN = 1

# protocol status (END_REQUEST)
REQUEST_COMPLETE = 0
CANT_MPX_CONN = 1
OVERLOADED = 2
UNKNOWN_ROLE = 3

MAX_CONTENT = 65535
HEADER_LEN = 8
# records that belong to the connection, not to a request (request id 0)
MANAGEMENT = frozenset((GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE))


class FcgiError(Exception):
    """The peer sent something that is not FastCGI."""


@dataclass(frozen=True, slots=True)
class Record:
    type: int
    request_id: int
    content: bytes


def header(rtype: int, request_id: int, length: int, padding: int = 0) -> bytes:
    return bytes((VERSION, rtype, request_id >> 8, request_id & 0xFF, length >> 8,
                  length & 0xFF, padding, 0))


def encode(rtype: int, request_id: int, content: bytes | bytearray | memoryview = b"") -> bytes:
    """One record (content of at most 65535 bytes), padded to a multiple of 8."""
    n = len(content)
    if n > MAX_CONTENT:
        raise ValueError(f"record content of {n} bytes is over {MAX_CONTENT}")
    pad = -n & 7
    return header(rtype, request_id, n, pad) + bytes(content) + b"\0" * pad


def encode_stream(rtype: int, request_id: int, data: bytes | memoryview) -> list[bytes]:
    """A stream's data as records of at most 65535 bytes each (no terminating record)."""
    view = memoryview(data)
    return [encode(rtype, request_id, view[i : i + MAX_CONTENT])
            for i in range(0, len(view), MAX_CONTENT)]


def begin_request(request_id: int, role: int = RESPONDER, keep_conn: bool = False) -> bytes:
    body = bytes((role >> 8, role & 0xFF, FLAG_KEEP_CONN if keep_conn else 0, 0, 0, 0, 0, 0))
    return encode(BEGIN_REQUEST, request_id, body)


def end_request(request_id: int, app_status: int = 0,
                protocol_status: int = REQUEST_COMPLETE) -> bytes:
    body = (app_status & 0xFFFFFFFF).to_bytes(4, "big") + bytes((protocol_status, 0, 0, 0))
    return encode(END_REQUEST, request_id, body)


def unknown_type(rtype: int) -> bytes:
    return encode(UNKNOWN_TYPE, 0, bytes((rtype, 0, 0, 0, 0, 0, 0, 0)))


def _length(n: int) -> bytes:
    if n < 128:
        return bytes((n,))
    if n > 0x7FFFFFFF:
        raise ValueError("name or value too long")
    return (n | 0x80000000).to_bytes(4, "big")


def encode_pair(name: bytes, value: bytes) -> bytes:
    return _length(len(name)) + _length(len(value)) + name + value


def encode_pairs(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    return b"".join(encode_pair(k, v) for k, v in pairs)


def decode_pairs(data: bytes | memoryview) -> list[tuple[bytes, bytes]]:
    """Name-value pairs; FcgiError when a length runs past the end."""
    view = memoryview(data)
    out: list[tuple[bytes, bytes]] = []
    pos = 0
    end = len(view)

    def length() -> int:
        nonlocal pos
        if pos >= end:
            raise FcgiError("name-value pair cut short")
        first = view[pos]
        if first < 0x80:
            pos += 1
            return int(first)
        if pos + 4 > end:
            raise FcgiError("name-value pair length cut short")
        n = int.from_bytes(view[pos : pos + 4], "big") & 0x7FFFFFFF
        pos += 4
        return n

    while pos < end:
        nlen = length()
        vlen = length()
        if pos + nlen + vlen > end:
            raise FcgiError("name-value pair longer than its record")
        out.append((bytes(view[pos : pos + nlen]), bytes(view[pos + nlen : pos + nlen + vlen])))
        pos += nlen + vlen
    return out


@dataclass(frozen=True, slots=True)
class BeginRequest:
    role: int
    keep_conn: bool


def parse_begin(content: bytes | memoryview) -> BeginRequest:
    if len(content) != 8:
        raise FcgiError(f"BEGIN_REQUEST body of {len(content)} bytes (expected 8)")
    return BeginRequest((content[0] << 8) | content[1], bool(content[2] & FLAG_KEEP_CONN))


@dataclass(frozen=True, slots=True)
class EndRequest:
    app_status: int
    protocol_status: int


def parse_end(content: bytes | memoryview) -> EndRequest:
    if len(content) != 8:
        raise FcgiError(f"END_REQUEST body of {len(content)} bytes (expected 8)")
    return EndRequest(int.from_bytes(content[:4], "big"), content[4])


class RecordReader:
    """Incremental record parser."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes | memoryview) -> list[Record]:
        """Add bytes; return every complete record (contents are copies)."""
        buf = self._buf
        buf += data
        out: list[Record] = []
        pos = 0
        n = len(buf)
        while n - pos >= HEADER_LEN:
            if buf[pos] != VERSION:
                raise FcgiError(f"record version {buf[pos]} (expected 1)")
            rtype = buf[pos + 1]
            if rtype == 0:
                raise FcgiError("record type 0")
            rid = (buf[pos + 2] << 8) | buf[pos + 3]
            length = (buf[pos + 4] << 8) | buf[pos + 5]
            total = HEADER_LEN + length + buf[pos + 6]
            if n - pos < total:
                break
            out.append(Record(rtype, rid, bytes(buf[pos + HEADER_LEN : pos + HEADER_LEN + length])))
            pos += total
        if pos:
            del buf[:pos]
        return out
