"""The TLS record layer as seen from outside: headers only, never the contents.

Theory of operation: every byte a client sends on a TLS connection belongs
to a record with a five-byte header (RFC 5246 6.2.1, RFC 8446 5.1)::

    struct {
        ContentType type;          /* 20..23 */
        ProtocolVersion version;   /* 0x0301..0x0303 */
        uint16 length;             /* at most 2^14 + 2048 */
        opaque fragment[length];
    } TLSCiphertext;

``RecordScanner`` walks these headers across reads (a header may be split
between two reads) before the TLS library sees the bytes, so that input
which is not TLS at all ends the connection with a precise log line and
before any library buffer grows:

* a content type outside 20..23 (heartbeat, 24, is refused too) or a major
  version other than 3 is garbage;
* a length over 2^14 + 2048 is an oversized record (RFC 5246 6.2.3: "The
  length MUST NOT exceed 2^14 + 2048"; TLS 1.3 allows less);
* a handshake record after the handshake is over is a renegotiation
  attempt: TLS 1.2 renegotiation is refused (RFC 5746 makes it safe, but a
  device server has no use for it and lighttpd disables it by default), and
  TLS 1.3 sends nothing in cleartext after the handshake.

The scanner costs a few operations per record, not per byte.
"""

from __future__ import annotations

# RFC 5246 6.2.3: ciphertext length limit (TLS 1.2; TLS 1.3 allows 2^14 + 256)
MAX_RECORD = 2**14 + 2048
HEADER = 5

CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA = 20, 21, 22, 23
_TYPES = frozenset((CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA))


class RecordError(Exception):
    """The input is not a valid TLS record stream."""


class RecordScanner:
    """Follows record boundaries; ``scan()`` raises RecordError on bad input."""

    __slots__ = ("_head", "_left", "handshake_over", "records")

    def __init__(self) -> None:
        self._head = bytearray()  # a header split across reads
        self._left = 0  # fragment bytes of the current record still to come
        self.handshake_over = False  # set by the channel once the handshake completes
        self.records = 0

    def scan(self, data: memoryview | bytes) -> None:
        pos, end = 0, len(data)
        head = self._head
        while pos < end:
            if self._left:
                step = min(self._left, end - pos)
                self._left -= step
                pos += step
                continue
            take = min(HEADER - len(head), end - pos)
            head += data[pos:pos + take]
            pos += take
            if len(head) < HEADER:
                return
            self._check(head[0], head[1], (head[3] << 8) | head[4])
            del head[:]

    def _check(self, rtype: int, major: int, length: int) -> None:
        if rtype not in _TYPES or major != 3:
            raise RecordError(f"garbage instead of a TLS record (type {rtype}, "
                              f"version byte {major})")
        if length > MAX_RECORD:
            raise RecordError(f"oversized TLS record ({length} bytes, the limit is "
                              f"{MAX_RECORD})")
        if rtype == HANDSHAKE and self.handshake_over:
            raise RecordError("renegotiation attempt (a handshake record after the "
                              "handshake); renegotiation is not allowed")
        self.records += 1
        self._left = length
